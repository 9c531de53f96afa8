"""Class labels as inputs: one-hot codes, embedding lookups, and the projection discriminator's output.

Labels y are integers (N,) in 0 .. K-1; they have no gradient (None). The scatter-adds below are
loops over the samples, as the sums are written: ``dW[y[n]] += dout[n]`` one sample at a time adds
every sample's share, repeated labels included. (The vectorised ``dW[y] += dout`` would not: with a
label repeated, NumPy assigns to that row once, and all but one of its terms are lost.)
"""
from ..backend import get_xp


def one_hot_forward(y, num_classes, dtype, spatial=None):
    """out[n, k] = [y_n = k]; with spatial=(H, W), out[n, k, i, j] = [y_n = k] (K label planes)."""
    xp = get_xp(y)
    shape = (len(y), num_classes) + (tuple(spatial) if spatial else ())
    out = xp.zeros(shape, dtype=dtype)
    for n in range(len(y)):
        out[n, int(y[n])] = 1
    cache = None
    return out, cache


def one_hot_backward(dout, cache):
    """The labels are integers: no gradient."""
    return None


def embedding_forward(y, w):
    """out[n] = W[y_n], row y_n of the (K, D) table W."""
    out = w[y]
    cache = (y, w.shape)
    return out, cache


def embedding_backward(dout, cache):
    """out[n, d] = W[y_n, d], so d out[n, d] / d W[k, d'] = [y_n = k][d = d'] and

        dW[k] = sum_{n: y_n = k} dout[n]

    Returns (None, dW): the labels have no gradient."""
    y, w_shape = cache
    dw = get_xp(dout).zeros(w_shape, dtype=dout.dtype)
    for n in range(len(y)):
        dw[int(y[n])] += dout[n]
    return None, dw


def projection_forward(x, w, b, v):
    """x = (h, y): out[n] = h_n . w + b + h_n . V[y_n], shape (N, 1), for features h (N, F), w (1, F),
    b (1,) or None, and the class embedding V (K, F) (Miyato & Koyama 2018)."""
    h, y = x
    N = len(h)
    out = get_xp(h).zeros((N, 1), dtype=h.dtype)
    for n in range(N):
        out[n, 0] = h[n] @ w[0] + h[n] @ v[int(y[n])] + (b[0] if b is not None else 0)
    cache = (h, y, w, b is not None, v)
    return out, cache


def projection_backward(dout, cache):
    """With g_n = dout[n, 0], the partial derivatives of out[n] = h_n . (w + V[y_n]) + b give

        dh[n] = g_n (w + V[y_n])         dw = sum_n g_n h_n         db = sum_n g_n
        dV[k] = sum_{n: y_n = k} g_n h_n

    Returns ((dh, None), dw, db, dV): the labels have no gradient."""
    h, y, w, has_bias, v = cache
    xp = get_xp(dout)
    dh = xp.zeros_like(h)
    dw, dv = xp.zeros_like(w), xp.zeros_like(v)
    for n in range(len(h)):
        g = dout[n, 0]
        dh[n] = g * (w[0] + v[int(y[n])])
        dw[0] += g * h[n]
        dv[int(y[n])] += g * h[n]
    db = dout.sum(axis=0) if has_bias else None
    return (dh, None), dw, db, dv
