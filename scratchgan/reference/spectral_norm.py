"""Spectral normalisation of a weight, by power iteration, step by step."""
import numpy as np


def _as_matrix(w, dim):
    """w with axis ``dim`` (the output axis) first, flattened to a matrix (rows, everything else)."""
    return np.moveaxis(w, dim, 0).reshape(w.shape[dim], -1)


def power_iteration(w, u, v, steps, dim=0, eps=1e-12):
    """``steps`` power-iteration steps on W = w as a matrix: v = W^T u / ||W^T u||, then u = W v / ||W v||."""
    W = _as_matrix(w, dim)
    for _ in range(steps):
        v = W.T @ u
        v = v / max(np.linalg.norm(v), eps)
        u = W @ v
        u = u / max(np.linalg.norm(u), eps)
    return u, v


def spectral_norm_forward(w, u, v, steps=0, dim=0, eps=1e-12):
    """w_sn = w / sigma with sigma = u^T W v, after ``steps`` power-iteration steps from (u, v).

    Returns (w_sn, cache); the updated (u, v) are in the cache (``cache[1]``, ``cache[2]``).
    """
    u, v = power_iteration(w, u, v, steps, dim, eps)
    W = _as_matrix(w, dim)
    sigma = u @ W @ v
    w_sn = w / sigma
    return w_sn, (w, u, v, sigma, dim)


def spectral_norm_backward(dw_sn, cache):
    """dw for upstream dw_sn, u and v held fixed (Miyato et al. 2018):

        sigma = sum_ij u_i W_ij v_j, so d sigma / dW = u v^T;   w_sn = w / sigma, so
        dw = dw_sn / sigma + (d sigma / dW) * sum(dw_sn * w) * (-1 / sigma^2)
    """
    w, u, v, sigma, dim = cache
    dsigma = -np.sum(dw_sn * w) / sigma ** 2
    moved_shape = (w.shape[dim],) + tuple(np.delete(w.shape, dim))
    dsigma_dw = np.moveaxis(np.outer(u, v).reshape(moved_shape), 0, dim)
    return dw_sn / sigma + dsigma * dsigma_dw
