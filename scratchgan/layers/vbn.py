"""Virtual batch normalization (Salimans et al. 2016): each sample normalized by a fixed reference batch and itself.

``VirtualBatchNorm`` is the normalization; ``VirtualBatch`` wraps a model so that every call
runs the fixed reference batch through it first (as the authors' code does), which is how
each VirtualBatchNorm inside gets the reference batch's activations under the current weights.
"""
from .. import backend
from .base import Layer, as_count, format_pattern, resolve_keep_cache


class VirtualBatchNorm(Layer):
    """y = gamma * (x - mu) / sqrt(s - mu^2 + eps) + beta, per channel, with virtual-batch statistics.

    The input's first R rows (R = ``reference_size``) are the reference batch, the rest are
    the live samples. For (N, C) inputs each row holds one value per channel; for
    (N, C, H, W) a row holds P = H W values per channel. Per channel:

        reference rows:  mu = mu_ref,   s = s_ref        (mean and mean square over the R rows
                                                           and their P positions)
        live row i:      mu_i = a m_i + (1 - a) mu_ref,   s_i = a q_i + (1 - a) s_ref,   a = 1 / (R + 1)

    where m_i, q_i are the mean and mean square of row i's own P values: each live sample is
    normalized by the statistics of the batch "reference batch plus itself", so its output does
    not depend on the other live samples. Variances are s - mu^2, as in the authors' code.

    Backward. Write g = gamma dy and, per row r and channel, xhat = (x - mu_r) / sigma_r with
    sigma_r = sqrt(s_r - mu_r^2 + eps). Within a row's values, mu_r and s_r are constants:

        dx (direct)  = g / sigma_r
        dsigma_r     = -sum_P g xhat / sigma_r
        dmu_r        = -sum_P g / sigma_r - dsigma_r mu_r / sigma_r      (d sigma / d mu = -mu / sigma)
        ds_r         = dsigma_r / (2 sigma_r)                            (d sigma / d s  = 1 / (2 sigma))

    The statistics then pass their gradients on to the values they are means of. A live row
    keeps the share a of its own: dx_i += (a dmu_i + 2 a ds_i x_i) / P. The reference
    statistics collect from the reference rows and (1 - a) of every live row:

        dmu_ref = sum_ref dmu_r + (1 - a) sum_live dmu_i,   ds_ref likewise,
        dx_ref += (dmu_ref + 2 ds_ref x_ref) / (R P)

    so a live sample's gradient reaches the reference rows: the gradient path through the
    reference batch's statistics, which ``VirtualBatch`` carries on into the layers below.
    dgamma = sum dy xhat and dbeta = sum dy over every row and position.
    """

    mixes_batch = True   # the first rows of every batch are the reference batch

    def __init__(self, num_features, reference_size, eps=1e-5, init="ones", rng=None):
        super().__init__()
        self.num_features = as_count(num_features, "num_features", "VirtualBatchNorm")
        self.reference_size = as_count(reference_size, "reference_size", "VirtualBatchNorm")
        if not eps > 0:
            raise ValueError(f"VirtualBatchNorm: eps must be > 0, got {eps!r}")
        self.eps = eps
        self.add_param("weight", (self.num_features,), init, 0, 0, rng)
        self.add_param("bias", (self.num_features,), "zeros", 0, 0, rng)

    def _check_input(self, x):
        ndim, c, r = getattr(x, "ndim", None), self.num_features, self.reference_size
        if ndim not in (2, 4) or x.shape[1] != c:
            raise ValueError(f"{self}: expected input of shape {format_pattern((None, c))} or "
                             f"{format_pattern((None, c, None, None))}, got {tuple(getattr(x, 'shape', ()))}")
        if len(x) < r:
            raise ValueError(f"{self}: the first {r} rows of the input are the reference batch, got only "
                             f"{len(x)} rows (run the model inside VirtualBatch)")
        super()._check_input(x)

    def _forward(self, x, train):
        xp, f = backend.get_xp(x), x.dtype.type
        r, a = self.reference_size, f(1 / (self.reference_size + 1))
        values = x.reshape(len(x), self.num_features, -1)                   # (rows, C, P)
        mean, mean_sq = values.mean(axis=2), (values * values).mean(axis=2)    # m_r, q_r  (rows, C)
        mu_ref, s_ref = mean[:r].mean(axis=0), mean_sq[:r].mean(axis=0)
        mu = xp.concatenate([xp.broadcast_to(mu_ref, (r, self.num_features)), a * mean[r:] + (1 - a) * mu_ref])
        s = xp.concatenate([xp.broadcast_to(s_ref, (r, self.num_features)), a * mean_sq[r:] + (1 - a) * s_ref])
        sigma = xp.sqrt(s - mu * mu + f(self.eps))
        x_hat = (values - mu[..., None]) / sigma[..., None]
        y = x_hat * self.params["weight"][:, None] + self.params["bias"][:, None]
        return y.reshape(x.shape), (values, mu, sigma, x_hat)

    def _backward(self, dy, cache):
        values, mu, sigma, x_hat = cache
        xp, f = backend.get_xp(dy), dy.dtype.type
        r, a = self.reference_size, f(1 / (self.reference_size + 1))
        dy3 = dy.reshape(values.shape)
        if self.requires_grad:
            self.grads["weight"] += (dy3 * x_hat).sum(axis=(0, 2))
            self.grads["bias"] += dy3.sum(axis=(0, 2))
        g = dy3 * self.params["weight"][:, None]
        dsigma = -(g * x_hat).sum(axis=2) / sigma                             # per row (rows, C)
        dmu = -g.sum(axis=2) / sigma - dsigma * mu / sigma
        ds = dsigma / (2 * sigma)
        dmu_ref = dmu[:r].sum(axis=0) + (1 - a) * dmu[r:].sum(axis=0)
        ds_ref = ds[:r].sum(axis=0) + (1 - a) * ds[r:].sum(axis=0)
        p = f(values.shape[2])
        dx = g / sigma[..., None]
        dx[:r] += (dmu_ref[:, None] + 2 * ds_ref[:, None] * values[:r]) / (r * p)
        dx[r:] += (a * dmu[r:, :, None] + 2 * a * ds[r:, :, None] * values[r:]) / p
        return dx.reshape(dy.shape)

    def __repr__(self):
        return f"VirtualBatchNorm({self.num_features}, reference_size={self.reference_size}, eps={self.eps})"


