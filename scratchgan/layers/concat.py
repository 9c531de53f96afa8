"""ConcatChannels: images joined along the channel axis, e.g. a generator's noise plane with its
conditioning image (LAPGAN, Denton et al. 2015)."""
from .. import backend
from .base import Layer


class ConcatChannels(Layer):
    """y = [x_1, x_2, ..., x_k] along axis 1, for a tuple of (N, C_i, H, W) arrays with equal N, H, W:

        y[:, o_i : o_i + C_i] = x_i,   o_i = C_1 + ... + C_{i-1}

    Its input is a tuple; a ``Chain`` that starts with it reads tuples, e.g. (noise plane,
    upsampled coarse image) in a LAPGAN generator. Backward: each input gets its own channels of
    the upstream gradient, dx_i = dy[:, o_i : o_i + C_i]; ``backward`` returns the tuple (dx_1, ...).
    """

    def _check_input(self, inputs):
        if not isinstance(inputs, (tuple, list)) or len(inputs) < 2:
            raise TypeError(f"{self}: expected a tuple of at least two (N, C, H, W) arrays, got "
                            f"{type(inputs).__name__}")
        shapes = []
        for x in inputs:
            super()._check_input(x)
            shapes.append(tuple(x.shape))
        first = shapes[0]
        if any(len(s) != 4 for s in shapes) or any((s[0], s[2], s[3]) != (first[0], first[2], first[3]) for s in shapes):
            raise ValueError(f"{self}: inputs must be (N, C_i, H, W) with the same N, H and W, got "
                             f"{', '.join(map(str, shapes))}")
        if any(x.dtype != inputs[0].dtype or backend.get_xp(x) is not backend.get_xp(inputs[0]) for x in inputs):
            raise TypeError(f"{self}: inputs must share one dtype and device, got "
                            f"{', '.join(f'{x.dtype} on {backend.device_of(x)}' for x in inputs)}")

    def _forward(self, inputs, train):
        channels = [x.shape[1] for x in inputs]
        return backend.get_xp(inputs[0]).concatenate(list(inputs), axis=1), channels

    def _backward(self, dy, channels):
        grads, start = [], 0
        for c in channels:
            grads.append(dy[:, start:start + c])
            start += c
        return tuple(grads)

    def __repr__(self):
        return "ConcatChannels()"
