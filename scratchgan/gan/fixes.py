"""Salimans et al. 2016, "Improved Techniques for Training GANs": the fixes, options of the original game's
recipes (mlp, goodfellow2014, dcgan, dcgan-plus, mlp-improved).

Each fix is a small piece of the trainer's vocabulary (trainer.py, objectives.py):

- **minibatch discrimination** (``minibatch_kernels`` > 0): a ``MinibatchDiscrimination`` layer
  (layers/minibatch.py) inserted in D just before its last layer, which is rebuilt to read the
  B extra features;
- **feature matching** (``feature_matching`` > 0): the objective ``FeatureMatching``; G's loss
  gains ``w ||mean f(x) - mean f(G(z))||^2`` on the features f that feed D's last layer
  (``feature_matching_only``: that term alone, the paper's form);
- **historical averaging** (``historical_averaging`` > 0): the extension ``HistoricalAveraging``,
  a penalty ``w ||theta - mean of theta's past values||^2`` on each player;
- **one-sided label smoothing**: the ``label_smoothing`` option these recipes already have;
- **virtual batch normalization** (``vbn`` > 0, the reference batch size): G's BatchNorm layers
  become ``VirtualBatchNorm`` (layers/vbn.py), or in a G without any, one goes after every
  hidden Dense / ConvTranspose2d before its activation; G runs inside ``VirtualBatch`` with
  a fixed reference noise batch.

``improve(setup, options, image_shape)`` applies the ones the options switch on to a recipe's
fresh Setup; ``Recipe.setup`` calls it, so ``scratchgan train RECIPE --feature-matching 1``
works for each of them and checkpoints rebuild the same models.
"""
import math

import numpy as np

from .. import backend
from .. import layers as L
from .objectives import CrossEntropyGame

#: the options, their defaults (all off) and their checks (those recipes add them to their defaults)
FIX_DEFAULTS = {"minibatch_kernels": 0, "minibatch_kernel_dim": 5, "feature_matching": 0.0,
                "feature_matching_only": False, "historical_averaging": 0.0, "vbn": 0}


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_weight(v):
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            and math.isfinite(v) and v >= 0)


#: option -> (predicate, what it wants), the form of recipes.OPTION_CHECKS
FIX_CHECKS = {
    "minibatch_kernels": ((lambda v: _is_int(v) and v >= 0), "an integer >= 0 (0: off)"),
    "minibatch_kernel_dim": ((lambda v: _is_int(v) and v >= 1), "an integer >= 1"),
    "feature_matching": (_is_weight, "a finite number >= 0 (0: off)"),
    "feature_matching_only": ((lambda v: isinstance(v, (bool, np.bool_))), "True or False"),
    "historical_averaging": (_is_weight, "a finite number >= 0 (0: off)"),
    "vbn": ((lambda v: _is_int(v) and v >= 0), "an integer >= 0 (0: off)"),
}


def improve(setup, options, image_shape):
    """Apply the fixes switched on in ``options`` to ``setup`` (in place) and return it."""
    if options.get("minibatch_kernels", 0):
        add_minibatch_discrimination(setup, options["minibatch_kernels"], options["minibatch_kernel_dim"],
                                     image_shape)
    if options.get("vbn", 0):
        use_virtual_batchnorm(setup, options["vbn"], seed=options.get("seed", 0))
    if options.get("feature_matching", 0):
        base = setup.objective or CrossEntropyGame(setup.head, setup.config.g_loss, setup.config.label_smoothing,
                                                   setup.config.flip_prob)
        setup.objective = FeatureMatching(base, last_layer_index(setup.D, "feature matching"),
                                          options["feature_matching"], alone=options["feature_matching_only"])
    elif options.get("feature_matching_only"):
        raise ValueError("option feature_matching_only needs feature_matching > 0 (its weight)")
    if options.get("historical_averaging", 0):
        setup.extensions = [*setup.extensions, HistoricalAveraging(options["historical_averaging"])]
    return setup


# -- model surgery -------------------------------------------------------------------------------
def last_layer_index(model, what):
    """The index in Chain ``model`` of its last layer with parameters (D's output layer)."""
    if not isinstance(model, L.Chain):
        raise ValueError(f"{what} needs D to be a Chain, got {type(model).__name__}")
    for index in reversed(range(len(model))):
        if model[index].params:
            return index
    raise ValueError(f"{what}: D has no layer with parameters")


