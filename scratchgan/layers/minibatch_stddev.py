"""Minibatch standard deviation (ProGAN's critic, Karras et al. 2018): a layer that mixes the samples of a batch."""
from .. import backend
from .base import Layer, as_count


class MinibatchStdDev(Layer):
    """Appends one feature map holding how much the samples of a group differ, so the critic can see
    a lack of variety (a generator making one image) that no single sample shows.

    The batch (N, C, H, W) is split into consecutive groups of G = min(group_size, N) samples
    (N must be a multiple of G). Within group g, for every feature (c, h, w):

        mu = 1/G sum_n x_n,   z_n = x_n - mu,   v = 1/G sum_n z_n^2,   sigma = sqrt(v + eps)
        s_g = 1/(C H W) sum_{c,h,w} sigma                    (one number per group)
        y_n = [x_n, s_g 1_{H x W}]   (N, C + 1, H, W)          (for every n in group g)

    Backward: y's first C channels are x itself; s_g depends on every sample of its group. With
    S_g = sum_{n in g} sum_{h,w} dy[n, C, h, w] (all the upstream gradient that reaches s_g),
    ds/dsigma = 1/(CHW), dsigma/dv = 1/(2 sigma), dv/dx_n = 2 z_n / G (the mu terms cancel since
    sum_n z_n = 0):

        dx_n = dy[n, :C] + a S_g z_n / sigma,   a = 1 / (C H W G)       (cross-sample: S_g and z_n)

    Double backward (docs/double_backward.md): that backward is g_n = dy_x,n + a S_g z_n / sigma. For
    a cotangent u of dx, with ubar the group mean of u and cov = 1/G sum_n (u_n - ubar) z_n per feature:

        ddy[n, :C] = u_n,   ddy[n, C, h, w] = 1/(CHW) sum_{c,h,w} cov / sigma   (the JVP: ds along u)
        dx_m = a S_g ((u_m - ubar) / sigma - cov z_m / sigma^3)                 (dy held fixed)

    (d cov/dx_m = (u_m - ubar)/G, d(1/sigma)/dx_m = -z_m / (G sigma^3)). ``mixes_batch`` is True: the
    trainer runs real and fake batches through it separately. A gradient penalty on this layer is
    the penalty of ProGAN's own code: on g = grad_x sum_n D(x)_n, cross-sample terms included, and
    this double backward differentiates exactly that (``penalty_differentiates_batch_mixing``).
    """

    mixes_batch = True
    #: its double backward includes the cross-sample terms: a penalty on grad_x sum_n D(x)_n is exact
    penalty_differentiates_batch_mixing = True

    def __init__(self, group_size=4, eps=1e-8):
        super().__init__()
        self.group_size = as_count(group_size, "group_size", "MinibatchStdDev")
        if not eps > 0:
            raise ValueError(f"MinibatchStdDev: eps must be > 0, got {eps!r}")
        self.eps = eps
        self.input_pattern = (None, None, None, None)

    def group_of(self, n):
        """G for a batch of n samples: min(group_size, n); ValueError unless it divides n."""
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"{self}: a batch of {n} samples does not split into groups of {g}; "
                             f"use a batch size that is a multiple of {g}")
        return g

    def _forward(self, x, train):
        n, c, h, w = x.shape
        g = self.group_of(n)
        xp = backend.get_xp(x)
        groups = x.reshape(n // g, g, c, h, w)
        z = groups - groups.mean(axis=1, keepdims=True)
        sigma = xp.sqrt((z * z).mean(axis=1, keepdims=True) + x.dtype.type(self.eps))   # (M, 1, C, H, W)
        s = sigma.mean(axis=(2, 3, 4), keepdims=True)                                  # (M, 1, 1, 1, 1)
        stat = xp.broadcast_to(s, (n // g, g, 1, h, w)).reshape(n, 1, h, w)
        return xp.concatenate([x, stat], axis=1), (z, sigma)

    def _group_totals(self, dy, z):
        """S_g times a = 1/(C H W G), shaped to broadcast over the group's features: (M, 1, 1, 1, 1)."""
        m, g, c, h, w = z.shape
        totals = dy[:, c].reshape(m, -1).sum(axis=1)
        return (totals * dy.dtype.type(1 / (c * h * w * g))).reshape(m, 1, 1, 1, 1)

    def _backward(self, dy, cache):
        z, sigma = cache
        m, g, c, h, w = z.shape
        dx = dy[:, :c].reshape(m, g, c, h, w) + self._group_totals(dy, z) * z / sigma
        return dx.reshape(m * g, c, h, w)

    def _double_backward(self, ddx, cache, dy):
        z, sigma = cache
        m, g, c, h, w = z.shape
        xp = backend.get_xp(ddx)
        u = ddx.reshape(m, g, c, h, w)
        u_centred = u - u.mean(axis=1, keepdims=True)
        cov = (u_centred * z).mean(axis=1, keepdims=True)                        # (M, 1, C, H, W)
        ds = (cov / sigma).mean(axis=(2, 3, 4), keepdims=True)                   # (M, 1, 1, 1, 1)
        ddy = xp.concatenate([ddx, xp.broadcast_to(ds, (m, g, 1, h, w)).reshape(m * g, 1, h, w)], axis=1)
        dx = self._group_totals(dy, z) * (u_centred / sigma - cov * z / (sigma * sigma * sigma))
        return ddy, dx.reshape(m * g, c, h, w)

    def __repr__(self):
        return f"MinibatchStdDev(group_size={self.group_size})"
