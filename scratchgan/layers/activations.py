"""Element-wise activations and Softmax (Maxout, which has weights, lives in dense.py).

The lower-case functions (``tanh``, ``sigmoid``, ``relu``, ``leakyrelu``) work
on arrays, like Flux's, and ``Dense(784, 500, tanh)`` turns them into the
matching layer.
"""
from .. import backend
from ..gpu_kernels import (LEAKY_RELU, LEAKY_RELU_GRAD, RELU, RELU_GRAD, SIGMOID, SIGMOID_GRAD, TANH, TANH_GRAD,
                           fused_like, uses_fused_kernels)
from .base import Layer, as_count


def relu(x):
    return backend.get_xp(x).maximum(x, 0)


def leakyrelu(x, alpha=0.2):
    """x if x > 0 else alpha * x, as max(x, alpha x) for alpha <= 1 (min for alpha > 1):
    two passes, and the output keeps x's memory layout (xp.where would write C order)."""
    xp = backend.get_xp(x)
    y = x * x.dtype.type(alpha)
    return (xp.maximum if alpha <= 1 else xp.minimum)(x, y, out=y)


def tanh(x):
    xp = backend.get_xp(x)
    if uses_fused_kernels(xp):                          # the GPU: a kernel that keeps x's memory layout
        return fused_like(TANH, x, x)
    return xp.tanh(x)


def sigmoid(x):
    """1 / (1 + e^-x) without overflow, and without rounding small values to 0.

    With e = exp(-|x|) <= 1: sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0,
    so sigmoid(-50) is 2e-22 (not 0) in float32 and the loss behind it keeps its gradient.
    The numerator, 1 or e, is max(e, [x >= 0]) since e <= 1. (On the GPU: one kernel, gpu_kernels.SIGMOID.)
    """
    xp = backend.get_xp(x)
    if uses_fused_kernels(xp):
        return fused_like(SIGMOID, x, x)                # in x's memory layout, as the passes keep it
    e = xp.abs(x)
    xp.negative(e, out=e)
    xp.exp(e, out=e)                    # e = exp(-|x|)
    y = xp.maximum(e, x >= 0)           # 1 where x >= 0, e elsewhere
    e += 1
    return xp.divide(y, e, out=y)


class ReLU(Layer):
    """y = max(x, 0).

    Backward: dy/dx = 1 where x > 0, else 0 (the kink at 0 gets 0), so
    dx = dy * [x > 0]. ``dy`` is never modified in place.

    Double backward: dx = dy * [x > 0] is linear in dy, with a slope that is constant in x
    (away from 0), so ddy = ddx * [x > 0] and the x-cotangent is zero.
    """

    def _forward(self, x, train):
        if uses_fused_kernels(backend.get_xp(x)):          # the GPU: both in one kernel, kept in x's layout
            return fused_like(RELU, x, x)
        return relu(x), x > 0

    def _backward(self, dy, positive):
        if uses_fused_kernels(backend.get_xp(dy)):         # the GPU: one kernel, dx in x's layout (the mask's)
            return fused_like(RELU_GRAD, positive, positive, dy)
        return dy * positive

    def _double_backward(self, ddx, positive, dy):
        return ddx * positive, None

    def __repr__(self):
        return "ReLU()"


class LeakyReLU(Layer):
    """y = x if x > 0 else alpha * x.

    Backward: dx = dy where x > 0, alpha * dy elsewhere.

    Double backward: dx = slope(x) * dy is linear in dy and its slope is piecewise constant,
    so ddy = slope(x) * ddx (the backward applied to ddx) and the x-cotangent is zero.
    """

    def __init__(self, alpha=0.2):
        super().__init__()
        if not alpha >= 0:
            raise ValueError(f"LeakyReLU: alpha must be >= 0, got {alpha!r}")
        self.alpha = alpha

    def _forward(self, x, train):
        if self.alpha <= 1 and uses_fused_kernels(backend.get_xp(x)):   # the GPU: one kernel, x's layout
            return fused_like(LEAKY_RELU, x, x, x.dtype.type(self.alpha))
        return leakyrelu(x, self.alpha), x > 0

    def _backward(self, dy, positive):
        # dy * (alpha + (1 - alpha) [x > 0]): elementwise passes that keep x's layout (the mask's)
        f = dy.dtype.type
        if uses_fused_kernels(backend.get_xp(dy)):         # the GPU: one kernel, dx in x's layout (as below)
            return fused_like(LEAKY_RELU_GRAD, positive, positive, dy, f(1 - self.alpha), f(self.alpha))
        dx = positive * f(1 - self.alpha)
        dx += f(self.alpha)
        dx *= dy
        return dx

    def _double_backward(self, ddx, positive, dy):
        return self._backward(ddx, positive), None

    def __repr__(self):
        return f"LeakyReLU({self.alpha})"