def add_minibatch_discrimination(setup, kernels, kernel_dim, image_shape):
    """D = body -> [Flatten] -> MinibatchDiscrimination -> last layer rebuilt as Dense(A + B, out).

    D's last layer must be a Dense, or a Conv2d whose kernel covers its whole input without
    padding (DCGAN's), which is the same map as a Dense on the flattened input.
    """
    D, index = setup.D, last_layer_index(setup.D, "minibatch discrimination")
    last = D[index]
    dummy = setup.preprocess(np.zeros((2, *image_shape), dtype=np.uint8))
    features = D[:index].forward(backend.to_device(dummy.astype(_dtype(D)), _device(D)), train=False,
                                 keep_cache=False)
    flat = int(np.prod(features.shape[1:]))
    if isinstance(last, L.Dense):
        outputs, activation, bias = last.out_features, last.activation, "bias" in last.params
    elif (isinstance(last, L.Conv2d) and tuple(last.kernel_size) == tuple(features.shape[2:])
          and tuple(last.padding) == (0, 0)):
        outputs, activation, bias = last.out_channels, None, "bias" in last.params
    else:
        raise ValueError(f"minibatch discrimination: D's last layer must be a Dense or a Conv2d covering its "
                         f"whole input, got {last!r} on features of shape {tuple(features.shape[1:])}")
    new = ([L.Flatten()] if features.ndim > 2 else []) + [
        L.MinibatchDiscrimination(flat, kernels, kernel_dim), L.Dense(flat + kernels, outputs, activation, bias=bias)]
    D.layers[index:index + 1] = [layer.to(_device(D), _dtype(D)) for layer in new]


def use_virtual_batchnorm(setup, reference_size, seed=0):
    """G's normalization becomes VBN with a reference noise batch of ``reference_size`` drawn once."""
    G = setup.G
    if not isinstance(G, L.Chain):
        raise ValueError(f"virtual batch normalization needs G to be a Chain, got {type(G).__name__}")
    layers, r = [], reference_size
    has_batchnorm = any(isinstance(layer, L.BatchNorm) for layer in G)
    last = last_layer_index(G, "virtual batch normalization")
    for index, layer in enumerate(G):
        if isinstance(layer, L.BatchNorm):
            layers.append(L.VirtualBatchNorm(layer.num_features, r, eps=layer.eps))
        elif not has_batchnorm and index < last and isinstance(layer, L.Dense):
            linear = L.Dense(layer.in_features, layer.out_features, bias=False)
            linear.params["weight"] = layer.params["weight"]
            layers += [linear, L.VirtualBatchNorm(layer.out_features, r)]
            layers += [layer.activation] if layer.activation is not None else []
        elif not has_batchnorm and index < last and isinstance(layer, L.ConvTranspose2d):
            layers += [layer, L.VirtualBatchNorm(layer.out_channels, r)]
        else:
            layers.append(layer)
    if not any(isinstance(layer, L.VirtualBatchNorm) for layer in layers):
        raise ValueError("virtual batch normalization: G has no BatchNorm and no hidden Dense or ConvTranspose2d")
    config = setup.config
    reference = np.random.default_rng(seed + 3).standard_normal((r, config.z_dim, *config.noise_shape))
    chain = L.Chain(*[layer.to(_device(G), _dtype(G)) for layer in layers])
    setup.G = L.VirtualBatch(chain, reference).to(_device(G), _dtype(G))
    setup.opt_g.model = setup.G     # the optimizer's state is still empty: it now walks the new G


def _dtype(model):
    return model.named_parameters()[0][1].params[model.named_parameters()[0][2]].dtype


def _device(model):
    _, layer, key = model.named_parameters()[0]
    return backend.device_of(layer.params[key])


