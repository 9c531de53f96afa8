"""Layer normalization (Ba, Kiros & Hinton 2016): each sample normalized over its own features."""
from .. import backend
from ..fastpath import row_dots
from .base import Layer, as_count, format_pattern


class LayerNorm(Layer):
    """y = gamma * x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), as PyTorch's ``nn.LayerNorm``.

    mu and var (biased) are the mean and variance of each sample's K values over the trailing
    ``normalized_shape`` axes: for a (N, C, H, W) batch and normalized_shape (C, H, W), one mean
    and one variance per sample. ``weight`` (gamma, ones) and ``bias`` (beta, zeros) have shape
    ``normalized_shape`` (PyTorch's elementwise affine). No running statistics: training and
    evaluation compute the same function, and samples never mix, so a gradient penalty may be
    taken per sample (BatchNorm's cannot).

    Backward, each row of K values on its own (means <.> over the row): the normalization
    x -> x_hat has the symmetric Jacobian

        J_N = (1 / sigma) (I - 1 1^T / K - x_hat x_hat^T / K)

    (d mu/dx_j = 1/K and d sigma/dx_j = x_hat_j / K), so with g = gamma * dy

        dx = J_N g = (1 / sigma) (g - <g> - x_hat <g x_hat>),
        dgamma = sum over rows of dy x_hat,   dbeta = sum over rows of dy.

    Double backward (docs/double_backward.md), for a cotangent u of dx: with w = J_N u,

        ddy = gamma * w,   dgamma += sum over rows of dy w,   dbeta: no term,

    and F = u . J_N g depends on x through sigma and x_hat; differentiating
    F = (K / sigma)(<u g> - <u><g> - <u x_hat><g x_hat>), with h = dF/dx_hat (sigma fixed)
    = -(1 / sigma)(u <g x_hat> + g <u x_hat>) and d(1/sigma)/dx_j = -x_hat_j / (K sigma^2):

        dx = -(F / (K sigma)) x_hat + J_N h.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        super().__init__()
        shape = (normalized_shape,) if not hasattr(normalized_shape, "__len__") else tuple(normalized_shape)
        if not shape:
            raise ValueError("LayerNorm: normalized_shape must name at least one axis size")
        self.normalized_shape = tuple(as_count(size, "normalized_shape", "LayerNorm") for size in shape)
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be > 0, got {eps!r}")
        self.eps = eps
        if elementwise_affine:
            self.add_param("weight", self.normalized_shape, "ones", 0, 0)
            self.add_param("bias", self.normalized_shape, "zeros", 0, 0)

    def _check_input(self, x):
        k = len(self.normalized_shape)
        shape = tuple(getattr(x, "shape", ()))
        if len(shape) < k + 1 or shape[-k:] != self.normalized_shape:
            raise ValueError(f"{self}: expected input of shape "
                             f"{format_pattern((None,) + self.normalized_shape)} (any leading axes), got {shape}")
        super()._check_input(x)

    def _gamma(self, like):
        """gamma as a (K,) row (ones without the affine part)."""
        if "weight" in self.params:
            return self.params["weight"].reshape(-1)
        return like.dtype.type(1)

    def _forward(self, x, train):
        xp, f = backend.get_xp(x), x.dtype.type
        rows = x.reshape(-1, self._size())                      # (M, K): one row per normalized group
        centred = rows - rows.mean(axis=1, keepdims=True)
        var = row_dots(centred, centred) / f(rows.shape[1])
        inv_std = (1 / xp.sqrt(var + f(self.eps))).reshape(-1, 1)
        x_hat = centred * inv_std
        y = x_hat if "weight" not in self.params else x_hat * self._gamma(x) + self.params["bias"].reshape(-1)
        return y.reshape(x.shape), (x_hat, inv_std)

    def _backward(self, dy, cache):
        x_hat, inv_std = cache
        dy_rows = dy.reshape(x_hat.shape)
        if self.requires_grad and "weight" in self.params:
            self.grads["weight"] += (dy_rows * x_hat).sum(axis=0).reshape(self.normalized_shape)
            self.grads["bias"] += dy_rows.sum(axis=0).reshape(self.normalized_shape)
        return _normalize_jvp(dy_rows * self._gamma(dy), x_hat, inv_std).reshape(dy.shape)

    def _double_backward(self, ddx, cache, dy):
        x_hat, inv_std = cache
        gamma = self._gamma(ddx)
        u, dy_rows = ddx.reshape(x_hat.shape), dy.reshape(x_hat.shape)
        g = dy_rows * gamma
        w = _normalize_jvp(u, x_hat, inv_std)                   # J_N u
        if self.requires_grad and "weight" in self.params:
            self.grads["weight"] += (dy_rows * w).sum(axis=0).reshape(self.normalized_shape)
        u_xhat, g_xhat = _row_mean(u * x_hat), _row_mean(g * x_hat)
        f_over_k = inv_std * (_row_mean(u * g) - _row_mean(u) * _row_mean(g) - u_xhat * g_xhat)
        h = -inv_std * (u * g_xhat + g * u_xhat)
        dx = _normalize_jvp(h, x_hat, inv_std) - (f_over_k * inv_std) * x_hat
        return (w * gamma).reshape(dy.shape), dx.reshape(ddx.shape)

    def _size(self):
        size = 1
        for n in self.normalized_shape:
            size *= n
        return size

    def __repr__(self):
        return f"LayerNorm({self.normalized_shape}, eps={self.eps}, elementwise_affine={'weight' in self.params})"


def _row_mean(rows):
    return rows.mean(axis=1, keepdims=True)


def _normalize_jvp(v, x_hat, inv_std):
    """J_N v = (1 / sigma)(v - <v> - x_hat <v x_hat>) row by row: the normalization's Jacobian
    (symmetric, so the same product serves the backward and the forward-mode derivative)."""
    return inv_std * (v - _row_mean(v) - x_hat * _row_mean(v * x_hat))
