"""Matrix products issued to cuBLAS while a CUDA graph records (gan/cuda_graph.py).

CuPy refuses every cuBLAS call while a stream is being captured ("calling cuBLAS API during
stream capture is currently unsupported", raised by its ``cublas.setStream``), although cuBLAS
itself can be captured (cuBLAS's documentation, "CUDA Graphs Support"; from CUDA 12.2 it takes
its workspace with ``cudaMallocAsync`` while capturing). Every product of the layers goes through
``fastpath.matmul``; while a graph records, ``CapturedMatmul`` stands in for CuPy's ``matmul``
there and makes the very call CuPy would have made:

- a 2-D product ``a @ b`` (M, K) @ (K, N): CuPy's ``dot`` contracts ``a^T`` (K, M) with ``b``
  (K, N) and, because cuBLAS reads matrices in column order, computes ``C^T = b^T a^T`` with
  ``cublasGemmEx``, each operand passed as it lies in memory (transposed or not, its leading
  dimension from its strides; an operand in neither order is copied first), with CuPy's compute
  type (``CUBLAS_COMPUTE_32F``, or ``_FAST_TF32`` under ``bench --precision tf32``) and algorithm;
- a batch of them, (..., M, K) @ (..., K, N) with the same leading shape: ``cublasGemmStridedBatchedEx``
  on C-ordered copies, as CuPy's ``matmul`` does.

The same calls with the same arguments on the same handle: the recorded step computes what the
step issued as usual does (but for a 1 x 1 product, which CuPy sums without cuBLAS). They are made
through ctypes on CuPy's own cuBLAS handle and library, on the recording stream. Any other product
(a vector, a broadcast batch) raises ``NotImplementedError`` while recording, and the step is not
graphed.
"""
import ctypes
import math
import re

# cuBLAS's and CUDA's enumerations (cublas_api.h, library_types.h), as CuPy's cublas.pxd spells them
CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
CUBLAS_GEMM_DEFAULT, CUBLAS_GEMM_DEFAULT_TENSOR_OP = -1, 99
CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_COMPUTE_32F_FAST_TF32 = 68, 69, 77
CUBLAS_COMPUTE_64F, CUBLAS_COMPUTE_64F_PEDANTIC = 70, 71
CUDA_R_32F, CUDA_R_64F = 0, 1
# CuPy's compute types (cupy/_core/_routines_linalg.pyx)
COMPUTE_TYPE_PEDANTIC, COMPUTE_TYPE_TF32 = 2, 7


