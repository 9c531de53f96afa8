"""Reflection padding: borders filled with the mirror image of the pixels next to them."""
from .. import backend
from .base import Layer, as_count


def as_padding(padding, owner):
    """An int, or (left, right, top, bottom) as PyTorch's ReflectionPad2d takes it, as that 4-tuple."""
    if isinstance(padding, (tuple, list)):
        if len(padding) != 4:
            raise ValueError(f"{owner}: padding must be an int or (left, right, top, bottom), got {padding!r}")
        return tuple(as_count(p, "padding", owner, least=0) for p in padding)
    return (as_count(padding, "padding", owner, least=0),) * 4


class ReflectionPad2d(Layer):
    """Pad (N, C, H, W) by reflection about the edge pixels (PyTorch's ReflectionPad2d, NumPy's "reflect").

    With padding (left, right, top, bottom) = (l, r, t, b), output row i reads input row
    reflect(i - t), where reflect(k) = -k for k < 0, 2 (H - 1) - k for k > H - 1, k inside
    (the edge row itself is not repeated); columns likewise. Each padding must be smaller than
    the side it mirrors.

    Backward: output pixel (i, j) is a copy of input pixel (reflect(i - t), reflect(j - l)),
    so every input pixel collects the gradients of all its copies:

        dx[h, w] = sum of dy[i, j] over the (i, j) that read (h, w)

    done axis by axis: take the middle rows of dy, add the t rows above it flipped onto input
    rows 1..t and the b rows below it flipped onto rows H-1-b..H-2; then the same for columns.
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = as_padding(padding, "ReflectionPad2d")
        self.input_pattern = (None, None, None, None)

    def _forward(self, x, train):
        left, right, top, bottom = self.padding
        h, w = x.shape[2:]
        if max(top, bottom) >= h or max(left, right) >= w:
            raise ValueError(f"{self}: padding must be smaller than the input's sides, got input {tuple(x.shape)}")
        xp = backend.get_xp(x)
        return xp.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="reflect"), (h, w)

    def _backward(self, dy, cache):
        h, w = cache
        left, right, top, bottom = self.padding
        rows = fold_reflection(dy, top, bottom, h, axis=2)
        return fold_reflection(rows, left, right, w, axis=3)

    def __repr__(self):
        return f"ReflectionPad2d({self.padding})"


def fold_reflection(dy, before, after, size, axis):
    """Along ``axis``: the gradient of the ``size`` middle entries of a reflection-padded
    axis, each adding the gradients of its mirrored copies (a new array)."""
    def take(start, stop, step=1):
        index = [slice(None)] * dy.ndim
        index[axis] = slice(start, stop, step)
        return tuple(index)
    dx = dy[take(before, before + size)].copy()
    if before:   # padded entries before-1 .. 0 mirror entries 1 .. before
        dx[take(1, before + 1)] += dy[take(before - 1, None, -1)]
    if after:    # padded entries before+size .. before+size+after-1 mirror size-2 .. size-1-after
        dx[take(size - 1 - after, size - 1)] += dy[take(before + size + after - 1, before + size - 1, -1)]
    return dx
