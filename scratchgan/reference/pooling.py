"""Average pooling, window by window."""
from ..backend import get_xp


def avg_pool_forward(x, kernel, stride, padding=(0, 0)):
    """out[n, c, h, w] = the mean of the kh x kw window at (h sh, w sw) of x zero-padded by (ph, pw):

        Ho = (H + 2 ph - kh) // sh + 1,   Wo likewise   (PyTorch's AvgPool2d, padding counted in the mean)
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, height, width = x.shape
    xp = get_xp(x)
    padded = xp.zeros((n, c, height + 2 * ph, width + 2 * pw), dtype=x.dtype)
    padded[:, :, ph:ph + height, pw:pw + width] = x
    ho, wo = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    out = xp.zeros((n, c, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = padded[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].mean(axis=(2, 3))
    cache = (x.shape, kernel, stride, padding)
    return out, cache


def avg_pool_backward(dout, cache):
    """Each pixel of window (i, j) weighs 1/(kh kw) in out[i, j], so it receives that share of dout[i, j]:

        dpadded[window (i, j)] += dout[i, j] / (kh kw),   then the padding is cropped away
    """
    x_shape, (kh, kw), (sh, sw), (ph, pw) = cache
    n, c, height, width = x_shape
    dpadded = get_xp(dout).zeros((n, c, height + 2 * ph, width + 2 * pw), dtype=dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dpadded[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += dout[:, :, i, j, None, None] / (kh * kw)
    return dpadded[:, :, ph:ph + height, pw:pw + width]


def avg_pool_double_backward(ddx, cache, dout):
    """The backward is linear in dout and does not involve x: ddout = avg_pool_forward(ddx) (the JVP of
    a linear map is the map), dx = 0."""
    x_shape, kernel, stride, padding = cache
    ddout, _ = avg_pool_forward(ddx, kernel, stride, padding)
    return ddout, 0 * ddx
