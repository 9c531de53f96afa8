"""Conditional GANs: CGAN (Mirza & Osindero 2014), conditional DCGAN, AC-GAN (Odena et al. 2017).

A conditional model draws a sample of a chosen class: G reads (z, y) and D reads (x, y), with y
an integer class label (the trainer's contract, trainer.py). Three ways to give D the label:

- as an input (CGAN, cDCGAN): D judges the pair, "is x a real image *of class y*?";
- as a projection (Miyato & Koyama 2018): D's output gains the term <embed(y), features(x)>;
- as a second task (AC-GAN): D reads x alone and also predicts its class; G is rewarded when
  D's classifier recognises the class it was asked for.

The recipes (registered in recipes.py):

- ``cgan``: the paper's MNIST model, G: z (100, uniform) -> 200 ReLU, y -> 1000 ReLU, joined ->
  1200 ReLU -> 784 sigmoid; D: x -> Maxout(240 x 5), y -> Maxout(50 x 5), joined -> Maxout(240 x 4)
  -> sigmoid; dropout 0.5; SGD + momentum 0.5 rising to 0.7, learning rate 0.1 decayed by 1.00004
  per update down to 1e-6 (``SGDSchedule``);
- ``cdcgan``: DCGAN-28 with an embedding of y joined to z in G and one-hot label planes joined to
  the image's channels in D;
- ``acgan``: the same G; D the DCGAN-28 discriminator with two heads, real/fake and class
  (``AuxiliaryClassifierGame``, the paper's losses with weight 1);
- ``cdcgan-plus``, ``acgan-plus``: the improved settings of docs/conditional.md.

The DCGAN-sized recipes also take dcgan's ``ema`` / ``ema_bn`` (gan/averaging.py): sample from a
moving average of G's weights, its BatchNorm statistics re-estimated with every class in turn.
"""
import numpy as np

from .. import backend, losses
from .. import layers as L
from ..data import transforms
from ..init import uniform
from ..layers.activations import sigmoid
from ..optim import SGD, Adam
from .dcgan_plus import CHECKS as DCGAN_PLUS_CHECKS
from .dcgan_plus import weight_average
from .objectives import G_LOSSES, d_accuracy, d_targets, get_head
# recipes.py imports this module at its end, once these names exist
from .recipes import (COMMON, DCGAN_SIZES, Recipe, Setup, _config, _flat_unit, _integer, _number,
                      dcgan_discriminator, dcgan_generator)
from .trainer import NOISE_KINDS

