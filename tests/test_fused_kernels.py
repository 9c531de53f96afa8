"""The fused CuPy kernels of gpu_kernels.py (one launch per parameter for Adam and RMSprop, three for a
BatchNorm's training forward and backward, one for LeakyReLU's forward, its backward, the sigmoid and
each GAN loss) against the NumPy passes they replace.

No GPU is needed for the main check: the kernels' own source text (``ElementwiseKernelSource.body``)
is compiled for the CPU with the host's C++ compiler, wrapped the way CuPy's ElementwiseKernel wraps
it (inputs by value, outputs by reference, one loop iteration per element), and put in place of
``gpu_kernels.compiled``, behind the real ``gpu_kernels.fused`` (which runs it over the arrays in memory
order). The optimizers, BatchNorm, LeakyReLU, the sigmoid and the losses then take their fused
branches on NumPy arrays, and must agree with their NumPy passes bit for bit: the same operations in
the same order, with ``-ffp-contract=off`` so the compiler rounds every step as NumPy does (to a few
ulps where a body calls exp, log or tanh, which the C library and NumPy's SIMD loops may round
differently). That checks the bodies' arithmetic and the order of the arguments the library passes.
The same text compiled for a device by ``nvcc`` (where installed) checks that it is valid CUDA. On a
GPU (skipped without CuPy) the real kernels are compared with the passes, through CuPy.
"""
import ctypes
import hashlib
import shutil
import subprocess

import numpy as np
import pytest

from scratchgan import Adam, BatchNorm, Chain, Dense, RMSprop, fastpath, gpu_kernels
from scratchgan import optim as optim_module
from scratchgan.layers import norm as norm_module

KERNELS = [gpu_kernels.ADAM_UPDATE, gpu_kernels.RMSPROP_UPDATE, gpu_kernels.BN_STATISTICS, gpu_kernels.SCALE_SHIFT,
           gpu_kernels.BN_INPUT_GRAD, gpu_kernels.LEAKY_RELU, gpu_kernels.LEAKY_RELU_GRAD, gpu_kernels.RELU, gpu_kernels.RELU_GRAD,
           gpu_kernels.TANH, gpu_kernels.TANH_GRAD,
           gpu_kernels.SIGMOID, gpu_kernels.SIGMOID_GRAD, gpu_kernels.BCE_WITH_LOGITS, gpu_kernels.TWO_CLASS_CROSS_ENTROPY,
           gpu_kernels.IM2COL_GATHER, gpu_kernels.COL2IM_GATHER]
SCALARS = {"one_minus_b1", "one_minus_b2", "step_size", "eps_hat", "one_minus_alpha", "eps", "lr", "momentum", "count",
           "unbias", "half", "inv_n", "tiny", "floor", "scale", "positions", "pixels", "batch", "slots"}
# (what the library passes as scalars; every other parameter gets an array)
C_TYPES = {"bool": "bool", "int64": "long long"}          # and T: float or double (CTYPES)
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
SCALAR_CTYPES = {"int64": ctypes.c_longlong, np.dtype(np.float32): ctypes.c_float,
                 np.dtype(np.float64): ctypes.c_double}


def parameters(kernel):
    """[(name, type, is_output, is_raw)] in the order the kernel is called with: inputs, then outputs."""
    found = [(name, kind, is_output, raw) for is_output, declarations in ((False, kernel.in_params),
                                                                          (True, kernel.out_params))
             for kind, name, raw in gpu_kernels.parameters(declarations)]
    assert all(kind in C_TYPES or kind == "T" for _, kind, _, _ in found), kernel.name   # what the wrapper knows
    return found


def wrapper_source(kernel, ctype, is_array, device=False):
    """C++ (or CUDA, ``device``) that runs the kernel's body once per element, as ElementwiseKernel does:
    element-wise arrays bound element by element, raw arrays as pointers, scalars by value."""
    signature, bindings = ["long n"], []
    for (name, kind, is_output, raw), array in zip(parameters(kernel), is_array):
        ctype_of = C_TYPES.get(kind, "T")
        if not array:
            signature.append(f"{ctype_of} {name}")
        elif raw:
            signature.append(f"const {ctype_of}* {name}")
        elif is_output:
            signature.append(f"{ctype_of}* {name}_")
            bindings.append(f"{ctype_of}& {name} = {name}_[i];")
        else:
            signature.append(f"const {ctype_of}* {name}_")
            bindings.append(f"const {ctype_of} {name} = {name}_[i];")
    loop = ("for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)"
            if device else "for (long i = 0; i < n; ++i)")
    head = '#include <cmath>\n#include <algorithm>\n' + ("" if device else "using namespace std;\n")  # float overloads
    qualifier = '__global__' if device else ''
    return (f'{head}typedef {ctype} T;\nextern "C" {qualifier} void run({", ".join(signature)}) {{\n'
            f'    {loop} {{\n        {" ".join(bindings)}\n        {kernel.body}\n    }}\n}}\n')


