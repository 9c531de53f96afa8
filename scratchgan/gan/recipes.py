"""Named training recipes: the models, optimizers, data scaling and defaults of each demo.

A recipe turns a dict of options into a ``Setup``. Checkpoints store the recipe's name and
options, so ``scratchgan sample`` can rebuild the generator from a checkpoint alone.

- ``mlp``: the Julia/Flux tutorial. Binarized MNIST, batch 200, z ~ N(0, I_28),
  G = Dense(28, 500, tanh) -> Dense(500, 784, sigmoid),
  D = Dense(784, 500, tanh) -> Dense(500, 2) -> Softmax (unit 0 = P(real)), Adam.
- ``goodfellow2014``: the MNIST model of the original GAN paper (Goodfellow et al. 2014,
  from its public Pylearn2 configuration): G = 100 -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid,
  D = Maxout(240 x 5) -> Maxout(240 x 5) -> Dense(1) -> sigmoid (in the loss), with dropout,
  SGD + momentum, and the paper's initial weight ranges.
- ``dcgan``: DCGAN (Radford et al. 2015) for 28x28 (DCGAN-28 is the benchmark's dcgan workload), 32x32 and 64x64.
"""
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import layers as L
from ..data import transforms
from ..init import uniform
from ..optim import SGD, Adam
from .fixes import FIX_CHECKS, FIX_DEFAULTS, improve
from .objectives import G_LOSSES, get_head
from .trainer import GANConfig

COMMON = {"z_dim": None, "batch_size": None, "lr": None, "k": 1, "loss": "non-saturating",
          "label_smoothing": 0.0, "flip_prob": 0.0, "seed": 0, "epochs": None, "g_steps": None}


@dataclass
class Setup:
    G: L.Chain
    D: L.Chain
    opt_g: object
    opt_d: object
    head: object
    config: GANConfig
    preprocess: Callable   # uint8 images (N, C, H, W) -> the float32 array D reads
    to_unit: Callable      # G's output -> images in [0, 1] of shape (N, C, H, W)
    image_shape: tuple     # (C, H, W)
    objective: object = None   # the game, if not the cross-entropy game on ``head`` (objectives.py)
    extensions: list = field(default_factory=list)   # penalties, constraints, averages (trainer.py)


@dataclass
class Recipe:
    name: str
    summary: str
    defaults: dict
    build: Callable        # (options, image_shape) -> Setup
    image_sizes: tuple = ()  # the square sizes it builds models for; () for any
    checks: dict = field(default_factory=dict)  # checks of its own options, beside OPTION_CHECKS
    check_together: Callable = None  # options -> None, or ValueError for options that do not go together
    family: Callable = None  # how a run trains it (run.py's protocol); None: a noise-to-image GAN (run.GANRun)

    @property
    def draws_samples(self):
        """Whether its generator samples images from noise (False for the image-to-image families)."""
        return self.family is None or self.family.draws_samples

    def check_image_size(self, size):
        """ValueError unless this recipe can train on size x size images (checked before loading data)."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"image size must be a positive integer, got {size!r}")
        if self.image_sizes and size not in self.image_sizes:
            raise ValueError(f"{self.name} supports images of size {', '.join(map(str, self.image_sizes))}, "
                             f"not {size} (--image-size)")

    def options(self, **overrides):
        """This recipe's defaults with ``overrides`` applied (None values keep the default).

        Every option is checked here, before any work (OPTION_CHECKS): ValueError names it.
        """
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(f"recipe {self.name!r} has no option(s) {unknown}; "
                             f"its options are {sorted(self.defaults)}")
        merged = {**self.defaults, **{k: v for k, v in overrides.items() if v is not None}}
        for name, value in merged.items():
            check_option(name, value, self.checks)
        if self.check_together is not None:
            self.check_together(merged)
        return merged

    def setup(self, options, image_shape=(1, 28, 28)):
        """The recipe's models, optimizers and game, with the fixes its options switch on (fixes.py)."""
        return improve(self.build(options, tuple(image_shape)), options, tuple(image_shape))


# -- option checks: every option of every recipe, before any work -----------------------------
def _integer(low):
    return (lambda v: _is_int(v) and v >= low), f"an integer >= {low}"


def _number(low, high, low_open=False, high_open=True):
    def ok(v):
        if not _is_number(v) or not math.isfinite(v):
            return False
        return (v > low if low_open else v >= low) and (high is None or (v < high if high_open else v <= high))
    upper = "" if high is None else f", {high}{')' if high_open else ']'}"
    lower = f"{'(' if low_open else '['}{low}"
    return ok, (f"a finite number > {low}" if high is None and low_open else f"a number in {lower}{upper}")


