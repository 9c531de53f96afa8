"""Reflection padding, pixel by pixel."""
from ..backend import get_xp


def reflect(k, size):
    """The input index an index k of a reflection-padded axis reads: -k before the start, 2 (size - 1) - k after the end."""
    if k < 0:
        return -k
    if k > size - 1:
        return 2 * (size - 1) - k
    return k


def reflection_pad_forward(x, padding):
    """out[n, c, i, j] = x[n, c, reflect(i - top, H), reflect(j - left, W)] for padding (left, right, top, bottom)."""
    left, right, top, bottom = padding
    n, c, h, w = x.shape
    out = get_xp(x).empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, reflect(i - top, h), reflect(j - left, w)]
    cache = (x.shape, padding)
    return out, cache


def reflection_pad_backward(dout, cache):
    """Each output pixel copies one input pixel, so each input pixel collects the gradients of its copies:

        dx[n, c, h, w] = sum of dout[n, c, i, j] over the (i, j) with reflect(i - top) = h, reflect(j - left) = w
    """
    x_shape, (left, right, top, bottom) = cache
    h, w = x_shape[2:]
    dx = get_xp(dout).zeros(x_shape, dtype=dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, reflect(i - top, h), reflect(j - left, w)] += dout[:, :, i, j]
    return dx
