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
    assert "\n" not in message and "'scratchgan[gpu-cuda12]'" in message and "'scratchgan[gpu-cuda13]'" in message
    with pytest.raises(backend.DeviceError):
        sg.set_default_device("gpu")
    assert not backend.gpu_available()


def test_gpu_extras_match_the_install_hint():
    """The extras the DeviceError names exist, each installing CuPy for its CUDA major version."""
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert extras["gpu-cuda12"][0].startswith("cupy-cuda12x") and extras["gpu-cuda13"][0].startswith("cupy-cuda13x")
    assert extras["gpu"] == extras["gpu-cuda12"]   # the hint's names: test_gpu_without_cupy_is_one_clear_line


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
    """Every kind of matrix the layers form: a transposed convolution, a strided one through im2col,
    a stride-1 one with fewer output channels through the transpose, dense products."""
    return L.Chain(L.ConvTranspose2d(4, 6, 4, 2, 1, bias=False), L.BatchNorm(6), L.ReLU(),
                   L.Conv2d(6, 5, 3, 2, 1), L.BatchNorm(5), L.LeakyReLU(0.2), L.Conv2d(5, 2, 3, padding=1),
                   L.Flatten(), L.Dense(2 * 4 * 4, 8, "tanh"), L.Maxout(8, 4, 3), L.Dense(4, 3, "sigmoid"))


def _gradients_without_signal(model):
    """Names of the biases whose true gradient is exactly zero: a bias right before a BatchNorm in
    training mode shifts every value of its channel and the batch mean takes the shift away again.
    What is computed for them is rounding noise, of either sign, and Adam's first step turns any
    nonzero noise into about +-lr: two backends agree on them only in being tiny."""
    layers = list(model)
    return {f"{i}.bias" for i, (layer, nxt) in enumerate(zip(layers, layers[1:]))
            if "bias" in layer.params and isinstance(nxt, L.BatchNorm)}


def _assert_same_step(reference, other, x, dy, asnumpy, asarray, rtol):
    """Forward, backward and one Adam step of ``other`` agree with ``reference``'s; the gradients without
    signal (above) are checked to be noise far below the weights' gradients and steps of at most lr."""
    silent = _gradients_without_signal(reference)
    assert silent, "the parity model should have a bias before a BatchNorm"
    y_ref, y = reference.forward(x), other.forward(asarray(x))
    other_output_type = type(y)
    np.testing.assert_allclose(asnumpy(y), y_ref, rtol=rtol, atol=1e-5)
    dx_ref, dx = reference.backward(dy), other.backward(asarray(dy))
    np.testing.assert_allclose(asnumpy(dx), dx_ref, rtol=10 * rtol, atol=1e-5)
    for (name, lr_, k), (_, lo, _) in zip(reference.named_parameters(), other.named_parameters()):
        g_ref, g = lr_.grads[k], asnumpy(lo.grads[k])
        if name in silent:
            scale = float(np.abs(lr_.grads["weight"]).max())
            assert np.abs(g_ref).max() < 1e-5 * scale and np.abs(g).max() < 1e-5 * scale, name
        else:
            np.testing.assert_allclose(g, g_ref, rtol=10 * rtol, atol=1e-5, err_msg=name)
    before = reference.state_dict()
    opt_ref, opt = Adam(reference), Adam(other)
    opt_ref.step(), opt.step()
    after_ref, after = reference.state_dict(), other.state_dict()
    for key, value in after_ref.items():
        if key in silent:   # noise in, +-lr out: bounded by the step size on both sides
            for state in (after_ref, after):
                assert np.abs(state[key] - before[key]).max() <= opt_ref.lr * (1 + 1e-3), key
        else:
            np.testing.assert_allclose(after[key], value, rtol=rtol, atol=1e-6, err_msg=key)
    return other_output_type


def _parity_inputs():
    x = np.random.default_rng(0).standard_normal((6, 4, 4, 4)).astype(np.float32)
    dy = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    return x, dy


def test_float32_step_matches_float64_the_way_the_gpu_parity_test_compares():
    """The comparison the GPU parity test makes, run on the CPU: a float32 model against the same
    model in float64, whose rounding noise on the silent biases differs from float32's."""
    sg.manual_seed(0)
    exact = _parity_model().to(dtype=np.float64)
    single = _parity_model().load_state_dict(exact.state_dict())
    x, dy = _parity_inputs()
    _assert_same_step(exact, single, x.astype(np.float64), dy.astype(np.float64),
                      asnumpy=np.asarray, asarray=lambda a: a.astype(np.float32), rtol=1e-4)


@pytest.mark.gpu
def test_cupy_parity_forward_backward_and_adam_step(cupy):
    sg.manual_seed(0)
    cpu = _parity_model()
    gpu = _parity_model().load_state_dict(cpu.state_dict()).to("gpu")
    x, dy = _parity_inputs()
    output_type = _assert_same_step(cpu, gpu, x, dy, asnumpy=cupy.asnumpy, asarray=cupy.asarray, rtol=1e-4)
    assert output_type is cupy.ndarray and gpu.layers[0].params["weight"].dtype == np.float32


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
