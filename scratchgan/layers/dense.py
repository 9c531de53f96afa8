"""Fully connected layers: Dense (with an optional Flux-style activation) and Maxout."""
from .. import backend
from ..fastpath import add_matmul_to_grad, matmul, matmul_tall
from .activations import as_activation_layer
from .base import Layer, as_count


class Dense(Layer):
    """y = act(x W^T + b), x of shape (N, in), W of shape (out, in) as in PyTorch's Linear.

    Backward, with z = x W^T + b and dz = act'(z) * dy (the activation's own backward):

        dW = dz^T x          (out, in)   since dz_no / dW_o'i = x_ni if o = o', else 0
        db = sum_n dz_n      (out,)
        dx = dz W            (N, in)

    ``Dense(784, 500, tanh)`` reads like Flux's ``Dense(784 => 500, tanh)``.

    Double backward (docs/double_backward.md): the backward is dx = dz W with dz = act'(z) * dy,
    linear in W and in dy. For a cotangent u of dx (N, in):

        ddz = u W^T              the JVP of the affine map (its linear part: no bias)
        dW += dz^T u             d(u . dz W)/dW, the second-order term
        ddy, a_z = the activation's double backward of ddz   (ddy = ddz without activation)
        a_z, if nonzero (tanh, sigmoid), goes back through the affine map as in backward:
        dW += a_z^T x,  db += sum_n a_z,  dx = a_z W         (else dx is None: zero)
    """

    def __init__(self, in_features, out_features, activation=None, bias=True,
                 init="glorot_uniform", rng=None):
        super().__init__()
        self.in_features = n_in = as_count(in_features, "in_features", "Dense")
        self.out_features = n_out = as_count(out_features, "out_features", "Dense")
        self.activation = as_activation_layer(activation)
        self.input_pattern = (None, n_in)
        self.add_param("weight", (n_out, n_in), init, n_in, n_out, rng)
        if bias:
            self.add_param("bias", (n_out,), "zeros", n_in, n_out, rng)

    def children(self):
        return [("activation", self.activation)] if self.activation else []

    def _forward(self, x, train):
        z = matmul_tall(x, self.params["weight"].T)     # z = x W^T + b
        if "bias" in self.params:
            z += self.params["bias"]
        if self.activation is None:
            return z, (x, None)
        y, act_cache = self.activation._forward(z, train)
        return y, (x, act_cache)

    def _backward(self, dy, cache):
        dz = self._grad_z(dy, cache)                     # adds dW = dz^T x and db on the way
        return matmul_tall(dz, self.params["weight"])    # dx = dz W

    def _param_backward(self, dy, cache):
        self._grad_z(dy, cache)

    def _grad_z(self, dy, cache):
        """dz through the activation; adds dW and db on the way."""
        x, act_cache = cache
        dz = dy if self.activation is None else self.activation._backward(dy, act_cache)
        if self.requires_grad:
            add_matmul_to_grad(self.grads["weight"], dz.T, x)
            if "bias" in self.params:
                self.grads["bias"] += dz.sum(axis=0)
        return dz

    def _double_backward(self, ddx, cache, dy):
        x, act_cache = cache
        weight = self.params["weight"]
        ddz = matmul_tall(ddx, weight.T)                 # J u = u W^T
        if self.activation is None:
            dz, ddy, a_z = dy, ddz, None
        else:
            dz = self.activation._backward(dy, act_cache)
            ddy, a_z = self.activation._double_backward(ddz, act_cache, dy)
        if self.requires_grad:
            add_matmul_to_grad(self.grads["weight"], dz.T, ddx)   # second order: dW += dz^T u
        if a_z is None:
            return ddy, None
        if self.requires_grad:                           # first order, back through the affine map
            add_matmul_to_grad(self.grads["weight"], a_z.T, x)
            if "bias" in self.params:
                self.grads["bias"] += a_z.sum(axis=0)
        return ddy, matmul_tall(a_z, weight)

    @property
    def has_double_backward(self):
        return self.activation is None or self.activation.has_double_backward

    def __repr__(self):
        act = f", {self.activation!r}" if self.activation else ""
        return f"Dense({self.in_features} => {self.out_features}{act})"


class Maxout(Layer):
    """Goodfellow et al.'s maxout unit: y_o = max_k (x W^T + b)_{o,k}.

    The linear map has ``out * pieces`` outputs, grouped so that z.reshape(N, out, pieces)
    holds unit o's pieces in row o. Only the winning piece passes gradient back:

        dz_{n,o,k} = dy_{n,o} * [k == argmax_k' z_{n,o,k'}]      (ties go to the first piece)

    then dW, db and dx follow from dz exactly as in Dense.

    Double backward: dx = dz W is linear in W and in dy, and x only picks the winners (piecewise
    constant), so for a cotangent u of dx: ddy = the winners' pieces of u W^T (no bias),
    dW += dz^T u, and no x-cotangent.
    """

    def __init__(self, in_features, out_features, pieces, init="glorot_uniform", rng=None):
        super().__init__()
        self.in_features = n_in = as_count(in_features, "in_features", "Maxout")
        self.out_features = n_out = as_count(out_features, "out_features", "Maxout")
        self.pieces = as_count(pieces, "pieces", "Maxout")
        self.input_pattern = (None, n_in)
        self.add_param("weight", (n_out * self.pieces, n_in), init, n_in, n_out, rng)
        self.add_param("bias", (n_out * self.pieces,), "zeros", n_in, n_out, rng)

    def _forward(self, x, train):
        z = (matmul(x, self.params["weight"].T) + self.params["bias"]).reshape(len(x), self.out_features, self.pieces)
        winner = z.argmax(axis=2)
        y = backend.get_xp(z).take_along_axis(z, winner[..., None], axis=2)[..., 0]
        return y, (x, winner)

    def _backward(self, dy, cache):
        x, winner = cache
        xp = backend.get_xp(dy)
        dz = (xp.arange(self.pieces) == winner[..., None]) * dy[..., None]
        dz = dz.reshape(len(dy), -1)
        if self.requires_grad:
            add_matmul_to_grad(self.grads["weight"], dz.T, x)
            self.grads["bias"] += dz.sum(axis=0)
        return matmul(dz, self.params["weight"])

    def _double_backward(self, ddx, cache, dy):
        x, winner = cache
        xp = backend.get_xp(dy)
        zu = matmul(ddx, self.params["weight"].T).reshape(len(ddx), self.out_features, self.pieces)
        if self.requires_grad:
            dz = ((xp.arange(self.pieces) == winner[..., None]) * dy[..., None]).reshape(len(dy), -1)
            add_matmul_to_grad(self.grads["weight"], dz.T, ddx)     # dW += dz^T u
        return xp.take_along_axis(zu, winner[..., None], axis=2)[..., 0], None

    def __repr__(self):
        return f"Maxout({self.in_features} => {self.out_features}, pieces={self.pieces})"
