"""The fast path's tricks, kept in one place so the layers read like their formulas.

Each function computes exactly what its first docstring line says; what it does besides
is *how*, never *what*: the same sums, in a faster orientation or memory. The layers,
``Adam`` and nothing else use them; docs/performance.md records what each one saves.

- ``matmul_tall(a, b)``: ``a @ b``, a product wider than tall formed as ``(b^T a^T)^T``;
- ``add_matmul_to_grad(grad, a, b)``: ``grad += a @ b``, written straight into a gradient
  that is still all zeros after ``zero_grad`` (CPU only);
- ``matmul_into(a, b, out)``: ``a @ b`` into ``out``, an outer product as a broadcast multiply;
- ``reuse_buffer(store, name, shape, like)``: an uninitialized array allocated once and
  reused every call, for large temporaries that never leave the call that fills them;
- ``im2col_by_gather`` / ``col2im_by_gather``: layers/conv.py's im2col and col2im as one indexed
  gather each (a few kernels in all) instead of a loop of strided copies per kernel position:
  the GPU's way (``uses_gather``), where every copy is a kernel launch issued from Python;
- ``ADAM_UPDATE``, ``RMSPROP_UPDATE``, ``BN_STATISTICS``, ``SCALE_SHIFT``, ``BN_INPUT_GRAD``,
  ``LEAKY_RELU``, ``LEAKY_RELU_GRAD``, ``RELU``, ``RELU_GRAD``, ``TANH``, ``TANH_GRAD``, ``SIGMOID``, ``SIGMOID_GRAD``,
  ``BCE_WITH_LOGITS``, ``TWO_CLASS_CROSS_ENTROPY``, ``IM2COL_GATHER``, ``COL2IM_GATHER`` and
  ``fused(kernel)``: the optimizers' in-place passes, BatchNorm's element-wise work, the
  activations' passes, the GAN losses and the two gathers as CuPy element-wise kernels
  (``uses_fused_kernels``: the GPU), the same arithmetic in the same order, one launch where the
  passes issue up to a dozen, run over the arrays in their memory order (``in_memory_order``).

Everything goes through ``xp`` (NumPy or CuPy); the one CPU-only shortcut says so, and the fused
kernels are CuPy's alone (the plain passes they replace stay the reference, tested against them).
"""
import os
from collections import namedtuple

import numpy as np

from .backend import cupy_module, get_xp


def matmul_tall(a, b, out=None):
    """a @ b (into ``out`` if given).

    A product wider than tall (fewer rows than columns) is formed as (b^T a^T)^T: the same
    sums, returned as a transposed view. OpenBLAS splits a tall product over its threads
    better than a wide one, which matters most when the cores are busy. The result may be
    F-ordered; a caller that needs C order (the convolutions' outputs) uses ``@``.
    """
    xp = get_xp(a)
    if a.shape[0] < b.shape[1]:
        return xp.matmul(b.T, a.T, out=None if out is None else out.T).T
    return xp.matmul(a, b, out=out)


def add_matmul_to_grad(grad, a, b):
    """grad += a @ b, for a parameter gradient ``grad`` viewed as an (a rows, b columns) matrix.

    On the CPU, while ``grad`` is still all zeros (the first pass after ``zero_grad``), the
    product is written straight into it: no temporary and no extra pass. ``any()`` stops at
    the first nonzero, so the check costs next to nothing there; on the GPU it would wait for
    the device, so there the product is always added.
    """
    if get_xp(grad) is np and grad.flags.c_contiguous and not grad.any():
        matmul_tall(a, b, out=grad.reshape(a.shape[0], b.shape[1]))   # a view: grad is contiguous
    else:
        grad += matmul_tall(a, b).reshape(grad.shape)


def matmul_into(a, b, out):
    """a @ b written into ``out``.

    With an inner dimension of 1 the product is an outer product, which a broadcast multiply
    forms faster than BLAS (the input gradient of a one-channel convolution such as DCGAN's
    last D layer).
    """
    xp = get_xp(a)
    if a.shape[1] == 1:
        return xp.multiply(a, b, out=out)
    return xp.matmul(a, b, out=out)


