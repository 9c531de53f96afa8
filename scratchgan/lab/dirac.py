"""Dirac-GAN (Mescheder, Geiger & Nowozin 2018): the smallest GAN that does not converge.

Real data are a point mass at 0; the generator is one number, G(z) = theta for every z; the
discriminator is D(x) = psi x, a bias-free ``Dense(1, 1)``. The unique equilibrium is
(theta, psi) = (0, 0). Everything below runs the library's own code: the objectives of
objectives.py, the layers' hand-written backward passes, and ``GANTrainer``'s D and G steps
(game.py), in float64. The Jacobian of v = (-dL_G/dtheta, -dL_D/dpsi) is taken by
fourth-order central differences of v (h = 1e-3), never from second derivatives.

Closed forms (our D outputs the logit of "real"; sigma is the logistic function). For the
cross-entropy game, L_D = softplus(-psi * 0) + softplus(psi theta), so

    non-saturating:  v = ( psi sigma(-psi theta), -theta sigma(psi theta) )
    minimax:         v = ( psi sigma( psi theta), -theta sigma(psi theta) )
    J(0, 0) = [[0, f'(0)], [-f'(0), 0]],  f'(0) = sigma(0) = 1/2:  eigenvalues +-0.5 i

WGAN (L_D = D(G) - D(x) = psi theta, L_G = -psi theta): J = [[0, 1], [-1, 0]], eigenvalues +-i.
R1 (Mescheder et al.): + (gamma / 2) psi^2 in L_D: J = [[0, 1/2], [-1/2, -gamma]],
eigenvalues (-gamma +- sqrt(gamma^2 - 1)) / 2. WGAN-GP: + lambda (|psi| - 1)^2 in L_D (the
gradient of D is psi at every interpolate): v_psi jumps by 4 lambda across psi = 0, so v
has no zero at all and no Jacobian at (0, 0); the one-sided Jacobian for psi -> 0+ (and 0-)
is [[0, 1], [-1, -2 lambda]].

Discrete steps with learning rate h. Simultaneous: w <- w + h v(w), whose Jacobian is
I + h J, eigenvalues 1 + h mu: outside the unit circle whenever mu is imaginary.
Alternating, D first (``GANTrainer.train_step``): psi <- psi + h v_psi(theta, psi), then
theta <- theta + h v_theta(theta, psi_new); for J = [[a, b], [c, d]] its Jacobian is
[[1 + h a + h^2 b c, h b (1 + h d)], [h c, 1 + h d]], whose determinant is 1 when a = d = 0:
the eigenvalues sit on the unit circle (for h |b c|^(1/2) < 2) and the iterates circle.
"""
import numpy as np

from .. import layers as L
from ..backend import RNG, get_xp
from ..gan.objectives import CrossEntropyGame, LogitHead
from ..gan.trainer import GANConfig, GANTrainer
from ..layers.base import Layer
from ..optim import SGD
from .game import Game, WassersteinGame, eigenvalue_pairs, frozen_trainer, set_flat_parameters

GP_WEIGHT = 0.5     # lambda of WGAN-GP here (Gulrajani et al. use 10 on images); 0.5 keeps the spectrum readable
R1_WEIGHT = 0.5     # gamma of R1
ONE_SIDED = 0.01    # WGAN-GP: the Jacobian is taken at psi = 0+ (this psi); the step 2h stays inside psi > 0
LEARNING_RATES = (0.1, 0.5, 1.0)
SCHEMES = ("simultaneous", "alternating")
TRAJECTORY_LR, TRAJECTORY_STEPS, START = 0.1, 300, (1.0, 1.0)   # the iterates drawn over the vector field


