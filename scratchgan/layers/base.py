"""The layer contract every layer follows.

A layer implements two methods, in the spirit of CS231n's ``layers.py``::

    y, cache = self._forward(x, train)     # compute the output, keep what backward needs
    dx = self._backward(dy, cache)         # input gradient; parameter gradients are *added*
                                           # into self.grads[name]

The public ``forward``/``backward`` around them check shapes, dtypes and the
device, and hold the cache between the two calls. A layer with several inputs or outputs
(combine.py) reads or returns a tuple of arrays, and its gradients travel as tuples too. One cache per layer: calling
``forward`` twice before ``backward`` raises instead of silently back-propagating
through the wrong input (run D on the real batch, back-propagate, then on the fake).

The double backward (``backward(dy, keep_cache=True)`` then ``double_backward(ddx)``) is the
vector-Jacobian product of the backward pass itself, for gradient penalties (WGAN-GP, R1); a
layer supports it by implementing ``_double_backward`` (docs/double_backward.md).

Below the class: the shared checks of constructor arguments (``as_count``, ``as_pair``) and
of input shapes (``format_pattern``). How the layers make their products fast lives in
``scratchgan/fastpath.py``, not here.
"""
import contextlib
import warnings

import numpy as np

from .. import backend
from ..init import get_initializer


