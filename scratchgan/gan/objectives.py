"""GAN objectives: discriminator heads, the D loss, and minimax vs non-saturating G losses.

An *objective* is the game the trainer plays: ``d_loss`` (D's loss on a batch it should call
real or fake), ``g_loss`` (G's loss on D's output for its fakes), ``score`` (a per-sample
number the history records as D(x) and D(G(z))) and ``stats`` (the per-step history values).
``CrossEntropyGame`` below is the original GAN's; other families (Wasserstein, least squares,
auxiliary classifier) add their own classes with the same four methods.

A head turns D's raw output into P(real) and a binary cross-entropy against a
"realness" target t (1 = real, 0 = fake, 0.9 with one-sided label smoothing):

    D loss = BCE(D(x), t_real) + BCE(D(G(z)), t_fake)
    G loss, minimax (Goodfellow 2014):   + mean log(1 - D(G(z))) = -BCE(D(G(z)), 0)
    G loss, non-saturating:              - mean log D(G(z))      =  BCE(D(G(z)), 1)

The minimax loss saturates: when D confidently rejects fakes, log(1 - D) is flat
and G's gradient vanishes; the non-saturating loss has the same fixed point and
strong gradients exactly then.

D's verdict on a sample is "real" when P(real) > 0.5 and "fake" otherwise, so a tie,
P(real) = 0.5 exactly, counts as "fake". ``d_correct`` and ``d_accuracy`` are the only
place this rule is written: the trainer's per-step ``acc_real``/``acc_fake``, the run's
``accuracy.png`` and ``evaluation.metrics.discriminator_accuracy`` all use them.
"""
from .. import backend, losses
from ..layers.activations import sigmoid

G_LOSSES = ("non-saturating", "minimax")


class _OneUnitHead:
    """D ends in one unit per sample, any shape (N, 1, ...); ``loss`` reads it as a flat (N,) vector."""

    def prob_real(self, out):
        return self.to_prob(out.reshape(len(out)))

    def bce(self, out, target):
        value, grad = self.loss(out.reshape(len(out)), target)
        return value, grad.reshape(out.shape)


class LogitHead(_OneUnitHead):
    """D ends in one unit without activation (DCGAN, goodfellow2014): BCE on logits, stable for any logit."""

    name = "logit"
    to_prob = staticmethod(sigmoid)
    loss = staticmethod(losses.bce_with_logits)


class SigmoidHead(_OneUnitHead):
    """D ends in Dense(..., 1, sigmoid): BCE on the probability (in float32, prefer the logit head)."""

    name = "sigmoid"
    to_prob = staticmethod(lambda p: p)
    loss = staticmethod(losses.binary_cross_entropy)


class SoftmaxHead:
    """D ends in Dense(..., 2) -> Softmax (the Flux tutorial): unit 0 is P(real)."""

    name = "softmax"

    def prob_real(self, out):
        return out[:, 0]

    def bce(self, out, target):
        return losses.two_class_cross_entropy(out, target)


HEADS = {h.name: h for h in (LogitHead, SigmoidHead, SoftmaxHead)}


def get_head(name):
    try:
        return HEADS[name]()
    except KeyError:
        raise ValueError(f"unknown discriminator head {name!r}; expected one of {sorted(HEADS)}") from None


def d_correct(p_real, real):
    """Where D is right about a batch that is all real (``real=True``) or all fake.

    D calls a sample real when P(real) > 0.5: right on a real sample iff P(real) > 0.5,
    right on a fake iff P(real) <= 0.5 (a tie counts as "fake"; NaN is never "real").
    ``p_real``: an array of P(real), NumPy or CuPy; returns a boolean array of its shape.
    """
    called_real = p_real > 0.5
    return called_real if real else ~called_real


def d_accuracy(p_real, real, dtype=None):
    """The fraction of a real (or fake) batch D classifies right, by ``d_correct``'s rule.

    A 0-d array of ``dtype`` (default: p_real's) on p_real's device: no host synchronization.
    """
    return d_correct(p_real, real).mean(dtype=p_real.dtype if dtype is None else dtype)


