"""The game's gradient vector field, from the trainer's own hand-written steps, and its Jacobian.

For G's parameters theta and D's parameters psi, the simultaneous-gradient vector field is

    v(theta, psi) = (-grad_theta L_G, -grad_psi L_D)

(L_D with every penalty the extensions add). ``vector_field`` computes it with the library's
own training step: ``GANTrainer.discriminator_step`` and ``generator_step`` on a fixed real
batch and a fixed noise batch, with *frozen* optimizers (SGD with learning rate 0), so the
step computes every gradient exactly as in training and moves nothing. Extensions run as
in training too: their penalties enter v (their after-step hooks run as well, so use
stateless ones here).

Its Jacobian J = dv/dw (w = (theta, psi)) is never formed from second derivatives: ``jvp``
takes central differences of v in float64, J u ~ (v(w + e u) - v(w - e u)) / 2e, and
``jacobian`` stacks fourth-order differences along each coordinate for small games.
"""
import numpy as np

from .. import backend
from ..gan.trainer import GANConfig, GANTrainer
from ..optim import SGD


def frozen_trainer(G, D, objective, extensions=(), z_dim=1):
    """A GANTrainer whose optimizers move nothing (SGD, lr 0): its steps only compute gradients."""
    config = GANConfig(z_dim=z_dim, batch_size=1, n_progress=1)
    return GANTrainer(G, D, SGD(G, lr=0.0), SGD(D, lr=0.0), objective, config, extensions=extensions)


def parameters(model):
    """(layer, key) of every parameter of ``model``, in named_parameters order."""
    return [(layer, key) for _, layer, key in model.named_parameters()]


def flat_parameters(*models):
    """Every parameter of the models as one float64 NumPy vector (G's first, then D's)."""
    return np.concatenate([backend.asnumpy(layer.params[key]).ravel().astype(np.float64)
                           for model in models for layer, key in parameters(model)])


def set_flat_parameters(w, *models):
    """Write vector ``w`` (as ``flat_parameters`` lays it out) into the models' parameters, in place."""
    offset = 0
    for model in models:
        for layer, key in parameters(model):
            param = layer.params[key]
            param[...] = backend.to_device(w[offset:offset + param.size].reshape(param.shape).astype(param.dtype),
                                           backend.device_of(param))
            offset += param.size
    if offset != len(w):
        raise ValueError(f"parameter vector has {len(w)} entries, the models {offset}")


def flat_gradients(*models):
    return np.concatenate([backend.asnumpy(layer.grads[key]).ravel().astype(np.float64)
                           for model in models for layer, key in parameters(model)])


def vector_field(trainer, real, noise, labels=None):
    """v = (-grad_theta L_G, -grad_psi L_D) at the current parameters, from the trainer's own steps."""
    fake = trainer.G.forward(noise, train=True, keep_cache=True)
    trainer.discriminator_step(real, fake, labels)
    d_grads = flat_gradients(trainer.D)
    trainer.generator_step(fake, None, real, labels)
    return -np.concatenate([flat_gradients(trainer.G), d_grads])


class Game:
    """A trainer frozen on one real batch and one noise batch: v and its Jacobian as functions of w."""

    def __init__(self, trainer, real, noise):
        self.trainer, self.real, self.noise = trainer, real, noise
        self.models = (trainer.G, trainer.D)
        self.n_theta = sum(layer.params[key].size for layer, key in parameters(trainer.G))

    @property
    def w(self):
        return flat_parameters(*self.models)

    def v(self, w=None):
        """v at ``w`` (the current parameters if None); the parameters are left at ``w``."""
        if w is not None:
            set_flat_parameters(w, *self.models)
        return vector_field(self.trainer, self.real, self.noise)

    def jvp(self, w, u, eps=1e-4):
        """J(w) u by central differences of v along u (second order; float64), parameters restored to w."""
        scale = eps / max(np.linalg.norm(u), 1e-300)
        forward, backward = self.v(w + scale * u), self.v(w - scale * u)
        set_flat_parameters(w, *self.models)
        return (forward - backward) / (2 * scale)

    def jacobian(self, w, h=1e-3):
        """The dense Jacobian dv/dw at w, column by column, by fourth-order central differences."""
        columns = []
        for k in range(len(w)):
            e = np.zeros_like(w)
            e[k] = h
            columns.append((-self.v(w + 2 * e) + 8 * self.v(w + e) - 8 * self.v(w - e) + self.v(w - 2 * e)) / (12 * h))
        set_flat_parameters(w, *self.models)
        return np.stack(columns, axis=1)


