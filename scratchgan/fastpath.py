"""The fast path's tricks, kept in one place so the layers read like their formulas.

Each function computes exactly what its first docstring line says; what it does besides
is *how*, never *what*: the same sums, in a faster orientation or memory. The layers,
``Adam`` and the gradient penalties use them; docs/performance.md records what each one saves.

- ``matmul(a, b)``: ``a @ b``, the one place where the layers' products are formed (while a CUDA
  graph records the GPU step, through cuBLAS directly: gan/cublas_capture.py);
- ``matmul_tall(a, b)``: ``a @ b``, a product wider than tall formed as ``(b^T a^T)^T``;
- ``add_matmul_to_grad(grad, a, b)``: ``grad += a @ b``, written straight into a gradient
  that is still all zeros after ``zero_grad`` (CPU only);
- ``matmul_into(a, b, out)``: ``a @ b`` into ``out``, an outer product as a broadcast multiply;
- ``reuse_buffer(store, name, shape, like)``: an uninitialized array allocated once and
  reused every call, for large temporaries that never leave the call that fills them;
- ``row_dots(a, b)``: the dot product of each pair of rows, without a temporary, and on the GPU
  without the Python of CuPy's ``einsum``;
- ``im2col_by_gather`` / ``col2im_by_gather``: layers/conv.py's im2col and col2im as one indexed
  gather each (a few kernels in all) instead of a loop of strided copies per kernel position:
  the GPU's way (``uses_gather``), where every copy is a kernel launch issued from Python;
- ``check_switches()``: the SCRATCHGAN_IM2COL and SCRATCHGAN_FUSED switches, checked up front.

On the GPU, element-wise passes and the gathers run as fused CuPy kernels instead
(gpu_kernels.py); the functions here that have one say so.

Everything goes through ``xp`` (NumPy or CuPy); the one CPU-only shortcut says so.
"""
import os

import numpy as np

from .backend import get_xp
from .gpu_kernels import COL2IM_GATHER, IM2COL_GATHER, fused, uses_fused_kernels


capture_matmul = None   # while a CUDA graph records: gan/cublas_capture.py's CapturedMatmul (gan/cuda_graph.py)


def matmul(a, b, out=None):
    """a @ b (into ``out`` if given). Every product of the layers goes through here.

    While a CUDA graph records the GPU step, CuPy refuses to call cuBLAS; ``capture_matmul``, set
    for the recording's duration, then makes the same cuBLAS call that CuPy's ``matmul`` would.
    """
    if capture_matmul is not None:
        return capture_matmul(a, b, out)
    return get_xp(a).matmul(a, b, out=out)


def matmul_tall(a, b, out=None):
    """a @ b (into ``out`` if given).

    A product wider than tall (fewer rows than columns) is formed as (b^T a^T)^T: the same
    sums, returned as a transposed view. OpenBLAS splits a tall product over its threads
    better than a wide one, which matters most when the cores are busy. The result may be
    F-ordered; a caller that needs C order (the convolutions' outputs) uses ``matmul``.
    """
    if a.shape[0] < b.shape[1]:
        return matmul(b.T, a.T, out=None if out is None else out.T).T
    return matmul(a, b, out=out)


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
    if a.shape[1] == 1:
        return get_xp(a).multiply(a, b, out=out)
    return matmul(a, b, out=out)


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


def row_dots(a, b):
    """The dot product of each pair of rows of two (R, K) matrices: sum_k a[r, k] b[r, k], an (R,) vector.

    ``einsum("rk,rk->r")``, which forms no (R, K) temporary. On CuPy the same batched product that its
    ``einsum`` issues, (R, 1, K) @ (R, K, 1), called directly: CuPy's ``einsum`` spends a few hundred
    microseconds of host time in Python per call to arrive at it.
    """
    if get_xp(a) is np:
        return np.einsum("rk,rk->r", a, b)
    return matmul(a[:, None, :], b[:, :, None]).reshape(-1)


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


def _pixel_sources(kernel, stride, out_size, padding, image_size, xp, dtype):
    """The adjoint's table: for each pixel p of the unpadded image, the (at most ceil(kh/sh)
    ceil(kw/sw)) im2col positions k = (i, j, h, w) that read it, as (sources (H*W, m) ints, mask
    (1, H*W, m, 1) of ``dtype``: 1 where a source is real, 0 where it pads the row; those point at 0)."""
    key = ("pixels", kernel, stride, out_size, padding, image_size, xp.__name__, np.dtype(dtype).str)
    if key not in _INDEX_CACHE:
        h, w = image_size
        pixel = _window_pixels(kernel, stride, out_size, padding, image_size, np)
        pixel = np.where(pixel < 0, h * w, pixel)                             # h*w: dropped (padding)
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


def im2col_by_gather(x, kernel, stride, out_size, padding, out=None):
    """im2col (layers/conv.py) as one gather: pad the (C, H, W, N) image once, then take every
    window's pixels by a precomputed index. Same result, bit for bit. (With the fused kernels, one
    kernel reads the unpadded image instead: gpu_kernels.IM2COL_GATHER.)"""
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
    fused kernels, gather, weights and sum are one kernel: gpu_kernels.COL2IM_GATHER.)"""
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


def check_switches():
    """Raise ValueError for a value of SCRATCHGAN_IM2COL or SCRATCHGAN_FUSED that is not one of theirs (the
    commands check before they start; the library checks again where it reads them)."""
    uses_gather(np)
    uses_fused_kernels(np)
