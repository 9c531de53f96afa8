"""Reshape and Flatten: no arithmetic, so backward only restores the input's shape."""
from .base import Layer


class Reshape(Layer):
    """(N, ...) -> (N, *shape); backward reshapes dy back to the input's shape."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], int) else shape

    def _forward(self, x, train):
        try:
            return x.reshape(len(x), *self.shape), x.shape
        except ValueError:
            raise ValueError(f"{self}: cannot reshape input {tuple(x.shape)} to (N, "
                             f"{', '.join(map(str, self.shape))})") from None

    def _backward(self, dy, x_shape):
        return dy.reshape(x_shape)

    def __repr__(self):
        return f"Reshape{self.shape}"


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def _forward(self, x, train):
        return x.reshape(len(x), -1), x.shape

    def _backward(self, dy, x_shape):
        return dy.reshape(x_shape)

    def __repr__(self):
        return "Flatten()"
