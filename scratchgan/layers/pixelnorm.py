"""Pixelwise feature normalisation: PixelNorm (ProGAN's generator, Karras et al. 2018)."""
from .. import backend
from .base import Layer


class PixelNorm(Layer):
    """Each pixel's feature vector scaled to unit root mean square over the channels (axis 1):

        y[n, c, h, w] = x[n, c, h, w] r[n, h, w],   r = (1/C sum_k x[n, k, h, w]^2 + eps)^(-1/2)

    for (N, C, H, W) maps, and for (N, F) vectors (ProGAN normalises its latent code this way).
    No parameters, and no batch statistics: each sample and pixel on its own.

    Backward: with m = 1/C sum_k x_k^2, dr/dx_k = -r^3 x_k / C, so

        dx_k = r dy_k - r^3 x_k / C sum_c dy_c x_c = r (dy_k - y_k mean_c(dy_c y_c))
    """

    def __init__(self, eps=1e-8):
        super().__init__()
        if not eps > 0:
            raise ValueError(f"PixelNorm: eps must be > 0, got {eps!r}")
        self.eps = eps

    def _check_input(self, x):
        super()._check_input(x)
        if x.ndim < 2:
            raise ValueError(f"{self}: expected input (N, C, ...) with features on axis 1, got {tuple(x.shape)}")

    def _forward(self, x, train):
        xp = backend.get_xp(x)
        r = xp.mean(x * x, axis=1, keepdims=True)
        r += x.dtype.type(self.eps)
        r = 1 / xp.sqrt(r, out=r)
        y = x * r
        return y, (y, r)

    def _backward(self, dy, cache):
        y, r = cache
        dx = dy - y * (dy * y).mean(axis=1, keepdims=True)
        dx *= r
        return dx

    def __repr__(self):
        return "PixelNorm()"