class Layer:
    """Base class: parameters, gradients, buffers, the cache, device and dtype moves."""

    #: expected input shape, None for a free axis: (None, 784) reads "(N, 784)".
    input_pattern = None
    #: True for a layer whose output for one sample depends on the other samples of its
    #: batch in training (BatchNorm); without one, a model may run two batches as one.
    mixes_batch = False

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.buffers = {}
        self.training = True
        self.requires_grad = True
        self._cache = None
        self._double_cache = None   # (dy, input shape) kept by backward(dy, keep_cache=True)
        self._scratch = {}  # large temporaries reused between calls (fastpath.reuse_buffer)

    # -- subclasses implement these -------------------------------------------------
    def _forward(self, x, train):
        raise NotImplementedError

    def _backward(self, dy, cache):
        raise NotImplementedError

    def children(self):
        """Sub-layers as (name, layer) pairs; containers override this."""
        return []

    # -- forward / backward -------------------------------------------------------
    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        """Output for ``x``. ``train`` picks batch statistics / dropout (default: ``self.training``);
        ``keep_cache`` keeps what ``backward`` needs (default: same as ``train``).
        ``grad=`` is the deprecated name of ``keep_cache``."""
        train = self.training if train is None else train
        keep_cache = resolve_keep_cache(keep_cache, grad, train)
        self._check_input(x)
        if keep_cache and self._cache is not None:
            raise RuntimeError(f"{self}: forward called again before backward of the previous call; "
                               "back-propagate each forward pass before the next, use "
                               "forward(x, keep_cache=False) for inference, or call clear_cache()")
        y, cache = self._forward(x, train)
        if keep_cache:
            self._cache = (cache, output_shape(y))
        return y

    __call__ = forward

    def backward(self, dy, input_grad=True, keep_cache=False):
        """Input gradient for upstream gradient ``dy``; adds parameter gradients into ``self.grads``.

        ``input_grad=False`` computes the parameter gradients only and returns None: for a
        layer whose input is data (D's first layer on a batch, G's on noise), where the input
        gradient would be thrown away (PyTorch skips it too, for inputs that need no grad).
        ``keep_cache=True`` keeps the forward cache and remembers ``dy``, for ``double_backward``.
        """
        if self._cache is None:
            raise RuntimeError(f"{self}: backward called without a forward pass that kept its cache "
                               "(forward(x, train=True) or forward(x, keep_cache=True))")
        cache, y_shape = self._cache
        if output_shape(dy) != y_shape:
            raise ValueError(f"{self}: upstream gradient has shape {output_shape(dy)} "
                             f"but the output had shape {y_shape}")
        for part in (dy if isinstance(dy, tuple) else (dy,)):   # a layer with several outputs gets a tuple
            self._check_dtype(part, "upstream gradient")
        if not keep_cache:
            self._cache = None
        dx = None
        if input_grad:
            dx = self._backward(dy, cache)
        else:
            self._param_backward(dy, cache)
        self._double_cache = (dy, None if dx is None else output_shape(dx)) if keep_cache else None
        return dx

    # -- the double backward (docs/double_backward.md) ------------------------------------
    @property
    def has_double_backward(self):
        """True if this layer implements ``_double_backward`` (containers: if every sub-layer does)."""
        return type(self)._double_backward is not Layer._double_backward

    def double_backward(self, ddx, keep_cache=False):
        """The backward pass of ``backward``: returns (ddy, dx) and adds parameter gradients.

        ``backward(dy, keep_cache=True)`` computed g = J(x, W)^T dy. For a cotangent ``ddx`` of g
        (same shape as x), this returns the gradients of ddx . g with respect to dy and x:

            ddy = J ddx                              (a Jacobian-vector product: forward mode)
            dx  = d(ddx . J^T dy)/dx   (dy fixed)     (None where it is zero: affine and piecewise-
                                                       linear layers, whose J does not depend on x)

        and adds d(ddx . J^T dy)/dW into ``self.grads`` (if ``requires_grad``). Uses up the cache
        unless ``keep_cache`` (a ``Chain`` keeps its layers' caches for its second pass).
        """
        if not self.has_double_backward:
            raise NotImplementedError(missing_double_backward(self))
        state = getattr(self, "_double_cache", None)
        if self._cache is None or state is None:
            raise RuntimeError(f"{self}: double_backward needs backward(dy, keep_cache=True) first")
        (cache, _), (dy, x_shape) = self._cache, state
        if x_shape is not None and tuple(ddx.shape) != x_shape:
            raise ValueError(f"{self}: ddx has shape {tuple(ddx.shape)} but the input had shape {x_shape}")
        self._check_dtype(ddx, "ddx")
        if not keep_cache:
            self._cache = self._double_cache = None
        return self._double_backward(ddx, cache, dy)

    def _double_backward(self, ddx, cache, dy):
        """Subclasses: (ddy, dx or None) for cotangent ``ddx`` of backward's output (see double_backward)."""
        raise NotImplementedError

    def _param_backward(self, dy, cache):
        """Parameter gradients only; layers whose input gradient costs a matrix product override it."""
        self._backward(dy, cache)

    def clear_cache(self):
        self._cache = self._double_cache = None
        for _, child in self.children():
            child.clear_cache()

    # -- input checks -------------------------------------------------------------------
    def _check_input(self, x):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{self}: expected an array, got {type(x).__name__}")
        if self.input_pattern is not None:
            pattern = self.input_pattern
            fits = x.ndim == len(pattern) and all(p is None or p == n for p, n in zip(pattern, x.shape))
            if not fits:
                raise ValueError(f"{self}: expected input of shape {format_pattern(pattern)}, "
                                 f"got {tuple(x.shape)}")
        self._check_dtype(x, "input")

    def _check_dtype(self, x, what):
        ref = next(iter(self.params.values()), None)
        if ref is None:
            if x.dtype.kind != "f":
                raise TypeError(f"{self}: {what} must be floating point, got {x.dtype}")
            return
        if backend.get_xp(x) is not backend.get_xp(ref):
            raise ValueError(f"{self}: {what} is on {backend.device_of(x)} but the parameters are on "
                             f"{backend.device_of(ref)}; move one with .to(...)")
        if x.dtype != ref.dtype:
            raise TypeError(f"{self}: {what} dtype {x.dtype} does not match parameter dtype {ref.dtype}; "
                            "convert the input or call .to(dtype=...)")

    # -- parameters -------------------------------------------------------------------
    def add_param(self, name, shape, init, fan_in, fan_out, rng=None):
        """Create parameter ``name`` on the default device and dtype, with a zero gradient."""
        rng = rng or backend.global_rng()
        value = get_initializer(init)(shape, fan_in, fan_out, rng)
        xp = backend.xp_for(backend.default_device())
        self.params[name] = xp.asarray(value, dtype=backend.default_dtype())
        self.grads[name] = xp.zeros_like(self.params[name])

    def named_layers(self, prefix=""):
        """This layer and every sub-layer, as (dotted name, layer), depth first."""
        yield prefix.rstrip("."), self
        for name, child in self.children():
            yield from child.named_layers(f"{prefix}{name}.")

    def named_parameters(self):
        """(dotted name, layer, key) for every parameter: ``layer.params[key]`` is the array."""
        return [(f"{p}.{k}" if p else k, layer, k)
                for p, layer in self.named_layers() for k in layer.params]

    def num_params(self):
        return sum(int(layer.params[k].size) for _, layer, k in self.named_parameters())

    def zero_grad(self):
        for _, layer, key in self.named_parameters():
            layer.grads[key].fill(0)

    def requires_grad_(self, flag=True):
        """Switch parameter-gradient computation on or off (the G step never needs D's)."""
        for _, layer in self.named_layers():
            layer.requires_grad = flag
        return self

    @contextlib.contextmanager
    def frozen(self):
        """``with model.frozen():`` no parameter gradients inside the block (a gradient passed *through*
        the model, as G's step through D); every layer's flag is restored afterwards."""
        flags = [(layer, layer.requires_grad) for _, layer in self.named_layers()]
        self.requires_grad_(False)
        try:
            yield self
        finally:
            for layer, flag in flags:
                layer.requires_grad = flag

    def train(self, mode=True):
        for _, layer in self.named_layers():
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    # -- device, dtype, state -------------------------------------------------------
    def to(self, device=None, dtype=None):
        """Move parameters, gradients and buffers to ``device`` and/or cast them to ``dtype``."""
        for _, layer in self.named_layers():
            for store in (layer.params, layer.grads, layer.buffers):
                for key, value in store.items():
                    if device is not None:
                        value = backend.to_device(value, device)
                    if dtype is not None and value.dtype.kind == "f":
                        value = value.astype(dtype, copy=False)
                    store[key] = value
            if dtype is not None and getattr(layer, "output_dtype", None) is not None:
                layer.output_dtype = np.dtype(dtype)   # a layer without parameters that makes floats (OneHot)
            layer._cache = None
            layer._scratch = {}
        return self

    def state_dict(self):
        """Parameters and buffers as NumPy arrays, keyed by dotted names (PyTorch's layout)."""
        state = {}
        for prefix, layer in self.named_layers():
            for key, value in {**layer.params, **layer.buffers}.items():
                state[f"{prefix}.{key}" if prefix else key] = backend.asnumpy(value).copy()
        return state

    def load_state_dict(self, state):
        """Copy arrays from ``state`` into this layer, keeping its device and dtype."""
        own = {}
        for prefix, layer in self.named_layers():
            for store in (layer.params, layer.buffers):
                for key in store:
                    own[f"{prefix}.{key}" if prefix else key] = (store, key)
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"{self.__class__.__name__}.load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        for name, (store, key) in own.items():
            old, new = store[key], state[name]
            if tuple(old.shape) != tuple(np.shape(new)):
                raise ValueError(f"load_state_dict: {name} has shape {tuple(np.shape(new))}, "
                                 f"expected {tuple(old.shape)}")
            xp = backend.get_xp(old)
            store[key] = xp.asarray(backend.asnumpy(new), dtype=old.dtype)
        return self

    def __repr__(self):
        return f"{self.__class__.__name__}()"


