"""Instance normalization (Ulyanov et al. 2016): every (sample, channel) slice normalized on its own."""
from ..backend import get_xp


def instancenorm_forward(x, gamma=None, beta=None, eps=1e-5):
    """out = gamma x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), for input (N, C, H, W),
    with mu[n, c] and the biased var[n, c] over the M = H W pixels of channel c of sample n.

    The same in training and evaluation (no running statistics). Without gamma and beta
    (PyTorch's default ``affine=False``), out = x_hat. The graph, one node per line, as
    batchnorm_forward's with the statistics taken over axes (2, 3) instead of (0, 2, 3):
    """
    mu = x.mean(axis=(2, 3), keepdims=True)              # 1. mean per (n, c)          (N, C, 1, 1)
    centred = x - mu                                     # 2. x - mu
    squares = centred ** 2                               # 3. (x - mu)^2
    var = squares.mean(axis=(2, 3), keepdims=True)       # 4. biased variance per (n, c)
    std = get_xp(x).sqrt(var + eps)                      # 5. sigma
    inv_std = 1 / std                                    # 6. 1 / sigma
    x_hat = centred * inv_std                            # 7. x_hat
    affine = gamma is not None
    out = x_hat * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1) if affine else x_hat   # 8.
    cache = (gamma, centred, std, inv_std, x_hat, affine)
    return out, cache


def instancenorm_backward(dout, cache):
    """batchnorm_backward's walk, with sums over each slice's M = H W pixels:

        8. out = gamma x_hat + beta   dbeta = sum over n, h, w of dout,  dgamma = sum dout x_hat,
                                      dx_hat = gamma dout   (dx_hat = dout without gamma)
        7. x_hat = centred inv_std    dinv_std = sum over h, w of dx_hat centred,  dcentred = dx_hat inv_std
        6. inv_std = 1 / std          dstd = -dinv_std / std^2
        5. std = sqrt(var + eps)      dvar = dstd / (2 std)
        4. var = mean(squares)        dsquares = dvar / M
        3. squares = centred^2        dcentred += 2 centred dsquares
        2. centred = x - mu           dx = dcentred,  dmu = -sum over h, w of dcentred
        1. mu = mean(x)               dx += dmu / M

    Returns dx, dgamma, dbeta (dx alone without gamma and beta).
    """
    gamma, centred, std, inv_std, x_hat, affine = cache
    m = x_hat.shape[2] * x_hat.shape[3]
    dx_hat = dout * gamma.reshape(1, -1, 1, 1) if affine else dout      # 8.
    dcentred = dx_hat * inv_std                                         # 7.
    dinv_std = (dx_hat * centred).sum(axis=(2, 3), keepdims=True)
    dstd = -dinv_std / std ** 2                                         # 6.
    dvar = dstd / (2 * std)                                             # 5.
    dsquares = dvar / m                                                 # 4.
    dcentred = dcentred + 2 * centred * dsquares                        # 3.
    dmu = -dcentred.sum(axis=(2, 3), keepdims=True)                     # 2.
    dx = dcentred + dmu / m                                             # 1.
    if not affine:
        return dx
    return dx, (dout * x_hat).sum(axis=(0, 2, 3)), dout.sum(axis=(0, 2, 3))