def reuse_buffer(store, name, shape, like):
    """An uninitialized array of ``shape`` with ``like``'s dtype and device: ``store[name]``,
    made on first use and again only when the shape, dtype or device change.

    For large temporaries that never leave the call that fills them (neither cached nor
    returned): allocating them once saves the page faults of fresh memory every step. The
    caller must overwrite every element it reads.
    """
    buffer = store.get(name)
    if (buffer is None or buffer.shape != tuple(shape) or buffer.dtype != like.dtype
            or get_xp(buffer) is not get_xp(like)):
        buffer = store[name] = get_xp(like).empty(shape, dtype=like.dtype)
    return buffer


# -- im2col and col2im as gathers (the GPU's way) ------------------------------------------------------
IM2COL_METHODS = ("auto", "loops", "gather")


def uses_gather(xp):
    """Whether im2col/col2im gather by index on this backend: on the GPU ("auto", the default), where a
    loop of strided copies costs a kernel launch each; on the CPU the loop is faster (runs of N
    contiguous floats per copy). ``SCRATCHGAN_IM2COL=loops`` or ``gather`` forces one everywhere
    (for measuring them against each other)."""
    method = os.environ.get("SCRATCHGAN_IM2COL", "auto")
    if method not in IM2COL_METHODS:
        raise ValueError(f"SCRATCHGAN_IM2COL must be one of {', '.join(IM2COL_METHODS)}, got {method!r}")
    return method == "gather" or (method == "auto" and xp is not np)


_INDEX_CACHE = {}


def _window_index(kernel, stride, out_size, padded_size, xp):
    """For each (i, j, h, w) of im2col's rows and columns, the flat index of pixel
    (h*sh + i, w*sw + j) of the padded image: an int array of kh*kw*Ho*Wo entries, on xp's device."""
    key = ("windows", kernel, stride, out_size, padded_size, xp.__name__)
    if key not in _INDEX_CACHE:
        (kh, kw), (sh, sw), (ho, wo), (_, wp) = kernel, stride, out_size, padded_size
        i, j, h, w = np.ogrid[:kh, :kw, :ho, :wo]
        _INDEX_CACHE[key] = xp.asarray(((h * sh + i) * wp + (w * sw + j)).reshape(-1))
    return _INDEX_CACHE[key]


def _pixel_sources(kernel, stride, out_size, padding, image_size, xp, dtype):
    """The adjoint's table: for each pixel p of the unpadded image, the (at most ceil(kh/sh)
    ceil(kw/sw)) im2col positions k = (i, j, h, w) that read it, as (sources (H*W, m) ints, mask
    (1, H*W, m, 1) of ``dtype``: 1 where a source is real, 0 where it pads the row; those point at 0)."""
    key = ("pixels", kernel, stride, out_size, padding, image_size, xp.__name__, np.dtype(dtype).str)
    if key not in _INDEX_CACHE:
        (ph, pw), (h, w) = padding, image_size
        padded = (h + 2 * ph, w + 2 * pw)
        flat = _window_index(kernel, stride, out_size, padded, np)
        rows, cols = np.divmod(flat, padded[1])
        inside = (rows >= ph) & (rows < ph + h) & (cols >= pw) & (cols < pw + w)
        pixel = np.where(inside, (rows - ph) * w + (cols - pw), h * w)        # h*w: dropped (padding)
        order = np.argsort(pixel, kind="stable")
        counts = np.bincount(pixel, minlength=h * w + 1)[:h * w]
        m = max(1, int(counts.max(initial=0)))
        sources, mask = np.zeros((h * w, m), np.int64), np.zeros((h * w, m))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        for slot in range(m):
            has = counts > slot
            sources[has, slot] = order[starts[has] + slot]
            mask[has, slot] = 1
        _INDEX_CACHE[key] = (xp.asarray(sources), xp.asarray(mask.reshape(1, h * w, m, 1), dtype=dtype))
    return _INDEX_CACHE[key]


def _window_pixels(kernel, stride, out_size, padding, image_size, xp):
    """``_window_index`` in the unpadded image: for each (i, j, h, w), the flat index of the pixel read,
    or -1 where it lies in the padding; an int64 array on xp's device."""
    key = ("window pixels", kernel, stride, out_size, padding, image_size, xp.__name__)
    if key not in _INDEX_CACHE:
        (ph, pw), (h, w) = padding, image_size
        padded = (h + 2 * ph, w + 2 * pw)
        rows, cols = np.divmod(_window_index(kernel, stride, out_size, padded, np), padded[1])
        inside = (rows >= ph) & (rows < ph + h) & (cols >= pw) & (cols < pw + w)
        _INDEX_CACHE[key] = xp.asarray(np.where(inside, (rows - ph) * w + (cols - pw), -1).astype(np.int64))
    return _INDEX_CACHE[key]


