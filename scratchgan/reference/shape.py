"""Reshape and Flatten: no arithmetic. Output entry k is input entry k in C order, so the
Jacobian is the identity and backward only gives dout the input's shape back."""


def reshape_forward(x, shape):
    """(N, ...) -> (N, *shape), C order."""
    out = x.reshape(len(x), *shape)
    cache = x.shape
    return out, cache


def reshape_backward(dout, cache):
    """out[n].flat[k] = x[n].flat[k], so dx[n].flat[k] = dout[n].flat[k]:  dx = dout reshaped to x's shape."""
    x_shape = cache
    dx = dout.reshape(x_shape)
    return dx


def flatten_forward(x):
    """(N, d1, d2, ...) -> (N, d1 d2 ...), C order (PyTorch's nn.Flatten)."""
    out = x.reshape(len(x), -1)
    cache = x.shape
    return out, cache


def flatten_backward(dout, cache):
    """As reshape_backward:  dx = dout reshaped to x's shape."""
    x_shape = cache
    dx = dout.reshape(x_shape)
    return dx
