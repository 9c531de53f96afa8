"""The GPU's fused kernels: element-wise work that the NumPy-style passes issue as several kernel
launches, as one CuPy ElementwiseKernel each.

On the GPU every array operation is a kernel launch issued from Python, and the training step
waits on those launches, not on arithmetic (docs/performance.md). So where a layer, a loss or an
optimizer makes several passes, the GPU runs one kernel whose C body does the same operations in
the same order: Adam's update, BatchNorm's statistics and input gradient, the activations, the GAN
losses, and the gathers of im2col and col2im (fastpath.py). ``uses_fused_kernels(xp)`` decides:
the GPU by default, never NumPy; ``SCRATCHGAN_FUSED=off`` keeps the passes, which stay the
reference the docs teach. Each call site is a two-line branch, and the tests compile every body
here for the CPU and compare it with the passes it replaces (tests/test_fused_kernels.py).

- ``ElementwiseKernelSource``: a kernel as text (inputs, outputs, body);
- ``fused(kernel)``: the kernel as a function, run over its arrays in memory order
  (``in_memory_order``); ``compiled(kernel)``: CuPy's compiled ElementwiseKernel;
- ``fused_like(kernel, like, *inputs)``: the kernel into new outputs made in ``like``'s memory
  layout, as NumPy's passes keep it (a CuPy ufunc's output would be C-ordered);
- ``parameters(declarations)``: a kernel's parameter list as (type, name, raw) triples.
"""
import os
from collections import namedtuple

import numpy as np

from .backend import cupy_module, get_xp

FUSED_MODES = ("auto", "off")

# An element-wise kernel as CuPy's ElementwiseKernel takes it: typed inputs, outputs (read and written
# in place when passed), and a loop body in CUDA C++ run once per element. Kept as text so that the tests
# can compile the very same body for the CPU and compare it with the NumPy passes it replaces. The bodies
# write numpy.maximum(a, c) as (a < c ? c : a), never CUDA's max: for a NaN, max returns the other
# argument, which would hide a diverged run's NaN; the comparison passes it on, as NumPy does.
ElementwiseKernelSource = namedtuple("ElementwiseKernelSource", "name in_params out_params body")

# optim._adam_in_place in one pass, each operation in the same order (so the same roundings, unless the
# CUDA compiler contracts a multiply and an add into one fused multiply-add).
ADAM_UPDATE = ElementwiseKernelSource(
    "scratchgan_adam",
    "T grad, T one_minus_b1, T one_minus_b2, T step_size, T eps_hat",
    "T param, T m, T v",
    "m += one_minus_b1 * (grad - m);"
    " v += one_minus_b2 * (grad * grad - v);"
    " param -= m / (sqrt(v) + eps_hat) * step_size;")

# optim.RMSprop's plain update (not centred, no momentum) in one pass.
RMSPROP_UPDATE = ElementwiseKernelSource(
    "scratchgan_rmsprop",
    "T grad, T one_minus_alpha, T eps, T lr",
    "T param, T v",
    "v += one_minus_alpha * (grad * grad - v);"
    " param -= lr * (grad / (sqrt(v) + eps));")

# layers/norm.py's BatchNorm in training, the per-channel arithmetic of its forward (running statistics,
# 1/sigma, gamma/sigma: a dozen launches on C-element vectors) in one kernel, with new running arrays
# as the NumPy passes make; then its affine map y = x_centred (gamma/sigma) + beta in one.
BN_STATISTICS = ElementwiseKernelSource(
    "scratchgan_batchnorm_statistics",
    "T mean, T sum_sq, T weight, T running_mean, T running_var, T momentum, T count, T unbias, T eps",
    "T new_running_mean, T new_running_var, T inv_std, T scale",
    "T var = sum_sq / count;"
    " new_running_mean = (1 - momentum) * running_mean + momentum * mean;"
    " new_running_var = (1 - momentum) * running_var + momentum * var * unbias;"
    " inv_std = 1 / sqrt(var + eps);"
    " scale = weight * inv_std;")

SCALE_SHIFT = ElementwiseKernelSource("scratchgan_scale_shift", "T x, T scale, T shift", "T y",
                                      "y = x * scale + shift;")

# BatchNorm's input gradient in training, dx = (gamma / sigma)(dy - dbeta / M - x_hat dgamma / M) with
# x_hat = centred / sigma, in one kernel, in the passes' order of operations (layers/norm.py); the
# per-channel factors broadcast from (C, 1) columns.
BN_INPUT_GRAD = ElementwiseKernelSource(
    "scratchgan_batchnorm_input_grad",
    "T dy, T centred, T weight, T inv_std, T dbeta, T dgamma, T count",
    "T dx",
    "T scale = weight * inv_std;"
    " dx = dy * scale - centred * (scale * inv_std * (dgamma / count)) - scale * (dbeta / count);")

