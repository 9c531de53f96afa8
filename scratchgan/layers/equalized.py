"""Equalized learning rate (ProGAN, Karras et al. 2018): EqualizedConv2d and EqualizedDense.

He's initialisation scales a layer's weights by c = gain / sqrt(fan_in) once, at the start.
ProGAN keeps the stored weight w ~ N(0, 1) and multiplies by c every time the layer runs:

    y = conv(x, c w) + b        (or x (c w)^T + b)

The function is the same; what changes is the parameter the optimizer sees. Its gradient is
dL/dw = c dL/dW at W = c w, and Adam divides each update by the gradient's running scale, so the
step in w is about lr whatever c is -- the step in the effective weight W = c w is about c lr:
every layer learns at a speed proportional to its own weights' scale, whatever its fan-in.

Implementation: the ``EqualizedLR`` mix-in runs Conv2d's or Dense's own forward, backward and
double backward with the effective weight c w in place of the parameter, and adds c times the
gradient they compute for it into the parameter's gradient. Every formula of those layers holds
as derived there (layers/conv.py, layers/dense.py), with W = c w; the chain rule through the
constant factor gives the only change:

    dL/dw = c dL/dW         (and the double backward's second-order terms likewise: dP/dw = c dP/dW)

The bias is used as stored (ProGAN does not scale it).
"""
import contextlib
import math

from .. import backend
from .conv import Conv2d
from .dense import Dense


def standard_normal(shape, fan_in, fan_out, rng):
    """N(0, 1): equalized layers keep unscaled weights."""
    return rng.host.standard_normal(shape)


class EqualizedLR:
    """Mix-in for a layer with a ``weight`` parameter: the layer computes with c weight, c = gain / sqrt(fan_in)."""

    def _set_scale(self, gain, fan_in):
        if not (math.isfinite(gain) and gain > 0):
            raise ValueError(f"{type(self).__name__}: gain must be a finite number > 0, got {gain!r}")
        self.gain, self.scale = gain, gain / math.sqrt(fan_in)

    @contextlib.contextmanager
    def _effective_weight(self, gradient=True):
        """Inside: params["weight"] is c w; with ``gradient``, grads["weight"] is a zero array for dL/d(c w),
        added into the real gradient as c dL/d(c w) on the way out."""
        weight, grad = self.params["weight"], self.grads["weight"]
        scale = weight.dtype.type(self.scale)
        self.params["weight"] = weight * scale
        collect = gradient and self.requires_grad
        if collect:
            self.grads["weight"] = backend.get_xp(grad).zeros_like(grad)
        try:
            yield
            if collect:
                grad += scale * self.grads["weight"]
        finally:
            self.params["weight"], self.grads["weight"] = weight, grad

    def _forward(self, x, train):
        with self._effective_weight(gradient=False):
            return super()._forward(x, train)

    def _backward(self, dy, cache):
        with self._effective_weight():
            return super()._backward(dy, cache)

    def _param_backward(self, dy, cache):
        with self._effective_weight():
            return super()._param_backward(dy, cache)

    def _double_backward(self, ddx, cache, dy):
        with self._effective_weight():
            return super()._double_backward(ddx, cache, dy)


class EqualizedConv2d(EqualizedLR, Conv2d):
    """Conv2d (weight (out, in, kh, kw), stored N(0, 1)) computing with c weight, c = gain / sqrt(in kh kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, gain=math.sqrt(2),
                 rng=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=bias, init=standard_normal,
                         rng=rng)
        self._set_scale(gain, self.in_channels * self.kernel_size[0] * self.kernel_size[1])

    def __repr__(self):
        return "Equalized" + super().__repr__()[:-1] + f", gain={self.gain:.4g})"


class EqualizedDense(EqualizedLR, Dense):
    """Dense (weight (out, in), stored N(0, 1)) computing with c weight, c = gain / sqrt(in)."""

    def __init__(self, in_features, out_features, activation=None, bias=True, gain=math.sqrt(2), rng=None):
        super().__init__(in_features, out_features, activation, bias=bias, init=standard_normal, rng=rng)
        self._set_scale(gain, self.in_features)

    def __repr__(self):
        return "Equalized" + super().__repr__()[:-1] + f", gain={self.gain:.4g})"
