"""Upsampling (nearest, bilinear) and PixelShuffle, output pixel by output pixel."""
import math

from ..backend import get_xp


def upsample_nearest_forward(x, scale):
    """out[n, c, i, j] = x[n, c, i // sh, j // sw] for integer factors scale = (sh, sw)."""
    sh, sw = scale
    n, c, h, w = x.shape
    out = get_xp(x).empty((n, c, h * sh, w * sw), dtype=x.dtype)
    for i in range(h * sh):
        for j in range(w * sw):
            out[:, :, i, j] = x[:, :, i // sh, j // sw]
    cache = (x.shape, scale)
    return out, cache


def upsample_nearest_backward(dout, cache):
    """Output pixel (i, j) copies input pixel (i // sh, j // sw): dx[h, w] = sum of dout over its sh x sw block."""
    x_shape, (sh, sw) = cache
    dx = get_xp(dout).zeros(x_shape, dtype=dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i // sh, j // sw] += dout[:, :, i, j]
    return dx


def linear_source(i, size, scale, align_corners=False):
    """Where output index i reads along an axis of ``size`` enlarged ``scale`` times, as PyTorch's
    bilinear mode: [(input index, weight), (input index, weight)].

    align_corners=False (the default): the centres of the output pixels are mapped onto the
    input, s = (i + 0.5) / scale - 0.5, and clamped at 0 (the first half pixel copies the edge);
    align_corners=True: the corner pixels of input and output coincide, s = i (size - 1) / (size scale - 1).
    """
    if align_corners:
        out = size * scale
        s = i * (size - 1) / (out - 1) if out > 1 else 0.0
    else:
        s = max((i + 0.5) / scale - 0.5, 0.0)
    low = min(math.floor(s), size - 1)
    high = min(low + 1, size - 1)
    return [(low, 1 - (s - low)), (high, s - low)]


def upsample_bilinear_forward(x, scale, align_corners=False):
    """out[n, c, i, j] = sum over the two rows (p, a) and two columns (q, b) that (i, j) reads of a b x[n, c, p, q]."""
    sh, sw = scale
    n, c, h, w = x.shape
    out = get_xp(x).zeros((n, c, h * sh, w * sw), dtype=x.dtype)
    for i in range(h * sh):
        for j in range(w * sw):
            for p, a in linear_source(i, h, sh, align_corners):
                for q, b in linear_source(j, w, sw, align_corners):
                    out[:, :, i, j] += a * b * x[:, :, p, q]
    cache = (x.shape, scale, align_corners)
    return out, cache


def upsample_bilinear_backward(dout, cache):
    """out is linear in x with d out[i, j] / d x[p, q] = a b, so each weight sends its share back:

        dx[p, q] += a b dout[i, j]   for every (i, j) and each of its four (p, a) x (q, b)
    """
    x_shape, (sh, sw), align_corners = cache
    h, w = x_shape[2:]
    dx = get_xp(dout).zeros(x_shape, dtype=dout.dtype)
    for i in range(h * sh):
        for j in range(w * sw):
            for p, a in linear_source(i, h, sh, align_corners):
                for q, b in linear_source(j, w, sw, align_corners):
                    dx[:, :, p, q] += a * b * dout[:, :, i, j]
    return dx


def pixel_shuffle_forward(x, r):
    """out[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h, w]: (N, C r^2, H, W) -> (N, C, H r, W r)."""
    n, channels, h, w = x.shape
    c = channels // (r * r)
    out = get_xp(x).empty((n, c, h * r, w * r), dtype=x.dtype)
    for k in range(c):
        for i in range(r):
            for j in range(r):
                out[:, k, i::r, j::r] = x[:, k * r * r + i * r + j]
    cache = r
    return out, cache


def pixel_shuffle_backward(dout, cache):
    """A permutation of entries: each input entry receives the gradient of the one output entry it became,

        dx[n, c r^2 + i r + j, h, w] = dout[n, c, h r + i, w r + j]
    """
    r = cache
    n, c, hr, wr = dout.shape
    dx = get_xp(dout).empty((n, c * r * r, hr // r, wr // r), dtype=dout.dtype)
    for k in range(c):
        for i in range(r):
            for j in range(r):
                dx[:, k * r * r + i * r + j] = dout[:, k, i::r, j::r]
    return dx