#: class names of the labelled datasets, in label order
CLASS_NAMES = {
    "mnist": [str(k) for k in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"],
}


def class_names(dataset, num_classes):
    """The names of ``dataset``'s classes if known (and as many as ``num_classes``), else "0", "1", ..."""
    names = CLASS_NAMES.get(dataset)
    return list(names) if names and len(names) == num_classes else [str(k) for k in range(num_classes)]


def balanced_labels(n, num_classes):
    """n labels cycling through the classes (0, 1, ..., K-1, 0, 1, ...): every class as often as n allows."""
    return np.arange(n, dtype=np.int64) % num_classes


# -- the AC-GAN objective ---------------------------------------------------------------------------
class AuxiliaryClassifierGame:
    """AC-GAN's game (Odena et al. 2017). D outputs (source logit s, class logits c) for an image;
    with S the source (real or fake) and C the class, the paper's two log-likelihoods are

        L_S = E[log P(S = real | x_real)] + E[log P(S = fake | x_fake)]
        L_C = E[log P(C = c | x_real)]    + E[log P(C = c | x_fake)]

    D maximises L_S + L_C and G maximises L_C - L_S. As losses to minimise, per batch (means):

        D, real batch:  BCE(s, 1) + w CE(c, y)          D, fake batch:  BCE(s, 0) + w_fake CE(c, y)
        G:              BCE(s_fake, 1) + w CE(c_fake, y)      (non-saturating, the default)
                   or  -BCE(s_fake, 0) + w CE(c_fake, y)      (minimax: exactly -L_S's fake term)

    G's share of L_C is its fake term only (the real term does not depend on G). The
    non-saturating form swaps G's -log(1 - D) for log D, as in the original GAN paper; the class
    term needs no such swap (it does not saturate when D is sure). The paper weighs both terms
    equally: w = 1 and w_fake = w (``fake_class_loss=True``); ``fake_class_loss=False`` trains D's
    classifier on real images only, so G cannot satisfy it with images only D's classifier accepts.

    The history records P(real) and D's real/fake accuracy as the cross-entropy game does, plus
    ``class_acc_real``/``class_acc_fake``: how often D's classifier names the label of the real
    batch, and the label G was asked for on the fake batch (measured in ``d_loss``, D's step).
    """

    stat_keys = ("d_real", "d_fake", "acc_real", "acc_fake", "class_acc_real", "class_acc_fake")

    def __init__(self, g_loss_kind="non-saturating", aux_weight=1.0, fake_class_loss=True, label_smoothing=0.0,
                 flip_prob=0.0):
        if g_loss_kind not in G_LOSSES:
            raise ValueError(f"unknown generator loss {g_loss_kind!r}; expected one of {G_LOSSES}")
        if not aux_weight >= 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight}")
        self.g_loss_kind, self.aux_weight, self.fake_class_loss = g_loss_kind, aux_weight, fake_class_loss
        self.label_smoothing, self.flip_prob = label_smoothing, flip_prob
        self._class_acc = {True: None, False: None}

    @staticmethod
    def _split(out):
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError("the auxiliary-classifier game needs D to output (source logits, class logits)")
        source, classes = out
        return source, classes, source.reshape(len(source))

    def d_loss(self, out, is_real, labels, rng):
        """D's loss on one batch (real if ``is_real``) and its gradient (d source, d class logits)."""
        source, classes, logits = self._split(out)
        dtype = logits.dtype.type
        targets = d_targets(len(logits), is_real, backend.get_xp(logits), dtype, self.label_smoothing,
                            self.flip_prob, rng)
        source_loss, d_logits = losses.bce_with_logits(logits, targets)
        class_loss, d_classes = losses.softmax_cross_entropy(classes, labels)
        weight = dtype(self.aux_weight if (is_real or self.fake_class_loss) else 0.0)
        self._class_acc[bool(is_real)] = (classes.argmax(axis=1) == labels).mean(dtype=logits.dtype)
        return source_loss + weight * class_loss, (d_logits.reshape(source.shape), weight * d_classes)

    def g_loss(self, out, labels):
        """G's loss on D's output for its fakes (asked to be of class ``labels``) and its gradient."""
        source, classes, logits = self._split(out)
        if self.g_loss_kind == "non-saturating":
            source_loss, d_logits = losses.bce_with_logits(logits, 1.0)
        else:
            value, grad = losses.bce_with_logits(logits, 0.0)
            source_loss, d_logits = -value, -grad
        class_loss, d_classes = losses.softmax_cross_entropy(classes, labels)
        weight = logits.dtype.type(self.aux_weight)
        return source_loss + weight * class_loss, (d_logits.reshape(source.shape), weight * d_classes)

    def score(self, out):
        """P(real) of each sample, from the source head."""
        return sigmoid(self._split(out)[2])

    def stats(self, score_real, score_fake):
        xp = backend.get_xp(score_real)
        nan = xp.full((), np.nan, dtype=score_real.dtype)   # filled in on the device: no copy from the host
        class_real, class_fake = (nan if v is None else v for v in (self._class_acc[True], self._class_acc[False]))
        return [score_real.mean(), score_fake.mean(), d_accuracy(score_real, True), d_accuracy(score_fake, False),
                class_real, class_fake]