class HostKernel:
    """A kernel's body compiled for the CPU, called like the CuPy ElementwiseKernel (NumPy arrays, same order)."""

    def __init__(self, kernel, folder):
        self.kernel, self.folder = kernel, folder

    def __call__(self, *args):
        """Element-wise inputs broadcast against each other and the outputs; raw inputs are passed whole
        (C-contiguous, indexed by the body); outputs passed are updated in place, whatever their strides,
        or, when left out, made and returned, as ElementwiseKernel does. T is the type of the T arrays."""
        params = parameters(self.kernel)
        n_inputs = sum(not is_output for _, _, is_output, _ in params)
        inputs, outputs = list(args[:n_inputs]), list(args[n_inputs:])
        dtype = next(a.dtype for a, (_, kind, _, _) in zip(args, params) if kind == "T" and isinstance(a, np.ndarray))
        for a, (name, kind, _, raw) in zip(args, params):
            if isinstance(a, np.ndarray):
                assert a.dtype == (dtype if kind == "T" else np.dtype(kind)), (name, kind, a.dtype)
                assert not raw or a.flags.c_contiguous, name
        shape = np.broadcast_shapes(*(a.shape for a, (_, _, _, raw) in zip(args, params)
                                      if isinstance(a, np.ndarray) and not raw))
        if not outputs:
            outputs = [np.empty(shape, dtype if kind == "T" else np.dtype(kind)) for _, kind, _, _ in params[n_inputs:]]
        assert len(outputs) == len(params) - n_inputs and all(o.shape == shape for o in outputs)
        inputs = [np.ascontiguousarray(np.broadcast_to(a, shape)) if isinstance(a, np.ndarray) and not raw else a
                  for a, (_, _, _, raw) in zip(inputs, params)]
        written = [np.ascontiguousarray(o) for o in outputs]          # strided outputs: through a contiguous copy
        values = inputs + written
        run = self._compiled(CTYPES[dtype], tuple(isinstance(a, np.ndarray) for a in values))
        run(ctypes.c_long(int(np.prod(shape))),
            *[a.ctypes.data_as(ctypes.c_void_p) if isinstance(a, np.ndarray)
              else SCALAR_CTYPES[kind if kind == "int64" else dtype](a) for a, (_, kind, _, _) in zip(values, params)])
        for output, result in zip(outputs, written):
            if result is not output:
                output[...] = result
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _compiled(self, ctype, is_array):
        source = wrapper_source(self.kernel, ctype, is_array)
        if source not in _HOST_LIBRARIES:                  # compiled once per source in the whole run
            stem = self.folder / f"{self.kernel.name}_{hashlib.sha1(source.encode()).hexdigest()[:12]}"
            stem.with_suffix(".cpp").write_text(source)
            subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-ffp-contract=off", "-o", str(stem.with_suffix(".so")),
                            str(stem.with_suffix(".cpp"))], check=True, capture_output=True, text=True)
            _HOST_LIBRARIES[source] = ctypes.CDLL(str(stem.with_suffix(".so"))).run
        return _HOST_LIBRARIES[source]


_HOST_LIBRARIES = {}


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler (g++)")


def make_model(dtype, seed=0):
    from scratchgan import backend
    backend.set_default_dtype(dtype)
    backend.manual_seed(seed)
    return Chain(Dense(5, 7, "tanh"), Dense(7, 3))


def take_steps(model, opt, dtype, steps=4):
    """``steps`` optimizer steps with fixed random gradients (odd and even parameter sizes)."""
    rng = np.random.default_rng(1)
    for _ in range(steps):
        opt.zero_grad()
        for _, layer, key in model.named_parameters():
            layer.grads[key] += rng.standard_normal(layer.grads[key].shape).astype(dtype)
        opt.step()


OPTIMIZERS = {
    "adam": lambda m: Adam(m, lr=2e-3, betas=(0.5, 0.999)),
    "adam-weight-decay": lambda m: Adam(m, lr=1e-3, weight_decay=0.1),
    "rmsprop": lambda m: RMSprop(m, lr=5e-3),
}


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fused_update_matches_the_numpy_passes_bit_for_bit(tmp_path, monkeypatch, name, dtype):
    plain_model, fused_model = make_model(dtype), make_model(dtype)
    plain, fusing = OPTIMIZERS[name](plain_model), OPTIMIZERS[name](fused_model)
    take_steps(plain_model, plain, dtype)

    host = {kernel: HostKernel(kernel, tmp_path) for kernel in KERNELS}
    calls = []
    monkeypatch.setattr(optim_module, "uses_fused_kernels", lambda xp: True)
    monkeypatch.setattr(gpu_kernels, "compiled", lambda kernel: calls.append(kernel.name) or host[kernel])
    take_steps(fused_model, fusing, dtype)

    assert calls and len(calls) == 4 * len(list(fused_model.named_parameters()))   # every parameter, every step
    for (key, p), (_, q) in zip(plain_model.state_dict().items(), fused_model.state_dict().items()):
        np.testing.assert_array_equal(q, p, err_msg=key)
    for key, value in plain.state_dict().items():
        np.testing.assert_array_equal(fusing.state_dict()[key], value, err_msg=key)


