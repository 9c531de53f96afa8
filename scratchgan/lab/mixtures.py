"""2-D mixtures of Gaussians, how many of their modes a generator covers, and small MLP GANs to train on them.

The two classic toy problems (Metz et al. 2017, Srivastava et al. 2017):

- ``ring``: 8 Gaussians evenly spaced on a circle of radius 2, standard deviation 0.02;
- ``grid``: 25 Gaussians on the 5 x 5 grid {-4, -2, 0, 2, 4}^2, standard deviation 0.05.

``coverage`` scores 2,500 generated points: a point is *high quality* when it lies within
3 standard deviations of its nearest mode, and a mode is *covered* when at least 20 of
the high-quality points are its own (our threshold: a fifth of a uniform share on the
grid, a twelfth on the ring).

The models are small tanh MLPs (smooth, so the Jacobian lab's finite differences never
straddle a kink), trained by the library's ``GANTrainer`` with the fix options of the original
game's recipes: Salimans et al.'s fixes (``gan/fixes.py``: ``improve``).
"""
from dataclasses import dataclass

import numpy as np

from .. import backend
from .. import layers as L
from ..gan.fixes import FIX_DEFAULTS, improve
from ..gan.objectives import get_head
from ..gan.recipes import Setup
from ..gan.trainer import GANConfig, GANTrainer
from ..optim import SGD, Adam

EVAL_SAMPLES = 2500
MIN_MODE_SAMPLES = 20


@dataclass
class Mixture:
    name: str
    centers: np.ndarray     # (K, 2)
    std: float

    def sample(self, n, rng):
        """n points (float64): a uniformly chosen mode plus Gaussian noise."""
        modes = rng.integers(len(self.centers), size=n)
        return self.centers[modes] + self.std * rng.standard_normal((n, 2))

    @property
    def extent(self):
        return float(np.abs(self.centers).max()) + 1.5


def ring(n_modes=8, radius=2.0, std=0.02):
    angles = 2 * np.pi * np.arange(n_modes) / n_modes
    return Mixture("ring", radius * np.stack([np.cos(angles), np.sin(angles)], axis=1), std)


def grid(side=5, spacing=2.0, std=0.05):
    ticks = spacing * (np.arange(side) - (side - 1) / 2)
    return Mixture("grid", np.array([(x, y) for x in ticks for y in ticks]), std)


MIXTURES = {"ring": ring, "grid": grid}


def get_mixture(name):
    try:
        return MIXTURES[name]()
    except KeyError:
        raise ValueError(f"unknown mixture {name!r}; expected one of {sorted(MIXTURES)}") from None


def coverage(points, mixture, min_samples=MIN_MODE_SAMPLES):
    """{"modes_covered", "high_quality" (fraction), "per_mode" (high-quality counts)} of 2-D ``points``."""
    points = np.asarray(backend.asnumpy(points), dtype=np.float64)
    distances = np.linalg.norm(points[:, None, :] - mixture.centers[None], axis=2)
    nearest, closest = distances.argmin(axis=1), distances.min(axis=1)
    good = closest < 3 * mixture.std
    per_mode = np.bincount(nearest[good], minlength=len(mixture.centers))
    return {"modes_covered": int((per_mode >= min_samples).sum()), "modes": len(mixture.centers),
            "high_quality": float(good.mean()), "per_mode": per_mode.tolist()}


# -- the models ---------------------------------------------------------------------------------
TOY_DEFAULTS = {"z_dim": 2, "hidden": 128, "activation": "tanh", "batch_size": 256, "lr": 1e-3, "d_lr": None, "beta1": 0.5,
                "optimizer": "adam", "loss": "non-saturating", "k": 1, "label_smoothing": 0.0, "seed": 0,
                "r1": 0.0, **FIX_DEFAULTS}


def toy_setup(options):
    """The Setup (recipes.py) of a toy MLP GAN: G = z -> h tanh -> h tanh -> 2, D = 2 -> h tanh -> h tanh -> 1
    (a logit), with the fixes ``options`` switch on applied by ``improve`` as for those recipes."""
    o = {**TOY_DEFAULTS, **options}
    unknown = sorted(set(options) - set(TOY_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown toy option(s) {unknown}; expected some of {sorted(TOY_DEFAULTS)}")
    backend.manual_seed(o["seed"])
    h, act = o["hidden"], o["activation"]
    G = L.Chain(L.Dense(o["z_dim"], h, act), L.Dense(h, h, act), L.Dense(h, 2))
    D = L.Chain(L.Dense(2, h, act), L.Dense(h, h, act), L.Dense(h, 1))
    opt_g, opt_d = _optimizer(G, o, o["lr"]), _optimizer(D, o, o["d_lr"] or o["lr"])
    config = GANConfig(z_dim=o["z_dim"], batch_size=o["batch_size"], k=o["k"], g_loss=o["loss"],
                       label_smoothing=o["label_smoothing"], seed=o["seed"], n_progress=1)
    setup = Setup(G, D, opt_g, opt_d, get_head("logit"), config, lambda x: np.asarray(x, dtype=np.float32),
                  lambda y: y, (2,))
    setup = improve(setup, o, (2,))
    if o["r1"]:
        from .game import FiniteDifferenceR1
        setup.extensions = [*setup.extensions, FiniteDifferenceR1(o["r1"])]
    return setup


def _optimizer(model, o, lr):
    if o["optimizer"] == "adam":
        return Adam(model, lr=lr, betas=(o["beta1"], 0.999))
    if o["optimizer"] == "sgd":
        return SGD(model, lr=lr)
    raise ValueError(f"unknown optimizer {o['optimizer']!r}; expected adam or sgd")


class ToyRun:
    """A toy GAN training run: the trainer, fresh real batches each step, and per-"epoch" snapshots.

    An epoch here is ``steps_per_epoch`` training steps (the data are infinite). After each one the
    run records 2,500 samples from fixed noise and their coverage.
    """

    def __init__(self, mixture, options=None, steps_per_epoch=250, dtype=np.float32):
        self.mixture, self.options = mixture, dict(options or {})
        self.setup = toy_setup(self.options)
        if dtype != np.float32:
            self.setup.G.to(dtype=dtype)
            self.setup.D.to(dtype=dtype)
        self.dtype = dtype
        self.trainer = GANTrainer.from_setup(self.setup)
        seed = self.setup.config.seed
        self.data_rng = np.random.default_rng(seed + 10)
        self.eval_noise = np.random.default_rng(seed + 11).standard_normal(
            (EVAL_SAMPLES, self.setup.config.z_dim)).astype(dtype)
        self.steps_per_epoch = steps_per_epoch
        self.snapshots, self.scores = [self.samples()], [coverage(self.samples(), mixture)]

    def samples(self):
        return np.asarray(backend.asnumpy(self.trainer.sample(noise=self.eval_noise)), dtype=np.float64)

    def real_batch(self):
        return self.mixture.sample(self.setup.config.batch_size, self.data_rng).astype(self.dtype)

    def train_epoch(self, callback=None):
        for _ in range(self.steps_per_epoch):
            self.trainer.train_step(self.real_batch())
            if callback is not None:
                callback(self)
        self.trainer.flush()
        points = self.samples()
        self.snapshots.append(points)
        self.scores.append(coverage(points, self.mixture))
        return self.scores[-1]

    def train(self, epochs, callback=None, epoch_callback=None):
        for _ in range(epochs):
            self.train_epoch(callback)
            if epoch_callback is not None:
                epoch_callback(self)
        return self