# -- the CGAN paper's optimizer schedule ---------------------------------------------------------------
class SGDSchedule:
    """Pylearn2's schedules as the CGAN paper uses them, on both SGD optimizers:

    - learning rate: ExponentialDecay, lr_t = max(lr_0 / decay^t, min_lr) after t updates
      ("initial learning rate of 0.1 which was exponentially decreased down to .000001 with
      decay factor of 1.00004");
    - momentum: MomentumAdjustor, rising linearly from its initial value to ``final_momentum``
      between epoch 1 and epoch ``saturate`` (Pylearn2's GAN configuration: 0.5 to 0.7 by epoch 250).

    State: the epochs done (the learning rate follows from the optimizers' update counts).
    """

    history_keys = ()

    def __init__(self, opt_g, opt_d, decay=1.00004, min_lr=1e-6, final_momentum=0.7, saturate=250):
        self.optimizers = (opt_g, opt_d)
        self.lr0 = {id(opt): opt.lr for opt in self.optimizers}
        self.m0 = {id(opt): opt.momentum for opt in self.optimizers}
        self.decay, self.min_lr, self.final_momentum, self.saturate = decay, min_lr, final_momentum, saturate
        self.epochs = 0

    def learning_rate(self, opt):
        return max(self.lr0[id(opt)] / self.decay ** opt.t, self.min_lr)

    def momentum(self, opt):
        """Pylearn2's MomentumAdjustor(start=1): the initial value until epoch 1, the final from ``saturate``."""
        progress = 1.0 if self.saturate <= 1 else min(1.0, max(0.0, (self.epochs - 1) / (self.saturate - 1)))
        return self.m0[id(opt)] + (self.final_momentum - self.m0[id(opt)]) * progress

    def after_d_step(self, trainer):
        self.optimizers[1].lr = self.learning_rate(self.optimizers[1])

    def after_g_step(self, trainer):
        self.optimizers[0].lr = self.learning_rate(self.optimizers[0])

    def after_epoch(self, trainer, epoch):
        self.epochs = epoch
        self._apply()

    def _apply(self):
        for opt in self.optimizers:
            opt.lr, opt.momentum = self.learning_rate(opt), self.momentum(opt)

    def state_dict(self):
        return {"epochs": np.array(self.epochs)}

    def load_state_dict(self, state):
        if "epochs" in state:
            self.epochs = int(state["epochs"])
        self._apply()


# -- models ---------------------------------------------------------------------------------------------
def cgan_generator(z_dim, num_classes, n_pixels, dropout, init):
    """The paper's G: z -> 200 ReLU and y (one-hot) -> 1000 ReLU, joined -> 1200 ReLU -> pixels, sigmoid."""
    return L.Chain(L.Parallel(L.Dense(z_dim, 200, "relu", init=init),
                              L.Chain(L.OneHot(num_classes), L.Dense(num_classes, 1000, "relu", init=init))),
                   L.Concat(), *_dropout(dropout), L.Dense(1200, 1200, "relu", init=init), *_dropout(dropout),
                   L.Dense(1200, n_pixels, "sigmoid", init=init))


def _dropout(p):
    """A fresh Dropout layer (each position needs its own: one cache per layer), or none for p = 0."""
    return [L.Dropout(p)] if p else []


def cgan_discriminator(num_classes, n_pixels, dropout, input_dropout, init):
    """The paper's D: x -> Maxout(240 x 5) and y -> Maxout(50 x 5), joined -> Maxout(240 x 4) -> 1 logit."""
    return L.Chain(L.Parallel(L.Chain(*_dropout(input_dropout), L.Maxout(n_pixels, 240, 5, init=init)),
                              L.Chain(L.OneHot(num_classes), L.Maxout(num_classes, 50, 5, init=init))),
                   L.Concat(), *_dropout(dropout), L.Maxout(290, 240, 4, init=init), *_dropout(dropout),
                   L.Dense(240, 1, init=init))


def conditional_dcgan_generator(z_dim, num_classes, embed_dim, channels, size, ngf):
    """(z (N, z, 1, 1), y) -> DCGAN's generator on [z, embed(y)] (N, z + e, 1, 1)."""
    label = L.Chain(L.Embedding(num_classes, embed_dim), L.Reshape(embed_dim, 1, 1))
    return L.Chain(L.Parallel(L.Identity(), label), L.Concat(axis=1),
                   *dcgan_generator(z_dim + embed_dim, channels, size, ngf).layers)


def label_channel_discriminator(num_classes, channels, size, ndf):
    """(x, y) -> DCGAN's discriminator on x with K one-hot label planes as extra channels -> (N, 1, 1, 1) logits."""
    return L.Chain(L.Parallel(L.Identity(), L.OneHot(num_classes, spatial=(size, size))), L.Concat(axis=1),
                   *dcgan_discriminator(channels + num_classes, size, ndf).layers)


def _dcgan_trunk(channels, size, ndf):
    """DCGAN's discriminator without its last convolution, and that convolution's (in channels, kernel)."""
    layers = dcgan_discriminator(channels, size, ndf).layers
    last = layers[-1]
    return layers[:-1], last.in_channels, last.kernel_size[0]


