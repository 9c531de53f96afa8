"""Composition: layers applied in order, and the chain rule applied in reverse."""


def chain_forward(x, layers):
    """out = f_n(... f_2(f_1(x))).

    ``layers``: a list of (forward, backward) pairs with the parameters already bound, e.g.
    ``(lambda x: conv2d_forward(x, w, b, stride=2), conv2d_backward)``.
    """
    caches = []
    for forward, backward in layers:
        x, cache = forward(x)
        caches.append((backward, cache))
    return x, caches


def chain_backward(dout, cache):
    """With a_0 = x, a_k = f_k(a_{k-1}) and J_k the Jacobian of f_k at a_{k-1}, the chain rule gives

        dL/da_{k-1} = J_k^T dL/da_k,    dx = J_1^T (J_2^T (... J_n^T dout))

    so the backward functions run from the last layer to the first, each turning the gradient
    of its output into the gradient of its input (and of its parameters on the way).
    Returns dx and a list with each layer's parameter gradients as a tuple (empty for a layer
    without parameters, whose backward returns dx alone).
    """
    param_grads = []
    for backward, layer_cache in reversed(cache):
        result = backward(dout, layer_cache)
        dout, *grads = result if isinstance(result, tuple) else (result,)
        param_grads.append(tuple(grads))
    return dout, param_grads[::-1]