def missing_double_backward(layer):
    """The message for a layer used under a gradient penalty without a double backward."""
    return (f"{layer!r} has no double backward, so it cannot be used under a gradient penalty "
            f"(WGAN-GP, R1); layers with one: Dense, Maxout, Conv2d, LeakyReLU, ReLU, Tanh, Sigmoid, Dropout, "
            f"Flatten, Reshape, LayerNorm, DiffAugment, SpectralNorm (around one of these), AvgPool2d, "
            f"EqualizedConv2d, EqualizedDense, FadeIn, MinibatchStdDev, Chain (BatchNorm mixes the "
            f"batch: use LayerNorm or no normalisation)")


def output_shape(y):
    """A layer output's shape: ``y.shape`` as a tuple, or for a layer with several outputs (a tuple
    of arrays) the tuple of their shapes; anything without a shape gives None (never equal to one)."""
    if isinstance(y, tuple):
        return tuple(output_shape(part) for part in y)
    return tuple(y.shape) if hasattr(y, "shape") else None


def format_pattern(pattern):
    """(None, 3, None, None) -> '(N, 3, H, W)'; free axes get conventional letters."""
    letters = {2: "NF", 3: "NLF", 4: "NCHW"}.get(len(pattern), "N" + "D" * (len(pattern) - 1))
    return "(" + ", ".join(letters[i] if p is None else str(p) for i, p in enumerate(pattern)) + ")"


def resolve_keep_cache(keep_cache, grad, train):
    """``forward``'s keep_cache argument: given, or ``train``; ``grad``, its old name, still works
    (with a DeprecationWarning pointing at the caller of ``forward``)."""
    if grad is not None:
        if keep_cache is not None:
            raise TypeError("forward: got both keep_cache and grad (its deprecated name); pass keep_cache only")
        warnings.warn("forward(x, grad=...) is deprecated; use forward(x, keep_cache=...) "
                      "(it keeps the cache for backward)", DeprecationWarning, stacklevel=3)
        keep_cache = grad
    return train if keep_cache is None else bool(keep_cache)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def as_count(value, name, owner, least=1):
    """An integer hyper-parameter (any integer type, NumPy's included) as an int >= ``least``;
    a TypeError or ValueError that starts with ``owner`` (the layer's name) otherwise."""
    if not _is_int(value):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")
    if value < least:
        raise ValueError(f"{owner}: {name} must be an integer >= {least}, got {value!r}")
    return int(value)


def as_pair(value, name, owner, least):
    """An int or a pair of ints (kernel sizes, strides, paddings) as a pair of ints, each >= ``least``."""
    try:
        pair = (value, value) if _is_int(value) else tuple(value)
    except TypeError:   # neither an int nor a sequence
        pair = ()
    if len(pair) != 2 or not all(_is_int(v) for v in pair):
        raise TypeError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < least:
        raise ValueError(f"{owner}: {name} must be >= {least}, got {value!r}")
    return tuple(int(v) for v in pair)
