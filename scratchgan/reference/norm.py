"""Batch normalization (Ioffe & Szegedy 2015), per channel, for (N, C) and (N, C, H, W) inputs."""
from ..backend import get_xp


def _values_by_channel(x):
    """(N, C) stays; (N, C, H, W) -> (N H W, C). Either way column c holds channel c's M values."""
    return x if x.ndim == 2 else x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _restore_shape(values, shape):
    """Inverse of _values_by_channel for an array of the given shape."""
    if len(shape) == 2:
        return values
    n, c, h, w = shape
    return values.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def batchnorm_forward(x, gamma, beta, state, train=True, eps=1e-5, momentum=0.1):
    """out = gamma x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), channel by channel.

    For each channel c, over its M values (M = N for (N, C) input, N H W for (N, C, H, W)):

    - training: mu and var are the batch's mean and *biased* variance (1/M), and the running
      statistics move toward them as PyTorch's do, with the *unbiased* variance (1/(M - 1)):

          running_mean <- (1 - momentum) running_mean + momentum mu
          running_var  <- (1 - momentum) running_var  + momentum var M / (M - 1)

    - eval: mu = running_mean and var = running_var, constants; nothing is updated.

    ``state`` is a dict holding "running_mean" and "running_var" (C,) and, optionally, the
    counter "num_batches_tracked"; training replaces its entries with the updated values (the
    arrays passed in are not written to). The forward pass is the computational graph below,
    one node per line; batchnorm_backward walks it from the last node to the first.
    """
    values = _values_by_channel(x)                       # (M, C)
    if train:
        m = len(values)
        if m < 2:
            raise ValueError(f"batchnorm_forward: training needs more than one value per channel, got {x.shape}")
        mu = values.mean(axis=0)                         # 1. mean                       (C,)
        centred = values - mu                            # 2. x - mu                     (M, C)
        squares = centred ** 2                           # 3. (x - mu)^2
        var = squares.mean(axis=0)                       # 4. biased variance            (C,)
        state["running_mean"] = (1 - momentum) * state["running_mean"] + momentum * mu
        state["running_var"] = (1 - momentum) * state["running_var"] + momentum * var * m / (m - 1)
        state["num_batches_tracked"] = state.get("num_batches_tracked", 0) + 1
    else:
        var = state["running_var"]
        centred = values - state["running_mean"]         # 2. x - mu, mu a constant
    std = get_xp(x).sqrt(var + eps)                      # 5. sigma = sqrt(var + eps)    (C,)
    inv_std = 1 / std                                    # 6. 1 / sigma
    x_hat = centred * inv_std                            # 7. x_hat
    out = gamma * x_hat + beta                           # 8. gamma x_hat + beta         (M, C)
    cache = (x.shape, gamma, centred, std, inv_std, x_hat, train)
    return _restore_shape(out, x.shape), cache


def batchnorm_backward(dout, cache):
    """The graph of batchnorm_forward walked backwards, one node at a time (d name = dL/d name,
    sums over the M values of each channel):

        8. out = gamma x_hat + beta   dbeta = sum dout,  dgamma = sum dout x_hat,  dx_hat = gamma dout
        7. x_hat = centred inv_std    dinv_std = sum dx_hat centred,  dcentred = dx_hat inv_std
        6. inv_std = 1 / std          dstd = -dinv_std / std^2
        5. std = sqrt(var + eps)      dvar = dstd / (2 std)
        4. var = mean(squares)        dsquares = dvar / M                 (every value alike)
        3. squares = centred^2        dcentred += 2 centred dsquares      (centred's second use)
        2. centred = x - mu           dx = dcentred,  dmu = -sum dcentred
        1. mu = mean(x)               dx += dmu / M

    In eval mode mu and var are constants: only node 8, node 7's dcentred and node 2 remain,
    so dx = gamma dout / std.

    Collapsed, the training-mode graph gives the one-line formula (g = gamma dout):

        dx = (g - mean(g) - x_hat mean(g x_hat)) / std

    Returns dx, dgamma, dbeta.
    """
    x_shape, gamma, centred, std, inv_std, x_hat, train = cache
    dout = _values_by_channel(dout)
    m = len(dout)
    dbeta = dout.sum(axis=0)                             # 8.
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = gamma * dout
    dcentred = dx_hat * inv_std                          # 7. (centred's first use)
    if train:
        dinv_std = (dx_hat * centred).sum(axis=0)        # 7.
        dstd = -dinv_std / std ** 2                      # 6.
        dvar = dstd / (2 * std)                          # 5.
        dsquares = dvar / m                              # 4. (broadcast over the M values)
        dcentred = dcentred + 2 * centred * dsquares     # 3.
        dmu = -dcentred.sum(axis=0)                      # 2.
        dx = dcentred + dmu / m                          # 1.
    else:
        dx = dcentred                                    # 2. with mu constant
    return _restore_shape(dx, x_shape), dgamma, dbeta
