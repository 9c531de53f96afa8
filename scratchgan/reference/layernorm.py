"""Layer normalization (Ba, Kiros & Hinton 2016), each sample over its own trailing axes, with its double backward."""
from ..backend import get_xp


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """out = gamma x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), PyTorch's nn.LayerNorm.

    gamma and beta have the shape of x's trailing axes (the normalized shape, e.g. (C, H, W));
    mu and the *biased* var are taken over those axes, separately for every leading index (every
    sample). Nothing is shared between samples and nothing is kept between calls. The forward
    pass is the graph below, one node per line, on rows of K values; layernorm_backward walks it
    from the last node to the first.
    """
    k = gamma.size
    rows = x.reshape(-1, k)                              # (M, K): one row per sample
    mu = rows.mean(axis=1, keepdims=True)                # 1. mean                        (M, 1)
    centred = rows - mu                                  # 2. x - mu                      (M, K)
    var = (centred ** 2).mean(axis=1, keepdims=True)     # 3. biased variance             (M, 1)
    std = get_xp(x).sqrt(var + eps)                      # 4. sigma
    x_hat = centred / std                                # 5. x_hat
    out = gamma.reshape(-1) * x_hat + beta.reshape(-1)   # 6. gamma x_hat + beta
    cache = (x.shape, gamma, centred, std, x_hat)
    return out.reshape(x.shape), cache


def layernorm_backward(dout, cache):
    """The graph of layernorm_forward walked backwards (sums over the K values of a row, for
    each row; the parameter gradients sum over the rows):

        6. out = gamma x_hat + beta   dgamma = sum_rows dout x_hat,  dbeta = sum_rows dout,
                                      dx_hat = gamma dout
        5. x_hat = centred / std      dcentred = dx_hat / std,  dstd = -sum dx_hat centred / std^2
        4. std = sqrt(var + eps)      dvar = dstd / (2 std)
        3. var = mean(centred^2)      dcentred += 2 centred dvar / K
        2. centred = x - mu           dx = dcentred,  dmu = -sum dcentred
        1. mu = mean(x)               dx += dmu / K

    which collapses to dx = (1 / std)(g - mean(g) - x_hat mean(g x_hat)) with g = gamma dout,
    BatchNorm's formula with rows for channels. Returns dx, dgamma, dbeta.
    """
    x_shape, gamma, centred, std, x_hat = cache
    k = gamma.size
    dout = dout.reshape(-1, k)
    dgamma = (dout * x_hat).sum(axis=0).reshape(gamma.shape)          # 6.
    dbeta = dout.sum(axis=0).reshape(gamma.shape)
    dx_hat = gamma.reshape(-1) * dout
    dcentred = dx_hat / std                                           # 5.
    dstd = -(dx_hat * centred).sum(axis=1, keepdims=True) / std ** 2
    dvar = dstd / (2 * std)                                           # 4.
    dcentred = dcentred + 2 * centred * dvar / k                      # 3.
    dmu = -dcentred.sum(axis=1, keepdims=True)                        # 2.
    dx = dcentred + dmu / k                                           # 1.
    return dx.reshape(x_shape), dgamma, dbeta


def layernorm_double_backward(ddx, cache, dout):
    """The backward of layernorm_backward, for a cotangent ddx of its dx (docs/double_backward.md).

    Per row, with means <.> over its K values, s = 1 / std and g = gamma dout, the backward is
    dx = J g with the symmetric matrix J = s (I - 1 1^T / K - x_hat x_hat^T / K) (the Jacobian
    of x -> x_hat). So, with u = ddx and w = J u:

        ddout  = gamma w                       (d(u . J g)/d dout)
        dgamma = sum_rows dout w               (gamma enters through g)
        dbeta  = 0                             (beta is not in the backward)
        dx: F = u . J g = K s (<u g> - <u><g> - <u x_hat><g x_hat>) depends on x through s and
            x_hat, with dF/ds = F / s, ds/dx = -s^2 x_hat / K, h = dF/dx_hat (s fixed)
            = -s (u <g x_hat> + g <u x_hat>) and dx_hat/dx = J (symmetric), so

            dx = (F / s)(-s^2 x_hat / K) + J h = -(F / K) s x_hat + J h.
    Returns ddout, dx, dgamma, dbeta.
    """
    x_shape, gamma, centred, std, x_hat = cache
    k = gamma.size
    s = 1 / std
    u, dy = ddx.reshape(-1, k), dout.reshape(-1, k)
    g = gamma.reshape(-1) * dy

    def mean(v):
        return v.mean(axis=1, keepdims=True)

    def jacobian_times(v):                               # J v, row by row
        return s * (v - mean(v) - x_hat * mean(v * x_hat))

    w = jacobian_times(u)
    ddout = gamma.reshape(-1) * w
    dgamma = (dy * w).sum(axis=0).reshape(gamma.shape)
    dbeta = 0 * gamma
    f_over_k = s * (mean(u * g) - mean(u) * mean(g) - mean(u * x_hat) * mean(g * x_hat))
    h = -s * (u * mean(g * x_hat) + g * mean(u * x_hat))
    dx = -f_over_k * s * x_hat + jacobian_times(h)
    return ddout.reshape(x_shape), dx.reshape(x_shape), dgamma, dbeta
