"""Virtual batch normalization (Salimans et al. 2016): a fixed reference batch plus each sample itself."""
from ..backend import get_xp


def virtual_batchnorm_forward(x, gamma, beta, reference_size, eps=1e-5):
    """out = gamma x_hat + beta per channel, where rows 0..R-1 of x (R = reference_size) are the
    reference batch and each later row i a live sample:

        reference rows:  mu = mean of the reference values,            s = their mean square
        live row i:      mu_i = (m_i + R mu_ref) / (R + 1),            s_i = (q_i + R s_ref) / (R + 1)

    with m_i, q_i the mean and mean square of row i's own values (one per channel for (N, C),
    H W per channel for (N, C, H, W)): the statistics of "reference batch plus sample i".
    Then x_hat = (x - mu) / sqrt(s - mu^2 + eps). The graph, one node per line:
    """
    xp = get_xp(x)
    n, c = x.shape[:2]
    r = reference_size
    values = x.reshape(n, c, -1)                                  # (rows, C, P)
    p = values.shape[2]
    m = values.sum(axis=2) / p                                    # 1. row means           (rows, C)
    q = (values ** 2).sum(axis=2) / p                             # 2. row mean squares
    mu_ref = m[:r].sum(axis=0) / r                                # 3. reference mean      (C,)
    s_ref = q[:r].sum(axis=0) / r                                 # 4. reference mean square
    mu = xp.zeros((n, c), dtype=x.dtype)                          # 5. each row's mean
    s = xp.zeros((n, c), dtype=x.dtype)                           # 6. each row's mean square
    for i in range(n):
        if i < r:
            mu[i], s[i] = mu_ref, s_ref
        else:
            mu[i] = (m[i] + r * mu_ref) / (r + 1)
            s[i] = (q[i] + r * s_ref) / (r + 1)
    var = s - mu ** 2                                             # 7. variance
    std = xp.sqrt(var + eps)                                      # 8. sigma
    x_hat = (values - mu[:, :, None]) / std[:, :, None]           # 9. x_hat               (rows, C, P)
    out = gamma[:, None] * x_hat + beta[:, None]                  # 10.
    cache = (x.shape, gamma, values, mu, std, x_hat, r)
    return out.reshape(x.shape), cache


def virtual_batchnorm_backward(dout, cache):
    """The graph of virtual_batchnorm_forward walked backwards (d name = dL/d name):

        10. out = gamma x_hat + beta   dgamma = sum dout x_hat,  dbeta = sum dout,  dx_hat = gamma dout
         9. x_hat = (x - mu) / std     dx = dx_hat / std,  dmu = -sum_P dx_hat / std,
                                       dstd = -sum_P dx_hat (x - mu) / std^2
         8. std = sqrt(var + eps)      dvar = dstd / (2 std)
         7. var = s - mu^2             ds = dvar,  dmu += -2 mu dvar
         6. s[i] (live)                dq[i] = ds[i] / (R + 1),  ds_ref += R ds[i] / (R + 1);  s[i] (ref): ds_ref += ds[i]
         5. mu[i] (live)               dm[i] = dmu[i] / (R + 1), dmu_ref += R dmu[i] / (R + 1); mu[i] (ref): dmu_ref += dmu[i]
         4. s_ref = mean_ref q         dq[ref rows] += ds_ref / R
         3. mu_ref = mean_ref m        dm[ref rows] += dmu_ref / R
         2. q = mean_P x^2             dx += 2 x dq / P
         1. m = mean_P x               dx += dm / P

    The reference rows' values reach every live row's output through mu_ref and s_ref
    (nodes 3-6): that is the gradient path through the reference batch's statistics.
    Returns dx, dgamma, dbeta.
    """
    x_shape, gamma, values, mu, std, x_hat, r = cache
    xp = get_xp(values)
    n, c, p = values.shape
    dout = dout.reshape(values.shape)
    dgamma = (dout * x_hat).sum(axis=(0, 2))                      # 10.
    dbeta = dout.sum(axis=(0, 2))
    dx_hat = gamma[:, None] * dout
    centred = values - mu[:, :, None]
    dx = dx_hat / std[:, :, None]                                 # 9.
    dmu = -dx_hat.sum(axis=2) / std
    dstd = -(dx_hat * centred).sum(axis=2) / std ** 2
    dvar = dstd / (2 * std)                                       # 8.
    ds = dvar                                                     # 7.
    dmu = dmu - 2 * mu * dvar
    dm = xp.zeros((n, c), dtype=values.dtype)
    dq = xp.zeros((n, c), dtype=values.dtype)
    dmu_ref = xp.zeros(c, dtype=values.dtype)
    ds_ref = xp.zeros(c, dtype=values.dtype)
    for i in range(n):                                            # 6. and 5.
        if i < r:
            dmu_ref = dmu_ref + dmu[i]
            ds_ref = ds_ref + ds[i]
        else:
            dm[i] = dmu[i] / (r + 1)
            dq[i] = ds[i] / (r + 1)
            dmu_ref = dmu_ref + r * dmu[i] / (r + 1)
            ds_ref = ds_ref + r * ds[i] / (r + 1)
    dq[:r] += ds_ref / r                                          # 4.
    dm[:r] += dmu_ref / r                                         # 3.
    dx = dx + 2 * values * dq[:, :, None] / p                     # 2.
    dx = dx + dm[:, :, None] / p                                  # 1.
    return dx.reshape(x_shape), dgamma, dbeta