@needs_gxx
def test_a_wrong_body_would_be_caught(tmp_path, monkeypatch):
    """The check above can fail: a body with the bias correction's step size applied twice differs."""
    wrong = gpu_kernels.ADAM_UPDATE._replace(name="wrong_adam", body=gpu_kernels.ADAM_UPDATE.body.replace(
        "* step_size;", "* step_size * step_size;"))
    plain_model, fused_model = make_model(np.float64), make_model(np.float64)
    take_steps(plain_model, Adam(plain_model, lr=2e-3), np.float64)
    monkeypatch.setattr(optim_module, "uses_fused_kernels", lambda xp: True)
    monkeypatch.setattr(gpu_kernels, "compiled", lambda kernel: HostKernel(wrong, tmp_path))
    take_steps(fused_model, Adam(fused_model, lr=2e-3), np.float64)
    differs = [not np.array_equal(p, q) for p, q in zip(plain_model.state_dict().values(),
                                                        fused_model.state_dict().values())]
    assert any(differs)


def host_compiled(folder, calls=None):
    """A stand-in for gpu_kernels.compiled: each kernel's body compiled for the CPU (``calls`` records the names)."""
    host = {kernel: HostKernel(kernel, folder) for kernel in KERNELS}

    def compiled(kernel):
        if calls is not None:
            calls.append(kernel.name)
        return host[kernel]
    return compiled


def batchnorm_pass(layer, x, dy):
    """Output, input gradient, parameter gradients and buffers after a training forward and backward,
    as NumPy arrays in their own memory layout."""
    from scratchgan.backend import asnumpy
    y = layer.forward(x, train=True)
    dx = layer.backward(dy)
    return [asnumpy(a).copy(order="K") for a in (y, dx, layer.grads["weight"], layer.grads["bias"],
                                                 *layer.buffers.values())]


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (1, 2, 3, 3), (7, 5), (2, 4)], ids=str)
def test_fused_batchnorm_matches_the_numpy_passes_bit_for_bit(tmp_path, monkeypatch, shape, dtype):
    """Training forward and backward, twice (running statistics move), conv-shaped and Dense-shaped inputs,
    batch 1 of an image (M = H W values per channel), a channel-major input as the convolutions make."""
    from scratchgan import backend
    backend.set_default_dtype(dtype)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    if len(shape) == 4:                     # the memory layout conv layers produce (see conv.py)
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    dy = rng.standard_normal(shape).astype(dtype)
    plain, fusing = BatchNorm(shape[1], init="normal_1_0.02"), BatchNorm(shape[1])
    fusing.load_state_dict(plain.state_dict())
    expected = [batchnorm_pass(plain, x, dy), batchnorm_pass(plain, x * 2, dy)]
    calls = []
    monkeypatch.setattr(norm_module, "uses_fused_kernels", lambda xp: True)
    monkeypatch.setattr(gpu_kernels, "compiled", host_compiled(tmp_path, calls))
    buffers = dict(fusing.buffers)
    got = [batchnorm_pass(fusing, x, dy), batchnorm_pass(fusing, x * 2, dy)]
    assert all(fusing.buffers[k] is a for k, a in buffers.items())   # updated in place (a CUDA graph needs it)
    assert calls == ["scratchgan_batchnorm_statistics", "scratchgan_scale_shift", "scratchgan_batchnorm_input_grad"] * 2
    names = ["y", "dx", "dgamma", "dbeta", *plain.buffers]
    for step in range(2):
        for name, a, b in zip(names, expected[step], got[step]):
            assert a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides, name   # the same layout
            np.testing.assert_array_equal(b, a, err_msg=f"step {step}: {name}")


@needs_gxx
def test_fused_batchnorm_in_eval_mode_keeps_the_passes(tmp_path, monkeypatch):
    layer = BatchNorm(3)
    calls = []
    monkeypatch.setattr(norm_module, "uses_fused_kernels", lambda xp: True)
    monkeypatch.setattr(gpu_kernels, "compiled", host_compiled(tmp_path, calls))
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    layer.forward(x, train=False, keep_cache=True)
    layer.backward(np.ones_like(x))
    assert calls == []


def assert_within_ulps(got, expected, ulps=8):
    """Equal to a few units in the last place of the largest value: the kernels call exp, log, log1p or
    tanh, which the host's C library and NumPy's (SIMD) loops may round differently."""
    eps = np.finfo(expected.dtype).eps
    scale = float(np.max(np.abs(expected))) if np.size(expected) else 1.0
    np.testing.assert_allclose(got, expected, rtol=ulps * eps, atol=ulps * eps * scale)


def unfused_and_fused(monkeypatch, tmp_path, module, compute):
    """``compute()`` with the passes, then with the kernels' bodies compiled for the CPU in ``module``."""
    expected = compute()
    calls = []
    monkeypatch.setattr(module, "uses_fused_kernels", lambda xp: True)
    monkeypatch.setattr(gpu_kernels, "compiled", host_compiled(tmp_path, calls))
    got = compute()
    monkeypatch.undo()
    assert calls, "the fused branch was not taken"
    return expected, got, calls


