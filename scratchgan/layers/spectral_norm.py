"""Spectral normalisation (Miyato et al. 2018): a layer whose weight is divided by its largest singular value."""
import numpy as np

from .. import backend
from .base import Layer, as_count, resolve_keep_cache


class SpectralNorm(Layer):
    """``layer`` (Conv2d, ConvTranspose2d or Dense) computed with W_sn = W / sigma(W) in place of its weight W.

    sigma(W) is the spectral norm (largest singular value) of W as a matrix, its output axis
    ``dim`` first: (out, in kh kw) for Conv2d and Dense (dim 0), (out, in kh kw) from
    ConvTranspose2d's (in, out, kh, kw) weight (dim 1), as PyTorch's ``spectral_norm`` does.
    It is estimated by power iteration with persistent vectors u (out,) and v (in kh kw,), the
    buffers ``u`` and ``v``. In training, every forward pass first does ``n_power_iterations``
    steps

        v <- W^T u / ||W^T u||,     u <- W v / ||W v||

    then uses sigma = u^T W v. In eval mode u and v are used as they are (nothing changes).

    Backward, with u and v held fixed (Miyato et al. section 2.2; PyTorch too): d sigma / dW = u v^T,
    so for G = dL/dW_sn (what the wrapped layer's backward computes for its weight)

        dL/dW = G / sigma - (sum(G * W) / sigma^2) u v^T  =  (G - <G, W_sn> u v^T) / sigma.

    The input gradient and the other parameters' (the bias) are the wrapped layer's with W_sn.
    The double backward is the wrapped layer's with W_sn, its weight terms mapped the same way
    (sigma does not depend on x or dy, and the second-order weight terms are a gradient with
    respect to W_sn like any other).

    The trainable weight stays in the wrapped layer (state-dict name ``layer.weight``, the
    PyTorch ``weight_orig``); W_sn is computed on every pass and never stored.
    """

    def __init__(self, layer, n_power_iterations=1, dim=None, eps=1e-12, init_iterations=15, rng=None):
        super().__init__()
        if not isinstance(layer, Layer) or "weight" not in layer.params:
            raise TypeError(f"SpectralNorm: expected a layer with a weight (Conv2d, ConvTranspose2d, Dense), "
                            f"got {layer!r}")
        self.layer = layer
        self.n_power_iterations = as_count(n_power_iterations, "n_power_iterations", "SpectralNorm", least=0)
        self.eps = eps
        weight = layer.params["weight"]
        self.dim = (1 if type(layer).__name__ == "ConvTranspose2d" else 0) if dim is None else dim
        if self.dim not in range(weight.ndim):
            raise ValueError(f"SpectralNorm: dim {dim} is not an axis of the weight {tuple(weight.shape)}")
        rng = rng or backend.global_rng()
        xp, dtype = backend.get_xp(weight), weight.dtype
        rows, cols = self._matrix(weight).shape
        self.buffers["u"] = xp.asarray(_unit(rng.host.standard_normal(rows)), dtype=dtype)
        self.buffers["v"] = xp.asarray(_unit(rng.host.standard_normal(cols)), dtype=dtype)
        self._power_iteration(as_count(init_iterations, "init_iterations", "SpectralNorm", least=0))

    @property
    def mixes_batch(self):
        return self.layer.mixes_batch

    @property
    def has_double_backward(self):
        return self.layer.has_double_backward

    def children(self):
        return [("layer", self.layer)]

    # -- sigma -------------------------------------------------------------------------------
    def _matrix(self, weight):
        """The weight as a matrix, axis ``dim`` first (a view when dim is 0)."""
        if self.dim:
            weight = backend.get_xp(weight).moveaxis(weight, self.dim, 0)
        return weight.reshape(weight.shape[0], -1)

    def _power_iteration(self, steps):
        """``steps`` power-iteration steps on the weight, updating the buffers u and v."""
        W = self._matrix(self.layer.params["weight"])
        u, v = self.buffers["u"], self.buffers["v"]
        for _ in range(steps):
            v = self._normalise(W.T @ u)
            u = self._normalise(W @ v)
        self.buffers["u"], self.buffers["v"] = u, v

    def _normalise(self, a):
        xp = backend.get_xp(a)
        return a / xp.maximum(xp.sqrt(a @ a), a.dtype.type(self.eps))

    def sigma(self):
        """The current estimate u^T W v of the weight's largest singular value."""
        u, v = self.buffers["u"], self.buffers["v"]
        return u @ (self._matrix(self.layer.params["weight"]) @ v)

    def normalised_weight(self):
        """(W / sigma, sigma) with the buffers as they are."""
        sigma = self.sigma()
        return self.layer.params["weight"] / sigma, sigma

    # -- forward / backward ------------------------------------------------------------------
    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        if keep_cache and self._cache is not None:
            raise RuntimeError(f"{self}: forward called again before backward of the previous call")
        if train:
            self._power_iteration(self.n_power_iterations)
        w_sn, sigma = self.normalised_weight()
        y = self._with_weight(w_sn, lambda: self.layer.forward(x, train=train, keep_cache=keep_cache))
        if keep_cache:
            self._cache = (w_sn, sigma, self.buffers["u"], self.buffers["v"])
        return y

    __call__ = forward

    def backward(self, dy, input_grad=True, keep_cache=False):
        """The wrapped layer's backward with W_sn; its weight gradient mapped through W_sn = W / sigma."""
        cache = self._take_cache(keep_cache, "backward")
        return self._through_sigma(cache, lambda: self.layer.backward(dy, input_grad=input_grad,
                                                                        keep_cache=keep_cache))

    def double_backward(self, ddx, keep_cache=False):
        cache = self._take_cache(keep_cache, "double_backward")
        return self._through_sigma(cache, lambda: self.layer.double_backward(ddx, keep_cache=keep_cache))

    def _take_cache(self, keep_cache, what):
        if self._cache is None:
            raise RuntimeError(f"{self}: {what} called without a forward pass that kept its cache")
        cache = self._cache
        if not keep_cache:
            self._cache = None
        return cache

    def _through_sigma(self, cache, run):
        """Run the wrapped layer's ``run`` (a backward) with its weight W_sn and a zero weight gradient,
        then add (G - <G, W_sn> u v^T) / sigma of the gradient G it produced to the weight's gradient."""
        w_sn, sigma, u, v = cache
        inner = self.layer
        if not inner.requires_grad:
            return self._with_weight(w_sn, run)
        accumulated = inner.grads["weight"]
        inner.grads["weight"] = backend.get_xp(w_sn).zeros_like(accumulated)
        try:
            result = self._with_weight(w_sn, run)
            g = inner.grads["weight"]
        finally:
            inner.grads["weight"] = accumulated
        accumulated += self._sigma_backward(g, w_sn, sigma, u, v)
        return result

    def _sigma_backward(self, g, w_sn, sigma, u, v):
        """dL/dW = (G - <G, W_sn> u v^T) / sigma, in the weight's own layout."""
        xp = backend.get_xp(g)
        outer = xp.outer(u, v).reshape(self._matrix(w_sn).shape)
        if self.dim:     # back from (out, ...) to the weight's layout
            shape = list(w_sn.shape)
            moved = [shape[self.dim]] + shape[:self.dim] + shape[self.dim + 1:]
            outer = xp.moveaxis(outer.reshape(moved), 0, self.dim)
        else:
            outer = outer.reshape(w_sn.shape)
        return (g - xp.vdot(g, w_sn) * outer) / sigma

    def _with_weight(self, weight, run):
        """``run()`` with the wrapped layer's weight temporarily replaced by ``weight``."""
        original = self.layer.params["weight"]
        self.layer.params["weight"] = weight
        try:
            return run()
        finally:
            self.layer.params["weight"] = original

    def __repr__(self):
        return f"SpectralNorm({self.layer!r}, n_power_iterations={self.n_power_iterations})"


def _unit(a):
    return a / np.linalg.norm(a)
