"""Small helpers the layer tests share."""
import numpy as np

from scratchgan.gradcheck import upstream_gradient


def f64(layer):
    """``layer`` in float64, for finite-difference checks."""
    return layer.to(dtype=np.float64)


def forward_backward(layer, x, seed=3):
    """(y, the random upstream gradient dy, dx) of one training-mode pass of ``layer``."""
    y = layer.forward(x, train=True, keep_cache=True)
    dy = upstream_gradient(y.shape, seed)
    return y, dy, layer.backward(dy)
