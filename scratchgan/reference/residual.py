"""A residual block: out = x + F(x), with F any reference function (a chain of them, usually)."""


def residual_forward(x, body):
    """out = x + F(x) for ``body`` = (forward, backward) of F with its parameters bound.

    F must keep the shape of x."""
    forward, backward = body
    fx, body_cache = forward(x)
    if fx.shape != x.shape:
        raise ValueError(f"residual_forward: F maps {x.shape} to {fx.shape}; x + F(x) needs the same shape")
    out = x + fx
    cache = (backward, body_cache)
    return out, cache


def residual_backward(dout, cache):
    """x reaches out along two paths, the identity and F; the chain rule sums them:

        dx = dout + J_F^T dout

    Returns dx and whatever F's backward returned besides its input gradient (its parameters' gradients).
    """
    backward, body_cache = cache
    result = backward(dout, body_cache)
    dx_body, *grads = result if isinstance(result, tuple) else (result,)
    dx = dout + dx_body
    return (dx, *grads)
