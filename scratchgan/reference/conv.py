"""2-D convolution and transposed convolution, NCHW, as loops over pixels.

Conv2d gathers: each output pixel is the kernel's dot product with the window under it.
ConvTranspose2d scatters: each input pixel adds a scaled copy of the kernel onto the output.
Each is the other's input-gradient map, which is why each backward looks like the other's forward.
"""
from ..backend import get_xp


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """Cross-correlation, PyTorch's Conv2d: x (N, C, H, W), w (O, C, kh, kw), b (O,).

    With x_pad the input zero-padded by (ph, pw) on each side,

        out[n, o, row, col] = b[o] + sum_{c, i, j} w[o, c, i, j] x_pad[n, c, row sh + i, col sw + j]

        Ho = floor((H + 2 ph - kh) / sh) + 1,   Wo = floor((W + 2 pw - kw) / sw) + 1

    One loop step per output pixel: the window under the kernel, (N, C, kh, kw),
    against every filter at once.
    """
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    n, _, height, width = x.shape
    n_filters, _, kh, kw = w.shape
    ho, wo = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    xp = get_xp(x)
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = xp.zeros((n, n_filters, ho, wo), dtype=x.dtype)
    for row in range(ho):
        for col in range(wo):
            window = x_pad[:, :, row * sh:row * sh + kh, col * sw:col * sw + kw]
            out[:, :, row, col] = xp.einsum("ncij,ocij->no", window, w)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    cache = (x_pad, w, b is not None, (sh, sw), (ph, pw))
    return out, cache


def conv2d_backward(dout, cache):
    """Output pixel (row, col) is sum_{c,i,j} w[o, c, i, j] x_pad[n, c, row sh + i, col sw + j] + b[o]:
    linear in w, with coefficients from its window, and linear in the window, with
    coefficients from w. So each output pixel sends its gradient dout[n, o, row, col] back
    along both, and the chain rule adds up what arrives:

        dw[o, c, i, j]           += sum_n dout[n, o, row, col] x_pad[n, c, row sh + i, col sw + j]
        dx_pad[n, c, window]     += sum_o dout[n, o, row, col] w[o, c]
        db[o]                     = sum_{n, row, col} dout[n, o, row, col]

    A pixel under several windows (stride < kernel) collects a contribution from each. The
    padding is not an input: dx is dx_pad without its border.
    Returns dx, dw, db (db is None without a bias).
    """
    x_pad, w, has_bias, (sh, sw), (ph, pw) = cache
    xp = get_xp(dout)
    _, _, kh, kw = w.shape
    dx_pad, dw = xp.zeros_like(x_pad), xp.zeros_like(w)
    for row in range(dout.shape[2]):
        for col in range(dout.shape[3]):
            rows, cols = slice(row * sh, row * sh + kh), slice(col * sw, col * sw + kw)
            grad = dout[:, :, row, col]                                  # (N, O)
            dw += xp.einsum("no,ncij->ocij", grad, x_pad[:, :, rows, cols])
            dx_pad[:, :, rows, cols] += xp.einsum("no,ocij->ncij", grad, w)
    height, width = x_pad.shape[2] - 2 * ph, x_pad.shape[3] - 2 * pw
    dx = dx_pad[:, :, ph:ph + height, pw:pw + width]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0):
    """Transposed convolution, PyTorch's ConvTranspose2d: x (N, C, H, W), w (C, O, kh, kw), b (O,).

    Each input pixel (row, col) scatters the kernel, scaled by its value, onto a canvas;
    where the kernels of neighbouring pixels overlap, they add:

        full[n, o, row sh + i, col sw + j] += sum_c x[n, c, row, col] w[c, o, i, j]

    The output is the canvas with ``padding`` rows and columns cropped from each side, plus
    the bias:

        out[n, o, y, z] = full[n, o, y + ph, z + pw] + b[o]
        Ho = (H - 1) sh - 2 ph + kh + output_padding_h

    ``output_padding`` (< stride) extends the canvas at the bottom and right: it picks which
    of the Conv2d input sizes that give H outputs this layer produces. With the same weight
    array, the output (bias aside) is conv2d_backward's dx for dout = x.
    """
    (sh, sw), (ph, pw), (oph, opw) = _pair(stride), _pair(padding), _pair(output_padding)
    n, _, height, width = x.shape
    _, n_out, kh, kw = w.shape
    xp = get_xp(x)
    full = xp.zeros((n, n_out, (height - 1) * sh + kh + oph, (width - 1) * sw + kw + opw), dtype=x.dtype)
    for row in range(height):
        for col in range(width):
            kernels = xp.einsum("nc,coij->noij", x[:, :, row, col], w)     # (N, O, kh, kw)
            full[:, :, row * sh:row * sh + kh, col * sw:col * sw + kw] += kernels
    ho, wo = full.shape[2] - 2 * ph, full.shape[3] - 2 * pw
    out = full[:, :, ph:ph + ho, pw:pw + wo].copy()
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    cache = (x, w, b is not None, (sh, sw), (ph, pw), full.shape)
    return out, cache


def conv_transpose2d_backward(dout, cache):
    """The canvas is linear in x and in w: input pixel (row, col) put x[n, c, row, col] w[c, o, i, j]
    at canvas position (row sh + i, col sw + j). So put dout back on a canvas (zero where the
    forward pass cropped) and read each input pixel's window of it:

        dfull[:, :, ph:ph + Ho, pw:pw + Wo] = dout
        dx[n, c, row, col]  = sum_{o, i, j} dfull[n, o, row sh + i, col sw + j] w[c, o, i, j]
        dw[c, o, i, j]     += sum_n x[n, c, row, col] dfull[n, o, row sh + i, col sw + j]
        db[o]               = sum_{n, y, z} dout[n, o, y, z]

    dx is a Conv2d forward pass over dfull with this weight: the gather that undoes the scatter.
    Returns dx, dw, db (db is None without a bias).
    """
    x, w, has_bias, (sh, sw), (ph, pw), full_shape = cache
    xp = get_xp(dout)
    _, _, kh, kw = w.shape
    dfull = xp.zeros(full_shape, dtype=dout.dtype)
    dfull[:, :, ph:ph + dout.shape[2], pw:pw + dout.shape[3]] = dout
    dx, dw = xp.zeros_like(x), xp.zeros_like(w)
    for row in range(x.shape[2]):
        for col in range(x.shape[3]):
            window = dfull[:, :, row * sh:row * sh + kh, col * sw:col * sw + kw]     # (N, O, kh, kw)
            dx[:, :, row, col] = xp.einsum("noij,coij->nc", window, w)
            dw += xp.einsum("nc,noij->coij", x[:, :, row, col], window)
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