EXTREMES = [0.0, -0.0, 1e-3, -1e-3, 0.5, -0.5, 8.0, -8.0, 30.0, -30.0, 50.0, -50.0, 90.0, -90.0, 700.0, -700.0]


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [0.2, 0.0, 1.0, 1.5])
def test_fused_leaky_relu_matches_the_passes_bit_for_bit(tmp_path, monkeypatch, dtype, alpha):
    """Forward (output and the kept mask) and backward, on a channel-major input as the convolutions make:
    the same bits and the same memory layout. alpha > 1 (a minimum, not a maximum) keeps the passes."""
    from scratchgan import LeakyReLU
    from scratchgan.layers import activations
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(rng.standard_normal((3, 4, 5, 2)).astype(dtype)).transpose(3, 0, 1, 2)
    x[0, 0, 0, :2] = 0.0, -0.0
    dy = rng.standard_normal(x.shape).astype(dtype)

    def run():
        layer = LeakyReLU(alpha)
        y = layer.forward(x, train=True)
        positive = layer._cache[0]
        return y, positive, layer.backward(dy)

    expected = run()
    calls = []
    monkeypatch.setattr(activations, "uses_fused_kernels", lambda xp: True)
    monkeypatch.setattr(gpu_kernels, "compiled", host_compiled(tmp_path, calls))
    got = run()
    assert calls == ([] if alpha > 1 else ["scratchgan_leaky_relu"]) + ["scratchgan_leaky_relu_grad"]
    for name, a, b in zip(["y", "mask", "dx"], expected, got):
        assert a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides, name
        np.testing.assert_array_equal(b, a, err_msg=name)


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["ReLU", "Tanh", "Sigmoid"])
def test_fused_activation_layers_match_the_passes(tmp_path, monkeypatch, name, dtype):
    """ReLU's forward (output and mask, one kernel) and backward, Tanh's and Sigmoid's forward and backward
    from their output: the same bits (Tanh and Sigmoid: a few ulps, their forwards call tanh and exp) and
    the same memory layout, on a channel-major input as the convolutions make."""
    from scratchgan.layers import activations
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(rng.standard_normal((3, 4, 5, 2)).astype(dtype) * 3).transpose(3, 0, 1, 2)
    x[0, 0, 0, :2] = 0.0, -0.0
    dy = np.ascontiguousarray(rng.standard_normal((3, 4, 5, 2)).astype(dtype)).transpose(3, 0, 1, 2)

    def run():
        layer = getattr(activations, name)()
        y = layer.forward(x, train=True)
        cache = layer._cache[0]
        return y, cache, layer.backward(dy)

    expected, got, calls = unfused_and_fused(monkeypatch, tmp_path, activations, run)
    assert calls == {"ReLU": ["scratchgan_relu", "scratchgan_relu_grad"],
                     "Tanh": ["scratchgan_tanh", "scratchgan_tanh_grad"],
                     "Sigmoid": ["scratchgan_sigmoid", "scratchgan_sigmoid_grad"]}[name]
    for what, a, b in zip(["y", "cache", "dx"], expected, got):
        assert a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides, what
        if name != "ReLU":
            assert_within_ulps(b, a)
        else:
            np.testing.assert_array_equal(b, a, err_msg=what)


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_sigmoid_matches_the_passes(tmp_path, monkeypatch, dtype):
    from scratchgan.layers import activations
    x = np.concatenate([np.random.default_rng(0).standard_normal(36) * 6, EXTREMES]).astype(dtype)
    x = np.ascontiguousarray(x.reshape(4, 13).T).T                     # an F-ordered input keeps its layout
    expected, got, calls = unfused_and_fused(monkeypatch, tmp_path, activations, lambda: activations.sigmoid(x))
    assert calls == ["scratchgan_sigmoid"] and got.dtype == dtype and got.strides == expected.strides
    assert_within_ulps(got, expected)
    assert got[x == -50.0][0] > 0                      # small values are not rounded to 0
    np.testing.assert_array_equal(got[x >= 30], expected[x >= 30])


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", ["scalar", "array"])
def test_fused_bce_with_logits_matches_the_passes(tmp_path, monkeypatch, dtype, target):
    from scratchgan import losses
    z = np.concatenate([np.random.default_rng(0).standard_normal(21) * 5, EXTREMES]).astype(dtype)
    t = 1.0 if target == "scalar" else np.random.default_rng(1).uniform(0, 1, z.shape).astype(dtype)
    (value, grad), (fused_value, fused_grad), calls = unfused_and_fused(
        monkeypatch, tmp_path, losses, lambda: losses.bce_with_logits(z, t))
    assert calls == ["scratchgan_bce_with_logits"]
    assert fused_value.shape == () and fused_grad.shape == z.shape and fused_grad.dtype == dtype
    assert_within_ulps(fused_value, value)
    assert_within_ulps(fused_grad, grad)


