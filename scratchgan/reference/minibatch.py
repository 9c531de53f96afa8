"""Minibatch discrimination (Salimans et al. 2016), pair by pair."""
from ..backend import get_xp


def minibatch_discrimination_forward(x, w, num_kernels, kernel_dim):
    """out = [x, o] for x (N, A) and W (B C, A), B = num_kernels, C = kernel_dim:

        M[i] = (x[i] W^T).reshape(B, C)                     each sample's B kernel projections
        d[i, j, b] = sum_c |M[i, b, c] - M[j, b, c]|        L1 distance of samples i and j in kernel b
        o[i, b] = sum_{j != i} exp(-d[i, j, b])             how close sample i is to the rest of its batch
    """
    xp = get_xp(x)
    n = len(x)
    m = (x @ w.T).reshape(n, num_kernels, kernel_dim)
    c = xp.zeros((n, n, num_kernels), dtype=x.dtype)
    for i in range(n):
        for j in range(n):
            if i != j:
                c[i, j] = xp.exp(-xp.abs(m[i] - m[j]).sum(axis=1))
    o = c.sum(axis=1)
    cache = (x, w, m, c)
    return xp.concatenate([x, o], axis=1), cache


def minibatch_discrimination_backward(dout, cache):
    """Split dout = [dx_direct, do]. Every ordered pair (i, j), i != j, adds do[i, b] c[i, j, b] to
    the output, and c[i, j, b] = exp(-d[i, j, b]) depends on both M[i] and M[j]:

        d c[i, j, b] / d M[i, b, c] = -c[i, j, b] sign(M[i, b, c] - M[j, b, c])
        d c[i, j, b] / d M[j, b, c] = +c[i, j, b] sign(M[i, b, c] - M[j, b, c])

    so each pair sends -do[i, b] c[i, j, b] s to M[i] and +do[i, b] c[i, j, b] s to M[j]
    (s the sign): sample j's gradient collects terms from sample i's output, the cross-sample
    part. Then M = x W^T as in affine_backward: dW = dM^T x, dx = dx_direct + dM W.
    Returns dx, dw.
    """
    x, w, m, c = cache
    xp = get_xp(x)
    n, a = x.shape
    do = dout[:, a:]
    dm = xp.zeros_like(m)
    for i in range(n):
        for j in range(n):
            if i != j:
                s = xp.sign(m[i] - m[j])                                # (B, C)
                pull = (do[i] * c[i, j])[:, None] * s
                dm[i] -= pull
                dm[j] += pull
    dm = dm.reshape(n, -1)
    dw = dm.T @ x
    dx = dout[:, :a] + dm @ w
    return dx, dw
