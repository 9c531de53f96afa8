"""Optimizers: SGD with momentum and Adam, updating parameters in place.

An optimizer walks ``model.named_parameters()`` and keeps its state per
parameter name, so ``state_dict()`` is a flat dict of arrays that saves with
the model and restores a run exactly. The step is separate from backward:
freezing a network means not stepping its optimizer.
"""
import numpy as np

from . import backend
from .fastpath import reuse_buffer
from .gpu_kernels import ADAM_UPDATE, RMSPROP_UPDATE, fused, uses_fused_kernels


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
    """Adam (Kingma & Ba 2015) with bias correction. The textbook update, per parameter:

        m <- b1 m + (1 - b1) g,        v <- b2 v + (1 - b2) g^2
        m_hat = m / (1 - b1^t),        v_hat = v / (1 - b2^t)
        p <- p - lr m_hat / (sqrt(v_hat) + eps)

    ``_adam_in_place`` computes exactly this, line by line, but with every pass writing into
    m, v, the parameter or one reused buffer: written as above, each line allocates
    parameter-sized temporaries, which costs more than the arithmetic (docs/performance.md
    measures it). Two rewrites make that possible without changing the numbers:

    - the moments as m += (1 - b1)(g - m) and v += (1 - b2)(g^2 - v), the same averages;
    - the bias corrections folded into two scalars, as the paper's Algorithm 1 suggests: with
      c1 = 1 - b1^t and c2 = 1 - b2^t, multiplying the fraction above and below by sqrt(c2)
      gives p <- p - (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2)), with no m_hat or v_hat.
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, max_norm=None):
        super().__init__(model, lr, weight_decay, max_norm)
        self.betas, self.eps = betas, eps
        self._scratch = {}  # parameter name -> reused work array (not state: never saved)

    def _update(self, name, param, grad):
        m, v = self._slot(name, "exp_avg", param), self._slot(name, "exp_avg_sq", param)
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        f = param.dtype.type
        factors = f(1 - b1), f(1 - b2), f(self.lr * c2 ** 0.5 / c1), f(self.eps * c2 ** 0.5)
        if uses_fused_kernels(backend.get_xp(param)):      # the GPU: the passes below as one kernel
            fused(ADAM_UPDATE)(grad, *factors, param, m, v)
            return
        work = reuse_buffer(self._scratch, name, param.shape, param)
        _adam_in_place(param, grad, m, v, work, *factors)


def _adam_in_place(param, grad, m, v, work, one_minus_b1, one_minus_b2, step_size, eps_hat):
    """Adam's update of ``param``, ``m`` and ``v`` in place; ``work``: a scratch array of their shape.
    (On the GPU ``gpu_kernels.ADAM_UPDATE`` does the same in one kernel.)"""
    xp = backend.get_xp(param)
    # m <- b1 m + (1 - b1) g, as m += (1 - b1)(g - m)
    xp.subtract(grad, m, out=work)
    work *= one_minus_b1
    m += work
    # v <- b2 v + (1 - b2) g^2, as v += (1 - b2)(g^2 - v)
    xp.multiply(grad, grad, out=work)
    work -= v
    work *= one_minus_b2
    v += work
    # p <- p - lr m_hat / (sqrt(v_hat) + eps), as p -= (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2))
    xp.sqrt(v, out=work)
    work += eps_hat
    xp.divide(m, work, out=work)
    work *= step_size
    param -= work


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012) exactly as PyTorch's ``torch.optim.RMSprop``:

        v <- alpha v + (1 - alpha) g^2                  running mean of g^2 (starts at 0, no bias correction)
        centered:  m <- alpha m + (1 - alpha) g,  v_tilde = v - m^2     (else v_tilde = v)
        d = sqrt(v_tilde) + eps                         eps added *after* the square root
        momentum > 0:  b <- momentum b + g / d,  p <- p - lr b
        else:          p <- p - lr g / d

    Defaults as PyTorch's: lr 1e-2, alpha 0.99, eps 1e-8, momentum 0, centered False. The WGAN
    paper's critic and generator use it with lr 5e-5 (and no momentum).
    """

    def __init__(self, model, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, centered=False, weight_decay=0.0,
                 max_norm=None):
        super().__init__(model, lr, weight_decay, max_norm)
        if not 0 <= alpha <= 1:
            raise ValueError(f"RMSprop: alpha must be in [0, 1], got {alpha!r}")
        if not eps >= 0 or not momentum >= 0:
            raise ValueError(f"RMSprop: eps and momentum must be >= 0, got eps {eps!r}, momentum {momentum!r}")
        self.alpha, self.eps, self.momentum, self.centered = alpha, eps, momentum, centered
        self._scratch = {}

    def _update(self, name, param, grad):
        f, xp = param.dtype.type, backend.get_xp(param)
        v = self._slot(name, "square_avg", param)
        if not self.centered and not self.momentum > 0 and uses_fused_kernels(xp):
            fused(RMSPROP_UPDATE)(grad, f(1 - self.alpha), f(self.eps), f(self.lr), param, v)   # the GPU: one kernel
            return
        work = reuse_buffer(self._scratch, name, param.shape, param)
        # v <- alpha v + (1 - alpha) g^2, as v += (1 - alpha)(g^2 - v)
        xp.multiply(grad, grad, out=work)
        work -= v
        work *= f(1 - self.alpha)
        v += work
        if self.centered:
            m = self._slot(name, "grad_avg", param)
            xp.subtract(grad, m, out=work)
            work *= f(1 - self.alpha)
            m += work
            xp.multiply(m, m, out=work)
            xp.subtract(v, work, out=work)
            xp.sqrt(work, out=work)
        else:
            xp.sqrt(v, out=work)
        work += f(self.eps)
        xp.divide(grad, work, out=work)                   # g / (sqrt(v_tilde) + eps)
        if self.momentum > 0:
            buf = self._slot(name, "momentum_buffer", param)
            buf *= f(self.momentum)
            buf += work
            work = buf
        param -= f(self.lr) * work