@needs_gxx
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", ["scalar", "array"])
def test_fused_two_class_cross_entropy_matches_the_passes(tmp_path, monkeypatch, dtype, target):
    """Including probabilities of exactly 0 and 1 (floored at the smallest normal number, logs clamped)."""
    from scratchgan import losses
    p0 = np.concatenate([np.random.default_rng(0).uniform(0, 1, 20), [0.0, 1.0, 1e-30, 1 - 1e-7, 0.5]])
    probs = np.stack([p0, 1 - p0], axis=1).astype(dtype)
    t = 0.0 if target == "scalar" else np.random.default_rng(1).uniform(0, 1, len(p0)).astype(dtype)
    (value, grad), (fused_value, fused_grad), calls = unfused_and_fused(
        monkeypatch, tmp_path, losses, lambda: losses.two_class_cross_entropy(probs, t))
    assert calls == ["scratchgan_two_class_cross_entropy"]
    assert fused_value.shape == () and fused_grad.shape == probs.shape and fused_grad.dtype == dtype
    assert_within_ulps(fused_value, value)
    np.testing.assert_array_equal(fused_grad, grad)     # no transcendental function in the gradient


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (the CUDA toolkit)")
@pytest.mark.parametrize("ctype", ["float", "double"])
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_kernel_source_compiles_for_a_gpu(tmp_path, kernel, ctype):
    """The same body, wrapped as a __global__ function, is valid CUDA (nvcc to PTX; no device needed)."""
    is_array = tuple(name not in SCALARS for name, _, _, _ in parameters(kernel))
    source = tmp_path / "kernel.cu"
    source.write_text(wrapper_source(kernel, ctype, is_array, device=True))
    result = subprocess.run(["nvcc", "--ptx", "-o", str(tmp_path / "kernel.ptx"), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "run" in (tmp_path / "kernel.ptx").read_text()


@needs_gxx
def test_fused_kernels_pass_a_nan_on_as_the_passes_do(tmp_path, monkeypatch):
    """A diverged run's NaN must reach the loss (the trainer stops on it): the kernels compare instead of
    calling CUDA's max, which returns the other argument of a NaN."""
    from scratchgan import LeakyReLU, losses
    from scratchgan.layers import activations
    nan = np.float32("nan")
    z = np.array([nan, 1.0, -2.0, nan], np.float32)
    p0 = np.array([nan, 0.3, 0.0, 1.0], np.float32)
    probs = np.stack([p0, 1 - p0], axis=1)

    def compute():
        leaky = LeakyReLU(0.2)
        return [activations.sigmoid(z), *losses.bce_with_logits(z, 1.0), *losses.two_class_cross_entropy(probs, 1.0),
                leaky.forward(z, train=True), leaky.backward(np.ones_like(z))]
    expected = compute()
    for module in (activations, losses):
        monkeypatch.setattr(module, "uses_fused_kernels", lambda xp: True)
    monkeypatch.setattr(gpu_kernels, "compiled", host_compiled(tmp_path))
    got = compute()
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(np.isnan(b), np.isnan(a))
    assert np.isnan(got[1]) and np.isnan(got[3])               # both losses' values are NaN


def test_kernel_bodies_never_call_max_or_min():
    """CUDA's max/min return the other argument of a NaN (NumPy's maximum returns the NaN), and the host
    tests, compiled with the C++ library's, could not tell: the bodies compare instead."""
    for kernel in KERNELS:
        assert "max(" not in kernel.body and "min(" not in kernel.body, kernel.name


def test_fused_kernels_run_over_arrays_in_memory_order(monkeypatch):
    """An NCHW view of channel-major memory reaches the kernel as the C-contiguous array its memory holds
    (the GPU's threads then touch neighbouring floats); outputs made by the kernel come back in the
    logical shape; arguments that broadcast are passed as they are."""
    seen = []

    def compiled(kernel):
        def run(x, y=None):                         # SIGMOID's signature: x, then optionally its output y
            seen.append([(a.shape, a.flags.c_contiguous) for a in (x, y) if a is not None])
            if y is None:
                return x * 2
            y[...] = x * 2
        return run
    monkeypatch.setattr(gpu_kernels, "compiled", compiled)
    x = np.ascontiguousarray(np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5, 2)).transpose(3, 0, 1, 2)
    y = np.empty_like(x)                                                # the same layout as x
    assert gpu_kernels.fused(gpu_kernels.SIGMOID)(x, y) is None
    np.testing.assert_array_equal(y, x * 2)
    made = gpu_kernels.fused(gpu_kernels.SIGMOID)(x)
    np.testing.assert_array_equal(made, x * 2)                          # the logical shape, permuted back
    c_order = np.ones((2, 3), np.float32)
    gpu_kernels.fused(gpu_kernels.SIGMOID)(c_order, np.empty_like(c_order))
    assert seen == [[((3, 4, 5, 2), True)] * 2, [((3, 4, 5, 2), True)], [((2, 3), True)] * 2]
    column = np.ones((3, 1, 1), np.float32)
    args, restore = gpu_kernels.in_memory_order([x, column, 1.5])        # shapes differ: nothing moves
    assert args[0] is x and args[1] is column and restore(x) is x


def test_fused_mode_is_checked(monkeypatch):
    monkeypatch.setenv("SCRATCHGAN_FUSED", "on")
    with pytest.raises(ValueError, match="SCRATCHGAN_FUSED must be one of auto, off, got 'on'"):
        gpu_kernels.uses_fused_kernels(np)
    monkeypatch.setenv("SCRATCHGAN_FUSED", "off")
    assert not gpu_kernels.uses_fused_kernels(np)
    monkeypatch.delenv("SCRATCHGAN_FUSED")
    assert not gpu_kernels.uses_fused_kernels(np)        # NumPy has no fused kernels: never on the CPU


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_gpu_fused_update_matches_the_passes(cupy, monkeypatch, name, dtype):
    """On the GPU the real ElementwiseKernels against the same optimizer with SCRATCHGAN_FUSED=off
    (CUDA may contract a multiply and an add into one rounding, hence a tolerance of a few ulps)."""
    models = {}
    for mode in ("auto", "off"):
        monkeypatch.setenv("SCRATCHGAN_FUSED", mode)
        model = make_model(dtype).to("gpu")
        take_steps_gpu(model, OPTIMIZERS[name](model), dtype, cupy)
        models[mode] = model.to("cpu").state_dict()
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for key, value in models["off"].items():
        np.testing.assert_allclose(models["auto"][key], value, rtol=tolerance, atol=tolerance, err_msg=key)
    assert gpu_kernels.compiled(gpu_kernels.ADAM_UPDATE) is gpu_kernels.compiled(gpu_kernels.ADAM_UPDATE)  # compiled once, kept


def take_steps_gpu(model, opt, dtype, cupy, steps=4):
    rng = np.random.default_rng(1)
    for _ in range(steps):
        opt.zero_grad()
        for _, layer, key in model.named_parameters():
            layer.grads[key] += cupy.asarray(rng.standard_normal(layer.grads[key].shape).astype(dtype))
        opt.step()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (7, 5)], ids=str)