def _optional(check):
    ok, wanted = check
    return (lambda v: v is None or ok(v)), f"{wanted} (or unset)"


OPTION_CHECKS = {
    "epochs": _integer(1), "z_dim": _integer(1), "batch_size": _integer(1), "k": _integer(1),
    "seed": _integer(0), "ngf": _integer(1), "ndf": _integer(1), "g_steps": _optional(_integer(1)),
    "lr": _number(0, None, low_open=True), "d_lr": _optional(_number(0, None, low_open=True)),
    "max_norm": _optional(_number(0, None, low_open=True)),
    "momentum": _number(0, 1), "beta1": _number(0, 1),
    "dropout": _number(0, 1), "g_dropout": _number(0, 1), "input_dropout": _number(0, 1),
    "label_smoothing": _number(0, 0.5), "flip_prob": _number(0, 0.5),
    "loss": ((lambda v: v in G_LOSSES), f"one of {', '.join(G_LOSSES)}"),
    "binarize": ((lambda v: isinstance(v, (bool, np.bool_))), "True or False"),
}

# -- issue 15: Salimans et al.'s fixes (gan/fixes.py), off by default: options of the recipes of the
# original, unconditional game (mlp, goodfellow2014, dcgan and dcgan-plus, mlp-improved), which add FIX_DEFAULTS
OPTION_CHECKS.update(FIX_CHECKS)


def check_option(name, value, checks=None):
    """Raise ValueError naming the option unless ``value`` is valid for it: by ``checks`` (a recipe's own,
    same form as OPTION_CHECKS: name -> (predicate, what it wants)), else OPTION_CHECKS. An option
    neither knows is passed as given."""
    check = (checks or {}).get(name) or OPTION_CHECKS.get(name)
    if check is not None and not check[0](value):
        raise ValueError(f"option {name} must be {check[1]}, got {value!r}")


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _config(o, **extra):
    return GANConfig(z_dim=o["z_dim"], batch_size=o["batch_size"], k=o["k"], g_loss=o["loss"],
                     label_smoothing=o["label_smoothing"], flip_prob=o["flip_prob"], seed=o["seed"], **extra)


def _flat_unit(image_shape):
    """Flat [0, 1] pixels back to (N, C, H, W)."""
    return lambda y: y.reshape(len(y), *image_shape)


def _maybe_dropout(p):
    return [L.Dropout(p)] if p else []


# -- mlp: the Flux tutorial --------------------------------------------------------------
def build_mlp(o, image_shape):
    n_pixels = int(np.prod(image_shape))
    G = L.Chain(L.Dense(o["z_dim"], 500, "tanh"), *_maybe_dropout(o["g_dropout"]),
                L.Dense(500, n_pixels, "sigmoid"))
    D = L.Chain(L.Dense(n_pixels, 500, "tanh"), *_maybe_dropout(o["dropout"]),
                L.Dense(500, 2), L.Softmax())
    binarize = o["binarize"]

    def preprocess(images):
        x = transforms.flatten(transforms.to_float(images))
        return transforms.binarize(x) if binarize else x

    return Setup(G, D, Adam(G, lr=o["lr"]), Adam(D, lr=o["lr"]), get_head("softmax"), _config(o),
                 preprocess, _flat_unit(image_shape), image_shape)


MLP = Recipe("mlp", "the Julia/Flux tutorial: binarized MNIST, Dense/tanh/sigmoid, softmax D, Adam",
             {**COMMON, **FIX_DEFAULTS, "z_dim": 28, "batch_size": 200, "lr": 1e-3, "epochs": 20, "dropout": 0.0,
              "g_dropout": 0.0, "binarize": True}, build_mlp)


# -- goodfellow2014: the original GAN paper's MNIST model ---------------------------------
def build_goodfellow2014(o, image_shape):
    """As the paper's Pylearn2 file: weights start U(-0.05, 0.05) in G and U(-0.005, 0.005) in D,
    and each D unit's incoming weights are kept to norm <= 1.9365 (max-norm)."""
    n_pixels = int(np.prod(image_shape))
    g_init, d_init = uniform(0.05), uniform(0.005)
    G = L.Chain(L.Dense(o["z_dim"], 1200, "relu", init=g_init), L.Dense(1200, 1200, "relu", init=g_init),
                L.Dense(1200, n_pixels, "sigmoid", init=g_init))
    D = L.Chain(L.Dropout(o["input_dropout"]), L.Maxout(n_pixels, 240, 5, init=d_init), L.Dropout(o["dropout"]),
                L.Maxout(240, 240, 5, init=d_init), L.Dropout(o["dropout"]), L.Dense(240, 1, init=d_init))
    opt_g = SGD(G, lr=o["lr"], momentum=o["momentum"])
    opt_d = SGD(D, lr=o["lr"], momentum=o["momentum"], max_norm=o["max_norm"])

    def preprocess(images):
        return transforms.flatten(transforms.to_float(images))

    # D's sigmoid output unit is applied inside the loss (logit head): in float32, 1 - sigmoid(z)
    # rounds to 0 for z > 17, where BCE on the probability loses its gradient and D can never
    # recover from calling fakes real; BCE on the logit has no such limit.
    from .wasserstein import penalty_extensions
    return Setup(G, D, opt_g, opt_d, get_head("logit"), _config(o), preprocess,
                 _flat_unit(image_shape), image_shape, extensions=penalty_extensions(o))


