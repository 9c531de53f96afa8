"""gan/cublas_capture.py: the layers' products as cuBLAS calls, made directly while a CUDA graph records.

On the CPU, a stand-in cuBLAS carries out cublasGemmEx and cublasGemmStridedBatchedEx on NumPy arrays'
memory as cuBLAS defines them (column-major matrices at a pointer, with a leading dimension and an op),
so the operand order, ops and leading dimensions CapturedMatmul derives from each layout are checked
against NumPy's product. On a GPU, the products must equal CuPy's own bit for bit, eagerly and replayed
from a recorded graph.
"""
import ctypes
import types

import numpy as np
import pytest

from scratchgan.gan import cublas_capture
from scratchgan.gan.cublas_capture import CapturedMatmul


class DeviceArray(np.ndarray):
    """A NumPy array with CuPy's ``data.ptr``."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def on_device(x):
    return np.asarray(x).view(DeviceArray)


def column_major(ptr, rows, cols, ld, dtype, batch=1, stride=0):
    """cuBLAS's view of memory: ``batch`` (rows, cols) matrices stored by columns, ``ld`` apart, ``stride`` apart."""
    itemsize = np.dtype(dtype).itemsize
    assert ld >= max(1, rows), f"leading dimension {ld} < {rows} rows"
    size = (batch - 1) * stride + (cols - 1) * ld + rows
    flat = np.ctypeslib.as_array((ctypes.c_char * (size * itemsize)).from_address(ptr)).view(dtype)
    return np.lib.stride_tricks.as_strided(flat, (batch, rows, cols), (stride * itemsize, itemsize, ld * itemsize))


class StandInCublas:
    """cublasGemmEx and cublasGemmStridedBatchedEx on host memory, C = op(A) op(B) (alpha 1, beta 0)."""

    DTYPES = {cublas_capture.CUDA_R_32F: np.float32, cublas_capture.CUDA_R_64F: np.float64}

    def __init__(self):
        self.calls, self.streams = [], []

    def cublasSetStream_v2(self, handle, stream):
        self.streams.append(stream)
        return 0

    def cublasGemmEx(self, handle, ta, tb, m, n, k, alpha, a, atype, lda, b, btype, ldb, beta, c, ctype, ldc,
                     compute, algo):
        return self.cublasGemmStridedBatchedEx(handle, ta, tb, m, n, k, alpha, a, atype, lda, 0, b, btype, ldb, 0,
                                               beta, c, ctype, ldc, 0, 1, compute, algo, name="GemmEx")

    def cublasGemmStridedBatchedEx(self, handle, ta, tb, m, n, k, alpha, a, atype, lda, stride_a, b, btype, ldb,
                                   stride_b, beta, c, ctype, ldc, stride_c, batch, compute, algo,
                                   name="GemmStridedBatchedEx"):
        assert atype == btype == ctype and (alpha._obj.value, beta._obj.value) == (1, 0)
        dtype = self.DTYPES[ctype]
        op_a = column_major(a, *((m, k) if ta == 0 else (k, m)), lda, dtype, batch, stride_a)
        op_b = column_major(b, *((k, n) if tb == 0 else (n, k)), ldb, dtype, batch, stride_b)
        op_a, op_b = (op.transpose(0, 2, 1) if t else op for op, t in ((op_a, ta), (op_b, tb)))
        column_major(c, m, n, ldc, dtype, batch, stride_c)[...] = op_a @ op_b
        self.calls.append((name, ta, tb, m, n, k, lda, ldb, ldc, compute, algo))
        return 0


@pytest.fixture
def matmul(monkeypatch):
    xp = types.SimpleNamespace(empty=lambda shape, dtype: on_device(np.empty(shape, dtype)),
                               ascontiguousarray=lambda x: on_device(np.ascontiguousarray(x)),
                               cuda=types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=7)))
    product = CapturedMatmul(xp, StandInCublas(), handle=1, tensor_ops=True)
    product._compute_type = lambda dtype: (cublas_capture.CUBLAS_COMPUTE_32F if dtype.char == "f"
                                           else cublas_capture.CUBLAS_COMPUTE_64F)
    return product


