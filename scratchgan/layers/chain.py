"""Chain: layers applied in order (Flux's name; ``Sequential`` is an alias)."""
from .base import Layer, resolve_keep_cache


class Chain(Layer):
    """y = f_n(... f_2(f_1(x))).

    Backward is the chain rule applied right to left: dx = J_1^T (J_2^T (... J_n^T dy)),
    each layer's ``backward`` supplying one J_i^T product and adding its own
    parameter gradients on the way.
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

    def backward(self, dy, input_grad=True):
        """Chain rule right to left; ``input_grad=False`` skips the first layer's input gradient."""
        for index in reversed(range(len(self.layers))):
            dy = self.layers[index].backward(dy, input_grad=input_grad or index > 0)
        return dy

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
