"""Reshape and Flatten: no arithmetic, so backward only restores the input's shape."""
from .base import Layer, as_count


class Reshape(Layer):
    """(N, ...) -> (N, *shape); backward reshapes dy back to the input's shape.

    ``Reshape(7, 7, 64)`` and ``Reshape((7, 7, 64))`` are the same layer; sizes are integers of
    any type (NumPy's included), at least 1, or -1 for one size inferred from the input.
    """

    def __init__(self, *shape):
        super().__init__()
        if len(shape) == 1 and hasattr(shape[0], "__len__"):   # one tuple, list or array of sizes
            shape = tuple(shape[0])
        self.shape = tuple(as_count(size, "each size", "Reshape", least=-1) for size in shape)
        if not self.shape or 0 in self.shape or self.shape.count(-1) > 1:
            raise ValueError(f"Reshape: sizes must be >= 1 (or -1 for one inferred size), got {shape!r}")

    def _forward(self, x, train):
        try:
            return x.reshape(len(x), *self.shape), x.shape
        except ValueError:
            raise ValueError(f"{self}: cannot reshape input {tuple(x.shape)} to (N, "
                             f"{', '.join(map(str, self.shape))})") from None

    def _backward(self, dy, x_shape):
        return dy.reshape(x_shape)

    def _double_backward(self, ddx, x_shape, dy):
        """The backward is linear with a constant Jacobian: ddy = ddx reshaped as y, no x-cotangent."""
        return ddx.reshape(dy.shape), None

    def __repr__(self):
        return f"Reshape{self.shape}"


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def _forward(self, x, train):
        return x.reshape(len(x), -1), x.shape

    def _backward(self, dy, x_shape):
        return dy.reshape(x_shape)

    def _double_backward(self, ddx, x_shape, dy):
        """As Reshape's: ddy = ddx flattened, no x-cotangent."""
        return ddx.reshape(dy.shape), None

    def __repr__(self):
        return "Flatten()"
