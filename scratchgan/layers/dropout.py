"""Inverted dropout (Srivastava et al. 2014)."""
from .. import backend
from .base import Layer


class Dropout(Layer):
    """In training, y = x * m / (1 - p) with m_i ~ Bernoulli(1 - p); in eval mode, y = x.

    Scaling by 1 / (1 - p) at training time keeps E[y] = x, so nothing changes at
    test time ("inverted" dropout). Backward: dx = dy * m / (1 - p), the same mask; its double
    backward is the same product on the cotangent, ddy = ddx * m / (1 - p), with no x-cotangent.
    Masks come from the global generator (``scratchgan.manual_seed``) or ``rng``.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.rng = p, rng

    def _forward(self, x, train):
        if not train or self.p == 0:
            return x, None
        rng = self.rng or backend.global_rng()
        keep = rng.uniform(x.shape, dtype=x.dtype, xp=backend.get_xp(x)) >= self.p
        scaled_mask = keep * x.dtype.type(1 / (1 - self.p))
        return x * scaled_mask, scaled_mask

    def _backward(self, dy, scaled_mask):
        return dy if scaled_mask is None else dy * scaled_mask

    def _double_backward(self, ddx, scaled_mask, dy):
        return self._backward(ddx, scaled_mask), None

    def __repr__(self):
        return f"Dropout({self.p})"