class VirtualBatch(Layer):
    """A model run on [reference batch; x]: returns the rows of x only.

    ``reference`` (R, ...) is a fixed input batch (for a generator: R noise vectors drawn
    once), kept as the buffer ``reference`` so checkpoints restore it. Every forward pass, in
    training and evaluation alike, runs it through ``model`` ahead of x, so each
    VirtualBatchNorm inside normalizes with the reference activations of the *current*
    weights; backward sends zeros for the reference rows' outputs, and the gradient that
    reaches them through the reference statistics flows on through the model's layers into
    their parameters (the authors' code does the same in TensorFlow). Each sample's output
    depends on itself and the reference batch only, never on the rest of its batch.
    """

    def __init__(self, model, reference):
        super().__init__()
        r = len(reference)
        norms = [layer for _, layer in model.named_layers() if isinstance(layer, VirtualBatchNorm)]
        if not norms:
            raise ValueError("VirtualBatch: the model holds no VirtualBatchNorm layer")
        wrong = [f"{layer!r}" for layer in norms if layer.reference_size != r]
        if wrong:
            raise ValueError(f"VirtualBatch: the reference batch has {r} rows but {', '.join(wrong)} "
                             f"expect{'s' * (len(wrong) == 1)} another reference_size")
        self.model = model
        self.reference_size = r
        xp = backend.xp_for(backend.default_device())
        self.buffers["reference"] = xp.asarray(backend.asnumpy(reference), dtype=backend.default_dtype())

    def children(self):
        return [("model", self.model)]

    def _check_input(self, x):
        reference = self.buffers["reference"]
        if not hasattr(x, "shape") or tuple(x.shape[1:]) != tuple(reference.shape[1:]):
            raise ValueError(f"{self}: expected input of shape (N, {', '.join(map(str, reference.shape[1:]))}) "
                             f"like the reference batch, got {tuple(getattr(x, 'shape', ()))}")
        if backend.get_xp(x) is not backend.get_xp(reference) or x.dtype != reference.dtype:
            raise TypeError(f"{self}: input ({backend.device_of(x)}, {x.dtype}) does not match the reference "
                            f"batch ({backend.device_of(reference)}, {reference.dtype}); move one with .to(...)")

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        self._check_input(x)
        xp = backend.get_xp(x)
        y = self.model.forward(xp.concatenate([self.buffers["reference"], x]), train=train, keep_cache=keep_cache)
        if keep_cache:
            self._cache = y.shape
        return y[self.reference_size:]

    __call__ = forward

    def backward(self, dy, input_grad=True):
        """Zeros for the reference rows' outputs, dy for the rest; returns the rows of dx that belong to x."""
        if self._cache is None:
            raise RuntimeError(f"{self}: backward called without a forward pass that kept its cache")
        full_shape, r = self._cache, self.reference_size
        if tuple(dy.shape) != (full_shape[0] - r, *full_shape[1:]):
            raise ValueError(f"{self}: upstream gradient has shape {tuple(dy.shape)} but the output had shape "
                             f"{(full_shape[0] - r, *full_shape[1:])}")
        self._cache = None
        xp = backend.get_xp(dy)
        dx = self.model.backward(xp.concatenate([xp.zeros((r, *dy.shape[1:]), dtype=dy.dtype), dy]),
                                 input_grad=input_grad)   # the reference is data: no gradient of its own
        return None if dx is None else dx[r:]

    def __repr__(self):
        return f"VirtualBatch(reference of {self.reference_size}, {self.model!r})"
