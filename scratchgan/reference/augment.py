"""DiffAugment's translation and cutout, pixel by pixel, for given random draws."""
from ..backend import get_xp


def translate_forward(x, shift, fill=0.0):
    """out[n, c, i, j] = x[n, c, i - a_n, j - b_n] where that pixel exists, else ``fill``; (a_n, b_n) = shift[n]."""
    n, c, h, w = x.shape
    out = get_xp(x).full(x.shape, fill, dtype=x.dtype)
    for k in range(n):
        a, b = int(shift[k][0]), int(shift[k][1])
        for i in range(h):
            for j in range(w):
                if 0 <= i - a < h and 0 <= j - b < w:
                    out[k, :, i, j] = x[k, :, i - a, j - b]
    return out, (x.shape, shift)


def translate_backward(dout, cache):
    """Each output pixel copies at most one input pixel: dx[n, c, i - a_n, j - b_n] = dout[n, c, i, j]."""
    x_shape, shift = cache
    n, c, h, w = x_shape
    dx = get_xp(dout).zeros(x_shape, dtype=dout.dtype)
    for k in range(n):
        a, b = int(shift[k][0]), int(shift[k][1])
        for i in range(h):
            for j in range(w):
                if 0 <= i - a < h and 0 <= j - b < w:
                    dx[k, :, i - a, j - b] += dout[k, :, i, j]
    return dx


def cutout_forward(x, mask, fill=0.0):
    """out = mask * x + (1 - mask) * fill, ``mask`` (N, 1, H, W) of 0 (cut out) and 1."""
    return mask * x + (1 - mask) * fill, mask


def cutout_backward(dout, cache):
    """dx = mask * dout."""
    return cache * dout
