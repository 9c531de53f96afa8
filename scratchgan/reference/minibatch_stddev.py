"""Minibatch standard deviation (ProGAN's critic), group by group: the layer that mixes the samples of a batch."""
from ..backend import get_xp


def minibatch_stddev_forward(x, group_size=4, eps=1e-8):
    """Split the batch into consecutive groups of g = min(group_size, N) samples; in each group, for every
    feature (c, h, w): mean, biased variance, sigma = sqrt(var + eps); their average s over the features
    becomes one more channel of every sample of the group: out = [x, s] (N, C + 1, H, W)."""
    n, c, h, w = x.shape
    g = min(group_size, n)
    xp = get_xp(x)
    out = xp.zeros((n, c + 1, h, w), dtype=x.dtype)
    out[:, :c] = x
    groups = []
    for start in range(0, n, g):
        members = x[start:start + g]
        mean = members.mean(axis=0)
        var = ((members - mean) ** 2).mean(axis=0)
        sigma = xp.sqrt(var + eps)
        out[start:start + g, c] = sigma.mean()
        groups.append((start, members, mean, sigma))
    cache = (x.shape, g, groups)
    return out, cache


def minibatch_stddev_backward(dout, cache):
    """out[:, :C] is x itself: dx = dout[:, :C], plus, per group, the path through s (every sample of the
    group feeds s, and s feeds every sample's extra channel):

        ds     = sum of dout[:, C] over the group's samples and pixels
        dsigma = ds / (C H W)                                (s is the mean of sigma)
        dvar   = dsigma / (2 sigma)
        dx_n  += dvar 2 (x_n - mean) / g                      (dvar/dmean = -2/g sum_n (x_n - mean) = 0)
    """
    x_shape, g, groups = cache
    n, c, h, w = x_shape
    dx = dout[:, :c].copy()
    for start, members, mean, sigma in groups:
        ds = dout[start:start + g, c].sum()
        dsigma = ds / (c * h * w)
        dvar = dsigma / (2 * sigma)
        dx[start:start + g] += dvar * 2 * (members - mean) / g
    return dx


def minibatch_stddev_double_backward(ddx, cache, dout):
    """The backward is B_n = dout[n, :C] + k (x_n - mean) / sigma with k = ds / (C H W g), per group.
    For a cotangent u = ddx (ubar its group mean, cov = 1/g sum_n (u_n - ubar)(x_n - mean) per feature):

        ddout[n, :C] = u_n                                  (d(u . B)/d dout[n, :C])
        ddout[n, C, h, w] = 1/(C H W) sum_features cov / sigma   (d/d dout[n, C]: every pixel of the group's
                                                             extra channel adds to ds; the JVP of s along u)
        dx_m = k ((u_m - ubar) / sigma - cov (x_m - mean) / sigma^3)
                                                            (d/dx_m of k sum_n u_n (x_n - mean) / sigma,
                                                             sigma^2 = var + eps, dvar/dx_m = 2 (x_m - mean)/g)
    """
    x_shape, g, groups = cache
    n, c, h, w = x_shape
    xp = get_xp(ddx)
    ddout = xp.zeros((n, c + 1, h, w), dtype=ddx.dtype)
    ddout[:, :c] = ddx
    dx = xp.zeros(x_shape, dtype=ddx.dtype)
    for start, members, mean, sigma in groups:
        u = ddx[start:start + g]
        centred_u = u - u.mean(axis=0)
        cov = (centred_u * (members - mean)).mean(axis=0)
        ddout[start:start + g, c] = (cov / sigma).mean()
        k = dout[start:start + g, c].sum() / (c * h * w * g)
        dx[start:start + g] = k * (centred_u / sigma - cov * (members - mean) / sigma ** 3)
    return ddout, dx
