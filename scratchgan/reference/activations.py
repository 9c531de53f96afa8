"""Activations: out = f(x) element by element, so dx = f'(x) * dout; Softmax mixes a row, so its
backward is a Jacobian-vector product."""
from ..backend import get_xp


def relu_forward(x):
    """out = max(x, 0), element-wise."""
    out = get_xp(x).maximum(x, 0)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    """d max(x, 0) / dx = 1 where x > 0, 0 where x < 0; at the kink x = 0 we take 0, as PyTorch does.

    Each output depends only on its own input, so the chain rule is a product entry by entry:

        dx = dout * [x > 0]
    """
    x = cache
    dx = dout * (x > 0)
    return dx


def leaky_relu_forward(x, alpha=0.2):
    """out = x where x > 0, alpha * x elsewhere."""
    out = get_xp(x).where(x > 0, x, alpha * x)
    cache = (x, alpha)
    return out, cache


def leaky_relu_backward(dout, cache):
    """The slope is 1 where x > 0 and alpha elsewhere (alpha at x = 0, as PyTorch), so

        dx = dout where x > 0,  alpha * dout elsewhere
    """
    x, alpha = cache
    dx = get_xp(x).where(x > 0, dout, alpha * dout)
    return dx


def tanh_forward(x):
    """out = tanh(x) = (e^x - e^-x) / (e^x + e^-x)."""
    out = get_xp(x).tanh(x)
    cache = out
    return out, cache


def tanh_backward(dout, cache):
    """By the quotient rule,

        d tanh/dx = ((e^x + e^-x)^2 - (e^x - e^-x)^2) / (e^x + e^-x)^2 = 1 - tanh(x)^2,

    a function of the output alone:  dx = dout * (1 - out^2).
    """
    out = cache
    dx = dout * (1 - out ** 2)
    return dx


def sigmoid_forward(x):
    """out = 1 / (1 + e^-x).

    Computed with z = e^-|x| <= 1 as 1 / (1 + z) for x >= 0 and z / (1 + z) for x < 0 (the same
    number: multiply 1 / (1 + e^-x) above and below by e^x), so no exponential overflows.
    """
    xp = get_xp(x)
    z = xp.exp(-xp.abs(x))
    out = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))
    cache = out
    return out, cache


def sigmoid_backward(dout, cache):
    """d/dx (1 + e^-x)^-1 = e^-x / (1 + e^-x)^2 = out * e^-x / (1 + e^-x) = out (1 - out), so

        dx = dout * out * (1 - out)
    """
    out = cache
    dx = dout * out * (1 - out)
    return dx


def softmax_forward(x, axis=1):
    """out_i = e^(x_i - m) / sum_j e^(x_j - m) along ``axis``, m = max_j x_j.

    Subtracting m changes nothing (the factor e^-m cancels) but keeps every exponent <= 0.
    """
    xp = get_xp(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    exps = xp.exp(shifted)
    out = exps / exps.sum(axis=axis, keepdims=True)
    cache = (out, axis)
    return out, cache


def softmax_backward(dout, cache):
    """Every output of a row depends on every input of the row. With S = sum_k e^(x_k) and
    y_i = e^(x_i) / S, the quotient rule gives the Jacobian

        J[i, j] = dy_i / dx_j = ([i = j] e^(x_i) S - e^(x_i) e^(x_j)) / S^2 = y_i ([i = j] - y_j),

    i.e. J = diag(y) - y y^T, and the chain rule sums over the outputs:

        dx_j = sum_i dout_i J[i, j],   dx = J^T dout   (= y * (dout - sum_i dout_i y_i), J being symmetric)

    Here J is built row by row, as written.
    """
    out, axis = cache
    xp = get_xp(out)
    y_rows = xp.moveaxis(out, axis, -1)                  # the softmax axis last
    dout_rows = xp.moveaxis(dout, axis, -1)
    k = y_rows.shape[-1]
    y_rows, dout_rows = y_rows.reshape(-1, k), dout_rows.reshape(-1, k)
    dx_rows = xp.empty_like(y_rows)
    for r in range(len(y_rows)):
        y = y_rows[r]
        jacobian = xp.diag(y) - xp.outer(y, y)           # J[i, j] = y_i ([i = j] - y_j)
        dx_rows[r] = jacobian.T @ dout_rows[r]
    moved_shape = xp.moveaxis(out, axis, -1).shape
    dx = xp.moveaxis(dx_rows.reshape(moved_shape), -1, axis)
    return dx


def prelu_forward(x, a):
    """out = x where x > 0, a * x elsewhere, with a learned slope ``a``: shape (1,) shared by every
    entry, or (C,), one per channel along axis 1 (PyTorch's PReLU)."""
    slope = a.reshape((1, -1) + (1,) * (x.ndim - 2)) if a.size > 1 else a.reshape(())
    out = get_xp(x).where(x > 0, x, slope * x)
    cache = (x, a, slope)
    return out, cache


def prelu_backward(dout, cache):
    """dout/dx = 1 where x > 0, a elsewhere; dout/da = x where x <= 0, 0 elsewhere. So

        dx = dout where x > 0, a * dout elsewhere;   da = sum of dout * x over the x <= 0 sharing a

    Returns dx, da.
    """
    x, a, slope = cache
    xp = get_xp(x)
    dx = xp.where(x > 0, dout, slope * dout)
    contribution = xp.where(x > 0, 0, dout * x)
    if a.size > 1:
        da = contribution.sum(axis=tuple(i for i in range(x.ndim) if i != 1))
    else:
        da = contribution.sum().reshape(1)
    return dx, da
