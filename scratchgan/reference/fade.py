"""ProGAN's fade-in: a blend of an old and a new path, out = (1 - alpha) old(x) + alpha new(x).

The paths are reference chains, given as functions: ``forward(x) -> (out, cache)``,
``backward(dout, cache) -> (dx, grads)`` and, for the double backward,
``double_backward(ddx, cache, dout) -> (ddout, dx, grads)`` (``grads`` whatever the path returns).
"""


def fade_in_forward(x, old, new, alpha):
    """out = (1 - alpha) old(x) + alpha new(x); ``old``, ``new``: each path's forward."""
    out_old, cache_old = old(x)
    out_new, cache_new = new(x)
    out = (1 - alpha) * out_old + alpha * out_new
    cache = (cache_old, cache_new, alpha)
    return out, cache


def fade_in_backward(dout, cache, old_backward, new_backward):
    """d out / d old(x) = (1 - alpha), d out / d new(x) = alpha; x feeds both paths, so their input
    gradients add: dx = old_backward((1 - alpha) dout) + new_backward(alpha dout).
    Returns dx, the old path's gradients, the new path's."""
    cache_old, cache_new, alpha = cache
    dx_old, grads_old = old_backward((1 - alpha) * dout, cache_old)
    dx_new, grads_new = new_backward(alpha * dout, cache_new)
    return dx_old + dx_new, grads_old, grads_new


def fade_in_double_backward(ddx, cache, dout, old_double_backward, new_double_backward):
    """The backward is B(x, dout) = B_old(x, (1 - alpha) dout) + B_new(x, alpha dout). For a cotangent ddx of
    it, each path's double backward (at the dout it was given) returns (J_path ddx, its dx, its grads), so

        ddout = (1 - alpha) J_old ddx + alpha J_new ddx,    dx = dx_old + dx_new
    """
    cache_old, cache_new, alpha = cache
    ddout_old, dx_old, grads_old = old_double_backward(ddx, cache_old, (1 - alpha) * dout)
    ddout_new, dx_new, grads_new = new_double_backward(ddx, cache_new, alpha * dout)
    return (1 - alpha) * ddout_old + alpha * ddout_new, dx_old + dx_new, grads_old, grads_new
