"""The backward of the backward: what a gradient penalty needs from every critic layer (docs/double_backward.md).

A layer's backward is a function g = B(x, params, dout) = J(x, params)^T dout, linear in dout.
For a cotangent ddx of g (the gradient of a penalty with respect to the input gradient), its
double backward gives the gradients of the scalar ddx . B(x, params, dout):

    ddout_double, dx, dparams... = name_double_backward(ddx, cache, dout)

- ddout = J ddx: with respect to dout. B is linear in dout, so this is the layer's Jacobian
  applied to ddx -- a forward-mode derivative (a JVP), passed on to the next layer *up*;
- dx: with respect to the layer's input, dout held fixed; zero for affine maps, convolutions,
  reshapes and piecewise-linear activations, whose Jacobian does not depend on x;
- dparams: with respect to the parameters, the "second-order" terms.

``cache`` is the one the layer's ``name_forward`` returned, ``dout`` the upstream gradient its
backward was given. ``chain_double_backward`` composes them and adds the "first-order" terms;
``gradient_penalty`` and ``r1_penalty`` are the penalties themselves. Each function writes out
its maths; zeros are returned as arrays so that every gradient is visible.
"""
from ..backend import get_xp
from .conv import conv2d_backward, conv2d_forward
from .dense import affine_backward


def affine_double_backward(ddx, cache, dout):
    """B = dout W (affine_backward's dx). With u = ddx:

        u . (dout W) = sum_{n, o, i} u[n, i] dout[n, o] W[o, i]

    is linear in dout and in W, and does not involve x or b:

        ddout = u W^T       (N, out): d/d dout[n, o] = sum_i u[n, i] W[o, i] -- the affine map of u, no bias
        dW    = dout^T u    (out, in): d/d W[o, i] = sum_n dout[n, o] u[n, i]
        dx = 0,  db = 0

    Returns ddout, dx, dw, db (db None without a bias).
    """
    x, w, has_bias = cache
    ddout = ddx @ w.T
    dw = dout.T @ ddx
    dx = 0 * x
    db = get_xp(x).zeros(w.shape[0], dtype=x.dtype) if has_bias else None
    return ddout, dx, dw, db


def maxout_double_backward(ddx, cache, dout):
    """B = dz W with dz[n, o, k] = dout[n, o] [k = winner[n, o]] (maxout_backward). The winners depend
    on x only piecewise (constant between ties), so, as for the affine map:

        ddout[n, o] = (u W^T)[n, o, winner[n, o]]    the winning piece of the affine map of u, no bias
        dW = dz^T u,   dx = 0,  db = 0

    Returns ddout, dx, dw, db.
    """
    affine_cache, winner, pieces = cache
    x, w, _ = affine_cache
    n, units = dout.shape
    zu = (ddx @ w.T).reshape(n, units, pieces)
    ddout = get_xp(ddx).zeros((n, units), dtype=ddx.dtype)
    dz = get_xp(ddx).zeros((n, units, pieces), dtype=ddx.dtype)
    for i in range(n):
        for o in range(units):
            ddout[i, o] = zu[i, o, int(winner[i, o])]
            dz[i, o, int(winner[i, o])] = dout[i, o]
    _, dw, _ = affine_backward(dz.reshape(n, units * pieces), (ddx, w, False))   # dW = dz^T u
    return ddout, 0 * x, dw, get_xp(w).zeros(w.shape[0], dtype=w.dtype)


def dropout_double_backward(ddx, cache, dout):
    """B = dout * mask / (1 - p) (dout itself in eval mode): linear in dout, constant in x, so
    ddout = ddx * mask / (1 - p) and dx = 0."""
    scale = cache
    return (ddx if scale is None else ddx * scale), 0 * ddx


def relu_double_backward(ddx, cache, dout):
    """B = dout [x > 0]: ddout = ddx [x > 0]; the slope is constant on each side of 0, so dx = 0."""
    x = cache
    return ddx * (x > 0), 0 * x


def leaky_relu_double_backward(ddx, cache, dout):
    """B = dout * slope(x), slope 1 where x > 0 and alpha elsewhere, piecewise constant:

        ddout = ddx * slope(x),   dx = 0 (away from the kink)
    """
    x, alpha = cache
    ddout = get_xp(x).where(x > 0, ddx, alpha * ddx)
    return ddout, 0 * x


def tanh_double_backward(ddx, cache, dout):
    """B = dout (1 - y^2) with y = tanh(x); d(1 - y^2)/dx = -2 y (1 - y^2), so

        ddout = ddx (1 - y^2),   dx = ddx dout (-2 y (1 - y^2))
    """
    out = cache
    slope = 1 - out ** 2
    return ddx * slope, ddx * dout * (-2 * out * slope)


def sigmoid_double_backward(ddx, cache, dout):
    """B = dout y (1 - y) with y = sigmoid(x); d(y (1 - y))/dx = y (1 - y)(1 - 2 y), so

        ddout = ddx y (1 - y),   dx = ddx dout y (1 - y)(1 - 2 y)
    """
    out = cache
    slope = out * (1 - out)
    return ddx * slope, ddx * dout * slope * (1 - 2 * out)