def d_targets(n, real, xp, dtype, smoothing=0.0, flip_prob=0.0, rng=None):
    """Targets for a batch of n real (or fake) samples.

    One-sided label smoothing sets real targets to 1 - smoothing (fakes stay 0).
    Label flipping swaps each sample's target with probability ``flip_prob``:
    a flipped real gets the fake target 0, a flipped fake the real target 1 - smoothing.
    """
    real_target, fake_target = 1.0 - smoothing, 0.0
    own, other = (real_target, fake_target) if real else (fake_target, real_target)
    if not flip_prob:
        return xp.full(n, own, dtype=dtype)
    flip = rng.uniform((n,), dtype=dtype, xp=xp) < dtype(flip_prob)
    return xp.where(flip, dtype(other), dtype(own)).astype(dtype)


def g_loss(head, out, kind):
    """Generator loss and its gradient with respect to D's output on the fake batch."""
    if kind == "non-saturating":
        return head.bce(out, 1.0)
    if kind == "minimax":
        value, grad = head.bce(out, 0.0)
        return -value, -grad
    raise ValueError(f"unknown generator loss {kind!r}; expected one of {G_LOSSES}")


class CrossEntropyGame:
    """The original GAN's game on a head's output: D minimises the binary cross-entropy of
    real against fake (with optional one-sided label smoothing and label flipping); G
    minimises the minimax or the non-saturating loss above. The history records P(real) on
    each batch and D's accuracy (``d_accuracy``'s rule)."""

    stat_keys = ("d_real", "d_fake", "acc_real", "acc_fake")

    def __init__(self, head, g_loss_kind="non-saturating", label_smoothing=0.0, flip_prob=0.0):
        if g_loss_kind not in G_LOSSES:
            raise ValueError(f"unknown generator loss {g_loss_kind!r}; expected one of {G_LOSSES}")
        self.head, self.g_loss_kind = head, g_loss_kind
        self.label_smoothing, self.flip_prob = label_smoothing, flip_prob

    def d_loss(self, out, is_real, labels, rng):
        """BCE of D's output on one batch against its (smoothed, possibly flipped) targets."""
        targets = d_targets(len(out), is_real, backend.get_xp(out), out.dtype.type,
                            self.label_smoothing, self.flip_prob, rng)
        return self.head.bce(out, targets)

    def g_loss(self, out, labels):
        return g_loss(self.head, out, self.g_loss_kind)

    def score(self, out):
        return self.head.prob_real(out)

    def stats(self, score_real, score_fake):
        return [score_real.mean(), score_fake.mean(), d_accuracy(score_real, True), d_accuracy(score_fake, False)]


# -- least squares (issue 20) -----------------------------------------------------------------
class LeastSquaresGame:
    """LSGAN (Mao et al. 2017): D regresses its raw output onto 1 for real and 0 for fake samples,
    G pushes D's output on its fakes toward 1, all in squared error (any output shape, e.g. a
    PatchGAN's map of scores: every entry is one regression target):

        D loss = 1/2 mean (D(x) - 1)^2 + 1/2 mean D(G(z))^2,      G loss = mean (D(G(z)) - 1)^2

    scaled as CycleGAN's implementation does (the D loss halved, so D learns at half G's rate).
    Unlike the cross-entropy game, a fake on the right side of the boundary but far from the
    real targets is still penalised, so G gets gradients that do not vanish when D is confident.
    The history records D's mean output on each batch (``d_real``, ``d_fake``; 1 and 0 are the targets).
    """

    stat_keys = ("d_real", "d_fake")

    def d_loss(self, out, is_real, labels=None, rng=None):
        value, grad = losses.mse(out, 1.0 if is_real else 0.0)
        half = out.dtype.type(0.5)
        return value * half, grad * half

    def g_loss(self, out, labels=None):
        return losses.mse(out, 1.0)

    def score(self, out):
        return out.reshape(len(out), -1).mean(axis=1)

    def stats(self, score_real, score_fake):
        return [score_real.mean(), score_fake.mean()]
