"""Batch normalization (Ioffe & Szegedy 2015) for (N, C) and (N, C, H, W) inputs."""
from .. import backend
from ..fastpath import row_dots
from ..gpu_kernels import BN_INPUT_GRAD, BN_STATISTICS, SCALE_SHIFT, fused, fused_like, uses_fused_kernels
from .base import Layer, as_count, format_pattern
from .conv import as_matrix, as_nchw


def channel_matrix(x):
    """(N, C) or (N, C, H, W) -> (C, M): each channel's values in one row (a view for conv outputs)."""
    return x.T if x.ndim == 2 else as_matrix(x)


def from_channel_matrix(mat, shape):
    """Inverse of channel_matrix for an array of the given (N, C) or (N, C, H, W) shape (a view)."""
    return mat.T if len(shape) == 2 else as_nchw(mat, shape)


def column(per_channel):
    """A (C,) vector as a (C, 1) column, to broadcast along each channel's row of a (C, M) matrix."""
    return per_channel.reshape(-1, 1)


def centre(values):
    """Per row of a (C, M) matrix: the mean, the centred values and their sum of squares (two passes,
    so the variance is exact however large the mean)."""
    mean = values.mean(axis=1)
    centred = values - column(mean)
    return mean, centred, row_dots(centred, centred)   # no temporary


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

    Since gamma is constant per channel, mean(g) = gamma dbeta / M and
    mean(g x_hat) = gamma dgamma / M, so the backward needs only the two parameter-gradient
    reductions and

        dx = (gamma / sigma) (dy - dbeta / M - x_hat dgamma / M),

    which ``_backward`` computes as (gamma / sigma) dy - centred (gamma / sigma^2) dgamma / M
    - (gamma / sigma) dbeta / M, with x_hat = centred / sigma (the centred values are cached, x_hat
    is never formed, and every factor but dy and centred is per channel). Work happens on the
    (C, M) matrix of each channel's values, a view of the channel-major arrays the convolutions
    produce (see conv.py). On the GPU, training computes the same lines with three fused kernels
    (``_fused_forward`` and ``gpu_kernels.BN_INPUT_GRAD``), where the passes would issue about
    twenty launches more.
    """

    mixes_batch = True   # training uses the batch's own statistics

    def __init__(self, num_features, eps=1e-5, momentum=0.1, init="ones", rng=None):
        super().__init__()
        self.num_features = num_features = as_count(num_features, "num_features", "BatchNorm")
        if not eps > 0:
            raise ValueError(f"BatchNorm: eps must be > 0, got {eps!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm: momentum must be in [0, 1], got {momentum!r}")
        self.eps, self.momentum = eps, momentum
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
        values = channel_matrix(x)                    # (C, M): one row per channel
        if train:
            if values.shape[1] < 2:
                raise ValueError(f"{self}: training needs more than one value per channel, got input {tuple(x.shape)}")
            if uses_fused_kernels(backend.get_xp(x)):
                return self._fused_forward(x, values)
            centred, var = self._batch_stats(values)
        else:
            centred = values - column(self.buffers["running_mean"])
            var = self.buffers["running_var"]
        inv_std = 1 / backend.get_xp(x).sqrt(var + x.dtype.type(self.eps))
        # y = gamma x_hat + beta with x_hat = centred / sigma, gamma / sigma as one per-channel scale
        y = centred * column(self.params["weight"] * inv_std)
        y += column(self.params["bias"])
        return from_channel_matrix(y, x.shape), (centred, inv_std, train)

    def _batch_stats(self, values):
        """The centred values and the biased variance per row of (C, M) ``values``; updates the running stats."""
        count, f = values.shape[1], values.dtype.type
        mean, centred, sum_sq = centre(values)
        var = sum_sq / f(count)
        m = f(self.momentum)
        # running = (1 - m) running + m batch, in place (the same roundings), so the arrays stay where they are
        running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
        running_mean *= 1 - m
        running_mean += m * mean
        running_var *= 1 - m
        running_var += m * var * f(count / (count - 1))
        self.buffers["num_batches_tracked"] += 1
        return centred, var

    def _fused_forward(self, x, values):
        """``_forward`` in training as on the GPU: the mean, the centred values and their sum of squares as
        above, then everything per channel (var, the running statistics, 1/sigma, gamma/sigma) in one
        kernel and y = centred (gamma/sigma) + beta in another (gpu_kernels.BN_STATISTICS, SCALE_SHIFT).
        The running statistics are updated in place (each element read, then written), so their arrays stay
        where they are, as a recorded CUDA graph needs (gan/cuda_graph.py)."""
        count, f = values.shape[1], values.dtype.type
        mean, centred, sum_sq = centre(values)
        running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
        xp = backend.get_xp(mean)
        inv_std, scale = xp.empty_like(mean), xp.empty_like(mean)
        fused(BN_STATISTICS)(mean, sum_sq, self.params["weight"], running_mean, running_var,
                             f(self.momentum), f(count), f(count / (count - 1)), f(self.eps),
                             running_mean, running_var, inv_std, scale)
        self.buffers["num_batches_tracked"] += 1
        y = fused_like(SCALE_SHIFT, centred, centred, column(scale), column(self.params["bias"]))   # centred's layout
        return from_channel_matrix(y, x.shape), (centred, inv_std, True)

    def _backward(self, dy, cache):
        centred, inv_std, train = cache
        dy_rows = channel_matrix(dy)                                   # (C, M)
        dbeta = dy_rows.sum(axis=1)
        dgamma = row_dots(dy_rows, centred) * inv_std                  # sum(dy x_hat), x_hat = centred / sigma
        if self.requires_grad:
            self.grads["weight"] += dgamma
            self.grads["bias"] += dbeta
        m = dy.dtype.type(dy_rows.shape[1])
        if train and uses_fused_kernels(backend.get_xp(dy)):           # the GPU: the lines below as one kernel
            dx = fused_like(BN_INPUT_GRAD, dy_rows, dy_rows, centred, column(self.params["weight"]),
                            column(inv_std), column(dbeta), column(dgamma), m)
            return from_channel_matrix(dx, dy.shape)
        scale = self.params["weight"] * inv_std                        # gamma / sigma
        if not train:                                                  # mu and sigma are constants
            return from_channel_matrix(column(scale) * dy_rows, dy.shape)
        # dx = (gamma / sigma)(dy - dbeta / M - x_hat dgamma / M) with x_hat = centred / sigma
        dx = dy_rows * column(scale) - centred * column(scale * inv_std * (dgamma / m)) - column(scale * (dbeta / m))
        return from_channel_matrix(dx, dy.shape)

    def __repr__(self):
        return f"BatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum})"
