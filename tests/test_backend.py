"""Backends: device errors, seeded generators, and CuPy parity (skipped without a GPU)."""
import builtins

import numpy as np
import pytest

import scratchgan as sg
import scratchgan.layers as L
from scratchgan import backend, losses
from scratchgan.backend import RNG
from scratchgan.optim import Adam


def test_gpu_without_cupy_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", None)
    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    with pytest.raises(backend.DeviceError) as err:
        L.Dense(2, 2).to("gpu")
    message = str(err.value)
    assert "\n" not in message and "pip install 'scratchgan[gpu]'" in message
    with pytest.raises(backend.DeviceError):
        sg.set_default_device("gpu")
    assert not backend.gpu_available()


def test_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        L.Dense(2, 2).to("tpu")


def test_seeded_generator_reproduces_and_restores():
    a, b = RNG(3), RNG(3)
    np.testing.assert_array_equal(a.normal((4, 5)), b.normal((4, 5)))
    state = a.state_dict()
    first = a.uniform((3,))
    a.load_state_dict(state)
    np.testing.assert_array_equal(a.uniform((3,)), first)
    assert a.normal((2,)).dtype == np.float32
    assert a.normal((2,), dtype=np.float64).dtype == np.float64


def test_default_dtype_float64_builds_float64_layers():
    sg.set_default_dtype("float64")
    assert L.Conv2d(1, 2, 3).params["weight"].dtype == np.float64
    with pytest.raises(ValueError):
        sg.set_default_dtype("int32")


def _parity_model():
    return L.Chain(L.ConvTranspose2d(4, 6, 4, 2, 1, bias=False), L.BatchNorm(6), L.ReLU(),
                   L.Conv2d(6, 5, 3, 2, 1), L.BatchNorm(5), L.LeakyReLU(0.2), L.Flatten(),
                   L.Dense(5 * 4 * 4, 8, "tanh"), L.Maxout(8, 4, 3), L.Dense(4, 3, "sigmoid"))


@pytest.mark.gpu
def test_cupy_parity_forward_backward_and_adam_step(cupy):
    sg.manual_seed(0)
    cpu = _parity_model()
    gpu = _parity_model().load_state_dict(cpu.state_dict()).to("gpu")
    x = np.random.default_rng(0).standard_normal((6, 4, 4, 4)).astype(np.float32)
    y_cpu, y_gpu = cpu.forward(x), gpu.forward(cupy.asarray(x))
    assert isinstance(y_gpu, cupy.ndarray) and y_gpu.dtype == np.float32
    np.testing.assert_allclose(cupy.asnumpy(y_gpu), y_cpu, rtol=1e-4, atol=1e-5)
    dy = np.random.default_rng(1).standard_normal(y_cpu.shape).astype(np.float32)
    dx_cpu, dx_gpu = cpu.backward(dy), gpu.backward(cupy.asarray(dy))
    np.testing.assert_allclose(cupy.asnumpy(dx_gpu), dx_cpu, rtol=1e-3, atol=1e-5)
    for (name, lc, k), (_, lg, _) in zip(cpu.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(cupy.asnumpy(lg.grads[k]), lc.grads[k], rtol=1e-3, atol=1e-5, err_msg=name)
    Adam(cpu).step(), Adam(gpu).step()
    for key, value in cpu.state_dict().items():
        np.testing.assert_allclose(gpu.state_dict()[key], value, rtol=1e-4, atol=1e-6, err_msg=key)


@pytest.mark.gpu
def test_cupy_losses_and_dropout_stay_on_device(cupy):
    z = cupy.asarray(np.random.default_rng(0).standard_normal((8, 1)).astype(np.float32))
    value, grad = losses.bce_with_logits(z, 1.0)
    assert isinstance(grad, cupy.ndarray) and grad.dtype == np.float32
    ref, ref_grad = losses.bce_with_logits(cupy.asnumpy(z), 1.0)
    assert float(value) == pytest.approx(float(ref), rel=1e-5)
    mask = L.Dropout(0.5).forward(cupy.ones((100, 100), dtype=cupy.float32), keep_cache=False)
    assert isinstance(mask, cupy.ndarray) and abs(float((mask != 0).mean()) - 0.5) < 0.03


@pytest.mark.gpu
def test_model_and_optimizer_move_between_devices(cupy):
    model = L.Chain(L.Dense(3, 4, "tanh"), L.Dense(4, 1))
    opt = Adam(model)
    x = np.ones((2, 3), np.float32)
    model.forward(x); model.backward(np.ones((2, 1), np.float32)); opt.step()
    model.to("gpu"); opt.to("gpu")
    assert backend.device_of(model.layers[0].params["weight"]) == "gpu"
    model.zero_grad()
    model.forward(backend.to_device(x, "gpu")); model.backward(backend.to_device(np.ones((2, 1), np.float32), "gpu"))
    opt.step()
    model.to("cpu"); opt.to("cpu")
    assert all(isinstance(v, np.ndarray) for v in opt.state.values())
