"""The leading eigenvalues of a real network's game Jacobian, matrix-free.

For an MLP GAN with n parameters (G's and D's together, thousands), J = dv/dw is n x n and
never formed. ARPACK (``scipy.sparse.linalg.eigs``) needs only products J u, and ``Game.jvp``
gives each one from two evaluations of v (the trainer's own D and G steps, float64) by
central differences along u. ``which="LR"`` asks for the eigenvalues of largest real part
(the directions that grow: instability), ``"LM"`` for the largest in magnitude (the fastest
rotations and decays, which bound the learning rate).

The game is the minibatch game on a *fixed* real batch and noise batch (512 each by
default), so v is a deterministic function of w.

Trained by Adam on fresh minibatches (``track_spectrum``), the networks never reach a point where
that v vanishes. ``track_full_batch`` plays the fixed game itself instead: plain alternating
gradient steps on one batch, so J is the Jacobian of exactly the dynamics being run, and a run can
converge (v -> 0, every eigenvalue's real part <= 0) or not.
"""
import copy

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs

from .. import backend
from .game import Game, frozen_trainer, set_flat_parameters
from .mixtures import ToyRun, coverage, ring, toy_setup

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


def leading_eigenvalues(game, k=6, which="LR", tol=1e-5, seed=0, maxiter=None, ncv=None):
    """The k eigenvalues of J at the game's current parameters that ARPACK's ``which`` picks,
    and the number of Jacobian-vector products it took."""
    w = game.w
    count = [0]

    def matvec(u):
        count[0] += 1
        return game.jvp(w, np.asarray(u, dtype=np.float64).ravel())

    operator = LinearOperator((len(w), len(w)), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(len(w))
    try:
        values = eigs(operator, k=k, which=which, tol=tol, v0=v0, return_eigenvectors=False, maxiter=maxiter,
                      ncv=ncv)
    except ArpackNoConvergence as stop:
        # Near a fixed point thousands of eigenvalues crowd round 0 (directions v does not care about) and
        # ARPACK may stall before all k separate: keep the ones that converged (possibly none).
        values = stop.eigenvalues
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


def _spectrum_fields(record):
    """A record's measurements, JSON-ready: the scalars both trackers keep and the eigenvalues as [re, im]."""
    from .game import eigenvalue_pairs
    return {"v_norm": record["v_norm"], "modes": record["modes"], "drift": record["drift"],
            "matvecs": record["matvecs"], "largest_real_part": [_largest_real(e) for e in record["LR"]],
            "eigenvalues_largest_real_part": [eigenvalue_pairs(e) for e in record["LR"]],
            "eigenvalues_largest_imaginary_part": [eigenvalue_pairs(e) for e in record["LI"]]}


def spectrum_report(records):
    """JSON-ready: per run, per measured epoch, the eigenvalues as [re, im] pairs and the scalars."""
    return {label: {"epochs": r["epochs"], **_spectrum_fields(r)} for label, r in records.items()}


# -- gradient play on one fixed batch: a run that converges ---------------------------------------------
#: the two runs of ``scratchgan lab converge``: the same MLP GAN as above, trained by plain alternating gradient
#: steps on *one* fixed game (64 real points, 64 noise vectors), so the game J describes is the one being played
FULL_BATCH_RUNS = {
    "R1, gamma 1, full batch": {"hidden": 64, "r1": 1.0},
    "no regularization, full batch": {"hidden": 64},
}
FULL_BATCH_SAMPLES = 64
FULL_BATCH_LR = 0.2
#: ARPACK's effort for "LR" (restarts; Krylov basis size; tolerance) during the run and at the end: near a fixed
#: point the largest real parts sit in a crowd of near-zero eigenvalues and separate slowly
LR_EFFORT = {"maxiter": 100, "ncv": None, "tol": 1e-5}
LR_FINAL_EFFORT = {"maxiter": 1000, "ncv": 40, "tol": 1e-3}


def play(game, w, lr):
    """One alternating gradient step on the fixed game: D's parameters move along v_D, then G's along v_G
    computed at the new D. Returns the new parameters and v at the old ones."""
    v = game.v(w)
    w = w.copy()
    w[game.n_theta:] += lr * v[game.n_theta:]
    w[:game.n_theta] += lr * game.v(w)[:game.n_theta]
    return w, v


def track_full_batch(options, steps, every, lr=FULL_BATCH_LR, samples=FULL_BATCH_SAMPLES, k=4, seed=0, log=None):
    """Gradient play on one fixed batch of ``samples`` real points and noise vectors for ``steps`` steps; before
    the first and after every ``every``-th step: ||v||, the game's samples (modes they reach, high-quality share,
    mean move since the last measurement) and the leading eigenvalues of J (ARPACK, as ``track_spectrum``)."""
    run = ToyRun(ring(), {**options, "seed": seed}, dtype=np.float64)
    game = float64_game(run, samples=samples, seed=seed)
    record = {"steps": [], "LR": [], "LI": [], "v_norm": [], "modes": [], "high_quality": [], "drift": [],
              "matvecs": [], "points": [], "real": np.asarray(backend.asnumpy(game.real), np.float64)}
    w = game.w

    def measure(step, effort):
        set_flat_parameters(w, *game.models)
        points = np.asarray(backend.asnumpy(game.trainer.G.forward(game.noise, train=False)), np.float64)
        score = coverage(points, run.mixture, min_samples=2)
        products = 0
        for which in WHICH:
            values, count = leading_eigenvalues(game, k=k, which=which, **(effort if which == "LR" else {}))
            record[which].append(values)
            products += count
        previous = record["points"][-1] if record["points"] else points
        record["steps"].append(step)
        record["v_norm"].append(float(np.linalg.norm(game.v(w))))
        record["modes"].append(score["modes_covered"])
        record["high_quality"].append(score["high_quality"])
        record["drift"].append(float(np.linalg.norm(points - previous, axis=1).mean()))
        record["matvecs"].append(products)
        record["points"].append(points)
        if log is not None:
            log(f"step {step}: ||v|| {record['v_norm'][-1]:.3e}, largest real part {_largest_real(record['LR'][-1]):+.2e}, "
                f"{score['modes_covered']} modes, {100 * score['high_quality']:.0f}% high quality, "
                f"moved {record['drift'][-1]:.4f} ({products} Jacobian-vector products)")

    measure(0, LR_EFFORT)
    for step in range(1, steps + 1):
        w, _ = play(game, w, lr)
        if step % every == 0 or step == steps:
            measure(step, LR_FINAL_EFFORT if step == steps else LR_EFFORT)
    return record


def _largest_real(values):
    """The largest real part among ARPACK's eigenvalues (NaN when none converged)."""
    return float(np.max(values.real)) if len(values) else float("nan")


def full_batch_report(records):
    """JSON-ready, as ``spectrum_report``, for ``track_full_batch``'s records (the samples as lists of [x, y])."""
    return {label: {"steps": r["steps"], **_spectrum_fields(r), "high_quality": r["high_quality"],
                    "final_samples": r["points"][-1].round(6).tolist(), "real": r["real"].round(6).tolist()}
            for label, r in records.items()}