def test_gpu_fused_batchnorm_matches_the_passes(cupy, monkeypatch, shape, dtype):
    """The real kernels against SCRATCHGAN_FUSED=off on the GPU: two training passes, every output,
    gradient and running statistic (a few ulps apart at most, for CUDA's fused multiply-adds)."""
    from scratchgan import backend
    backend.set_default_dtype(dtype)
    rng = np.random.default_rng(0)
    x, dy = (cupy.asarray(rng.standard_normal(shape).astype(dtype)) for _ in range(2))
    results = {}
    for mode in ("auto", "off"):
        monkeypatch.setenv("SCRATCHGAN_FUSED", mode)
        backend.manual_seed(0)
        layer = BatchNorm(shape[1], init="normal_1_0.02").to("gpu")
        results[mode] = batchnorm_pass(layer, x, dy) + batchnorm_pass(layer, x * 2, dy)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for fused_value, plain_value in zip(results["auto"], results["off"]):
        np.testing.assert_allclose(fused_value, plain_value, rtol=tolerance, atol=tolerance)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_fused_activations_and_losses_match_the_passes(cupy, monkeypatch, dtype):
    """The real kernels against SCRATCHGAN_FUSED=off on the GPU: the activations and both GAN losses."""
    from scratchgan import losses
    from scratchgan.layers import activations
    rng = np.random.default_rng(0)
    z = cupy.asarray(np.concatenate([rng.standard_normal(30) * 6, EXTREMES]).astype(dtype))
    t = cupy.asarray(rng.uniform(0, 1, z.shape).astype(dtype))
    p0 = rng.uniform(0, 1, 25)
    probs = cupy.asarray(np.stack([p0, 1 - p0], axis=1).astype(dtype))
    x = cupy.asarray(rng.standard_normal((3, 4, 5, 2)).astype(dtype)).transpose(3, 0, 1, 2)   # channel-major
    dy = cupy.asarray(rng.standard_normal(x.shape).astype(dtype))
    results = {}
    for mode in ("auto", "off"):
        monkeypatch.setenv("SCRATCHGAN_FUSED", mode)
        layers = [activations.LeakyReLU(0.2), activations.ReLU(), activations.Tanh(), activations.Sigmoid()]
        passes = [(layer.forward(x, train=True), layer.backward(dy)) for layer in layers]
        results[mode] = [cupy.asnumpy(a) for a in (activations.sigmoid(z), *losses.bce_with_logits(z, t),
                                                   *losses.bce_with_logits(z, 1.0),
                                                   *losses.two_class_cross_entropy(probs, t[:25]),
                                                   *(a for pair in passes for a in pair))]
    for got, expected in zip(results["auto"], results["off"]):
        assert_within_ulps(got, expected, ulps=16)


