"""A moving average of the generator's weights (Yazıcı et al. 2019), as a trainer extension.

After every generator update the average moves toward G's new weights::

    theta_avg <- beta_t theta_avg + (1 - beta_t) theta,      beta_t = min(beta, (1 + t) / (10 + t))

where t counts the updates averaged so far. The warm-up factor (TensorFlow's
``ExponentialMovingAverage`` with ``num_updates``) lets the average follow G closely while G
changes fast: without it, an average with beta = 0.999 would still hold a third of G's random
initial weights after 1,000 updates (e^-1), 13 DCGAN-28 epochs on 10,000 digits.

The average only ever reads G: training, its random numbers and G itself are exactly those of
the run without it (tested), so one run gives the raw and the averaged generator side by side.

BatchNorm. A generator with BatchNorm samples (in eval mode) with running statistics that
belong to G's own weights. For the averaged weights there are three choices (``bn``):

- ``"copy"``: G's running statistics, as they are;
- ``"average"``: the running statistics averaged with the same beta_t as the weights;
- ``"reestimate"``: the exact statistics of the averaged generator itself, measured by running
  it in training mode on ``bn_batches`` batches of noise (a fixed seed, so a checkpoint always
  gives the same generator) and averaging the batches' means and unbiased variances, as
  ``torch.optim.swa_utils.update_bn`` does. Costs that many forward passes per preparation.
  ``noise_dims``: one noise sample's shape, (z, 1, 1) for DCGAN. A conditional generator
  (``num_classes`` K > 0) reads (z, y): each batch then holds the K classes in turn
  (y_i = i mod K), so every class weighs the same in the statistics.

``averaged_generator(G)`` (the trainer's hook for sampling) prepares and returns the averaged generator for sampling (eval mode); it is
prepared again only after the average has moved.
"""
import copy

import numpy as np

from .. import backend
from ..layers import BatchNorm

BN_MODES = ("copy", "average", "reestimate")
WARMUP = 10          # beta_t = min(beta, (1 + t) / (WARMUP + t))
REESTIMATE_SEED = 7  # noise of the BatchNorm re-estimation


