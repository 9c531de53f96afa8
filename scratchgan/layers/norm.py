"""Batch normalization (Ioffe & Szegedy 2015) for (N, C) and (N, C, H, W) inputs."""
from .. import backend
from .base import Layer, format_pattern


class BatchNorm(Layer):
    """y = gamma * x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), per channel.

    In training, mu and var (biased) are the batch's, over axis 0 of (N, C) inputs
    and over (N, H, W) of (N, C, H, W) inputs, and the running statistics move
    toward them as PyTorch's do: running = (1 - momentum) running + momentum * stat,
    with the *unbiased* variance for running_var. In eval mode mu and var are the
    running statistics. Parameters ``weight`` (gamma, initialized by ``init``: ones, or
    "normal_1_0.02" as DCGAN does) and ``bias`` (beta, zeros).

    Backward in training, with M values per channel and sums over them: mu and var
    depend on x too, so besides the direct path dy gamma / sigma there are paths
    through mu and var. Writing g = dy * gamma (the gradient at x_hat),

        dx = (1 / sigma) (g - mean(g) - x_hat mean(g x_hat))

    (differentiate x_hat_i = (x_i - mu) / sigma using d mu/dx_j = 1/M and
    d sigma/dx_j = x_hat_j / M), and

        dgamma = sum(dy x_hat),   dbeta = sum(dy).

    In eval mode mu and sigma are constants and dx = g / sigma.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, init="ones", rng=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.add_param("weight", (num_features,), init, 0, 0, rng)
        self.add_param("bias", (num_features,), "zeros", 0, 0, rng)
        xp, dtype = backend.get_xp(self.params["weight"]), self.params["weight"].dtype
        self.buffers["running_mean"] = xp.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = xp.ones(num_features, dtype=dtype)
        self.buffers["num_batches_tracked"] = xp.zeros((), dtype="int64")

    def _check_input(self, x):
        if getattr(x, "ndim", None) not in (2, 4) or x.shape[1] != self.num_features:
            c = self.num_features
            raise ValueError(f"{self}: expected input of shape {format_pattern((None, c))} or "
                             f"{format_pattern((None, c, None, None))}, got {tuple(getattr(x, 'shape', ()))}")
        super()._check_input(x)

    def _forward(self, x, train):
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if train:
            mean, var = self._batch_stats(x, axes)
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        inv_std = (1 / backend.get_xp(x).sqrt(var + x.dtype.type(self.eps))).reshape(shape)
        x_hat = (x - mean.reshape(shape)) * inv_std
        y = x_hat * self.params["weight"].reshape(shape) + self.params["bias"].reshape(shape)
        return y, (x_hat, inv_std, axes, train)

    def _batch_stats(self, x, axes):
        count = x.size // x.shape[1]
        if count < 2:
            raise ValueError(f"{self}: training needs more than one value per channel, got input {tuple(x.shape)}")
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        m = x.dtype.type(self.momentum)
        self.buffers["running_mean"] = (1 - m) * self.buffers["running_mean"] + m * mean
        self.buffers["running_var"] = (1 - m) * self.buffers["running_var"] + m * var * x.dtype.type(count / (count - 1))
        self.buffers["num_batches_tracked"] += 1
        return mean, var

    def _backward(self, dy, cache):
        x_hat, inv_std, axes, train = cache
        shape = inv_std.shape
        if self.requires_grad:
            self.grads["weight"] += (dy * x_hat).sum(axis=axes)
            self.grads["bias"] += dy.sum(axis=axes)
        g = dy * self.params["weight"].reshape(shape)
        if not train:
            return g * inv_std
        g_mean = g.mean(axis=axes).reshape(shape)
        gx_mean = (g * x_hat).mean(axis=axes).reshape(shape)
        return (g - g_mean - x_hat * gx_mean) * inv_std

    def __repr__(self):
        return f"BatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum})"