@needs_gxx
@pytest.mark.parametrize("workload", ["dcgan", "mlp", "wgan-gp", "cdcgan-plus", "acgan", "goodfellow2014"])
def test_training_steps_on_the_gpus_path_match_the_cpus(tmp_path, monkeypatch, workload):
    """The whole GPU code path but CuPy itself, on the CPU: the benchmark's models and four more recipes
    (WGAN-GP's double backward, the conditional models, Maxout and dropout with SGD) in float64, three
    training steps with every kernel compiled for the host (behind the real ``fused``, in memory order)
    and im2col/col2im by their gather kernels, against the same steps with the passes and the loops. float64 keeps
    Adam's first steps, which normalize each gradient, from magnifying last-place differences."""
    from scratchgan import backend
    from scratchgan.gan.recipes import get_recipe
    from scratchgan.gan.trainer import GANTrainer

    def train():
        backend.set_default_dtype(np.float64)
        backend.manual_seed(0)
        setup = get_recipe(workload).setup(get_recipe(workload).options(batch_size=6), (1, 28, 28))
        trainer = GANTrainer.from_setup(setup)
        images = np.random.default_rng(0).integers(0, 256, (6, 1, 28, 28), dtype=np.uint8)
        real = setup.preprocess(images).astype(np.float64)
        batch = (real, np.arange(6) % 10) if trainer.conditional else real
        for _ in range(3):
            trainer.train_step(batch)
        trainer.flush()
        return {**trainer.G.state_dict(), **{f"D.{k}": v for k, v in trainer.D.state_dict().items()}}

    expected = train()
    calls = take_the_gpus_path(monkeypatch, tmp_path)
    got = train()
    kernels = {"dcgan": {"scratchgan_adam", "scratchgan_batchnorm_statistics", "scratchgan_scale_shift",
                         "scratchgan_batchnorm_input_grad", "scratchgan_leaky_relu", "scratchgan_leaky_relu_grad",
                         "scratchgan_relu", "scratchgan_relu_grad", "scratchgan_tanh", "scratchgan_tanh_grad",
                         "scratchgan_sigmoid", "scratchgan_bce_with_logits",
                         "scratchgan_im2col", "scratchgan_col2im"},
               "mlp": {"scratchgan_adam", "scratchgan_tanh", "scratchgan_tanh_grad", "scratchgan_sigmoid",
                       "scratchgan_sigmoid_grad",
                       "scratchgan_two_class_cross_entropy"}}.get(workload)
    if kernels is not None:
        assert set(calls) == kernels
    assert "scratchgan_adam" in calls or "scratchgan_rmsprop" in calls or workload == "goodfellow2014"
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-9, atol=1e-12, err_msg=key)


def take_the_gpus_path(monkeypatch, folder):
    """The GPU's choices on the CPU: every module that decides between a fused kernel and its passes takes
    the kernel, compiled for the host, and im2col/col2im gather. Returns the list of kernel names launched."""
    import sys
    calls = []
    for name, module in list(sys.modules.items()):
        if name.startswith("scratchgan") and hasattr(module, "uses_fused_kernels"):
            monkeypatch.setattr(module, "uses_fused_kernels", lambda xp: True)
    monkeypatch.setattr(gpu_kernels, "compiled", host_compiled(folder, calls))
    monkeypatch.setenv("SCRATCHGAN_IM2COL", "gather")
    return calls


def image_to_image_step(name):
    """A float64 CycleGAN or SRGAN trainer at batch 2 and its fixed batch (as demos/step_time.py builds them)."""
    from scratchgan import backend
    from scratchgan.gan.cyclegan import CycleGANTrainer
    from scratchgan.gan.recipes import get_recipe
    from scratchgan.gan.srgan import SuperResolutionTrainer, downscale
    backend.set_default_dtype(np.float64)
    backend.manual_seed(0)
    recipe = get_recipe(name)
    options = recipe.options(batch_size=2)
    rng = np.random.default_rng(0)
    if name == "cyclegan":
        s = recipe.setup(options, (3, 32, 32))
        trainer = CycleGANTrainer(s.G, s.F, s.D_A, s.D_B, *s.optimizers.values(),
                                  lambda_cycle=options["lambda_cycle"], lambda_identity=options["lambda_identity"])
        return trainer, tuple(rng.uniform(-1, 1, (2, 3, 32, 32)) for _ in range(2)), [s.G, s.F, s.D_A, s.D_B]
    s = recipe.setup(options, (1, 28, 28))
    high = rng.uniform(-1, 1, (2, 1, 28, 28))
    return SuperResolutionTrainer(s.G, s.opt_g, s.content, s.D, s.opt_d, s.adversarial_weight), \
        (downscale(high), high), [s.G, s.D]


@needs_gxx
@pytest.mark.parametrize("name", ["cyclegan", "srgan"])
def test_image_to_image_steps_on_the_gpus_path_match_the_cpus(tmp_path, monkeypatch, name):
    """CycleGAN (InstanceNorm, ReLU, LeakyReLU, Tanh, LSGAN) and SRGAN (BatchNorm, PReLU, the feature loss,
    a LeakyReLU/BCE discriminator) take the fused kernels where they have them: two float64 steps on
    the GPU's code path leave their models as the CPU's passes do."""
    def train():
        trainer, batch, models = image_to_image_step(name)
        for _ in range(2):
            trainer.train_step(batch)
        return [dict(model.state_dict()) for model in models]

    expected = train()
    calls = take_the_gpus_path(monkeypatch, tmp_path)
    got = train()
    assert {"scratchgan_adam", "scratchgan_leaky_relu", "scratchgan_leaky_relu_grad"} <= set(calls)
    for model_expected, model_got in zip(expected, got):
        for key, value in model_expected.items():
            np.testing.assert_allclose(model_got[key], value, rtol=1e-9, atol=1e-12, err_msg=key)