def reshape_double_backward(ddx, cache, dout):
    """B = dout reshaped as x: ddout = ddx reshaped as the output, dx = 0."""
    return ddx.reshape(dout.shape), get_xp(ddx).zeros(cache, dtype=ddx.dtype)


flatten_double_backward = reshape_double_backward


def conv2d_double_backward(ddx, cache, dout):
    """B = conv2d_backward's dx: dx_pad[window(row, col)] += sum_o dout[n, o, row, col] w[o], cropped.

    u . B is linear in dout and in w, and x does not appear:

        u . B = sum_{n, o, row, col} dout[n, o, row, col] sum_{c, i, j} w[o, c, i, j] u_pad[n, c, row sh + i, col sw + j]

    The inner sum is conv2d_forward(u, w) (no bias), so

        ddout = conv2d_forward(u, w)                         the convolution of u
        dw    = conv2d_backward's dw with input u, upstream dout   (the same sum, read along w)
        dx = 0,  db = 0

    Returns ddout, dx, dw, db (db None without a bias).
    """
    x_pad, w, has_bias, stride, padding = cache
    ddout, u_cache = conv2d_forward(ddx, w, None, stride, padding)
    _, dw, _ = conv2d_backward(dout, u_cache)
    dx = 0 * ddx
    db = get_xp(w).zeros(w.shape[0], dtype=w.dtype) if has_bias else None
    return ddout, dx, dw, db


def chain_double_backward(ddx, cache, dout, double_backwards):
    """The double backward of chain_backward, for chain_forward's ``cache`` and the chain's ``dout``.

    With a_0 = x, a_k = f_k(a_{k-1}), the input gradient is g_0 = B_1(a_0, B_2(a_1, ... B_n(a_{n-1}, dout))).
    Name d_k the upstream gradient layer k's backward received (d_n = dout, d_{k-1} = B_k(a_{k-1}, d_k)).
    For the scalar ddx . g_0:

    1. up the chain, u_1 = ddx and, layer by layer, (u_{k+1}, a_k, second-order dparams_k)
       = double_backward_k(u_k, cache_k, d_k): u_{k+1} is the cotangent of d_k, and a_k that of
       the layer's input a_{k-1} through its Jacobian;
    2. a_{k-1} also feeds every later layer through the forward pass, so the a_k go back down
       the forward chain as in chain_backward, adding first-order parameter gradients:
       c_n = 0, c_{k-1} = J_k^T c_k + a_k  (backward_k(c_k, cache_k)).

    ``double_backwards``: each layer's double-backward function, in order. Returns (ddout, dx,
    per-layer parameter gradients as tuples), dx = c_0 the gradient with respect to x.
    """
    douts = [dout]                                       # d_n, d_{n-1}, ..., d_1: redo the backward
    for backward, layer_cache in reversed(cache[1:]):
        result = backward(douts[-1], layer_cache)
        douts.append(result[0] if isinstance(result, tuple) else result)
    douts = douts[::-1]                                  # douts[k] = upstream gradient of layer k
    u, x_cotangents, second_order = ddx, [], []
    for (backward, layer_cache), double_backward, d in zip(cache, double_backwards, douts):   # 1. up
        u, a, *grads = double_backward(u, layer_cache, d)
        x_cotangents.append(a)
        second_order.append(grads)
    c = 0 * douts[-1]                                    # 2. down, from c_n = 0
    param_grads = [None] * len(cache)
    for k in reversed(range(len(cache))):
        backward, layer_cache = cache[k]
        result = backward(c, layer_cache)
        c, *first_order = result if isinstance(result, tuple) else (result,)
        param_grads[k] = tuple(None if s is None else s + f for s, f in zip(second_order[k], first_order))
        c = c + x_cotangents[k]
    return u, c, param_grads


def gradient_penalty(g, weight=10.0):
    """WGAN-GP's penalty on input gradients g (N, ...): P = weight mean_n (||g_n|| - 1)^2, and

        dP/dg_n = weight 2 (||g_n|| - 1) / N  g_n / ||g_n||      (0 where g_n = 0: no derivative there)

    Returns P, dP/dg.
    """
    xp = get_xp(g)
    rows = g.reshape(len(g), -1)
    norms = xp.sqrt((rows ** 2).sum(axis=1))
    value = weight * ((norms - 1) ** 2).mean()
    safe_norms = xp.where(norms > 0, norms, 1)
    dg = (weight * 2 * (norms - 1) / len(g) / safe_norms)[:, None] * rows
    return value, dg.reshape(g.shape)


def r1_penalty(g, gamma=10.0):
    """R1 on input gradients g of real data: P = gamma / 2 mean_n ||g_n||^2, dP/dg_n = gamma g_n / N."""
    value = gamma / 2 * (g.reshape(len(g), -1) ** 2).sum(axis=1).mean()
    return value, gamma * g / len(g)