GOODFELLOW2014 = Recipe(
    "goodfellow2014", "Goodfellow et al. 2014: ReLU MLP generator, Maxout discriminator with dropout, SGD+momentum",
    {**COMMON, **FIX_DEFAULTS, "z_dim": 100, "batch_size": 100, "lr": 0.1, "momentum": 0.5, "epochs": 20,
     "dropout": 0.5, "input_dropout": 0.2, "max_norm": 1.9365, "gp": 0.0, "r1": 0.0}, build_goodfellow2014,
    checks={"gp": _number(0, None), "r1": _number(0, None)})


# -- dcgan ----------------------------------------------------------------------------------
def norm_layer(kind, channels, size):
    """The normalisation after a convolution with ``channels`` maps of size x size: "batchnorm"
    (DCGAN's, initialised N(1, 0.02)), "layernorm" (per sample over (C, H, W)) or "none"."""
    if kind == "batchnorm":
        return [L.BatchNorm(channels, init="normal_1_0.02")]
    if kind == "layernorm":
        return [L.LayerNorm((channels, size, size))]
    if kind == "none":
        return []
    raise ValueError(f"unknown normalisation {kind!r}; expected batchnorm, layernorm or none")


def dcgan_generator(z_dim, channels, size, ngf, norm="batchnorm"):
    """(N, z, 1, 1) -> (N, channels, size, size) in [-1, 1]; ``norm`` after each hidden layer (norm_layer)."""
    if size == 28:  # DCGAN-28, the benchmark's dcgan workload (docs/performance.md)
        blocks = [(z_dim, 4 * ngf, 7, 1, 0), (4 * ngf, 2 * ngf, 4, 2, 1)]
        last = (2 * ngf, channels)
    else:           # 32: 4 -> 8 -> 16 -> 32;  64: 4 -> 8 -> 16 -> 32 -> 64 (the DCGAN paper)
        n_up = {32: 2, 64: 3}[size]
        widths = [ngf * 2 ** (n_up - i) for i in range(n_up + 1)]
        blocks = [(z_dim, widths[0], 4, 1, 0)] + [(widths[i], widths[i + 1], 4, 2, 1) for i in range(n_up)]
        last = (widths[-1], channels)
    layers, side = [], 1
    for cin, cout, k, s, p in blocks:
        side = (side - 1) * s - 2 * p + k
        layers += [L.ConvTranspose2d(cin, cout, k, s, p, bias=False, init="normal_0.02"),
                   *norm_layer(norm, cout, side), L.ReLU()]
    layers += [L.ConvTranspose2d(*last, 4, 2, 1, bias=False, init="normal_0.02"), L.Tanh()]
    return L.Chain(*layers)


def dcgan_discriminator(channels, size, ndf, norm="batchnorm"):
    """(N, channels, size, size) -> (N, 1, 1, 1) logits; ``norm`` after each conv but the first (norm_layer)."""
    n_down = {28: 2, 32: 3, 64: 4}[size]
    widths = [ndf * 2 ** i for i in range(n_down)]
    layers, cin, side = [], channels, size
    for i, cout in enumerate(widths):
        layers.append(L.Conv2d(cin, cout, 4, 2, 1, bias=False, init="normal_0.02"))
        side = (side + 2 - 4) // 2 + 1                 # each conv halves the side
        if i > 0:
            layers.extend(norm_layer(norm, cout, side))
        layers.append(L.LeakyReLU(0.2))
        cin = cout
    final_kernel = 7 if size == 28 else 4
    layers.append(L.Conv2d(cin, 1, final_kernel, 1, 0, bias=False, init="normal_0.02"))
    return L.Chain(*layers)


DCGAN_SIZES = (28, 32, 64)


