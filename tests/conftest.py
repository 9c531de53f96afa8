import numpy as np
import pytest

from scratchgan import backend


@pytest.fixture(autouse=True)
def _fresh_backend_state():
    """Every test starts from the default device, float32, and a seeded global generator."""
    backend.set_default_device("cpu")
    backend.set_default_dtype(np.float32)
    backend.manual_seed(0)
    yield
    backend.set_default_device("cpu")
    backend.set_default_dtype(np.float32)


@pytest.fixture
def cupy():
    """The CuPy module when a CUDA device is usable; skips the test otherwise."""
    if not backend.gpu_available():
        pytest.skip("needs CuPy and a CUDA device")
    return backend.cupy_module()
