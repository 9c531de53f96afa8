"""Residual connections (He et al. 2016): y = x + F(x)."""
from .base import Layer, resolve_keep_cache


class Residual(Layer):
    """y = x + body(x), for a ``body`` (usually a ``Chain``) whose output has its input's shape.

    Backward: x reaches y along two paths, the identity and the body, and the chain rule
    adds their gradients:

        dx = dy + J_body^T dy        (J_body^T dy is ``body.backward(dy)``)

    The identity path passes dy through unchanged, which is why deep stacks of residual
    blocks still train: every block's input receives at least the gradient of the output.
    The body's parameter gradients are accumulated by its own backward. State-dict names
    are ``body.<name>``.
    """

    def __init__(self, body):
        super().__init__()
        if not isinstance(body, Layer):
            raise TypeError(f"Residual: body must be a layer (e.g. a Chain), got {type(body).__name__}")
        self.body = body

    @property
    def mixes_batch(self):
        return any(layer.mixes_batch for _, layer in self.body.named_layers())

    def children(self):
        return [("body", self.body)]

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        self._check_input(x)
        fx = self.body.forward(x, train=train, keep_cache=keep_cache)
        if tuple(fx.shape) != tuple(x.shape):
            self.body.clear_cache()
            raise ValueError(f"{self}: the body maps input {tuple(x.shape)} to {tuple(fx.shape)}; "
                             f"x + F(x) needs the same shape")
        return fx + x

    __call__ = forward

    def backward(self, dy, input_grad=True, keep_cache=False):
        """dx = dy + body.backward(dy); ``input_grad=False`` computes the body's parameter gradients only;
        ``keep_cache`` keeps the body's caches (the contract's; Residual itself has no double backward)."""
        if not input_grad:
            self.body.backward(dy, input_grad=False, keep_cache=keep_cache)
            return None
        return self.body.backward(dy, keep_cache=keep_cache) + dy

    def __repr__(self):
        inner = repr(self.body).replace("\n", "\n  ")
        return f"Residual(\n  {inner}\n)"