# layers/activations.py's LeakyReLU (alpha <= 1): y = max(x, alpha x) and the mask [x > 0] that its
# backward keeps, in one pass instead of three; its backward dx = ([x > 0] (1 - alpha) + alpha) dy in one
# instead of three.
LEAKY_RELU = ElementwiseKernelSource("scratchgan_leaky_relu", "T x, T alpha", "T y, bool positive",
                                     "T scaled = x * alpha;"
                                     " y = (x < scaled ? scaled : x);"
                                     " positive = x > 0;")
LEAKY_RELU_GRAD = ElementwiseKernelSource("scratchgan_leaky_relu_grad",
                                          "bool positive, T dy, T one_minus_alpha, T alpha", "T dx",
                                          "dx = (positive * one_minus_alpha + alpha) * dy;")

# layers/activations.py's ReLU: y = max(x, 0) and its mask [x > 0] in one pass, and its backward; tanh; Tanh's and
# Sigmoid's backward from their outputs, dx = dy (1 - y^2) and dx = dy y (1 - y), in one pass each instead of
# three. ReLU's backward and tanh are single passes already: as kernels they keep the input's memory layout
# (a CuPy ufunc makes a C-ordered output, so a channel-major activation would be copied back later).
RELU = ElementwiseKernelSource("scratchgan_relu", "T x", "T y, bool positive",
                               "y = (x < 0 ? (T)0 : x);"
                               " positive = x > 0;")
RELU_GRAD = ElementwiseKernelSource("scratchgan_relu_grad", "bool positive, T dy", "T dx", "dx = dy * positive;")
TANH = ElementwiseKernelSource("scratchgan_tanh", "T x", "T y", "y = tanh(x);")
TANH_GRAD = ElementwiseKernelSource("scratchgan_tanh_grad", "T dy, T y", "T dx", "dx = dy * (1 - y * y);")
SIGMOID_GRAD = ElementwiseKernelSource("scratchgan_sigmoid_grad", "T dy, T y", "T dx", "dx = dy * y * (1 - y);")

# layers/activations.py's sigmoid: e = exp(-|x|), y = (1 if x >= 0 else e) / (1 + e), one pass, not seven.
SIGMOID = ElementwiseKernelSource("scratchgan_sigmoid", "T x", "T y",
                                  "T e = exp(-fabs(x));"
                                  " y = (x >= 0 ? (T)1 : e) / (e + 1);")

# losses.py's bce_with_logits: each element's loss term softplus(z) - t z and its gradient
# (sigmoid(z) - t) / n, the sigmoid as tanh(z / 2) / 2 + 1 / 2; the mean of the terms is one reduction after.
BCE_WITH_LOGITS = ElementwiseKernelSource(
    "scratchgan_bce_with_logits",
    "T z, T t, T half, T inv_n",
    "T term, T grad",
    "T softplus = (z < 0 ? (T)0 : z) + log1p(exp(-fabs(z)));"
    " term = softplus - t * z;"
    " grad = (tanh(z * half) * half + half - t) * inv_n;")

# losses.py's two_class_cross_entropy: per sample the loss term t log p0 + (1 - t) log p1 (each log clamped)
# and both units' gradients, written into the two columns of one (N, 2) gradient.
TWO_CLASS_CROSS_ENTROPY = ElementwiseKernelSource(
    "scratchgan_two_class_cross_entropy",
    "T p0, T p1, T t, T tiny, T floor, T scale",
    "T term, T grad0, T grad1",
    "T p_pos = (p0 < tiny ? tiny : p0);"
    " T p_neg = (p1 < tiny ? tiny : p1);"
    " T log_pos = log(p_pos);"
    " T log_neg = log(p_neg);"
    " term = t * (log_pos < floor ? floor : log_pos) + (1 - t) * (log_neg < floor ? floor : log_neg);"
    " grad0 = t / p_pos * scale;"
    " grad1 = (1 - t) / p_neg * scale;")

# im2col_by_gather in one kernel: element (c, k, b) of the (C, kh kw Ho Wo, N) columns is pixel[k] of channel c
# of sample b of the unpadded (C, H W, N) image, or 0 where pixel[k] is -1 (the padding). No padded copy.
IM2COL_GATHER = ElementwiseKernelSource(
    "scratchgan_im2col",
    "raw T image, raw int64 pixel, int64 positions, int64 pixels, int64 batch",
    "T cols",
    "long long b = i % batch;"
    " long long k = (i / batch) % positions;"
    " long long c = i / (batch * positions);"
    " long long p = pixel[k];"
    " cols = p < 0 ? (T)0 : image[(c * pixels + p) * batch + b];")

# col2im_by_gather in one kernel: pixel p of channel c of sample b sums its m sources' columns, each times its
# weight (1, or 0 for a slot that pads the table), in slot order as the gather-then-sum does.
COL2IM_GATHER = ElementwiseKernelSource(
    "scratchgan_col2im",
    "raw T cols, raw int64 sources, raw T weight, int64 slots, int64 positions, int64 pixels, int64 batch",
    "T image",
    "long long b = i % batch;"
    " long long p = (i / batch) % pixels;"
    " long long c = i / (batch * pixels);"
    " T sum = cols[(c * positions + sources[p * slots]) * batch + b] * weight[p * slots];"
    " for (long long j = 1; j < slots; ++j)"
    " sum += cols[(c * positions + sources[p * slots + j]) * batch + b] * weight[p * slots + j];"
    " image = sum;")