class Tanh(Layer):
    """y = tanh(x).

    Backward from the output: d tanh(x)/dx = 1 - tanh(x)^2 = 1 - y^2, so dx = dy * (1 - y^2).

    Double backward of g = dy * (1 - y^2): ddy = ddx * (1 - y^2), and since
    d(1 - y^2)/dx = -2 y (1 - y^2), the x-cotangent is ddx * dy * (-2 y (1 - y^2)).
    """

    def _forward(self, x, train):
        y = tanh(x)
        return y, y

    def _backward(self, dy, y):
        if uses_fused_kernels(backend.get_xp(dy)):         # the GPU: one kernel, dx in y's layout
            return fused_like(TANH_GRAD, y, dy, y)
        return dy * (1 - y * y)

    def _double_backward(self, ddx, y, dy):
        slope = 1 - y * y
        return ddx * slope, ddx * dy * (-2 * y * slope)

    def __repr__(self):
        return "Tanh()"


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)).

    Backward from the output: dy/dx = e^-x / (1 + e^-x)^2 = y (1 - y), so dx = dy * y * (1 - y).

    Double backward of g = dy * y (1 - y): ddy = ddx * y (1 - y), and since
    d(y (1 - y))/dx = y (1 - y) (1 - 2 y), the x-cotangent is ddx * dy * y (1 - y) (1 - 2 y).
    """

    def _forward(self, x, train):
        y = sigmoid(x)
        return y, y

    def _backward(self, dy, y):
        if uses_fused_kernels(backend.get_xp(dy)):         # the GPU: one kernel, dx in y's layout
            return fused_like(SIGMOID_GRAD, y, dy, y)
        return dy * y * (1 - y)

    def _double_backward(self, ddx, y, dy):
        slope = y * (1 - y)
        return ddx * slope, ddx * dy * slope * (1 - 2 * y)

    def __repr__(self):
        return "Sigmoid()"


class Softmax(Layer):
    """y_i = exp(x_i - max x) / sum_j exp(x_j - max x) along ``axis`` (subtracting the max avoids overflow).

    Backward: dy_i/dx_j = y_i (delta_ij - y_j), so
    dx_j = sum_i dy_i y_i (delta_ij - y_j) = y_j (dy_j - sum_i dy_i y_i).
    """

    def __init__(self, axis=1):
        super().__init__()
        self.axis = axis

    def _forward(self, x, train):
        xp = backend.get_xp(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        y = e / e.sum(axis=self.axis, keepdims=True)
        return y, y

    def _backward(self, dy, y):
        return y * (dy - (dy * y).sum(axis=self.axis, keepdims=True))

    def __repr__(self):
        return f"Softmax(axis={self.axis})"


ACTIVATIONS = {relu: ReLU, leakyrelu: LeakyReLU, tanh: Tanh, sigmoid: Sigmoid,
               "relu": ReLU, "leakyrelu": LeakyReLU, "tanh": Tanh, "sigmoid": Sigmoid,
               "softmax": Softmax}


def as_activation_layer(activation):
    """None, a Layer, a Layer class, a name, or one of the functions above -> a Layer or None."""
    if activation is None or isinstance(activation, Layer):
        return activation
    if isinstance(activation, type) and issubclass(activation, Layer):
        return activation()
    try:
        return ACTIVATIONS[activation]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {activation!r}; use a Layer or one of "
                         "relu, leakyrelu, tanh, sigmoid, softmax") from None


class PReLU(Layer):
    """Parametric ReLU (He et al. 2015): y = x if x > 0 else a * x, with a learned slope a.

    ``num_parameters`` = 1 shares one slope; = C gives each channel (axis 1) its own, as
    PyTorch's PReLU (parameter ``weight``, initialized to ``init`` = 0.25).

    Backward: dx = dy where x > 0, a * dy elsewhere; and since dy/da = x where x <= 0 (0 elsewhere),

        da = sum of dy * min(x, 0)   over every entry sharing that slope.
    """

    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.num_parameters = as_count(num_parameters, "num_parameters", "PReLU")
        self.add_param("weight", (self.num_parameters,), "zeros", 0, 0)
        self.params["weight"] += self.params["weight"].dtype.type(init)

    def _check_input(self, x):
        super()._check_input(x)
        if self.num_parameters > 1 and (x.ndim < 2 or x.shape[1] != self.num_parameters):
            raise ValueError(f"{self}: expected input with {self.num_parameters} channels on axis 1, "
                             f"got {tuple(x.shape)}")

    def _slope(self, x):
        """The slope broadcast along axis 1 (one per channel) or as one number."""
        a = self.params["weight"]
        return a.reshape((1, -1) + (1,) * (x.ndim - 2)) if self.num_parameters > 1 else a.reshape(())

    def _forward(self, x, train):
        negative = backend.get_xp(x).minimum(x, 0)
        return x - negative + negative * self._slope(x), (x > 0, negative)

    def _backward(self, dy, cache):
        positive, negative = cache
        if self.requires_grad:
            contribution = dy * negative
            axes = tuple(i for i in range(dy.ndim) if not (i == 1 and self.num_parameters > 1))
            self.grads["weight"] += contribution.sum(axis=axes).reshape(self.num_parameters)
        a = self._slope(dy)
        return dy * (positive + (~positive) * a)

    def __repr__(self):
        return f"PReLU(num_parameters={self.num_parameters})"
