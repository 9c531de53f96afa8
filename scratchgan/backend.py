"""NumPy (CPU) and CuPy (GPU) behind one code path.

Library code never imports CuPy directly: it asks an array which module it
belongs to (``xp = get_xp(x)``) and calls ``xp.matmul``, ``xp.tanh`` and so on.
CuPy is optional; asking for the GPU without it fails with one clear line.
"""
import numpy as np

DEVICES = ("cpu", "gpu")
_default_device = "cpu"
_default_dtype = np.float32
_cupy = None


class DeviceError(RuntimeError):
    """The GPU was asked for but CuPy or a CUDA device is missing."""


def cupy_module():
    """Import CuPy and check that a CUDA device is usable, or raise DeviceError."""
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy
    except ImportError:
        raise DeviceError("GPU requested but CuPy is not installed: "
                          "pip install 'scratchgan[gpu-cuda12]' or 'scratchgan[gpu-cuda13]', the one matching "
                          "your CUDA (nvidia-smi shows it; 'scratchgan[gpu]' is CUDA 12)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken
        raise DeviceError(f"GPU requested but CUDA is not usable ({err}); install an NVIDIA driver "
                          "or run with --device cpu") from None
    if count == 0:
        raise DeviceError("GPU requested but no CUDA device was found; run with --device cpu")
    _cupy = cupy
    return cupy


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cupy_module()
        return True
    except DeviceError:
        return False


def check_device(device):
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return device


def xp_for(device):
    """The array module (numpy or cupy) for a device name."""
    return cupy_module() if check_device(device) == "gpu" else np


def get_xp(x):
    """The array module an array belongs to (numpy for anything that is not a CuPy array)."""
    if isinstance(x, np.ndarray) or _cupy is None:
        return np
    return _cupy if isinstance(x, _cupy.ndarray) else np


def device_of(x):
    return "cpu" if get_xp(x) is np else "gpu"


def to_device(x, device):
    """Copy an array to ``device`` ("cpu" or "gpu"); a no-op when it is already there."""
    if check_device(device) == "cpu":
        return asnumpy(x)
    cupy = cupy_module()
    return x if isinstance(x, cupy.ndarray) else cupy.asarray(x)


def asnumpy(x):
    """A NumPy copy of any array (or scalar)."""
    if isinstance(x, np.ndarray):
        return x
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    return np.asarray(x)


def set_default_device(device):
    """Device on which new layers create their parameters."""
    global _default_device
    if check_device(device) == "gpu":
        cupy_module()
    _default_device = device


def default_device():
    return _default_device


def set_default_dtype(dtype):
    """float32 (the default, for training) or float64 (for gradient checks)."""
    global _default_dtype
    dtype = np.dtype(dtype).type
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {np.dtype(dtype).name}")
    _default_dtype = dtype


def default_dtype():
    return _default_dtype


class RNG:
    """Seeded random numbers on either backend.

    A NumPy ``Generator`` draws host-side numbers (initial weights, shuffling,
    and CPU noise), so a seed gives the same run on a given device every time.
    On the GPU, noise and dropout masks come from a CuPy generator seeded from
    the host one, so the step never waits on a host-to-device copy.
    """

    def __init__(self, seed=None):
        self.host = np.random.default_rng(seed)
        self._gpu = None

    def _gpu_generator(self):
        if self._gpu is None:
            seed = int(self.host.integers(2**63))
            self._gpu = cupy_module().random.RandomState(seed)
        return self._gpu

    def normal(self, shape, dtype=None, xp=np, mean=0.0, std=1.0):
        dtype = np.dtype(dtype or _default_dtype).type
        if xp is np:
            z = self.host.standard_normal(shape, dtype=dtype)
        else:
            z = self._gpu_generator().standard_normal(shape, dtype=dtype)
        return z if (mean, std) == (0.0, 1.0) else z * dtype(std) + dtype(mean)

    def uniform(self, shape, dtype=None, xp=np):
        """Uniform numbers in [0, 1)."""
        dtype = np.dtype(dtype or _default_dtype).type
        if xp is np:
            return self.host.random(shape, dtype=dtype)
        return self._gpu_generator().random_sample(shape, dtype=dtype)

    def state_dict(self):
        """The host generator's state (enough to resume a CPU run bit-identically)."""
        return {"host": self.host.bit_generator.state}

    def load_state_dict(self, state):
        self.host.bit_generator.state = state["host"]
        self._gpu = None  # re-seeded from the restored host stream on first use


_rng = RNG(0)


def manual_seed(seed):
    """Reset the global generator used for initial weights, dropout and noise."""
    global _rng
    _rng = RNG(seed)
    return _rng


def global_rng():
    return _rng
