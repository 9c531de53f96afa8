"""Several inputs and outputs: joining arrays, running branches side by side, one input into several branches.

An input made of several arrays is a tuple, and so is its gradient: a backward function whose layer
reads a tuple returns the tuple of input gradients *wrapped*, ``(dxs,)`` or ``(dxs, *dparams)``, so that
``chain_backward`` never mistakes the second input's gradient for a parameter gradient. None in a
gradient tuple is a zero gradient (and the only gradient integer class labels ever get).
"""
from ..backend import get_xp


def concat_forward(xs, axis=1):
    """out = [x_1, ..., x_n] joined along ``axis``: out[..., o_k + i, ...] = x_k[..., i, ...], with
    o_k = d_1 + ... + d_{k-1} the sizes of the inputs before x_k along the axis."""
    out = get_xp(xs[0]).concatenate(xs, axis=axis)
    cache = ([x.shape[axis] for x in xs], axis)
    return out, cache


def concat_backward(dout, cache):
    """Each entry of out is one entry of one input, so d out / d x_k is a selection and

        dx_k = dout[..., o_k : o_k + d_k, ...]     (along the axis)

    Returns (dxs,): the tuple of the n input gradients."""
    sizes, axis = cache
    dxs, start = [], 0
    for size in sizes:
        index = [slice(None)] * dout.ndim
        index[axis] = slice(start, start + size)
        dxs.append(dout[tuple(index)])
        start += size
    return (tuple(dxs),)


def select_forward(xs, index=0):
    """out = x_index: one input of a tuple passed on, the others ignored."""
    out = xs[index]
    cache = (len(xs), index)
    return out, cache


def select_backward(dout, cache):
    """out does not depend on the other inputs: their gradient is zero (None); dx_index = dout.
    Returns (dxs,)."""
    n, index = cache
    dxs = tuple(dout if k == index else None for k in range(n))
    return (dxs,)


def parallel_forward(xs, branches):
    """(x_1, ..., x_n) -> (f_1(x_1), ..., f_n(x_n)). ``branches``: (forward, backward) pairs with their
    parameters bound, as chain_forward takes them."""
    outs, caches = [], []
    for x, (forward, backward) in zip(xs, branches):
        out, cache = forward(x)
        outs.append(out)
        caches.append((backward, cache))
    return tuple(outs), caches


def parallel_backward(dout, cache):
    """f_k reads x_k only: the Jacobian is block diagonal, and dx_k = J_k^T dout_k, branch by branch
    (a None dout_k, a zero gradient, gives dx_k = None and no parameter gradients' change: zeros).
    Returns (dxs, per-branch tuples of parameter gradients)."""
    dxs, grads = [], []
    for d, (backward, branch_cache) in zip(dout, cache):
        if d is None:
            dxs.append(None)
            grads.append(None)
            continue
        result = backward(d, branch_cache)
        dx, *branch_grads = result if isinstance(result, tuple) else (result,)
        dxs.append(dx)
        grads.append(tuple(branch_grads))
    return tuple(dxs), grads


def fork_forward(x, branches):
    """x -> (f_1(x), ..., f_n(x)): the same input into every branch."""
    outs, caches = [], []
    for forward, backward in branches:
        out, cache = forward(x)
        outs.append(out)
        caches.append((backward, cache))
    return tuple(outs), caches


def fork_backward(dout, cache):
    """x reaches the loss through every branch, so by the multivariate chain rule its gradient is the sum

        dx = J_1^T dout_1 + ... + J_n^T dout_n

    Returns (dx, per-branch tuples of parameter gradients)."""
    dx, grads = None, []
    for d, (backward, branch_cache) in zip(dout, cache):
        result = backward(d, branch_cache)
        branch_dx, *branch_grads = result if isinstance(result, tuple) else (result,)
        dx = _add(dx, branch_dx)
        grads.append(tuple(branch_grads))
    return dx, grads


def _add(a, b):
    """a + b for gradients that may be None (zero) or tuples (item by item)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, tuple):
        return tuple(_add(p, q) for p, q in zip(a, b))
    return a + b


def identity_forward(x):
    """out = x (an array or a tuple of them)."""
    return x, None


def identity_backward(dout, cache):
    """dx = dout. Returns (dx,), wrapped: dout may be a tuple (see the module's docstring)."""
    return (dout,)