# -- feature matching --------------------------------------------------------------------------------
class FeatureMatching:
    """G's loss on D's features f (the input of D's last layer), per Salimans et al.:

        L_FM = weight * || mean_x f(x) - mean_z f(G(z)) ||^2          (summed over features)

    added to the base objective's G loss, or alone (``alone=True``, the paper's form). D's
    loss, its score and stats are the base objective's. The real features are D's on the
    step's real batch, taken as constants; the gradient at fake sample n's features is

        dL_FM / df_n = -2 weight (mean f(x) - mean f(G(z))) / N.

    The trainer reads D's features through ``feature_split`` (trainer.generator_loss).
    """

    def __init__(self, base, split, weight=1.0, alone=False):
        if not weight > 0:
            raise ValueError(f"FeatureMatching: weight must be > 0, got {weight!r}")
        self.base, self.split, self.weight, self.alone = base, split, weight, alone
        self.stat_keys = base.stat_keys
        self.head = getattr(base, "head", None)

    def d_loss(self, out, is_real, labels, rng):
        return self.base.d_loss(out, is_real, labels, rng)

    def g_loss(self, out, labels):
        """The base objective's G loss (what G's loss is when D's features are not at hand)."""
        return self.base.g_loss(out, labels)

    def score(self, out):
        return self.base.score(out)

    def stats(self, score_real, score_fake):
        return self.base.stats(score_real, score_fake)

    def feature_split(self, D):
        return self.split

    def g_loss_with_features(self, out, features, real_features, labels):
        """(loss, d loss / d out or None, d loss / d features)."""
        xp = backend.get_xp(features)
        n, f = len(features), features.dtype.type
        gap = real_features.mean(axis=0) - features.mean(axis=0)
        loss = f(self.weight) * xp.sum(gap * gap)
        dfeatures = xp.broadcast_to(f(-2 * self.weight / n) * gap, features.shape).astype(features.dtype)
        if self.alone:
            return loss, None, dfeatures
        base_loss, dout = self.base.g_loss(out, labels)
        return base_loss + loss, dout, dfeatures


# -- historical averaging ------------------------------------------------------------------------
class HistoricalAveraging:
    """Each player's cost gains ``weight * ||theta - theta_bar||^2``, theta_bar the mean of every
    value its parameters have had so far (the initial ones included), updated after each of
    its optimizer steps. theta_bar is history, a constant for the step, so the penalty's
    gradient is 2 weight (theta - theta_bar). D's penalty is recorded as ``hist_avg_d`` (and in
    the D loss), G's is added to the recorded G loss. The means and counts are checkpointed.
    """

    history_keys = ("hist_avg_d",)

    def __init__(self, weight):
        if not weight > 0:
            raise ValueError(f"HistoricalAveraging: weight must be > 0, got {weight!r}")
        self.weight = weight
        self.means = {"D": {}, "G": {}}    # player -> {parameter name: running mean}
        self.counts = {"D": 0, "G": 0}     # values averaged so far

    def d_penalty(self, trainer, batch):
        return self._penalty(trainer.D, "D")

    def g_penalty(self, trainer, batch):
        return self._penalty(trainer.G, "G")

    def after_d_step(self, trainer):
        self._update(trainer.D, "D")

    def after_g_step(self, trainer):
        self._update(trainer.G, "G")

    def _penalty(self, model, player):
        """Adds 2 w (theta - theta_bar) into the gradients; returns w ||theta - theta_bar||^2."""
        self._start(model, player)
        total = 0.0
        for name, layer, key in model.named_parameters():
            param = layer.params[key]
            gap = param - self.means[player][name]
            layer.grads[key] += param.dtype.type(2 * self.weight) * gap
            total = total + backend.get_xp(param).sum(gap * gap)
        return param.dtype.type(self.weight) * total

    def _start(self, model, player):
        """theta_bar = theta at first use; means restored from a checkpoint move to the parameters' device."""
        if self.counts[player] == 0:
            self.means[player] = {name: layer.params[key].copy() for name, layer, key in model.named_parameters()}
            self.counts[player] = 1
        for name, layer, key in model.named_parameters():
            mean, param = self.means[player][name], layer.params[key]
            if backend.get_xp(mean) is not backend.get_xp(param) or mean.dtype != param.dtype:
                self.means[player][name] = backend.get_xp(param).asarray(backend.asnumpy(mean), dtype=param.dtype)

    def _update(self, model, player):
        self._start(model, player)
        self.counts[player] += 1
        step = 1 / self.counts[player]
        for name, layer, key in model.named_parameters():
            mean = self.means[player][name]
            mean += mean.dtype.type(step) * (layer.params[key] - mean)

    def state_dict(self):
        state = {f"{player}/count": np.array(count) for player, count in self.counts.items()}
        for player, means in self.means.items():
            state.update({f"{player}/mean/{name}": backend.asnumpy(mean).copy() for name, mean in means.items()})
        return state

    def load_state_dict(self, state):
        for player in ("D", "G"):
            self.counts[player] = int(state.get(f"{player}/count", 0))
            prefix = f"{player}/mean/"
            self.means[player] = {k[len(prefix):]: np.array(v) for k, v in state.items() if k.startswith(prefix)}