def build_dcgan(o, image_shape):
    channels, height, width = image_shape
    if height != width or height not in DCGAN_SIZES:
        raise ValueError(f"dcgan supports square images of size {DCGAN_SIZES}, got {height}x{width}")
    from . import dcgan_plus   # issue 18: the options of a better recipe (all off in dcgan)
    G = dcgan_generator(o["z_dim"], channels, height, o["ngf"])
    D = dcgan_plus.improve_discriminator(dcgan_discriminator(channels, height, o["ndf"], norm=o["d_norm"]), o)
    betas = (o["beta1"], 0.999)
    opt_g = Adam(G, lr=o["g_lr"] or o["lr"], betas=betas)
    opt_d = Adam(D, lr=o["d_lr"] or o["lr"], betas=betas)
    from .wasserstein import penalty_extensions
    config = _config(o, noise_shape=(1, 1))
    return Setup(G, D, opt_g, opt_d, get_head("logit"), config,
                 transforms.to_tanh_range, transforms.from_tanh_range, image_shape,
                 extensions=penalty_extensions(o) + dcgan_plus.extensions(o, G, (config.z_dim, 1, 1)))


def _check_dcgan_penalties(o):
    """A gradient penalty (--gp, --r1) needs per-sample input gradients: no BatchNorm in D."""
    for name in ("gp", "r1"):
        if o[name] and o["d_norm"] == "batchnorm":
            raise ValueError(f"option {name} (a gradient penalty) needs a discriminator without BatchNorm, "
                             f"which mixes the samples of a batch: add --d-norm layernorm or --d-norm none")
    if o.get("vbn") and o.get("ema"):
        raise ValueError("options vbn and ema do not go together: the weight average (--ema) copies G's layers, "
                         "not VirtualBatch's reference batch; use one of them (dcgan-plus has --ema 0.999)")


def _dcgan_checks():
    from . import dcgan_plus
    return {"d_norm": ((lambda v: v in ("batchnorm", "layernorm", "none")), "one of batchnorm, layernorm, none"),
            "gp": _number(0, None), "r1": _number(0, None), **dcgan_plus.CHECKS}


def _dcgan_defaults():
    from . import dcgan_plus
    return {**COMMON, **FIX_DEFAULTS, "z_dim": 100, "batch_size": 128, "lr": 2e-4, "d_lr": None, "beta1": 0.5,
            "epochs": 5, "ngf": 64, "ndf": 64, "d_norm": "batchnorm", "gp": 0.0, "r1": 0.0, **dcgan_plus.OPTIONS}


DCGAN = Recipe("dcgan", "DCGAN (Radford et al. 2015): ConvTranspose/BatchNorm/ReLU G, Conv/LeakyReLU D, Adam 2e-4",
               _dcgan_defaults(), build_dcgan, image_sizes=DCGAN_SIZES, check_together=_check_dcgan_penalties,
               checks=_dcgan_checks())

RECIPES = {r.name: r for r in (MLP, GOODFELLOW2014, DCGAN)}
# -- Wasserstein GANs (issue 17): wgan, wgan-gp, wgan-gp-paper
from .wasserstein import recipes as _wasserstein_recipes  # noqa: E402  (it imports this module lazily)
RECIPES.update({r.name: r for r in _wasserstein_recipes()})

# -- image-to-image families (issue 20) ------------------------------------------------------
from .cyclegan import CYCLEGAN  # noqa: E402 (they build on this module)
from .srgan import SRGAN, SRRESNET  # noqa: E402
RECIPES.update({r.name: r for r in (CYCLEGAN, SRRESNET, SRGAN)})
# conditional GANs (issue 19): cgan, cdcgan, cdcgan-plus, acgan, acgan-plus, built in conditional.py
from .conditional import CONDITIONAL_RECIPES  # noqa: E402  (after the names conditional.py uses)
RECIPES.update({r.name: r for r in CONDITIONAL_RECIPES})

# -- a better DCGAN-28 recipe at the same architecture and budget (issue 18) ----------------------
from .dcgan_plus import plus_recipe  # noqa: E402
RECIPES["dcgan-plus"] = plus_recipe()


def get_recipe(name):
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}") from None


# -- multi-scale GANs (issue 14): progan. Registered after get_recipe: its family builds on
# run.py, which imports get_recipe from this module while it is still being imported.
from .progan import PROGAN  # noqa: E402
RECIPES.update({r.name: r for r in (PROGAN,)})
# -- registry: one line per recipe family added after these
from .improved import MLP_IMPROVED  # noqa: E402  (issue 15: docs/dynamics.md)
RECIPES[MLP_IMPROVED.name] = MLP_IMPROVED
from .lapgan import LAPGAN  # noqa: E402  (issue 14: docs/multiscale.md)
RECIPES[LAPGAN.name] = LAPGAN
