"""Wasserstein GANs: the critic's game, its constraints (weight clipping, gradient penalty), recipes.

WGAN (Arjovsky, Chintala & Bottou 2017) trains a critic D, without a sigmoid, to maximise
mean D(real) - mean D(fake) over 1-Lipschitz functions; that maximum is the Wasserstein-1
(earth mover's) distance between the data and the generator's distribution, and G minimises it:

    critic loss = mean D(fake) - mean D(real)        G loss = -mean D(fake)

so -critic loss, mean D(real) - mean D(fake), is the critic's estimate of the distance, recorded
every step as ``wasserstein``. The Lipschitz constraint is enforced

- by clipping every critic weight to [-c, c] after each critic step (WGAN, ``WeightClipping``), or
- by a penalty lambda E[(||grad D(x_hat)|| - 1)^2] on random interpolates x_hat = eps x + (1 - eps)
  G(z) (WGAN-GP, Gulrajani et al. 2017, ``GradientPenaltyExtension``), whose gradient with
  respect to the critic's weights is a gradient of a gradient: the double backward
  (docs/double_backward.md, scratchgan/penalties.py).

``R1Extension`` is the same machinery on real data (Mescheder et al. 2018), for the
cross-entropy game. docs/wasserstein.md has the recipes, the measurements and their reading.
"""
import numpy as np

from .. import backend
from .. import layers as L
from ..data import transforms
from ..optim import Adam, RMSprop
from ..penalties import GradientPenalty, R1Penalty

# -- the game -----------------------------------------------------------------------------------


class WassersteinGame:
    """The critic's game: D's loss on a real batch is -mean D(x), on a fake batch +mean D(G(z));
    G's loss is -mean D(G(z)). D's output is one unit per sample, any shape (N, 1, ...).

    History: ``d_real`` and ``d_fake`` (mean critic value on each batch) and ``wasserstein``,
    their difference: the critic's estimate of the Wasserstein distance, -critic loss before
    any penalty. Scores are raw critic values, not probabilities.
    """

    stat_keys = ("d_real", "d_fake", "wasserstein")
    score_is_probability = False

    def d_loss(self, out, is_real, labels, rng):
        sign = -1 if is_real else 1
        return self._signed_mean(out, sign)

    def g_loss(self, out, labels):
        return self._signed_mean(out, -1)

    @staticmethod
    def _signed_mean(out, sign):
        """(sign * mean of D's outputs, its gradient sign / N for each output)."""
        f = out.dtype.type
        value = f(sign) * out.mean()
        return value, backend.get_xp(out).full(out.shape, sign / len(out), dtype=out.dtype)

    def score(self, out):
        return out.reshape(len(out))

    def stats(self, score_real, score_fake):
        real, fake = score_real.mean(), score_fake.mean()
        return [real, fake, real - fake]


# -- extensions: constraints on the critic -------------------------------------------------------------


class WeightClipping:
    """WGAN's constraint: after every critic step, every parameter of D is clipped to [-c, c]."""

    def __init__(self, c=0.01):
        if not (np.isfinite(c) and c > 0):
            raise ValueError(f"WeightClipping: c must be a finite number > 0, got {c!r}")
        self.c = c

    def after_d_step(self, trainer):
        for _, layer, key in trainer.D.named_parameters():
            param = layer.params[key]
            param.clip(-self.c, self.c, out=param)


class _PenaltyExtension:
    """A penalty (scratchgan.penalties) added to the critic's loss at every critic step."""

    def __init__(self, penalty):
        self.penalty = penalty
        self.history_keys = (penalty.name,)

    def d_penalty(self, trainer, batch):
        if trainer.conditional:
            raise ValueError(f"{type(self).__name__}: gradient penalties on conditional critics are not supported")
        value, _ = self.penalty.value_and_grads(trainer.D, self.points(trainer, batch))
        return value


class GradientPenaltyExtension(_PenaltyExtension):
    """WGAN-GP: lambda E[(||grad_x D(x_hat)|| - 1)^2] at x_hat = eps x + (1 - eps) G(z), one
    eps ~ U[0, 1] per sample pair (from the trainer's seeded generator, so runs resume exactly)."""

    def __init__(self, weight=10.0):
        super().__init__(GradientPenalty(weight))

    def points(self, trainer, batch):
        real, fake = batch["real"], batch["fake"]
        eps = trainer.rng.uniform((len(real),) + (1,) * (real.ndim - 1), dtype=real.dtype.type, xp=trainer.xp)
        return fake + eps * (real - fake)


class R1Extension(_PenaltyExtension):
    """R1: gamma / 2 E||grad_x D(x)||^2 on the real batch (Mescheder et al. 2018)."""

    def __init__(self, gamma=10.0):
        super().__init__(R1Penalty(gamma))

    def points(self, trainer, batch):
        return batch["real"]


def penalty_extensions(options):
    """The extensions a recipe's ``gp`` / ``r1`` / ``clip`` options ask for (0 or missing: none)."""
    extensions = []
    if options.get("gp"):
        extensions.append(GradientPenaltyExtension(options["gp"]))
    if options.get("r1"):
        extensions.append(R1Extension(options["r1"]))
    if options.get("clip"):
        extensions.append(WeightClipping(options["clip"]))
    return extensions


# -- models --------------------------------------------------------------------------------------

NORMS = ("batchnorm", "layernorm", "none")
ARCHS = ("dcgan", "mlp")