def parameters(declarations):
    """A kernel's parameter list, e.g. "raw T image, int64 batch", as [(type, name, raw)]:
    [("T", "image", True), ("int64", "batch", False)]."""
    found = []
    for declaration in declarations.split(","):
        *modifiers, kind, name = declaration.split()
        found.append((kind, name, modifiers == ["raw"]))
    return found


def uses_fused_kernels(xp):
    """Whether the optimizers, BatchNorm, the activations, the GAN losses and the gathers run their
    fused kernels (``fused``) instead of their NumPy-style passes: on the GPU ("auto", the default), where
    each pass is a kernel launch issued from Python; never on the CPU, where NumPy has no such
    kernels. ``SCRATCHGAN_FUSED=off`` keeps the passes on the GPU too (to measure one against the other)."""
    mode = os.environ.get("SCRATCHGAN_FUSED", "auto")
    if mode not in FUSED_MODES:
        raise ValueError(f"SCRATCHGAN_FUSED must be one of {', '.join(FUSED_MODES)}, got {mode!r}")
    return mode == "auto" and xp is not np


_COMPILED = {}


def fused(kernel):
    """An ``ElementwiseKernelSource`` as a function called like CuPy's ElementwiseKernel (inputs, then
    either no outputs, to have them made and returned, or all of them, to write into): it runs the
    compiled kernel (``compiled``) over the arguments in their memory order (``in_memory_order``)."""
    def launch(*args):
        args, restore = in_memory_order(args)
        try:
            return restore(compiled(kernel)(*args))
        except _compile_errors() as error:
            raise FusedKernelError(f"the GPU kernel {kernel.name} did not compile ({error}); SCRATCHGAN_FUSED=off "
                                   "runs the same step with NumPy-style passes instead") from error
    return launch


def fused_like(kernel, like, *inputs):
    """``kernel`` on ``inputs``, into new outputs made in ``like``'s memory layout (``empty_like``), as
    NumPy's passes keep it; returned (a tuple for several). T-typed outputs take the dtype of the first
    T-typed input array, others their declared type (bool)."""
    declared = _OUTPUT_TYPES.get(kernel)
    if declared is None:
        inputs_t = [i for i, (kind, _, _) in enumerate(parameters(kernel.in_params)) if kind == "T"]
        declared = _OUTPUT_TYPES[kernel] = (inputs_t, [kind for kind, _, _ in parameters(kernel.out_params)])
    inputs_t, output_types = declared
    t = next(inputs[i].dtype for i in inputs_t if hasattr(inputs[i], "dtype"))
    xp = get_xp(like)
    outputs = [xp.empty_like(like, dtype=t if kind == "T" else kind) for kind in output_types]
    fused(kernel)(*inputs, *outputs)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


_OUTPUT_TYPES = {}


class FusedKernelError(RuntimeError):
    """A fused kernel that CuPy could not compile (an unusual CUDA toolkit or GPU)."""


def _compile_errors():
    """CuPy's exception for a kernel that does not compile (none where CuPy is absent)."""
    try:
        from cupy.cuda.compiler import CompileException
    except ImportError:
        return ()
    return (CompileException,)


def compiled(kernel):
    """The CuPy ElementwiseKernel for an ``ElementwiseKernelSource``, compiled on first use and kept."""
    if kernel not in _COMPILED:
        _COMPILED[kernel] = cupy_module().ElementwiseKernel(kernel.in_params, kernel.out_params, kernel.body,
                                                            kernel.name)
    return _COMPILED[kernel]


def in_memory_order(args):
    """A kernel's arguments with the axes of its arrays permuted (views, no copy) into the memory order of
    the last array, when all arrays have one shape; and the function that permutes results back.

    CuPy's element-wise kernels run through their arrays in logical order: adjacent axes are merged,
    never sorted by stride (unlike NumPy's iterator). A convolution's activation, an NCHW view of
    channel-major memory (layers/conv.py), would have consecutive threads touch floats N apart; in
    memory order they touch neighbours. Nothing to do when the order is already the logical one."""
    arrays = [a for a in args if hasattr(a, "ndim") and a.ndim > 1]
    if not arrays or any(a.shape != arrays[0].shape for a in arrays):
        return args, _unchanged
    strides = arrays[-1].strides
    order = tuple(sorted(range(len(strides)), key=lambda axis: -abs(strides[axis])))
    if order == tuple(range(len(order))):
        return args, _unchanged
    back = tuple(order.index(axis) for axis in range(len(order)))      # the inverse permutation

    def restore(result):
        if isinstance(result, tuple):
            return tuple(r.transpose(back) for r in result)
        return None if result is None else result.transpose(back)
    return [a.transpose(order) if hasattr(a, "ndim") and a.ndim > 1 else a for a in args], restore


def _unchanged(result):
    return result