def im2col_by_gather(x, kernel, stride, out_size, padding, out=None):
    """im2col (layers/conv.py) as one gather: pad the (C, H, W, N) image once, then take every
    window's pixels by a precomputed index. Same result, bit for bit. (With the fused kernels, one
    kernel reads the unpadded image instead: fastpath.IM2COL_GATHER.)"""
    xp = get_xp(x)
    (ph, pw), (n, c, h, w) = padding, x.shape
    image = x.transpose(1, 2, 3, 0)                      # (C, H, W, N), a view of a channel-major x
    if uses_fused_kernels(xp):
        pixel = _window_pixels(tuple(kernel), tuple(stride), tuple(out_size), tuple(padding), (h, w), xp)
        cols = xp.empty((c * kernel[0] * kernel[1], out_size[0] * out_size[1] * n), x.dtype) if out is None else out
        fused(IM2COL_GATHER)(xp.ascontiguousarray(image), pixel, pixel.size, h * w, n,
                             cols.reshape(c, pixel.size, n))
        return cols
    if ph or pw:
        padded = xp.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
        padded[:, ph:ph + h, pw:pw + w] = image
        image = padded
    flat = image.reshape(c, -1, n)                       # (C, Hp*Wp, N)
    index = _window_index(tuple(kernel), tuple(stride), tuple(out_size), image.shape[1:3], xp)
    shape = (c * kernel[0] * kernel[1], out_size[0] * out_size[1] * n)
    if out is None:
        return xp.take(flat, index, axis=1).reshape(shape)
    xp.take(flat, index, axis=1, out=out.reshape(c, index.size, n))
    return out


def col2im_by_gather(cols, x_shape, kernel, stride, out_size, padding):
    """col2im (layers/conv.py) as one gather and one sum: each pixel gathers the im2col positions
    that read it (a precomputed table, padded with zero weights) and adds them up. The same sums,
    possibly in another order. Returns the (N, C, H, W) view of a (C, H, W, N) array. (With the
    fused kernels, gather, weights and sum are one kernel: fastpath.COL2IM_GATHER.)"""
    xp = get_xp(cols)
    n, c, h, w = x_shape
    sources, mask = _pixel_sources(tuple(kernel), tuple(stride), tuple(out_size), tuple(padding), (h, w), xp,
                                   cols.dtype)
    if uses_fused_kernels(xp):                           # one kernel, no (C, H*W, m, N) intermediate
        image = xp.empty((c, h * w, n), cols.dtype)
        fused(COL2IM_GATHER)(xp.ascontiguousarray(cols), sources, mask, sources.shape[1], cols.size // (c * n),
                             h * w, n, image)
        return image.reshape(c, h, w, n).transpose(3, 0, 1, 2)
    gathered = xp.take(cols.reshape(c, -1, n), sources, axis=1)               # (C, H*W, m, N)
    gathered *= mask
    return gathered.sum(axis=2).reshape(c, h, w, n).transpose(3, 0, 1, 2)


# -- fused element-wise kernels (CuPy only) --------------------------------------------------------
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

# BatchNorm's input gradient in training, dx = (gamma / sigma)(dy - dbeta / M - x_hat dgamma / M), in one
# kernel (six launches as passes); the per-channel factors broadcast from (C, 1) columns.
BN_INPUT_GRAD = ElementwiseKernelSource(
    "scratchgan_batchnorm_input_grad",
    "T dy, T x_hat, T weight, T inv_std, T dbeta, T dgamma, T count",
    "T dx",
    "dx = weight * inv_std * (dy - dbeta / count - x_hat * (dgamma / count));")

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


def check_switches():
    """Raise ValueError for a value of SCRATCHGAN_IM2COL or SCRATCHGAN_FUSED that is not one of theirs (the
    commands check before they start; the library checks again where it reads them)."""
    uses_gather(np)
    uses_fused_kernels(np)


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
    back = tuple(int(axis) for axis in np.argsort(order))

    def restore(result):
        if isinstance(result, tuple):
            return tuple(r.transpose(back) for r in result)
        return None if result is None else result.transpose(back)
    return [a.transpose(order) if hasattr(a, "ndim") and a.ndim > 1 else a for a in args], restore


def _unchanged(result):
    return result