def auxiliary_classifier_discriminator(num_classes, channels, size, ndf):
    """(x, y) -> (source logit (N, 1), class logits (N, K)): D reads the image only; DCGAN's
    discriminator whose last convolution is doubled into a real/fake head and a class head."""
    trunk, width, kernel = _dcgan_trunk(channels, size, ndf)
    heads = L.Fork(L.Chain(L.Conv2d(width, 1, kernel, 1, 0, bias=False, init="normal_0.02"), L.Flatten()),
                   L.Chain(L.Conv2d(width, num_classes, kernel, 1, 0, bias=False, init="normal_0.02"), L.Flatten()))
    return L.Chain(L.Select(0), *trunk, heads)


def projection_discriminator(num_classes, channels, size, ndf):
    """(x, y) -> (N, 1) logits: DCGAN's discriminator features h(x) (its last convolution, a linear
    map of them, becomes Projection's w) plus the projection term h(x) . V[y]."""
    trunk, width, kernel = _dcgan_trunk(channels, size, ndf)
    features = width * kernel * kernel   # the last conv sees the whole kernel x kernel map: a linear layer
    return L.Chain(L.Parallel(L.Chain(*trunk, L.Flatten()), L.Identity()),
                   L.Projection(features, num_classes, bias=False))


# -- recipes ----------------------------------------------------------------------------------------------
def _at_least(low):
    return _number(low, None)[0], f"a finite number >= {low}"


D_CONDITIONING = ("label-channels", "projection")
CHECKS = {"num_classes": _integer(2), "embed_dim": _integer(1), "aux_weight": _at_least(0),
          "fake_class_loss": ((lambda v: isinstance(v, (bool, np.bool_))), "True or False"),
          "noise": ((lambda v: v in NOISE_KINDS), f"one of {', '.join(NOISE_KINDS)}"),
          "final_momentum": _number(0, 1), "momentum_saturate": _integer(1), "lr_decay": _at_least(1),
          "min_lr": _at_least(0),
          "d_conditioning": ((lambda v: v in D_CONDITIONING), f"one of {', '.join(D_CONDITIONING)}"),
          "ema": DCGAN_PLUS_CHECKS["ema"], "ema_bn": DCGAN_PLUS_CHECKS["ema_bn"]}


def _conditional_config(o, **extra):
    return _config(o, num_classes=o["num_classes"], **extra)


def build_cgan(o, image_shape):
    """As the paper; where it is silent, as the Pylearn2 GAN configuration (the goodfellow2014 recipe):
    weights U(-0.05, 0.05) in G and U(-0.005, 0.005) in D, input dropout 0.2 on D's image, each D unit's
    incoming weights kept to norm <= 1.9365 (max-norm; without it SGD at lr 0.1 diverges within five
    epochs, docs/conditional.md), the momentum reaching its final value at epoch 250, D's sigmoid inside
    the loss (logit head)."""
    n_pixels, k = int(np.prod(image_shape)), o["num_classes"]
    G = cgan_generator(o["z_dim"], k, n_pixels, o["g_dropout"], uniform(0.05))
    D = cgan_discriminator(k, n_pixels, o["dropout"], o["input_dropout"], uniform(0.005))
    opt_g = SGD(G, lr=o["lr"], momentum=o["momentum"])
    opt_d = SGD(D, lr=o["lr"], momentum=o["momentum"], max_norm=o["max_norm"])
    schedule = SGDSchedule(opt_g, opt_d, o["lr_decay"], o["min_lr"], o["final_momentum"], o["momentum_saturate"])
    return Setup(G, D, opt_g, opt_d, get_head("logit"), _conditional_config(o, noise=o["noise"]),
                 lambda images: transforms.flatten(transforms.to_float(images)), _flat_unit(image_shape),
                 image_shape, extensions=[schedule])


def _dcgan_size(name, image_shape):
    channels, height, width = image_shape
    if height != width or height not in DCGAN_SIZES:
        raise ValueError(f"{name} supports square images of size {DCGAN_SIZES}, got {height}x{width}")
    return channels, height


def _adam_pair(G, D, o):
    betas = (o["beta1"], 0.999)
    return Adam(G, lr=o["lr"], betas=betas), Adam(D, lr=o["d_lr"] or o["lr"], betas=betas)


def _weight_average(G, o):
    """dcgan's weight average of G (``--ema``), its BatchNorm re-estimated with the classes in turn."""
    return weight_average(o, G, (o["z_dim"], 1, 1), num_classes=o["num_classes"])


