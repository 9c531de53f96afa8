"""PixelNorm (ProGAN): each pixel's feature vector divided by its root mean square over the channels."""
from ..backend import get_xp


def pixelnorm_forward(x, eps=1e-8):
    """out[n, :, h, w] = x[n, :, h, w] / sqrt(1/C sum_c x[n, c, h, w]^2 + eps)   (axis 1; (N, F) inputs too)."""
    mean_square = (x * x).mean(axis=1, keepdims=True)
    root = get_xp(x).sqrt(mean_square + eps)
    out = x / root
    cache = (x, root)
    return out, cache


def pixelnorm_backward(dout, cache):
    """Back through the graph x -> mean_square -> root -> out = x / root, one node at a time:

        out = x / root, directly:       dx      = dout / root
        out = x / root, through root:   droot   = -sum_c dout x / root^2
        root = sqrt(mean_square + eps): dmean   = droot / (2 root)
        mean_square = 1/C sum_c x^2:    dx     += dmean 2 x / C
    """
    x, root = cache
    channels = x.shape[1]
    dx = dout / root
    droot = -(dout * x).sum(axis=1, keepdims=True) / root ** 2
    dmean = droot / (2 * root)
    dx = dx + dmean * 2 * x / channels
    return dx
