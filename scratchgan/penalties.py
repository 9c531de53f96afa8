"""Penalties on a critic's input gradient (WGAN-GP, R1), differentiated by the double backward.

For a critic D without batch mixing, g_n = grad_x D(x)_n is the gradient of sum_n D(x)_n with
respect to sample n, i.e. ``D.backward(ones)``. A penalty is a function P(g) of those
gradients. Its gradient with respect to D's parameters is a gradient of a gradient; with
u = dP/dg, ``D.double_backward(u)`` adds it into D's gradients (docs/double_backward.md):

    out = D.forward(x, keep_cache=True)
    g = D.backward(ones, keep_cache=True)     # parameter gradients off: only g is wanted
    P, u = penalty_of_gradient(g)
    D.double_backward(u)                      # dP/dW into D.grads (and dP/dx if asked)

Two penalties share that machinery and differ only in P:

    GradientPenalty (Gulrajani et al. 2017):  P = lambda mean_n (||g_n|| - 1)^2        (on interpolates)
    R1Penalty (Mescheder et al. 2018):        P = gamma / 2 mean_n ||g_n||^2            (on real data)
"""
import numpy as np

from . import backend
from .fastpath import row_dots
from .layers.base import missing_double_backward


class InputGradientPenalty:
    """A penalty P(g) on the per-sample input gradients g = grad_x D(x); subclasses give P and dP/dg."""

    name = "penalty"

    def penalty_of_gradient(self, g):
        """(P, dP/dg) for the input gradients ``g`` (N, ...), one row per sample."""
        raise NotImplementedError

    def check_model(self, model):
        """ValueError naming the first layer that cannot be under this penalty (no double
        backward, or a layer that mixes the samples of a batch, unless its double backward
        differentiates that mixing: ProGAN's MinibatchStdDev, whose penalty is then on
        g = grad_x sum_n D(x)_n, cross-sample terms included, as ProGAN's own code computes it)."""
        for name, layer in model.named_layers():
            where = f"{type(self).__name__}: layer {name or '(the model)'} "
            if layer.mixes_batch and not getattr(layer, "penalty_differentiates_batch_mixing", False):
                raise ValueError(f"{where}{layer!r} mixes the samples of a batch, so the per-sample input "
                                 f"gradient is undefined; use LayerNorm or no normalisation in the critic")
            if not layer.has_double_backward and not layer.children():
                raise ValueError(where + missing_double_backward(layer))

    def input_gradient(self, model, x, keep_cache=False):
        """g = grad_x sum_n D(x)_n (D's parameter gradients untouched); ``keep_cache`` for a double backward."""
        out = model.forward(x, train=True, keep_cache=True)
        with model.frozen():
            return model.backward(backend.get_xp(out).ones_like(out), keep_cache=keep_cache)

    def value(self, model, x):
        """P at x (nothing added to the gradients)."""
        value, _ = self.penalty_of_gradient(self.input_gradient(model, x))
        return value

    def value_and_grads(self, model, x, input_grad=False):
        """P at x; adds dP/dW into ``model.grads``. Returns (P, dP/dx if ``input_grad`` else None)."""
        self.check_model(model)
        g = self.input_gradient(model, x, keep_cache=True)
        value, dg = self.penalty_of_gradient(g)
        if hasattr(model, "layers"):     # a Chain: skip its first layer's input gradient when not wanted
            _, dx = model.double_backward(dg, input_grad=input_grad)
        else:
            _, dx = model.double_backward(dg)
        if input_grad and dx is None:    # zero: a piecewise-linear critic's input gradient is locally constant
            dx = backend.get_xp(x).zeros_like(x)
        return value, dx


def _rows(g):
    return g.reshape(len(g), -1)


class GradientPenalty(InputGradientPenalty):
    """WGAN-GP's two-sided penalty, P = weight * mean_n (||g_n|| - target)^2 (weight 10, target 1).

    dP/dg_n = weight * 2 (||g_n|| - target) / N * g_n / ||g_n||, taken as 0 where g_n = 0 (the norm has no
    derivative there; PyTorch's norm gives 0 too). A sample with g_n = 0: a critic constant around it
    (every input of a unit dropped, say).
    """

    name = "gradient_penalty"

    def __init__(self, weight=10.0, target=1.0):
        if not (np.isfinite(weight) and weight >= 0):
            raise ValueError(f"GradientPenalty: weight must be a finite number >= 0, got {weight!r}")
        self.weight, self.target = weight, target

    def penalty_of_gradient(self, g):
        xp, f = backend.get_xp(g), g.dtype.type
        rows = _rows(g)
        norms = xp.sqrt(row_dots(rows, rows))
        gap = norms - f(self.target)
        value = f(self.weight) * (gap * gap).mean()
        scale = f(2 * self.weight / len(g)) * gap / (norms + (norms == 0))   # g_n = 0: its row of g is 0 too
        return value, (rows * scale[:, None]).reshape(g.shape)


class R1Penalty(InputGradientPenalty):
    """Mescheder et al.'s R1, P = gamma / 2 * mean_n ||g_n||^2 on real data; dP/dg_n = gamma g_n / N."""

    name = "r1_penalty"

    def __init__(self, gamma=10.0):
        if not (np.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"R1Penalty: gamma must be a finite number >= 0, got {gamma!r}")
        self.gamma = gamma

    def penalty_of_gradient(self, g):
        f = g.dtype.type
        rows = _rows(g)
        value = f(self.gamma / 2) * row_dots(rows, rows).mean()
        return value, g * f(self.gamma / len(g))