def build_cdcgan(o, image_shape):
    """cDCGAN: G reads [z, embed(y)]; D reads the image with K one-hot label planes (or, with
    ``d_conditioning="projection"``, the image alone, the label entering by projection)."""
    channels, size = _dcgan_size("cdcgan", image_shape)
    k = o["num_classes"]
    G = conditional_dcgan_generator(o["z_dim"], k, o["embed_dim"], channels, size, o["ngf"])
    if o["d_conditioning"] == "projection":
        D = projection_discriminator(k, channels, size, o["ndf"])
    else:
        D = label_channel_discriminator(k, channels, size, o["ndf"])
    opt_g, opt_d = _adam_pair(G, D, o)
    return Setup(G, D, opt_g, opt_d, get_head("logit"), _conditional_config(o, noise_shape=(1, 1)),
                 transforms.to_tanh_range, transforms.from_tanh_range, image_shape, extensions=_weight_average(G, o))


def build_acgan(o, image_shape):
    """AC-GAN: cdcgan's G; D = DCGAN's discriminator with a real/fake head and a class head."""
    channels, size = _dcgan_size("acgan", image_shape)
    k = o["num_classes"]
    G = conditional_dcgan_generator(o["z_dim"], k, o["embed_dim"], channels, size, o["ngf"])
    D = auxiliary_classifier_discriminator(k, channels, size, o["ndf"])
    opt_g, opt_d = _adam_pair(G, D, o)
    game = AuxiliaryClassifierGame(o["loss"], o["aux_weight"], o["fake_class_loss"], o["label_smoothing"],
                                   o["flip_prob"])
    return Setup(G, D, opt_g, opt_d, get_head("logit"), _conditional_config(o, noise_shape=(1, 1)),
                 transforms.to_tanh_range, transforms.from_tanh_range, image_shape, objective=game,
                 extensions=_weight_average(G, o))


def _recipes():
    dcgan_like = {**COMMON, "z_dim": 100, "batch_size": 128, "lr": 2e-4, "d_lr": None, "beta1": 0.5, "epochs": 30,
                  "ngf": 64, "ndf": 64, "num_classes": 10, "embed_dim": 10, "ema": 0.0, "ema_bn": "reestimate"}
    cgan = Recipe("cgan", "Mirza & Osindero 2014: conditional MLP G (z uniform), Maxout D, dropout 0.5, SGD + momentum",
                  {**COMMON, "z_dim": 100, "batch_size": 100, "lr": 0.1, "momentum": 0.5, "final_momentum": 0.7,
                   "momentum_saturate": 250, "lr_decay": 1.00004, "min_lr": 1e-6, "epochs": 100, "dropout": 0.5,
                   "g_dropout": 0.5, "input_dropout": 0.2, "max_norm": 1.9365, "noise": "uniform", "num_classes": 10},
                  build_cgan, checks=CHECKS)
    cdcgan = Recipe("cdcgan", "conditional DCGAN-28: embed(y) joined to z in G, one-hot label planes joined to D's image",
                    {**dcgan_like, "d_conditioning": "label-channels"}, build_cdcgan, DCGAN_SIZES, CHECKS)
    acgan = Recipe("acgan", "AC-GAN (Odena et al. 2017): cdcgan's G, DCGAN D with a real/fake and a class head",
                   {**dcgan_like, "aux_weight": 1.0, "fake_class_loss": True}, build_acgan, DCGAN_SIZES, CHECKS)
    cdcgan_plus = Recipe("cdcgan-plus", "cdcgan with a projection discriminator (Miyato & Koyama 2018), both "
                         "Adam learning rates doubled (4e-4) and samples drawn from a moving average of G's weights "
                         "(beta 0.999)",
                         {**cdcgan.defaults, "d_conditioning": "projection", "lr": 4e-4, "ema": 0.999}, build_cdcgan,
                         DCGAN_SIZES, CHECKS)
    acgan_plus = Recipe("acgan-plus", "acgan whose D classifies real images only (the fake-class term dropped)",
                        {**acgan.defaults, "fake_class_loss": False}, build_acgan, DCGAN_SIZES, CHECKS)
    return [cgan, cdcgan, cdcgan_plus, acgan, acgan_plus]


CONDITIONAL_RECIPES = _recipes()
