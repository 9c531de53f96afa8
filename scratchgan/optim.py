"""Optimizers: SGD with momentum and Adam, updating parameters in place.

An optimizer walks ``model.named_parameters()`` and keeps its state per
parameter name, so ``state_dict()`` is a flat dict of arrays that saves with
the model and restores a run exactly. The step is separate from backward:
freezing a network means not stepping its optimizer.
"""
import numpy as np

from . import backend


class Optimizer:
    def __init__(self, model, lr, weight_decay=0.0, max_norm=None):
        self.model, self.lr, self.weight_decay, self.max_norm = model, lr, weight_decay, max_norm
        self.state = {}  # "<param name>.<slot>" -> array
        self.t = 0

    def step(self):
        """Apply one update to every parameter from its accumulated gradient."""
        self.t += 1
        for name, layer, key in self.model.named_parameters():
            param, grad = layer.params[key], layer.grads[key]
            if self.weight_decay:
                grad = grad + param * param.dtype.type(self.weight_decay)
            self._update(name, param, grad)
            if self.max_norm is not None and param.ndim == 2:
                _clip_row_norms(param, self.max_norm)

    def zero_grad(self):
        self.model.zero_grad()

    def _slot(self, name, slot, like):
        """State array ``slot`` for parameter ``name``, created as zeros and kept on ``like``'s device."""
        key = f"{name}.{slot}"
        value = self.state.get(key)
        if value is None:
            value = backend.get_xp(like).zeros_like(like)
        elif backend.get_xp(value) is not backend.get_xp(like) or value.dtype != like.dtype:
            value = backend.get_xp(like).asarray(backend.asnumpy(value), dtype=like.dtype)  # model moved
        self.state[key] = value
        return value

    def to(self, device):
        self.state = {k: backend.to_device(v, device) for k, v in self.state.items()}
        return self

    def state_dict(self):
        state = {f"state.{k}": backend.asnumpy(v).copy() for k, v in self.state.items()}
        state["t"] = np.array(self.t)
        return state

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self.state = {k[len("state."):]: np.array(v) for k, v in state.items() if k.startswith("state.")}
        return self


def _clip_row_norms(weight, max_norm):
    """Max-norm constraint (Srivastava et al. 2014; Pylearn2's max_col_norm): rescale each unit's
    incoming weight vector, a row of a (out, in) weight, to norm <= max_norm, in place."""
    xp, f = backend.get_xp(weight), weight.dtype.type
    norms = xp.sqrt((weight * weight).sum(axis=1, keepdims=True))
    weight *= xp.minimum(f(1), f(max_norm) / xp.maximum(norms, f(1e-12)))


class SGD(Optimizer):
    """v <- mu v + g;  p <- p - lr v   (PyTorch's form; mu = 0 is plain SGD)."""

    def __init__(self, model, lr=0.01, momentum=0.0, weight_decay=0.0, max_norm=None):
        super().__init__(model, lr, weight_decay, max_norm)
        self.momentum = momentum

    def _update(self, name, param, grad):
        lr = param.dtype.type(self.lr)
        if not self.momentum:
            param -= lr * grad
            return
        velocity = self._slot(name, "momentum", param)
        velocity *= param.dtype.type(self.momentum)
        velocity += grad
        param -= lr * velocity


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction:

        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, max_norm=None):
        super().__init__(model, lr, weight_decay, max_norm)
        self.betas, self.eps = betas, eps
        self._scratch = {}  # parameter name -> work array (not state: never saved)

    def _work_array(self, name, like):
        work = self._scratch.get(name)
        if work is None or work.shape != like.shape or work.dtype != like.dtype or \
                backend.get_xp(work) is not backend.get_xp(like):
            work = self._scratch[name] = backend.get_xp(like).empty_like(like)
        return work

    def _update(self, name, param, grad):
        # Every pass writes into m, v, the parameter or one reused work array, so a step
        # allocates nothing the size of a parameter (the plain expressions made eight).
        xp, f = backend.get_xp(param), param.dtype.type
        b1, b2 = self.betas
        m, v = self._slot(name, "exp_avg", param), self._slot(name, "exp_avg_sq", param)
        work = self._work_array(name, param)
        m *= f(b1)
        xp.multiply(grad, f(1 - b1), out=work)
        m += work                                               # m = b1 m + (1 - b1) g
        v *= f(b2)
        xp.multiply(grad, grad, out=work)
        work *= f(1 - b2)
        v += work                                               # v = b2 v + (1 - b2) g^2
        xp.multiply(v, f(1 / (1 - b2 ** self.t)), out=work)
        xp.sqrt(work, out=work)
        work += f(self.eps)                                     # sqrt(v / (1 - b2^t)) + eps
        xp.divide(m, work, out=work)
        work *= f(self.lr / (1 - b1 ** self.t))
        param -= work
