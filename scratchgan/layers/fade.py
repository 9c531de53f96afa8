"""FadeIn: ProGAN's blend of an old and a new path while a new resolution is grown in (Karras et al. 2018)."""
from .base import Layer, resolve_keep_cache


class FadeIn(Layer):
    """y = (1 - alpha) old(x) + alpha new(x), for two paths with outputs of the same shape.

    While ProGAN grows a block, alpha rises from 0 to 1: the output starts as the old path's
    (e.g. the coarser image, upsampled) and ends as the new block's. alpha is not learned; set
    ``fade.alpha`` (a number in [0, 1]) between steps.

    Backward: the two paths add up, each weighted by its share:

        dx = (1 - alpha) J_old^T dy + alpha J_new^T dy = old.backward((1 - alpha) dy) + new.backward(alpha dy)

    and each path's parameters get their gradients from its own backward (of the weighted dy).

    Double backward (docs/double_backward.md): the backward is B(x, dy) = B_old(x, (1 - alpha) dy) +
    B_new(x, alpha dy). For a cotangent u of dx, each path's double backward (run on the dy it was
    given) returns J_path u and its own x-cotangent, and adds its parameters' terms; so

        ddy = (1 - alpha) J_old u + alpha J_new u,     dx = dx_old + dx_new
    """

    def __init__(self, old, new, alpha=0.0):
        super().__init__()
        for name, path in (("old", old), ("new", new)):
            if not isinstance(path, Layer):
                raise TypeError(f"FadeIn: {name} must be a layer (e.g. a Chain), got {type(path).__name__}")
        self.old, self.new = old, new
        self.alpha = alpha

    @property
    def alpha(self):
        return self._alpha

    @alpha.setter
    def alpha(self, value):
        if not 0 <= value <= 1:
            raise ValueError(f"FadeIn: alpha must be in [0, 1], got {value!r}")
        self._alpha = float(value)

    @property
    def mixes_batch(self):
        return any(layer.mixes_batch for _, layer in self.old.named_layers()) or \
            any(layer.mixes_batch for _, layer in self.new.named_layers())

    @property
    def penalty_differentiates_batch_mixing(self):
        """True when every layer of the paths that mixes the batch differentiates that mixing (penalties.py)."""
        return all(getattr(layer, "penalty_differentiates_batch_mixing", False)
                   for path in (self.old, self.new) for _, layer in path.named_layers() if layer.mixes_batch)

    @property
    def has_double_backward(self):
        return self.old.has_double_backward and self.new.has_double_backward

    def children(self):
        return [("old", self.old), ("new", self.new)]

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        old = self.old.forward(x, train=train, keep_cache=keep_cache)
        new = self.new.forward(x, train=train, keep_cache=keep_cache)
        if tuple(old.shape) != tuple(new.shape):
            self.clear_cache()
            raise ValueError(f"FadeIn: the old path gives {tuple(old.shape)} and the new one {tuple(new.shape)}; "
                             f"a fade-in needs the same shape")
        f = old.dtype.type
        return old * f(1 - self.alpha) + new * f(self.alpha)

    __call__ = forward

    def _weights(self, dy):
        f = dy.dtype.type
        return f(1 - self.alpha), f(self.alpha)

    def backward(self, dy, input_grad=True, keep_cache=False):
        """dx = old.backward((1 - alpha) dy) + new.backward(alpha dy); ``input_grad=False``: parameter
        gradients only (None returned); ``keep_cache`` keeps both paths' caches for ``double_backward``."""
        w_old, w_new = self._weights(dy)
        dx_old = self.old.backward(dy * w_old, input_grad=input_grad, keep_cache=keep_cache)
        dx_new = self.new.backward(dy * w_new, input_grad=input_grad, keep_cache=keep_cache)
        return dx_old + dx_new if input_grad else None

    def double_backward(self, ddx, keep_cache=False):
        """(ddy, dx) for a cotangent ``ddx`` of the input gradient; adds both paths' parameter gradients."""
        if not self.has_double_backward:
            raise NotImplementedError(f"{self}: a path has a layer without double backward")
        ddy_old, dx_old = self.old.double_backward(ddx, keep_cache=keep_cache)
        ddy_new, dx_new = self.new.double_backward(ddx, keep_cache=keep_cache)
        f = ddy_old.dtype.type
        ddy = ddy_old * f(1 - self.alpha) + ddy_new * f(self.alpha)
        dx = dx_old if dx_new is None else dx_new if dx_old is None else dx_old + dx_new
        return ddy, dx

    def __repr__(self):
        old = repr(self.old).replace("\n", "\n  ")
        new = repr(self.new).replace("\n", "\n  ")
        return f"FadeIn(alpha={self.alpha:.3f},\n  old={old},\n  new={new}\n)"