class GeneratorEMA:
    """An exponential moving average of G's parameters (and BatchNorm statistics); see the module doc."""

    history_keys = ()

    def __init__(self, G, beta=0.999, bn="reestimate", noise_dims=(100, 1, 1), bn_batches=20, bn_batch_size=128,
                 warmup=True, num_classes=0):
        if not (isinstance(beta, (float, int, np.floating)) and 0 < beta < 1):
            raise ValueError(f"GeneratorEMA: beta must be a number in (0, 1), got {beta!r}")
        if bn not in BN_MODES:
            raise ValueError(f"GeneratorEMA: bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
        self.beta, self.bn, self.warmup = float(beta), bn, warmup
        self.noise_dims, self.bn_batches, self.bn_batch_size = tuple(noise_dims), bn_batches, bn_batch_size
        self.num_classes = int(num_classes)
        self.average = _copy_model(G)      # the averaged parameters and BatchNorm statistics (the state)
        self._sampler = _copy_model(G)     # what is sampled from: the average, its statistics set by ``bn``
        self._prepared = None              # (updates, id of G) the sampler was prepared for
        self.updates = 0

    # -- training ----------------------------------------------------------------------
    def decay(self):
        """beta_t for the next update."""
        return min(self.beta, (1 + self.updates) / (WARMUP + self.updates)) if self.warmup else self.beta

    def after_g_step(self, trainer):
        self.update(trainer.G)

    def update(self, G):
        """theta_avg += (1 - beta_t)(theta - theta_avg) for every parameter and float buffer of G."""
        self._follow_device(G)
        beta = self.decay()
        for (_, layer, key), (_, avg_layer, _) in zip(G.named_parameters(), self.average.named_parameters()):
            _move_toward(avg_layer.params[key], layer.params[key], 1 - beta)
        for (_, layer), (_, avg_layer) in zip(G.named_layers(), self.average.named_layers()):
            for key, value in layer.buffers.items():
                if value.dtype.kind == "f":
                    _move_toward(avg_layer.buffers[key], value, 1 - beta)
                else:                      # counters (num_batches_tracked): G's
                    avg_layer.buffers[key] = value.copy()
        self.updates += 1

    def _follow_device(self, G):
        """Keep the average on G's device and dtype (a recipe builds it before the run moves G)."""
        _, layer, key = G.named_parameters()[0]
        _, mine, _ = self.average.named_parameters()[0]
        ref, own = layer.params[key], mine.params[key]
        if backend.get_xp(ref) is not backend.get_xp(own) or ref.dtype != own.dtype:
            device = backend.device_of(ref)
            self.average.to(device, dtype=ref.dtype)
            self._sampler.to(device, dtype=ref.dtype)
            self._prepared = None

    # -- sampling ------------------------------------------------------------------------
    def averaged_generator(self, G):
        """The averaged generator in eval mode, its BatchNorm statistics set by ``bn`` (``G``: the
        trained generator, whose statistics ``"copy"`` takes). Prepared again only when needed."""
        self._follow_device(G)
        if self._prepared != (self.updates, id(G)) or self.bn == "copy":
            self._sampler.load_state_dict(self.average.state_dict())
            if self.bn == "copy":
                _copy_batchnorm_statistics(G, self._sampler)
            elif self.bn == "reestimate":
                self._reestimate(G)
            self._prepared = (self.updates, id(G))
        return self._sampler.eval()

    def _reestimate(self, G):
        """Running statistics := the mean over ``bn_batches`` noise batches of each batch's mean and
        unbiased variance (BatchNorm's momentum set to 1/(k+1) for the k-th batch, then restored)."""
        norms = [layer for _, layer in self._sampler.named_layers() if isinstance(layer, BatchNorm)]
        if not norms:
            return
        _, layer, key = G.named_parameters()[0]
        ref = layer.params[key]
        xp, rng = backend.get_xp(ref), backend.RNG(REESTIMATE_SEED)
        momenta = [layer.momentum for layer in norms]
        try:
            for k in range(self.bn_batches):
                for layer in norms:
                    layer.momentum = 1.0 / (k + 1)
                z = rng.normal((self.bn_batch_size, *self.noise_dims), dtype=ref.dtype.type, xp=xp)
                self._sampler.forward(self._with_labels(z, xp), train=True, keep_cache=False)
        finally:
            for layer, momentum in zip(norms, momenta):
                layer.momentum = momentum

    def _with_labels(self, z, xp):
        """The generator's input: z, or (z, y) with the classes in turn for a conditional one."""
        if not self.num_classes:
            return z
        return z, xp.arange(len(z), dtype=np.int64) % self.num_classes

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self):
        return {**self.average.state_dict(), "updates": np.array(self.updates)}

    def load_state_dict(self, state):
        state = dict(state)
        if "updates" not in state:
            raise ValueError("GeneratorEMA: the checkpoint has no averaged generator")
        self.updates = int(state.pop("updates"))
        self.average.load_state_dict(state)
        self._prepared = None


def _copy_model(G):
    """An independent copy of ``G``'s layers, parameters and buffers (no caches, no gradients kept)."""
    twin = copy.deepcopy(G)
    twin.clear_cache()
    return twin


def _move_toward(average, value, weight):
    """average += weight (value - average), in place."""
    average += average.dtype.type(weight) * (value - average)


def _copy_batchnorm_statistics(source, target):
    for (_, a), (_, b) in zip(source.named_layers(), target.named_layers()):
        if isinstance(a, BatchNorm):
            for key, value in a.buffers.items():
                b.buffers[key] = value.copy()


def find_average(extensions):
    """The GeneratorEMA among a run's extensions, or None."""
    return next((ext for ext in extensions if isinstance(ext, GeneratorEMA)), None)
