"""Chain: layers applied in order (Flux's name; ``Sequential`` is an alias)."""
from .base import Layer, missing_double_backward, resolve_keep_cache


class Chain(Layer):
    """y = f_n(... f_2(f_1(x))).

    Backward is the chain rule applied right to left: dx = J_1^T (J_2^T (... J_n^T dy)),
    each layer's ``backward`` supplying one J_i^T product and adding its own
    parameter gradients on the way.

    The double backward differentiates that whole computation, g_1 = B(x, W, dy), for a
    cotangent ddx of g_1 (docs/double_backward.md): up the chain, each layer turns the
    cotangent of its input gradient into that of its upstream gradient (u_{i+1} = J_i u_i, a
    Jacobian-vector product), adding its second-order parameter terms and returning an
    x-cotangent a_i; then the a_i go back down the forward chain, a plain backward pass
    adding the first-order terms: c_i = J_i^T c_{i+1} + a_i, c_{n+1} = 0, and dx = c_1.
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Chain: expected layers, got {type(layer).__name__}")
        self.layers = list(layers)

    def children(self):
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        for layer in self.layers:
            x = layer.forward(x, train=train, keep_cache=keep_cache)
        return x

    __call__ = forward

    def backward(self, dy, input_grad=True, keep_cache=False):
        """Chain rule right to left; ``input_grad=False`` skips the first layer's input gradient;
        ``keep_cache`` keeps every layer's cache for ``double_backward``."""
        for index in reversed(range(len(self.layers))):
            dy = self.layers[index].backward(dy, input_grad=input_grad or index > 0, keep_cache=keep_cache)
        return dy

    @property
    def has_double_backward(self):
        return all(layer.has_double_backward for layer in self.layers)

    def double_backward(self, ddx, keep_cache=False, input_grad=True):
        """(ddy, dx) for cotangent ``ddx`` of the chain's input gradient; adds every layer's parameter
        gradients (second- and first-order terms). dx is None where it is zero (every a_i zero, as
        in a piecewise-linear network) or not wanted (``input_grad=False``: the input is data)."""
        for _, layer in self.named_layers():
            if not layer.has_double_backward and not isinstance(layer, Chain):
                raise NotImplementedError(missing_double_backward(layer))
        x_cotangents = []
        for layer in self.layers:                         # up: u_{i+1} = J_i u_i, second-order terms
            ddx, a = layer.double_backward(ddx, keep_cache=True)
            x_cotangents.append(a)
        dx = None                                         # down: c_i = J_i^T c_{i+1} + a_i
        for index in reversed(range(len(self.layers))):
            layer = self.layers[index]
            if dx is None:                                # nothing flows into this layer from above
                if not keep_cache:
                    layer.clear_cache()
            elif index == 0 and not input_grad:
                layer.backward(dx, input_grad=False, keep_cache=keep_cache)
                return ddx, None
            else:
                dx = layer.backward(dx, keep_cache=keep_cache)
            a = x_cotangents[index]
            dx = a if dx is None else dx if a is None else dx + a
        return ddx, (dx if input_grad else None)

    def __getitem__(self, index):
        return Chain(*self.layers[index]) if isinstance(index, slice) else self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        inner = ",\n".join(f"  {layer!r}" for layer in self.layers)
        return f"Chain(\n{inner}\n)"


Sequential = Chain