@needs_gxx
@pytest.mark.parametrize("channel_major", [False, True])
def test_fused_gathers_equal_the_loops(tmp_path, monkeypatch, channel_major):
    """gpu_kernels.IM2COL_GATHER and COL2IM_GATHER (host-compiled) on every configuration of test_conv's
    gather test, float32 and float64: im2col bit for bit (also into a NaN-filled buffer), col2im bit
    for bit against the unfused gather (the same sums in the same order) and to rounding against the loops."""
    from scratchgan.layers.conv import col2im, conv_output_size, im2col
    from test_conv import GATHER_CONFIGS
    checked = 0
    for shape, k, s, p in GATHER_CONFIGS:
        for dtype in (np.float32, np.float64):
            kernel, stride, padding = ((v, v) if isinstance(v, int) else v for v in (k, s, p))
            out_size = tuple(conv_output_size(*a) for a in zip(shape[2:], kernel, stride, padding))
            rng = np.random.default_rng(0)
            x = rng.standard_normal(shape).astype(dtype)
            if channel_major:
                x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
            results = {}
            for method, fusing in (("loops", False), ("gather", False), ("gather", True)):
                monkeypatch.setenv("SCRATCHGAN_IM2COL", method)
                monkeypatch.setattr(fastpath, "uses_fused_kernels", lambda xp, fusing=fusing: fusing)
                monkeypatch.setattr(gpu_kernels, "compiled", host_compiled(tmp_path))
                cols = im2col(x, kernel, stride, out_size, padding)
                into = im2col(x, kernel, stride, out_size, padding, out=np.full(cols.shape, np.nan, dtype))
                dcols = np.random.default_rng(1).standard_normal(cols.shape).astype(dtype)
                results[method, fusing] = cols, into, col2im(dcols, x.shape, kernel, stride, out_size, padding)
            loops, gather, fused_gather = results["loops", False], results["gather", False], results["gather", True]
            np.testing.assert_array_equal(fused_gather[0], loops[0])
            np.testing.assert_array_equal(fused_gather[1], loops[0])
            assert fused_gather[2].shape == x.shape and fused_gather[2].dtype == dtype
            np.testing.assert_array_equal(fused_gather[2], gather[2])
            tolerance = 1e-5 if dtype == np.float32 else 1e-13
            np.testing.assert_allclose(fused_gather[2], loops[2], rtol=tolerance, atol=tolerance)
            checked += 1
    assert checked == 2 * len(GATHER_CONFIGS)


@pytest.mark.gpu
def test_gpu_fused_gathers_match_the_unfused(cupy, monkeypatch):
    """On the GPU the real gather kernels against SCRATCHGAN_FUSED=off (gathers by take), every
    configuration of test_conv's gather test, channel-major inputs: im2col exactly, col2im to rounding."""
    from scratchgan.layers.conv import col2im, conv_output_size, im2col
    from test_conv import GATHER_CONFIGS
    monkeypatch.delenv("SCRATCHGAN_IM2COL", raising=False)
    for shape, k, s, p in GATHER_CONFIGS:
        kernel, stride, padding = ((v, v) if isinstance(v, int) else v for v in (k, s, p))
        out_size = tuple(conv_output_size(*a) for a in zip(shape[2:], kernel, stride, padding))
        x = cupy.asarray(np.ascontiguousarray(np.random.default_rng(0).standard_normal(shape).transpose(1, 2, 3, 0)))
        x = x.transpose(3, 0, 1, 2)
        results = {}
        for mode in ("auto", "off"):
            monkeypatch.setenv("SCRATCHGAN_FUSED", mode)
            cols = im2col(x, kernel, stride, out_size, padding)
            dcols = cupy.asarray(np.random.default_rng(1).standard_normal(cols.shape))
            results[mode] = cupy.asnumpy(cols), cupy.asnumpy(col2im(dcols, x.shape, kernel, stride, out_size, padding))
        np.testing.assert_array_equal(results["auto"][0], results["off"][0])
        np.testing.assert_allclose(results["auto"][1], results["off"][1], rtol=1e-12, atol=1e-12)


def test_a_kernel_that_does_not_compile_says_how_to_go_on(monkeypatch):
    class CompileError(Exception):
        pass

    def compiled(kernel):
        def run(*args):
            raise CompileError("error: identifier 'max' is undefined")
        return run
    monkeypatch.setattr(gpu_kernels, "_compile_errors", lambda: (CompileError,))
    monkeypatch.setattr(gpu_kernels, "compiled", compiled)
    with pytest.raises(gpu_kernels.FusedKernelError, match="scratchgan_sigmoid did not compile .*'max' is undefined.*"
                                                         "SCRATCHGAN_FUSED=off"):
        gpu_kernels.fused(gpu_kernels.SIGMOID)(np.zeros(3))
    from scratchgan.cli import is_expected_error
    assert is_expected_error(gpu_kernels.FusedKernelError("x"))      # one line from the commands, not a traceback