def eigenvalue_pairs(values):
    """Eigenvalues as [[re, im], ...], sorted by real part, then imaginary part (for JSON)."""
    values = sorted(np.asarray(values, dtype=np.complex128).ravel(), key=lambda z: (round(z.real, 12), z.imag))
    return [[float(z.real), float(z.imag)] for z in values]


class WassersteinGame:
    """The WGAN critic game (Arjovsky et al. 2017) on D's raw output, for the lab's Dirac-GAN.

        L_D = mean D(G(z)) - mean D(x),      L_G = -mean D(G(z))

    A minimal stand-in written for the lab, with the trainer's objective interface
    (objectives.py); the library's Wasserstein family (issue 17) replaces it where it exists.
    """

    stat_keys = ("d_real", "d_fake")

    def d_loss(self, out, is_real, labels, rng):
        xp, n = backend.get_xp(out), len(out)
        sign = out.dtype.type(-1.0 if is_real else 1.0)
        return sign * out.mean(), xp.full(out.shape, sign / out.dtype.type(n), dtype=out.dtype)

    def g_loss(self, out, labels):
        xp, n = backend.get_xp(out), len(out)
        return -out.mean(), xp.full(out.shape, out.dtype.type(-1.0 / n), dtype=out.dtype)

    def score(self, out):
        return out.reshape(len(out))

    def stats(self, score_real, score_fake):
        return [score_real.mean(), score_fake.mean()]



class FiniteDifferenceR1:
    """R1 (Mescheder et al. 2018), (gamma / 2) mean_n ||grad_x D(x_n)||^2 on the real batch, for any D whose
    samples do not interact, from the hand-written *first* derivatives alone.

    u_n = grad_x D(x_n) is one backward pass (upstream gradient 1 per sample). The penalty's gradient
    needs the mixed second derivative, and mixed partial derivatives commute:

        grad_psi (1/2) ||u_n||^2 = (d u_n / d psi)^T u_n = d/de [grad_psi D(x_n + e u_n)] at e = 0

    (u_n held fixed), so it is a central difference of D's *parameter* gradients along u:
    (grad_psi D(x + h u) - grad_psi D(x - h u)) / 2h. Exact up to O(h^2) and rounding: use it in
    float64 (the lab's spectrum runs do). A lab tool for networks the Dirac formulas do not cover,
    until the library's R1 extension (issue 17, with an exact double backward) replaces it.
    """

    history_keys = ("r1",)

    def __init__(self, gamma, step=1e-4):
        self.gamma, self.step = gamma, step

    def d_penalty(self, trainer, batch):
        D, real = trainer.D, batch["real"]
        xp = backend.get_xp(real)
        saved = [layer.grads[key].copy() for _, layer, key in D.named_parameters()]
        out = D.forward(real, train=True)
        u = D.backward(xp.ones_like(out))                    # u_n = grad_x D(x_n); D's grads get junk, reset below
        n, f = len(real), real.dtype.type
        h = f(self.step) / max(float(xp.abs(u).max()), 1e-12)
        plus, minus = _parameter_gradients(D, real + h * u), _parameter_gradients(D, real - h * u)
        scale = f(self.gamma) / (f(n) * 2 * h)
        for (_, layer, key), old, p, m in zip(D.named_parameters(), saved, plus, minus):
            layer.grads[key][...] = old + scale * (p - m)
        return 0.5 * self.gamma * xp.sum(u * u) / n


def _parameter_gradients(model, x):
    """The gradients of sum(model(x)) with respect to every parameter (copies), via one backward pass."""
    model.zero_grad()
    out = model.forward(x, train=True)
    model.backward(backend.get_xp(out).ones_like(out), input_grad=False)
    return [layer.grads[key].copy() for _, layer, key in model.named_parameters()]