class DiracGenerator(Layer):
    """G(z) = theta for every noise vector z: one parameter, broadcast to (N, 1).

    Backward: d theta = sum_n dy_n (each sample is theta itself); the noise gets no gradient.
    """

    def __init__(self, theta=1.0):
        super().__init__()
        self.add_param("theta", (1,), "zeros", 1, 1)
        self.params["theta"][...] = theta

    def _forward(self, z, train):
        return get_xp(z).broadcast_to(self.params["theta"], (len(z), 1)).copy(), z.shape

    def _backward(self, dy, cache):
        if self.requires_grad:
            self.grads["theta"] += dy.sum(axis=0)
        return get_xp(dy).zeros(cache, dtype=dy.dtype)


# -- the penalties, written by hand for the Dirac critic D(x) = psi x ---------------------
def _critic_weight(trainer):
    """D's one weight psi (the (1, 1) weight of a bias-free Dense(1, 1)); ValueError for any other D."""
    D = trainer.D
    layers = [layer for _, layer in D.named_layers() if layer.params]
    if len(layers) != 1 or not isinstance(layers[0], L.Dense) or set(layers[0].params) != {"weight"} \
            or layers[0].params["weight"].shape != (1, 1):
        raise ValueError("the lab's Dirac penalties are written for D(x) = psi x, a bias-free Dense(1, 1); "
                         "use the library's penalty extensions for other critics")
    return layers[0]


class DiracGradientPenalty:
    """WGAN-GP's penalty lambda E(||grad_x D(x_hat)|| - 1)^2 (Gulrajani et al. 2017), by hand for
    D(x) = psi x: grad_x D = psi at every interpolate x_hat, so the penalty is lambda (|psi| - 1)^2
    and its gradient 2 lambda (|psi| - 1) sign(psi). An extension with the trainer's ``d_penalty``
    hook, so the library's general gradient-penalty extension can take its place."""

    history_keys = ("gp",)

    def __init__(self, weight=GP_WEIGHT):
        self.weight = weight

    def d_penalty(self, trainer, batch):
        layer = _critic_weight(trainer)
        psi = layer.params["weight"]
        xp = get_xp(psi)
        gap = xp.abs(psi) - 1
        layer.grads["weight"] += 2 * self.weight * gap * xp.sign(psi)
        return self.weight * float((gap * gap).sum())


class DiracR1Penalty:
    """R1 (Mescheder et al. 2018): (gamma / 2) E_real ||grad_x D(x)||^2, by hand for D(x) = psi x:
    (gamma / 2) psi^2, gradient gamma psi. A ``d_penalty`` extension like DiracGradientPenalty."""

    history_keys = ("r1",)

    def __init__(self, weight=R1_WEIGHT):
        self.weight = weight

    def d_penalty(self, trainer, batch):
        layer = _critic_weight(trainer)
        psi = layer.params["weight"]
        layer.grads["weight"] += self.weight * psi
        return 0.5 * self.weight * float((psi * psi).sum())


# -- the cases -------------------------------------------------------------------------------------
def cases():
    """name -> (objective, extensions, point (theta, psi) where J is taken, closed-form J there, note)."""
    half = 0.5
    return {
        "GAN, non-saturating": (lambda: CrossEntropyGame(LogitHead(), "non-saturating"), list, (0.0, 0.0),
                                [[0, half], [-half, 0]], "eigenvalues +-i f'(0) = +-0.5i"),
        "GAN, minimax": (lambda: CrossEntropyGame(LogitHead(), "minimax"), list, (0.0, 0.0),
                         [[0, half], [-half, 0]], "eigenvalues +-i f'(0) = +-0.5i"),
        "WGAN": (WassersteinGame, list, (0.0, 0.0), [[0, 1], [-1, 0]], "eigenvalues +-i"),
        f"WGAN-GP (lambda={GP_WEIGHT:g})": (
            WassersteinGame, lambda: [DiracGradientPenalty(GP_WEIGHT)], (0.0, ONE_SIDED),
            [[0, 1], [-1, -2 * GP_WEIGHT]],
            "v jumps across psi = 0 and has no zero: one-sided Jacobian at psi = 0+ (the same at 0-)"),
        f"GAN + R1 (gamma={R1_WEIGHT:g})": (
            lambda: CrossEntropyGame(LogitHead(), "non-saturating"), lambda: [DiracR1Penalty(R1_WEIGHT)],
            (0.0, 0.0), [[0, half], [-half, -R1_WEIGHT]], "eigenvalues (-gamma +- sqrt(gamma^2 - 1)) / 2"),
    }