class CapturedMatmul:
    """``matmul(a, b, out=None)`` on CuPy arrays through cuBLAS directly, for the recording stream."""

    def __init__(self, cupy, lib, handle, tensor_ops):
        self.cupy, self.lib, self.handle = cupy, lib, handle
        self.tensor_ops = tensor_ops     # compute capability 8.0 or later: CuPy asks for tensor-op algorithms

    @classmethod
    def for_cupy(cls, cupy):
        """On CuPy's cuBLAS library and handle for the current device."""
        cupy.ones((2, 2), "f") @ cupy.ones((2, 2), "f")   # so that CuPy has loaded cuBLAS and made its handle
        return cls(cupy, _bind(ctypes.CDLL(_loaded_cublas())), cupy.cuda.device.get_cublas_handle(),
                   int(cupy.cuda.Device().compute_capability) >= 80)

    def __call__(self, a, b, out=None):
        if a.dtype != b.dtype or a.dtype.char not in "fd":
            raise NotImplementedError(f"a product of {a.dtype} and {b.dtype} arrays while a CUDA graph records")
        if a.ndim == b.ndim == 2:
            return self._product(a, b, out)
        if a.ndim == b.ndim > 2 and a.shape[:-2] == b.shape[:-2]:
            return self._batched_product(a, b, out)
        raise NotImplementedError(f"a product of shapes {a.shape} and {b.shape} while a CUDA graph records "
                                  "(2-D products and batches of the same shape only)")

    def _product(self, a, b, out):
        """a @ b as CuPy's ``dot`` issues it (``tensordot_core``): C^T = b^T a^T by ``cublasGemmEx``."""
        (m, k), n = a.shape, b.shape[1]
        _check_inner(a, b)
        if out is not None and out.shape != (m, n):
            raise ValueError(f"output of shape {out.shape} for a product of shape {(m, n)}")
        if out is not None and not out.flags.c_contiguous:   # CuPy's matmul: into a C-ordered array, then copied
            out[...] = self._product(a, b, None)
            return out
        c = self.cupy.empty((m, n), a.dtype) if out is None else out
        if k == 0:                                  # an empty sum
            c.fill(0)
            return c
        a_t, trans_a, lda = _as_cublas_operand(a.T, CUBLAS_OP_N)
        b, trans_b, ldb = _as_cublas_operand(b, CUBLAS_OP_T)
        compute = self._compute_type(a.dtype)
        one, zero = _scalars(compute)
        algo = CUBLAS_GEMM_DEFAULT_TENSOR_OP if self.tensor_ops else CUBLAS_GEMM_DEFAULT
        dtype = _cuda_dtype(a.dtype)
        self._on_current_stream()
        _check(self.lib.cublasGemmEx(self.handle, trans_b, trans_a, n, m, k, ctypes.byref(one),
                                     b.data.ptr, dtype, ldb, a_t.data.ptr, dtype, lda, ctypes.byref(zero),
                                     c.data.ptr, dtype, n, compute, algo), "cublasGemmEx")
        return c

    def _batched_product(self, a, b, out):
        """(..., M, K) @ (..., K, N) as CuPy's ``matmul`` issues it: C-ordered operands, C^T = b^T a^T for
        each matrix of the batch by ``cublasGemmStridedBatchedEx``, whose compute type is the data type."""
        _check_inner(a, b)
        xp = self.cupy
        a, b = xp.ascontiguousarray(a), xp.ascontiguousarray(b)
        (m, k), n = a.shape[-2:], b.shape[-1]
        shape = a.shape[:-2] + (m, n)
        if out is not None and out.shape != shape:
            raise ValueError(f"output of shape {out.shape} for a product of shape {shape}")
        c = out if out is not None and out.flags.c_contiguous else xp.empty(shape, a.dtype)
        dtype = _cuda_dtype(a.dtype)
        one, zero = _scalars(CUBLAS_COMPUTE_32F if a.dtype.char == "f" else CUBLAS_COMPUTE_64F)
        self._on_current_stream()
        _check(self.lib.cublasGemmStridedBatchedEx(
            self.handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, ctypes.byref(one),
            b.data.ptr, dtype, n, k * n, a.data.ptr, dtype, k, m * k, ctypes.byref(zero),
            c.data.ptr, dtype, n, m * n, math.prod(shape[:-2]), dtype, CUBLAS_GEMM_DEFAULT),
            "cublasGemmStridedBatchedEx")
        if out is not None and out is not c:
            out[...] = c
            return out
        return c

    def _compute_type(self, dtype):
        """cuBLAS's compute type for CuPy's current setting (``tensordot_core_v11``)."""
        from cupy._core import _routines_linalg as linalg
        setting = linalg.get_compute_type(dtype)
        if dtype.char == "f":
            return {COMPUTE_TYPE_PEDANTIC: CUBLAS_COMPUTE_32F_PEDANTIC,
                    COMPUTE_TYPE_TF32: CUBLAS_COMPUTE_32F_FAST_TF32}.get(setting, CUBLAS_COMPUTE_32F)
        return CUBLAS_COMPUTE_64F_PEDANTIC if setting == COMPUTE_TYPE_PEDANTIC else CUBLAS_COMPUTE_64F

    def _on_current_stream(self):
        _check(self.lib.cublasSetStream_v2(self.handle, self.cupy.cuda.get_current_stream().ptr),
               "cublasSetStream_v2")


def _as_cublas_operand(x, trans):
    """(x, its cuBLAS op, its leading dimension) as CuPy's ``_mat_to_cublas_contiguous`` makes them: an
    F-ordered x is read as it is; a C-ordered one is x^T in column order, so its op flips; one in neither
    order is copied to C order first."""
    if x.flags.f_contiguous:
        return x, trans, max(x.strides[1] // x.itemsize, x.shape[0])
    if not x.flags.c_contiguous:
        x = x.copy()
    return x, 1 - trans, x.strides[0] // x.itemsize


def _check_inner(a, b):
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match in their inner dimension")


def _cuda_dtype(dtype):
    return CUDA_R_32F if dtype.char == "f" else CUDA_R_64F


def _scalars(compute):
    """alpha = 1 and beta = 0 in the compute type's precision, read by cuBLAS from the host."""
    kind = ctypes.c_float if compute in (CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_PEDANTIC,
                                         CUBLAS_COMPUTE_32F_FAST_TF32) else ctypes.c_double
    return kind(1.0), kind(0.0)


def _check(status, name):
    if status != 0:
        raise RuntimeError(f"{name} returned cuBLAS status {status} while recording a CUDA graph")


def _loaded_cublas(maps="/proc/self/maps"):
    """The path of the cuBLAS library that CuPy has loaded into this process (so that its handle is ours)."""
    with open(maps) as f:
        paths = {m.group(0) for m in re.finditer(r"/\S*/libcublas\.so[.\d]*", f.read())}
    if len(paths) != 1:
        raise RuntimeError(f"expected CuPy to have loaded one cuBLAS library, found {sorted(paths) or 'none'}")
    return paths.pop()


def _bind(lib):
    """The three cuBLAS functions with their C signatures (handles, streams and pointers as void*)."""
    p, i, ll = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
    lib.cublasSetStream_v2.argtypes = [p, p]
    lib.cublasGemmEx.argtypes = [p, i, i, i, i, i, p, p, i, i, p, i, i, p, p, i, i, i, i]
    lib.cublasGemmStridedBatchedEx.argtypes = [p, i, i, i, i, i, p, p, i, i, ll, p, i, i, ll, p, p, i, i, ll,
                                               i, i, i]
    for f in (lib.cublasSetStream_v2, lib.cublasGemmEx, lib.cublasGemmStridedBatchedEx):
        f.restype = i
    return lib