def _mlp_models(o, image_shape):
    """The Flux tutorial's MLP, with a critic (one output unit, no softmax): G z -> 500 tanh -> pixels
    sigmoid (grey levels in [0, 1]), D pixels -> 500 tanh -> 1."""
    n_pixels = int(np.prod(image_shape))
    G = L.Chain(L.Dense(o["z_dim"], 500, "tanh"), L.Dense(500, n_pixels, "sigmoid"))
    D = L.Chain(L.Dense(n_pixels, 500, "tanh"), L.Dense(500, 1))

    def preprocess(images):
        return transforms.flatten(transforms.to_float(images))

    return G, D, preprocess, (lambda y: y.reshape(len(y), *image_shape)), ()


def _dcgan_models(o, image_shape):
    """DCGAN's generator and discriminator (recipes.py) with the normalisations the options name;
    the critic ends in its raw output (no sigmoid anywhere: the Wasserstein game needs none)."""
    from .recipes import dcgan_discriminator, dcgan_generator
    channels, height, width = image_shape
    G = dcgan_generator(o["z_dim"], channels, height, o["ngf"], norm=o["g_norm"])
    D = dcgan_discriminator(channels, height, o["ndf"], norm=o["d_norm"])
    return G, D, transforms.to_tanh_range, transforms.from_tanh_range, (1, 1)


def _models(o, image_shape):
    return (_dcgan_models if o["arch"] == "dcgan" else _mlp_models)(o, image_shape)


def _config(o, noise_shape):
    from .trainer import GANConfig
    return GANConfig(z_dim=o["z_dim"], noise_shape=noise_shape, batch_size=o["batch_size"], k=o["k"],
                     seed=o["seed"])


def build_wgan(o, image_shape):
    """WGAN: RMSprop for both, weights of D clipped to [-clip, clip] after each critic step."""
    from .recipes import Setup
    G, D, preprocess, to_unit, noise_shape = _models(o, image_shape)
    opt_g, opt_d = RMSprop(G, lr=o["lr"]), RMSprop(D, lr=o["d_lr"] or o["lr"])
    return Setup(G, D, opt_g, opt_d, None, _config(o, noise_shape), preprocess, to_unit, image_shape,
                 objective=WassersteinGame(), extensions=penalty_extensions(o))


def build_wgan_gp(o, image_shape):
    """WGAN-GP: Adam for both, the gradient penalty on interpolates (and no clipping)."""
    from .recipes import Setup
    G, D, preprocess, to_unit, noise_shape = _models(o, image_shape)
    betas = (o["beta1"], o["beta2"])
    opt_g, opt_d = Adam(G, lr=o["lr"], betas=betas), Adam(D, lr=o["d_lr"] or o["lr"], betas=betas)
    return Setup(G, D, opt_g, opt_d, None, _config(o, noise_shape), preprocess, to_unit, image_shape,
                 objective=WassersteinGame(), extensions=penalty_extensions(o))


# -- recipes ----------------------------------------------------------------------------------------

def _choice(values):
    return (lambda v: v in values), f"one of {', '.join(values)}"


def _positive_number():
    return (lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and np.isfinite(v) and v > 0), "a finite number > 0"


def _unit_interval():
    ok, _ = _positive_number()
    return (lambda v: (v == 0 or ok(v)) and v < 1), "a number in [0, 1)"


CHECKS = {"arch": _choice(ARCHS), "d_norm": _choice(NORMS), "g_norm": _choice(NORMS),
          "gp": _positive_number(), "clip": _positive_number(), "beta2": _unit_interval()}
GP_CHECKS = {**CHECKS, "d_norm": _choice(("layernorm", "none"))}   # BatchNorm mixes samples: no per-sample gradient

_RUN = {"z_dim": 100, "batch_size": 64, "seed": 0, "epochs": 25, "g_steps": None, "arch": "dcgan",
        "ngf": 64, "ndf": 64, "d_norm": "none", "g_norm": "batchnorm", "d_lr": None}
WGAN_DEFAULTS = {**_RUN, "lr": 5e-5, "k": 5, "clip": 0.01}
WGAN_GP_PAPER_DEFAULTS = {**_RUN, "lr": 1e-4, "beta1": 0.0, "beta2": 0.9, "k": 5, "gp": 10.0}
# the search's best setting (docs/wasserstein.md, one seed): FD 8.70 at 780 generator steps and 4.51 at 2,340, all
# ten classes at both, against the paper's 17.7 (9/10) and 9.02
WGAN_GP_DEFAULTS = {**WGAN_GP_PAPER_DEFAULTS, "lr": 5e-4, "beta1": 0.5}


def recipes():
    """The recipes of this module, for recipes.py's registry."""
    from .recipes import DCGAN_SIZES, Recipe
    sizes = DCGAN_SIZES
    return [
        Recipe("wgan", "WGAN (Arjovsky et al. 2017): critic weights clipped to [-0.01, 0.01], RMSprop 5e-5, "
                       "5 critic steps per G step; DCGAN-28 models (critic without BatchNorm) or --arch mlp",
               WGAN_DEFAULTS, build_wgan, image_sizes=sizes, checks=CHECKS),
        Recipe("wgan-gp", "WGAN-GP (Gulrajani et al. 2017) with Adam 5e-4, betas (0.5, 0.9): better than the paper's "
                          "settings at 780 and 2,340 G steps (docs/wasserstein.md); DCGAN-28 models, critic without "
                          "BatchNorm",
               WGAN_GP_DEFAULTS, build_wgan_gp, image_sizes=sizes, checks=GP_CHECKS),
        Recipe("wgan-gp-paper", "WGAN-GP with the paper's settings: gradient penalty 10, 5 critic steps, "
                                "Adam 1e-4, betas (0, 0.9), batch 64; DCGAN-28 models",
               WGAN_GP_PAPER_DEFAULTS, build_wgan_gp, image_sizes=sizes, checks=GP_CHECKS),
    ]