def dirac_models(theta=0.0, psi=0.0):
    """(G, D) in float64: G(z) = theta, D = bias-free Dense(1, 1) with weight psi."""
    G = DiracGenerator().to(dtype=np.float64)
    D = L.Dense(1, 1, bias=False, rng=RNG(0)).to(dtype=np.float64)
    G.params["theta"][...] = theta       # set in float64, not rounded through the default float32
    D.params["weight"][...] = psi
    return G, D


def dirac_game(name):
    """The Game (game.py) of case ``name``: real batch [0], noise [0]."""
    objective, extensions, *_ = cases()[name]
    G, D = dirac_models()
    trainer = frozen_trainer(G, D, objective(), extensions())
    zero = np.zeros((1, 1))
    return Game(trainer, zero, zero)


def step_map(game, scheme, lr):
    """The discrete update w -> w_new of ``scheme`` with learning rate ``lr`` (w = (theta, psi))."""
    def simultaneous(w):
        return w + lr * game.v(w)

    def alternating(w):   # D first, then G against the updated D, as GANTrainer.train_step
        psi = w[1] + lr * game.v(w)[1]
        theta = w[0] + lr * game.v(np.array([w[0], psi]))[0]
        return np.array([theta, psi])
    return {"simultaneous": simultaneous, "alternating": alternating}[scheme]


def map_jacobian(step, w, h=1e-3):
    """dF/dw of a map F at w by fourth-order central differences."""
    columns = []
    for k in range(len(w)):
        e = np.zeros_like(w)
        e[k] = h
        columns.append((-step(w + 2 * e) + 8 * step(w + e) - 8 * step(w - e) + step(w - 2 * e)) / (12 * h))
    return np.stack(columns, axis=1)


def closed_form_map(jacobian, scheme, lr):
    """The Jacobian of the discrete step, linearized from the continuous J = [[a, b], [c, d]]."""
    (a, b), (c, d) = np.asarray(jacobian, dtype=np.float64)
    if scheme == "simultaneous":
        return np.eye(2) + lr * np.array([[a, b], [c, d]])
    return np.array([[1 + lr * a + lr * lr * b * c, lr * b * (1 + lr * d)], [lr * c, 1 + lr * d]])


def trajectory(game, scheme, lr, start, steps):
    """The iterates of ``scheme`` from ``start``: an array (steps + 1, 2) of (theta, psi)."""
    step, w = step_map(game, scheme, lr), np.asarray(start, dtype=np.float64)
    points = [w]
    for _ in range(steps):
        w = step(w)
        points.append(w)
    return np.array(points)


def trainer_trajectory(name, lr, start, steps):
    """The same iterates from ``GANTrainer.train_step`` with SGD(lr) (the alternating scheme)."""
    objective, extensions, *_ = cases()[name]
    G, D = dirac_models(*start)
    trainer = GANTrainer(G, D, SGD(G, lr=lr), SGD(D, lr=lr), objective(),
                         GANConfig(z_dim=1, batch_size=1, n_progress=1), extensions=extensions())
    points = [np.array(start, dtype=np.float64)]
    for _ in range(steps):
        trainer.train_step(np.zeros((1, 1)))
        points.append(np.array([G.params["theta"][0], D.params["weight"][0, 0]]))
    return np.array(points)


