"""Layers with several inputs or outputs: how a conditional model takes (x, y) and joins them.

A layer may read a tuple of arrays and may return one. The gradient travels the same way:
a layer whose output is a tuple gets a tuple ``dy`` of the same structure, and a layer whose
input was a tuple returns a tuple of input gradients, ``None`` where an input has none (integer
class labels) or gets none (an input a layer ignores: its gradient is zero).

- ``Identity``: y = x (the "do nothing" branch of a ``Parallel``);
- ``Parallel(f_1, ..., f_n)``: (x_1, ..., x_n) -> (f_1(x_1), ..., f_n(x_n)), each branch its own input;
- ``Fork(f_1, ..., f_n)``: x -> (f_1(x), ..., f_n(x)), every branch the same input (two-headed D);
- ``Concat(axis)``: (x_1, ..., x_n) -> one array, joined along ``axis`` (features or channels);
- ``Select(i)``: (x_1, ..., x_n) -> x_i (a model that reads (x, y) but uses x only).

The paper's conditional generator, "z and y each through its own hidden layer, then a joint
layer", is ``Chain(Parallel(Dense(100, 200, relu), Chain(OneHot(10), Dense(10, 1000, relu))),
Concat(), Dense(1200, 1200, relu), ...)``.
"""
from .. import backend
from .base import Layer, as_count, resolve_keep_cache


def add_gradients(a, b):
    """a + b for input gradients that may be tuples (item by item) or None (a zero gradient)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, tuple):
        return tuple(add_gradients(x, y) for x, y in zip(a, b))
    return a + b


def _check_tuple(layer, x, n=None, least=1, what="inputs"):
    """TypeError/ValueError naming ``layer`` unless ``x`` is a tuple of ``n`` items (at least ``least`` if n is None)."""
    wanted = f"a tuple of {n or f'at least {least}'} {what}"
    if not isinstance(x, tuple):
        raise TypeError(f"{layer}: expected {wanted}, got {type(x).__name__}"
                        + (f" of shape {tuple(x.shape)}" if hasattr(x, "shape") else ""))
    if (n is not None and len(x) != n) or len(x) < least:
        raise ValueError(f"{layer}: expected {wanted}, got {len(x)}")


class Identity(Layer):
    """y = x; dx = dy."""

    def _check_input(self, x):
        pass   # anything: an array or a tuple passes through unchanged

    def _forward(self, x, train):
        return x, None

    def _backward(self, dy, cache):
        return dy

    def __repr__(self):
        return "Identity()"


class _Branches(Layer):
    """A container of branch layers (children "0", "1", ...), each with its own cache, as in Chain."""

    def __init__(self, name, branches):
        super().__init__()
        if len(branches) == 1 and isinstance(branches[0], (list, tuple)):
            branches = tuple(branches[0])
        if not branches:
            raise ValueError(f"{name}: expected at least one branch")
        for branch in branches:
            if not isinstance(branch, Layer):
                raise TypeError(f"{name}: expected layers, got {type(branch).__name__}")
        self.branches = list(branches)

    def children(self):
        return [(str(i), branch) for i, branch in enumerate(self.branches)]

    def __getitem__(self, index):
        return self.branches[index]

    def __len__(self):
        return len(self.branches)

    def _check_gradient(self, dy):
        _check_tuple(f"{self.short_name()} backward", dy, len(self.branches), what="upstream gradients (one per branch)")

    def short_name(self):
        """For messages: "Fork of 2 branches" (the full repr lists every branch, line by line)."""
        return f"{type(self).__name__} of {len(self.branches)} branches"

    def __repr__(self):
        inner = ",\n".join("  " + repr(b).replace("\n", "\n  ") for b in self.branches)
        return f"{type(self).__name__}(\n{inner}\n)"


def _branch_backward(branch, dy, input_grad, keep_cache=False):
    """``branch.backward(dy)``; a None ``dy`` (a zero gradient, e.g. the labels a ``Projection`` read)
    has nothing to carry back: the branch's cache is dropped and its input gradient is None."""
    if dy is None:
        branch.clear_cache()
        return None
    return branch.backward(dy, input_grad=input_grad, keep_cache=keep_cache)


class Parallel(_Branches):
    """(x_1, ..., x_n) -> (f_1(x_1), ..., f_n(x_n)).

    Branch k sees only input k, so the Jacobian is block diagonal and the backward is each
    branch's own: dx_k = J_k^T dy_k, returned as the tuple (dx_1, ..., dx_n). A branch that reads
    integer labels (``OneHot``, ``Embedding``) returns None there: labels have no gradient. A None
    in ``dy`` (an output that received no gradient) is passed back as None.
    """

    def __init__(self, *branches):
        super().__init__("Parallel", branches)

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        _check_tuple(self.short_name(), x, len(self.branches))
        return tuple(branch.forward(part, train=train, keep_cache=keep_cache)
                     for branch, part in zip(self.branches, x))

    __call__ = forward

    def backward(self, dy, input_grad=True, keep_cache=False):
        """Each branch's backward on its part of ``dy``; ``input_grad=False`` skips every branch's dx;
        ``keep_cache`` is passed to the branches (the contract's; Parallel has no double backward)."""
        self._check_gradient(dy)
        dx = tuple(_branch_backward(branch, part, input_grad, keep_cache)
                   for branch, part in zip(self.branches, dy))
        return dx if input_grad else None


