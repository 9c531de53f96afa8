"""Changing an image's resolution: nearest and bilinear Upsample, and PixelShuffle (sub-pixel convolution)."""
import numpy as np

from .. import backend
from ..fastpath import matmul
from .base import Layer, as_count, as_pair

UPSAMPLE_MODES = ("nearest", "bilinear")


def linear_interpolation_matrix(size, scale, align_corners=False, dtype=np.float64):
    """The (size * scale, size) matrix A with A @ v = v linearly interpolated to size * scale points.

    Output index i reads the source coordinate

        s(i) = (i + 0.5) / scale - 0.5, clamped at 0     (align_corners=False, PyTorch's default)
        s(i) = i (size - 1) / (size * scale - 1)         (align_corners=True)

    and row i holds the weights 1 - (s - i0) at i0 = floor(s) and s - i0 at min(i0 + 1, size - 1).
    """
    out = size * scale
    i = np.arange(out, dtype=np.float64)
    if align_corners:
        source = i * ((size - 1) / (out - 1)) if out > 1 else np.zeros(out)
    else:
        source = np.maximum((i + 0.5) / scale - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    frac = source - low
    matrix = np.zeros((out, size))
    np.add.at(matrix, (np.arange(out), low), 1 - frac)
    np.add.at(matrix, (np.arange(out), high), frac)
    return matrix.astype(dtype)


class Upsample(Layer):
    """Enlarge (N, C, H, W) by integer factors (sh, sw) to (N, C, H sh, W sw), "nearest" or "bilinear".

    nearest: y[n, c, i, j] = x[n, c, i // sh, j // sw]; each input pixel becomes an sh x sw block.
    Backward: the block's gradients add up onto its pixel, dx = dy summed over each block.

    bilinear (PyTorch's ``align_corners=False`` by default, see ``linear_interpolation_matrix``):
    interpolation is linear and separable, y[n, c] = A_h x[n, c] A_w^T with the interpolation
    matrices A_h (H sh, H) and A_w (W sw, W). Being linear in x, its backward is the transpose:

        dx[n, c] = A_h^T dy[n, c] A_w

    ``scale_factor``: an int or a pair of ints >= 1 (e.g. (2, 1) doubles the height only).
    """

    def __init__(self, scale_factor=2, mode="nearest", align_corners=False):
        super().__init__()
        self.scale_factor = as_pair(scale_factor, "scale_factor", "Upsample", least=1)
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"Upsample: mode must be one of {', '.join(UPSAMPLE_MODES)}, got {mode!r}")
        if align_corners and mode != "bilinear":
            raise ValueError("Upsample: align_corners applies to mode='bilinear' only")
        self.mode, self.align_corners = mode, bool(align_corners)
        self.input_pattern = (None, None, None, None)
        self._matrices = {}

    def _forward(self, x, train):
        if self.mode == "nearest":
            n, c, h, w = x.shape
            sh, sw = self.scale_factor
            y = backend.get_xp(x).broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
            return y.reshape(n, c, h * sh, w * sw), None
        a_h, a_w = self._interpolation(x)
        return matmul(a_h, matmul(x, a_w.T)), (a_h, a_w)

    def _backward(self, dy, cache):
        if self.mode == "nearest":
            n, c, ho, wo = dy.shape
            sh, sw = self.scale_factor
            return dy.reshape(n, c, ho // sh, sh, wo // sw, sw).sum(axis=(3, 5))
        a_h, a_w = cache
        return matmul(a_h.T, matmul(dy, a_w))

    def _interpolation(self, x):
        """(A_h, A_w) for x's size, dtype and device, built once per size."""
        key = (x.shape[2:], x.dtype, backend.device_of(x))
        if key not in self._matrices:
            self._matrices[key] = tuple(
                backend.to_device(linear_interpolation_matrix(size, scale, self.align_corners, x.dtype),
                                  backend.device_of(x))
                for size, scale in zip(x.shape[2:], self.scale_factor))
        return self._matrices[key]

    def __repr__(self):
        corners = ", align_corners=True" if self.align_corners else ""
        return f"Upsample(scale_factor={self.scale_factor}, mode={self.mode!r}{corners})"


class PixelShuffle(Layer):
    """Rearrange (N, C r^2, H, W) into (N, C, H r, W r) (Shi et al. 2016; PyTorch's PixelShuffle):

        y[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h, w]

    A convolution producing C r^2 channels at low resolution followed by this shuffle is an
    upsampling layer with r^2 learned sub-pixel filters. It is a permutation of entries, so its
    backward is the inverse permutation: dx[n, c r^2 + i r + j, h, w] = dy[n, c, h r + i, w r + j].
    """

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = as_count(upscale_factor, "upscale_factor", "PixelShuffle")
        self.input_pattern = (None, None, None, None)

    def _forward(self, x, train):
        n, c, h, w = x.shape
        r = self.upscale_factor
        if c % (r * r):
            raise ValueError(f"{self}: input channels must be a multiple of {r * r}, got input {tuple(x.shape)}")
        y = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)
        return y.reshape(n, c // (r * r), h * r, w * r), None

    def _backward(self, dy, cache):
        n, c, hr, wr = dy.shape
        r = self.upscale_factor
        dx = dy.reshape(n, c, hr // r, r, wr // r, r).transpose(0, 1, 3, 5, 2, 4)
        return dx.reshape(n, c * r * r, hr // r, wr // r)

    def __repr__(self):
        return f"PixelShuffle({self.upscale_factor})"
