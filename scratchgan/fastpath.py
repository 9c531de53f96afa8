"""The fast path's tricks, kept in one place so the layers read like their formulas.

Each function computes exactly what its first docstring line says; what it does besides
is *how*, never *what*: the same sums, in a faster orientation or memory. The layers,
``Adam`` and nothing else use them; docs/performance.md records what each one saves.

- ``matmul_tall(a, b)``: ``a @ b``, a product wider than tall formed as ``(b^T a^T)^T``;
- ``add_matmul_to_grad(grad, a, b)``: ``grad += a @ b``, written straight into a gradient
  that is still all zeros after ``zero_grad`` (CPU only);
- ``matmul_into(a, b, out)``: ``a @ b`` into ``out``, an outer product as a broadcast multiply;
- ``reuse_buffer(store, name, shape, like)``: an uninitialized array allocated once and
  reused every call, for large temporaries that never leave the call that fills them.

Everything goes through ``xp`` (NumPy or CuPy); the one CPU-only shortcut says so.
"""
import numpy as np

from .backend import get_xp


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