class Fork(_Branches):
    """x -> (f_1(x), ..., f_n(x)): every branch reads the same input (e.g. a discriminator's
    features into a real/fake head and a class head).

    x reaches the loss along n paths, so its gradient is the sum of the n paths' gradients
    (the multivariate chain rule): dx = J_1^T dy_1 + ... + J_n^T dy_n.
    """

    def __init__(self, *branches):
        super().__init__("Fork", branches)

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        return tuple(branch.forward(x, train=train, keep_cache=keep_cache) for branch in self.branches)

    __call__ = forward

    def backward(self, dy, input_grad=True, keep_cache=False):
        """The sum of the branches' input gradients; ``input_grad=False`` skips them all; ``keep_cache``
        is passed to the branches (the contract's; Fork has no double backward)."""
        self._check_gradient(dy)
        dx = None
        for branch, part in zip(self.branches, dy):
            dx = add_gradients(dx, _branch_backward(branch, part, input_grad, keep_cache))
        return dx if input_grad else None


class Concat(Layer):
    """(x_1, ..., x_n) -> one array, the inputs joined along ``axis`` (default 1: features of
    (N, F) arrays, channels of (N, C, H, W) ones); every other axis must agree.

    Each output entry is one input entry, so the backward only cuts dy back into the inputs'
    pieces: dx_k = dy[..., o_k : o_k + d_k, ...] along ``axis``, with o_k the sizes before input k.
    """

    def __init__(self, axis=1):
        super().__init__()
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"Concat: axis must be an integer, got {axis!r}")
        if axis == 0:
            raise ValueError("Concat: axis 0 is the batch axis; join features (1) or another axis")
        self.axis = axis

    def _check_input(self, x):
        _check_tuple(self, x, least=1)
        first = x[0]
        for k, part in enumerate(x):
            if not hasattr(part, "shape") or not hasattr(part, "dtype"):
                raise TypeError(f"{self}: input {k} is a {type(part).__name__}, not an array")
            self._check_dtype(part, f"input {k}")
            if part.dtype != first.dtype or backend.get_xp(part) is not backend.get_xp(first):
                raise TypeError(f"{self}: input {k} is {part.dtype} on {backend.device_of(part)}, input 0 is "
                                f"{first.dtype} on {backend.device_of(first)}; convert one of them")
            if part.ndim < 2 or not -part.ndim < self.axis < part.ndim:
                raise ValueError(f"{self}: input {k} of shape {tuple(part.shape)} has no axis {self.axis}")
            if _without(part.shape, self.axis, part.ndim) != _without(first.shape, self.axis, first.ndim):
                raise ValueError(f"{self}: inputs must agree on every axis but {self.axis}; got shapes "
                                 f"{', '.join(str(tuple(p.shape)) for p in x)}")

    def _forward(self, x, train):
        xp = backend.get_xp(x[0])
        sizes = [part.shape[self.axis] for part in x]
        return xp.concatenate(x, axis=self.axis), sizes

    def _backward(self, dy, sizes):
        axis = self.axis % dy.ndim
        pieces, start = [], 0
        for size in sizes:
            index = (slice(None),) * axis + (slice(start, start + size),)
            pieces.append(dy[index])
            start += size
        return tuple(pieces)

    def __repr__(self):
        return f"Concat(axis={self.axis})"


def _without(shape, axis, ndim):
    return tuple(n for i, n in enumerate(shape) if i != axis % ndim)


class Select(Layer):
    """(x_1, ..., x_n) -> x_i: pass one input of a tuple on, ignore the others.

    The output does not depend on the other inputs, so their gradient is zero, returned as None:
    dx = (None, ..., dy, ..., None) with dy at position i. An AC-GAN discriminator reads (x, y) like
    every conditional D but judges the image alone: ``Chain(Select(0), ...)``.
    """

    def __init__(self, index=0):
        super().__init__()
        self.index = as_count(index, "index", "Select", least=0)

    def _check_input(self, x):
        _check_tuple(self, x, least=self.index + 1)

    def _forward(self, x, train):
        return x[self.index], len(x)

    def _backward(self, dy, n):
        return tuple(dy if k == self.index else None for k in range(n))

    def __repr__(self):
        return f"Select({self.index})"