def analyse(learning_rates=LEARNING_RATES):
    """Every case: v's Jacobian at the equilibrium (numeric and closed form), its eigenvalues, and the
    eigenvalues and spectral radius of both discrete schemes at each learning rate. JSON-ready."""
    report = []
    for name, (_, _, point, closed, note) in cases().items():
        game = dirac_game(name)
        w = np.array(point, dtype=np.float64)
        numeric = game.jacobian(w)
        equilibrium = bool(np.abs(game.v(w)).max() < 1e-12)
        exact = np.array(closed, dtype=np.float64)
        maps = []
        for scheme in SCHEMES:
            for lr in learning_rates:
                jac = map_jacobian(step_map(game, scheme, lr), w)
                values = np.linalg.eigvals(jac)
                exact_values = np.linalg.eigvals(closed_form_map(exact, scheme, lr))
                maps.append({"scheme": scheme, "lr": lr, "eigenvalues": eigenvalue_pairs(values),
                             "closed_form": eigenvalue_pairs(exact_values),
                             "spectral_radius": float(np.abs(values).max()),
                             "verdict": _verdict(np.abs(values).max(), equilibrium)})
        report.append({"name": name, "point": list(point), "v_at_point": game.v(w).tolist(),
                       "equilibrium": equilibrium,
                       "jacobian": numeric.tolist(), "closed_form_jacobian": exact.tolist(),
                       "jacobian_error": float(np.abs(numeric - exact).max()),
                       "eigenvalues": eigenvalue_pairs(np.linalg.eigvals(numeric)),
                       "closed_form_eigenvalues": eigenvalue_pairs(np.linalg.eigvals(exact)),
                       "note": note, "maps": maps,
                       "trajectories": {scheme: _distances(trajectory(game, scheme, TRAJECTORY_LR, START,
                                                                       TRAJECTORY_STEPS)) for scheme in SCHEMES}})
        set_flat_parameters(w, *game.models)
    return {"method": "v from GANTrainer's D and G steps (float64, frozen optimizers); Jacobians by "
                      "fourth-order central differences, h = 1e-3",
            "cases": report}


def _distances(points):
    """Distance of the iterates from the equilibrium: at the start, at the end, and the range over the last 50."""
    radius = np.linalg.norm(points, axis=1)
    return {"lr": TRAJECTORY_LR, "steps": len(points) - 1, "start": float(radius[0]), "end": float(radius[-1]),
            "last_50": [float(radius[-50:].min()), float(radius[-50:].max())]}


def _verdict(radius, equilibrium=True, tol=1e-6):
    if not equilibrium:   # WGAN-GP: a local property of one side, no fixed point to converge to
        where = "inside" if radius < 1 - tol else "on" if radius <= 1 + tol else "outside"
        return f"{where} the unit circle, but v != 0 here: no equilibrium to converge to"
    if radius < 1 - tol:
        return "converges (inside the unit circle)"
    if radius <= 1 + tol:
        return "circles (on the unit circle)"
    return "diverges (outside the unit circle)"


# -- figures ------------------------------------------------------------------------------------------

def field_on_grid(game, extent=2.0, n=21):
    """v on an n x n grid of (theta, psi) in [-extent, extent]^2: (grid, array (2, n, n), psi along rows)."""
    grid = np.linspace(-extent, extent, n)
    v = np.zeros((2, n, n))
    for i, psi in enumerate(grid):
        for j, theta in enumerate(grid):
            v[:, i, j] = game.v(np.array([theta, psi]))
    return grid, v


def write_figures(out, report, lr=TRAJECTORY_LR, steps=TRAJECTORY_STEPS):
    """dirac_fields.png and dirac_eigenvalues.png in ``out``; returns their paths."""
    from pathlib import Path

    from .figures import save_dirac_eigenvalues, save_dirac_fields
    fields = []
    for case in report["cases"]:
        game = dirac_game(case["name"])
        grid, v = field_on_grid(game)
        fields.append({"name": case["name"], "grid": grid, "v": v, "trajectories": {
            f"{scheme}, lr {lr:g}": trajectory(game, scheme, lr, START, steps) for scheme in SCHEMES}})
    out = Path(out)
    return [save_dirac_fields(out / "dirac_fields.png", fields), save_dirac_eigenvalues(out / "dirac_eigenvalues.png", report)]
