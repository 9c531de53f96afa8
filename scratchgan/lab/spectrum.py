"""The leading eigenvalues of a real network's game Jacobian, matrix-free.

For an MLP GAN with n parameters (G's and D's together, thousands), J = dv/dw is n x n and
never formed. ARPACK (``scipy.sparse.linalg.eigs``) needs only products J u, and ``Game.jvp``
gives each one from two evaluations of v (the trainer's own D and G steps, float64) by
central differences along u. ``which="LR"`` asks for the eigenvalues of largest real part
(the directions that grow: instability), ``"LM"`` for the largest in magnitude (the fastest
rotations and decays, which bound the learning rate).

The game is the minibatch game on a *fixed* real batch and noise batch (512 each by
default), so v is a deterministic function of w.
"""
import copy

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigs

from .game import Game, frozen_trainer
from .mixtures import toy_setup

GAME_SAMPLES = 512


class _PenaltyOnly:
    """An extension seen through its penalty hooks only, on a private copy of its state: evaluating
    v must neither update a running mean nor touch the training run's extension."""

    def __init__(self, extension):
        self._extension = copy.deepcopy(extension)
        self.history_keys = getattr(extension, "history_keys", ())
        for hook in ("d_penalty", "g_penalty"):
            if hasattr(extension, hook):
                setattr(self, hook, getattr(self._extension, hook))


def float64_game(run, samples=GAME_SAMPLES, seed=0):
    """The Game of a ToyRun's current models, copied into float64: fixed real and noise batches."""
    setup = toy_setup(run.options)
    for mine, theirs in ((setup.G, run.setup.G), (setup.D, run.setup.D)):
        mine.load_state_dict(theirs.state_dict())
        mine.to(dtype=np.float64)
    objective = setup.objective or run.trainer.objective
    extensions = [_PenaltyOnly(ext) for ext in run.trainer.extensions
                  if hasattr(ext, "d_penalty") or hasattr(ext, "g_penalty")]
    trainer = frozen_trainer(setup.G, setup.D, objective, extensions, z_dim=setup.config.z_dim)
    rng = np.random.default_rng(seed)
    real = run.mixture.sample(samples, rng)
    noise = rng.standard_normal((samples, setup.config.z_dim))
    return Game(trainer, real, noise)


def leading_eigenvalues(game, k=6, which="LR", tol=1e-5, seed=0, maxiter=None):
    """The k eigenvalues of J at the game's current parameters that ARPACK's ``which`` picks,
    and the number of Jacobian-vector products it took."""
    w = game.w
    count = [0]

    def matvec(u):
        count[0] += 1
        return game.jvp(w, np.asarray(u, dtype=np.float64).ravel())

    operator = LinearOperator((len(w), len(w)), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(len(w))
    values = eigs(operator, k=k, which=which, tol=tol, v0=v0, return_eigenvectors=False, maxiter=maxiter)
    return np.sort_complex(values), count[0]


# -- tracked over training: a run that converges and one that circles ---------------------------------
#: the two runs of ``scratchgan lab mixture``: the same MLP GAN (64 tanh units per layer, Adam) on the ring,
#: trained in float64, without and with R1 (here by finite differences of the hand-written gradients)
SPECTRUM_RUNS = {
    "no regularization": {"hidden": 64},
    "R1, gamma 1": {"hidden": 64, "r1": 1.0},
}
WHICH = {"LR": "largest real part", "LI": "largest imaginary part"}


def track_spectrum(run, epochs, k=4, every=1, log=None):
    """Train ``run`` (a ToyRun, float64) for ``epochs``; before training and after every ``every``-th epoch
    record the leading eigenvalues of its game Jacobian (ARPACK: the k of largest real part, the instability,
    and the k of largest imaginary part, the rotation), ||v||, the modes covered, and how far the fixed-noise
    samples moved since the previous measurement (mean distance: zero for iterates at rest)."""
    record = {"epochs": [], "LR": [], "LI": [], "v_norm": [], "modes": [], "drift": [], "matvecs": []}
    previous = run.snapshots[-1]

    def measure(epoch):
        nonlocal previous
        game = float64_game(run)
        products = 0
        for which in WHICH:
            values, count = leading_eigenvalues(game, k=k, which=which)
            record[which].append(values)
            products += count
        record["epochs"].append(epoch)
        record["v_norm"].append(float(np.linalg.norm(game.v())))
        record["modes"].append(run.scores[-1]["modes_covered"])
        record["drift"].append(float(np.linalg.norm(run.snapshots[-1] - previous, axis=1).mean()))
        record["matvecs"].append(products)
        previous = run.snapshots[-1]
        if log is not None:
            rot = record["LI"][-1][np.argmax(record["LI"][-1].imag)]
            log(f"epoch {epoch}: largest real part {record['LR'][-1].real.max():+.4f}, rotation "
                f"{rot.real:+.4f}{rot.imag:+.4f}i, ||v|| {record['v_norm'][-1]:.3e}, drift "
                f"{record['drift'][-1]:.4f}, {record['modes'][-1]} modes ({products} Jacobian-vector products)")

    measure(0)
    for epoch in range(1, epochs + 1):
        run.train_epoch()
        if epoch % every == 0 or epoch == epochs:
            measure(epoch)
    return record


def spectrum_report(records):
    """JSON-ready: per run, per measured epoch, the eigenvalues as [re, im] pairs and the scalars."""
    from .game import eigenvalue_pairs
    return {label: {"epochs": r["epochs"], "v_norm": r["v_norm"], "modes": r["modes"], "drift": r["drift"],
                    "matvecs": r["matvecs"], "largest_real_part": [float(e.real.max()) for e in r["LR"]],
                    "eigenvalues_largest_real_part": [eigenvalue_pairs(e) for e in r["LR"]],
                    "eigenvalues_largest_imaginary_part": [eigenvalue_pairs(e) for e in r["LI"]]}
            for label, r in records.items()}