def layouts(rng, rows, cols, dtype):
    """The same matrix in memory four ways: C order, F order (a transposed view), a strided slice of a
    wider array (neither order), and a row or column slice of a larger C-ordered one (a leading dimension
    larger than its width)."""
    x = rng.standard_normal((rows, cols)).astype(dtype)
    wide = np.zeros((rows, 2 * cols), dtype)
    wide[:, ::2] = x
    tall = np.zeros((rows + 3, cols + 2), dtype)
    tall[1:rows + 1, 2:] = x
    return {"C": x.copy(), "F": np.asfortranarray(x), "strided": wide[:, ::2], "padded": tall[1:rows + 1, 2:]}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", [(5, 3, 4), (1, 7, 6), (6, 7, 1), (3, 1, 5), (8, 16, 2)])
def test_2d_products_in_every_layout_equal_numpys(matmul, dtype, m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a_name, a in layouts(rng, m, k, dtype).items():
        for b_name, b in layouts(rng, k, n, dtype).items():
            c = matmul(on_device(a), on_device(b))
            np.testing.assert_allclose(c, a @ b, rtol=tol, atol=tol, err_msg=f"{a_name} @ {b_name}")
            assert c.shape == (m, n) and c.flags.c_contiguous
    assert matmul.lib.streams and set(matmul.lib.streams) == {7}          # on the current stream
    name, *_, compute, algo = matmul.lib.calls[-1]
    assert name == "GemmEx" and algo == cublas_capture.CUBLAS_GEMM_DEFAULT_TENSOR_OP
    assert compute == (cublas_capture.CUBLAS_COMPUTE_32F if dtype == np.float32 else cublas_capture.CUBLAS_COMPUTE_64F)


def test_products_into_out_in_either_order(matmul):
    """``out`` C-ordered is written in place; F-ordered (fastpath.matmul_tall's transposed view), via a
    C-ordered result copied in, as CuPy's matmul does."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 3))
    for out in (on_device(np.zeros((4, 3))), on_device(np.zeros((3, 4))).T):
        result = matmul(on_device(a), on_device(b), out=out)
        assert result is out
        np.testing.assert_allclose(out, a @ b, rtol=1e-12)


def test_the_operands_as_cupy_passes_them(matmul):
    """C^T = b^T a^T, (N, M) in column order: b first. For C-ordered a (M, K) = (4, 6) and b (K, N) = (6, 3),
    no op on either, leading dimensions N and K; for transposed views, op T on both, leading dimensions
    K and M (CuPy's tensordot_core). C's leading dimension is N."""
    matmul(on_device(np.ones((4, 6))), on_device(np.ones((6, 3))))
    matmul(on_device(np.ones((6, 4))).T, on_device(np.ones((3, 6))).T)
    #                   (op b, op a, N, M, K, ld b, ld a, ld C)
    assert [call[1:9] for call in matmul.lib.calls] == [(0, 0, 3, 4, 6, 3, 6, 3), (1, 1, 3, 4, 6, 6, 4, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_products_equal_numpys(matmul, dtype):
    """fastpath.row_dots's (R, 1, K) @ (R, K, 1), and a general batch, from views in neither order."""
    rng = np.random.default_rng(1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    rows_a, rows_b = rng.standard_normal((2, 9, 5)).astype(dtype)
    dots = matmul(on_device(rows_a)[:, None, :], on_device(rows_b)[:, :, None]).reshape(-1)
    np.testing.assert_allclose(dots, np.einsum("rk,rk->r", rows_a, rows_b), rtol=tol, atol=tol)
    a = rng.standard_normal((2, 3, 4, 10)).astype(dtype)[..., ::2]
    b = rng.standard_normal((2, 3, 5, 6)).astype(dtype)
    np.testing.assert_allclose(matmul(on_device(a), on_device(b)), a @ b, rtol=tol, atol=tol)
    assert matmul.lib.calls[-1][0] == "GemmStridedBatchedEx"
    assert matmul.lib.calls[-1][-2:] == ((cublas_capture.CUDA_R_32F if dtype == np.float32 else
                                          cublas_capture.CUDA_R_64F), cublas_capture.CUBLAS_GEMM_DEFAULT)


def test_what_it_cannot_record_is_refused_by_name(matmul):
    with pytest.raises(NotImplementedError, match=r"shapes \(2, 3, 4\) and \(4, 5\)"):
        matmul(on_device(np.ones((2, 3, 4))), on_device(np.ones((4, 5))))        # a broadcast batch
    with pytest.raises(NotImplementedError, match="float32 and float64"):
        matmul(on_device(np.ones((2, 3), np.float32)), on_device(np.ones((3, 2))))
    with pytest.raises(ValueError, match="inner dimension"):
        matmul(on_device(np.ones((2, 3))), on_device(np.ones((4, 2))))
    with pytest.raises(ValueError, match=r"output of shape \(3, 2\)"):
        matmul(on_device(np.ones((2, 3))), on_device(np.ones((3, 3))), out=on_device(np.ones((3, 2))))


def test_the_loaded_cublas_is_found_in_the_process_map(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /opt/nvidia/cu13/lib/libcublasLt.so.13\n"
                    "7f02-7f03 r-xp 0 08:01 2 /opt/nvidia/cu13/lib/libcublas.so.13\n"
                    "7f04-7f05 r--p 0 08:01 2 /opt/nvidia/cu13/lib/libcublas.so.13\n")
    assert cublas_capture._loaded_cublas(str(maps)) == "/opt/nvidia/cu13/lib/libcublas.so.13"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\n")
    with pytest.raises(RuntimeError, match="found none"):
        cublas_capture._loaded_cublas(str(maps))


# -- on a GPU --------------------------------------------------------------------------------------------------

def gpu_cases(cupy, dtype):
    rng = np.random.default_rng(2)
    for m, k, n in [(64, 200, 48), (1, 30, 17), (33, 1, 9), (128, 576, 1)]:
        for a_name, a in layouts(rng, m, k, dtype).items():
            for b_name, b in layouts(rng, k, n, dtype).items():
                yield f"{a_name} {a.shape} @ {b_name} {b.shape}", cupy.asarray(a), cupy.asarray(b)
    rows = cupy.asarray(rng.standard_normal((2, 50, 40)).astype(dtype))
    yield "row dots", rows[0][:, None, :], rows[1][:, :, None]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["strict", "tf32"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_products_equal_cupys_bit_for_bit(cupy, dtype, precision):
    from scratchgan import bench
    bench.set_gpu_precision(precision)
    try:
        matmul = CapturedMatmul.for_cupy(cupy)
        for name, a, b in gpu_cases(cupy, dtype):
            assert cupy.array_equal(matmul(a, b), cupy.matmul(a, b)), name
    finally:
        bench.set_gpu_precision("strict")


@pytest.mark.gpu
def test_gpu_products_recorded_in_a_graph_replay_as_cupys(cupy):
    """Recorded on a capturing stream (where cupy.matmul raises), replayed on new inputs: CuPy's results."""
    from scratchgan import fastpath
    matmul = CapturedMatmul.for_cupy(cupy)
    cases = list(gpu_cases(cupy, np.float32))
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            with pytest.raises(NotImplementedError, match="stream capture"):
                cupy.matmul(cases[0][1], cases[0][2])
            fastpath.capture_matmul = matmul      # as gan/cuda_graph.py sets it while recording
            outs = [fastpath.matmul(a, b) for _, a, b in cases]
        finally:
            fastpath.capture_matmul = None
            graph = stream.end_capture()
        for _, a, b in cases:                      # new values in the recorded inputs
            a[...] = cupy.random.standard_normal(a.shape, dtype=a.dtype)
            b[...] = cupy.random.standard_normal(b.shape, dtype=b.dtype)
        graph.launch()
    stream.synchronize()
    for (name, a, b), out in zip(cases, outs):
        assert cupy.array_equal(out, cupy.matmul(a, b)), name
