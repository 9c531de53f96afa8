"""Instance normalization (Ulyanov et al. 2016): each image's channels normalized on their own."""
from .. import backend
from .base import Layer, as_count


class InstanceNorm(Layer):
    """y = gamma * x_hat + beta,  x_hat = (x - mu) / sqrt(var + eps), per sample and channel.

    For input (N, C, H, W), mu[n, c] and var[n, c] (biased) are taken over the M = H W pixels
    of channel c of sample n alone, in training and in evaluation alike (PyTorch's
    ``InstanceNorm2d`` without running statistics): no statistic crosses samples, so the layer
    does not mix the batch. ``affine=True`` adds per-channel ``weight`` (gamma, ones) and
    ``bias`` (beta, zeros); without it (PyTorch's default, and CycleGAN's) gamma = 1, beta = 0.

    Backward: each (n, c) slice is a batch norm over its M values, so with g = dy * gamma
    and means over the slice (d mu/dx_j = 1/M, d sigma/dx_j = x_hat_j / (M sigma)),

        dx = (1 / sigma) (g - mean(g) - x_hat mean(g x_hat)),

    and the parameters collect over every sample and pixel:

        dgamma[c] = sum over n, h, w of dy x_hat,   dbeta[c] = sum over n, h, w of dy.
    """

    def __init__(self, num_features, eps=1e-5, affine=False, rng=None):
        super().__init__()
        self.num_features = as_count(num_features, "num_features", "InstanceNorm")
        if not eps > 0:
            raise ValueError(f"InstanceNorm: eps must be > 0, got {eps!r}")
        if not isinstance(affine, bool):
            raise TypeError(f"InstanceNorm: affine must be True or False, got {affine!r}")
        self.eps, self.affine = eps, affine
        self.input_pattern = (None, self.num_features, None, None)
        if affine:
            self.add_param("weight", (self.num_features,), "ones", 0, 0, rng)
            self.add_param("bias", (self.num_features,), "zeros", 0, 0, rng)

    def _forward(self, x, train):
        if x.shape[2] * x.shape[3] < 2:
            raise ValueError(f"{self}: needs more than one pixel per channel, got input {tuple(x.shape)}")
        xp, f = backend.get_xp(x), x.dtype.type
        centred = x - x.mean(axis=(2, 3), keepdims=True)
        var = (centred * centred).mean(axis=(2, 3), keepdims=True)
        inv_std = 1 / xp.sqrt(var + f(self.eps))               # (N, C, 1, 1)
        x_hat = centred * inv_std
        if not self.affine:
            return x_hat, (x_hat, inv_std)
        return x_hat * self._per_channel("weight") + self._per_channel("bias"), (x_hat, inv_std)

    def _backward(self, dy, cache):
        x_hat, inv_std = cache
        if self.affine:
            if self.requires_grad:
                self.grads["weight"] += (dy * x_hat).sum(axis=(0, 2, 3))
                self.grads["bias"] += dy.sum(axis=(0, 2, 3))
            g = dy * self._per_channel("weight")
        else:
            g = dy
        mean_g = g.mean(axis=(2, 3), keepdims=True)
        mean_g_x_hat = (g * x_hat).mean(axis=(2, 3), keepdims=True)
        return inv_std * (g - mean_g - x_hat * mean_g_x_hat)

    def _per_channel(self, name):
        return self.params[name].reshape(1, -1, 1, 1)

    def __repr__(self):
        return f"InstanceNorm({self.num_features}, eps={self.eps}, affine={self.affine})"
