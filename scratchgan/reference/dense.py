"""Fully connected layers: the affine map (Dense) and Maxout.

``Dense(in, out, act)`` is ``affine_forward`` followed by the activation's forward, and its
backward is the activation's backward followed by ``affine_backward``.
"""
from ..backend import get_xp


def affine_forward(x, w, b=None):
    """out = x W^T + b for x (N, in), W (out, in) (PyTorch's Linear layout) and b (out,):

        out[n, o] = sum_i x[n, i] W[o, i] + b[o]
    """
    out = x @ w.T
    if b is not None:
        out = out + b
    cache = (x, w, b is not None)
    return out, cache


def affine_backward(dout, cache):
    """From out[n, o] = sum_i x[n, i] W[o, i] + b[o], the partial derivatives are

        d out[n, o] / d W[o', i] = [o = o'] x[n, i]
        d out[n, o] / d b[o']    = [o = o']
        d out[n, o] / d x[n', i] = [n = n'] W[o, i]

    and the chain rule sums dout over every output each entry reaches:

        dW[o, i] = sum_n dout[n, o] x[n, i]     dW = dout^T x    (out, in)
        db[o]    = sum_n dout[n, o]                              (out,)
        dx[n, i] = sum_o dout[n, o] W[o, i]     dx = dout W      (N, in)

    Returns dx, dw, db (db is None without a bias).
    """
    x, w, has_bias = cache
    dw = dout.T @ x
    db = dout.sum(axis=0) if has_bias else None
    dx = dout @ w
    return dx, dw, db


def maxout_forward(x, w, b, pieces):
    """Goodfellow et al.'s maxout: out[n, o] = max_k z[n, o, k], z = x W^T + b.

    W (out * pieces, in) and b (out * pieces,): row o * pieces + k is piece k of unit o, so
    z.reshape(N, out, pieces) holds unit o's pieces in row o. The winner of each unit,
    argmax_k z[n, o, k] (the first on a tie), is all the backward needs.
    """
    z, affine_cache = affine_forward(x, w, b)
    z = z.reshape(len(x), -1, pieces)                    # z[n, o, k]
    winner = z.argmax(axis=2)
    out = z.max(axis=2)
    cache = (affine_cache, winner, pieces)
    return out, cache


def maxout_backward(dout, cache):
    """d max_k z[n, o, k] / d z[n, o, k] = 1 for the winning piece, 0 for the others, so
    only the winner receives gradient:

        dz[n, o, k] = dout[n, o] [k = winner[n, o]]

    and dz goes through affine_backward like any affine output. (At a tie the max has no
    derivative; numeric checks use inputs whose winner leads clearly.)
    Returns dx, dw, db.
    """
    affine_cache, winner, pieces = cache
    n, units = dout.shape
    dz = get_xp(dout).zeros((n, units, pieces), dtype=dout.dtype)
    for i in range(n):
        for o in range(units):
            dz[i, o, int(winner[i, o])] = dout[i, o]
    return affine_backward(dz.reshape(n, units * pieces), affine_cache)
