"""The GAN training step: k discriminator updates per generator update, by hand.

One call of ``GANTrainer.train_step(real)`` is one discriminator step::

    z ~ N(0, I);  fake = G(z)                                  (G runs once per step)
    D loss = L_D(D(real), real) + L_D(D(fake), fake) [+ penalties];  backprop through D;  D update

and after every k-th discriminator step a generator step reuses that fake batch::

    G loss = L_G(D(fake))            e.g. non-saturating BCE(D(fake), 1) or minimax -BCE(D(fake), 0)
    dfake = D.backward(dG_loss / dD(fake))      (D's parameter gradients switched off)
    G.backward(dfake);  G update

L_D and L_G come from the objective (objectives.py: the cross-entropy game by default);
extensions hook penalties, weight constraints and weight averages into the step.

This is the benchmark's step (docs/performance.md; for k = 1) and the PyTorch DCGAN
example's: the fake that D just learned from is shown to the *updated* D for G's turn.
"""
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import backend
from .objectives import CrossEntropyGame


def concat(a, b):
    """Two batches as one: arrays joined along axis 0, tuples of arrays item by item."""
    if isinstance(a, tuple):
        return tuple(concat(x, y) for x, y in zip(a, b))
    return backend.get_xp(a).concatenate([a, b])


def split(batch, n):
    """Inverse of concat: (the first n samples, the rest)."""
    if isinstance(batch, tuple):
        halves = [split(x, n) for x in batch]
        return tuple(h[0] for h in halves), tuple(h[1] for h in halves)
    return batch[:n], batch[n:]


def _param_dtype(model):
    _, layer, key = model.named_parameters()[0]
    return layer.params[key].dtype.type


NOISE_KINDS = ("normal", "uniform")


def draw_noise(rng, dims, kind="normal", dtype=np.float32, xp=np):
    """G's input noise of shape ``dims`` from ``rng`` (a backend.RNG): N(0, I) ("normal", the
    default) or uniform in the unit hypercube [0, 1)^d ("uniform", the CGAN paper's prior)."""
    if kind == "normal":
        return rng.normal(dims, dtype=dtype, xp=xp)
    if kind == "uniform":
        return rng.uniform(dims, dtype=dtype, xp=xp)
    raise ValueError(f"unknown noise {kind!r}; expected one of {NOISE_KINDS}")


class DivergenceError(RuntimeError):
    """A loss became NaN or infinite; the run stops before writing anything from that state."""


@dataclass
class GANConfig:
    z_dim: int = 28
    noise_shape: tuple = ()          # trailing noise axes: () for MLPs, (1, 1) for DCGAN's (z, 1, 1)
    batch_size: int = 200
    k: int = 1                       # discriminator steps per generator step
    g_loss: str = "non-saturating"   # or "minimax"
    label_smoothing: float = 0.0     # real targets become 1 - label_smoothing (one-sided)
    flip_prob: float = 0.0           # probability of swapping each sample's D target
    seed: int = 0
    n_progress: int = 15             # fixed-noise samples drawn after every epoch
    num_classes: int = 0             # > 0: a conditional model, G(z, y) and D(x, y)
    noise: str = "normal"            # G's prior: "normal" N(0, I) or "uniform" U[0, 1)^d (draw_noise)
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        d = asdict(self)
        d["noise_shape"] = list(self.noise_shape)
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**{**d, "noise_shape": tuple(d.get("noise_shape", ()))})


class GANTrainer:
    """Holds G, D, their optimizers, the objective, the noise generator, counters and the history.

    ``objective``: the game (``objectives.CrossEntropyGame`` or another family's); a head
    (``get_head(...)``) is wrapped in a CrossEntropyGame configured from ``config``.
    ``extensions``: objects that join the step through any of these optional hooks:

    - ``d_penalty(trainer, batch)``: after D's loss is back-propagated, add a penalty's
      gradient into D's gradients and return its value (recorded under ``history_keys``);
    - ``g_penalty(trainer, batch)``: the same for G, after G's loss is back-propagated
      (historical averaging); its value is added to the recorded G loss;
    - ``after_d_step(trainer)`` / ``after_g_step(trainer)``: after each optimizer step
      (weight clipping, a moving average of G's weights, ...);
    - ``after_epoch(trainer, epoch)``: when a run has finished ``epoch`` epochs (it calls
      ``trainer.after_epoch``): per-epoch schedules such as the CGAN paper's momentum;
    - ``before_step(trainer)``: before each discriminator step (learning-rate schedules);
    - ``averaged_generator(G)``: the generator to sample from instead of G (a weight average);
    - ``state_dict()`` / ``load_state_dict(state)``: state saved in checkpoints.

    An objective whose G loss reads D's features rather than D's output (feature matching,
    gan/fixes.py) says so with ``feature_split(D)``; see ``generator_loss``.

    For a conditional model (``config.num_classes`` > 0) batches are (images, labels),
    G reads (z, y) and D reads (x, y); fakes get labels drawn uniformly from the classes.
    """

    def __init__(self, G, D, opt_g, opt_d, objective, config, device="cpu", sync_every=None, extensions=()):
        if config.k < 1:
            raise ValueError(f"k (discriminator steps per generator step) must be >= 1, got {config.k}")
        if config.noise not in NOISE_KINDS:
            raise ValueError(f"unknown noise {config.noise!r}; expected one of {NOISE_KINDS}")
        if not hasattr(objective, "d_loss"):   # a head: the original cross-entropy game
            objective = CrossEntropyGame(objective, config.g_loss, config.label_smoothing, config.flip_prob)
        self.G, self.D, self.opt_g, self.opt_d, self.config = G, D, opt_g, opt_d, config
        self.objective, self.extensions = objective, list(extensions)
        self.head = getattr(objective, "head", None)
        self.device, self.xp = device, backend.xp_for(device)
        self.dtype = _param_dtype(G)
        self.rng = backend.RNG(config.seed + 1)   # noise, labels and label flips; weights use the global one
        host = np.random.default_rng(config.seed + 2)
        dims = self.noise_dims(config.n_progress)
        draw = host.random if config.noise == "uniform" else host.standard_normal
        self.fixed_noise = backend.to_device(draw(dims).astype(self.dtype), device)
        self.steps_per_epoch = None   # set by a run (the loader's length), for learning-rate schedules
        self.d_steps = 0   # discriminator updates done
        self.g_steps = 0   # generator updates done
        self.history_keys = (("d_loss", "g_loss") + tuple(objective.stat_keys)
                             + tuple(key for ext in self.extensions for key in getattr(ext, "history_keys", ())))
        self.history = {key: [] for key in self.history_keys}
        self._pending = []  # per-step metrics still on the device
        self.sync_every = sync_every or (1 if device == "cpu" else 25)
        #: run D on real and fake as one batch (see discriminator_step); off if a layer mixes samples
        self.joint_d_batch = not any(layer.mixes_batch for _, layer in D.named_layers())

    @classmethod
    def from_setup(cls, setup, device="cpu", **kw):
        """The trainer of a recipe's Setup (its models, optimizers, objective and extensions)."""
        return cls(setup.G, setup.D, setup.opt_g, setup.opt_d, setup.objective or setup.head, setup.config,
                   device, extensions=setup.extensions, **kw)

    @property
    def conditional(self):
        return self.config.num_classes > 0

    # -- noise and labels ---------------------------------------------------------------
    def noise_dims(self, n):
        return (n, self.config.z_dim, *self.config.noise_shape)

    def sample_noise(self, n, rng=None):
        """n noise vectors from the trainer's generator (or ``rng``: evaluation draws its own)."""
        return draw_noise(rng or self.rng, self.noise_dims(n), self.config.noise, self.dtype, self.xp)

    def sample_labels(self, n):
        """Class labels for n fakes, uniform over the classes (int64 on the training device)."""
        u = self.rng.uniform((n,), dtype=np.float64, xp=self.xp)
        return self.xp.minimum((u * self.config.num_classes).astype(np.int64), self.config.num_classes - 1)

    def with_labels(self, x, labels):
        """A model's input: x alone, or (x, labels) for a conditional model."""
        return (x, labels) if self.conditional else x

    # -- one step ------------------------------------------------------------------
    def train_step(self, batch):
        """One discriminator update on ``batch`` (images, or (images, labels) for a conditional
        model), then a generator update if this is the k-th."""
        real, labels = self._unpack(batch)
        self._after("before_step")
        g_turn = (self.d_steps + 1) % self.config.k == 0
        fake_labels = self.sample_labels(len(real)) if self.conditional else None
        fake = self.G.forward(self.with_labels(self.sample_noise(len(real)), fake_labels), train=True, keep_cache=g_turn)
        d_loss, score_real, score_fake, penalties = self.discriminator_step(real, fake, labels, fake_labels)
        g_value = (self.generator_step(fake, fake_labels, real, labels) if g_turn
                   else self.xp.asarray(np.nan, dtype=self.dtype))
        self._record(d_loss, g_value, score_real, score_fake, penalties, g_turn)
        return g_turn

    def _unpack(self, batch):
        real, labels = batch if isinstance(batch, tuple) else (batch, None)
        if self.conditional and labels is None:
            raise ValueError("a conditional model trains on (images, labels) batches; got images only")
        return real, labels

    def discriminator_step(self, real, fake, labels=None, fake_labels=None):
        """D update on the real batch and the fake batch (G's output, treated as data).

        D's loss is the objective's loss on the real batch plus its loss on the fake batch,
        plus any extension's penalty. When no layer of D mixes the samples of a batch (no
        BatchNorm), the two batches go through D as one: the same sums in matrix products
        twice as tall, each half's loss the mean over its own samples as before.
        Returns (loss, D's score of each real, of each fake, [penalty values]).
        """
        self.D.zero_grad()
        real_in, fake_in = self.with_labels(real, labels), self.with_labels(fake, fake_labels)
        if self.joint_d_batch and len(real) == len(fake):
            out = self.D.forward(concat(real_in, fake_in), train=True)
            out_real, out_fake = split(out, len(real))
            (loss_real, d_real), (loss_fake, d_fake) = self._d_losses(out_real, out_fake, labels, fake_labels)
            self.D.backward(concat(d_real, d_fake), input_grad=False)   # the batch is data: no dx
        else:
            out_real, loss_real = self._d_pass(real_in, True, labels)
            out_fake, loss_fake = self._d_pass(fake_in, False, fake_labels)
        batch = {"real": real, "fake": fake, "labels": labels, "fake_labels": fake_labels}
        penalties = [ext.d_penalty(self, batch) for ext in self.extensions if hasattr(ext, "d_penalty")]
        self.opt_d.step()
        self.d_steps += 1
        self._after("after_d_step")
        d_loss = loss_real + loss_fake
        for value in penalties:
            d_loss = d_loss + value
        return d_loss, self.objective.score(out_real), self.objective.score(out_fake), penalties

    def _d_losses(self, out_real, out_fake, labels, fake_labels):
        """The objective's (loss, d out) on the real and on the fake batch, real first (its label flips too)."""
        return (self.objective.d_loss(out_real, True, labels, self.rng),
                self.objective.d_loss(out_fake, False, fake_labels, self.rng))

    def _d_pass(self, batch, is_real, labels):
        """Forward and backward of one batch through D, adding to D's gradients; (output, loss)."""
        out = self.D.forward(batch, train=True)
        loss, dout = self.objective.d_loss(out, is_real, labels, self.rng)
        self.D.backward(dout, input_grad=False)   # the batch is data here: no dx needed
        return out, loss

    def generator_step(self, fake, fake_labels=None, real=None, labels=None):
        """G update through D on the same fake batch; D only passes the gradient back.
        (``real``, ``labels``: the step's real batch, read only by feature matching.)"""
        with self.D.frozen():
            loss, dfake = self.generator_loss(self.with_labels(fake, fake_labels), fake_labels,
                                              None if real is None else self.with_labels(real, labels))
        if self.conditional:
            dfake = dfake[0]                          # no gradient for the labels
        self.G.zero_grad()
        self.G.backward(dfake, input_grad=False)      # nor d(noise)
        batch = {"real": real, "fake": fake, "labels": labels, "fake_labels": fake_labels}
        for ext in self.extensions:
            if hasattr(ext, "g_penalty"):
                loss = loss + ext.g_penalty(self, batch)
        self.opt_g.step()
        self.g_steps += 1
        self._after("after_g_step")
        return loss

    def generator_loss(self, fake_in, fake_labels=None, real_in=None):
        """G's loss on D's verdict of ``fake_in`` and its gradient with respect to ``fake_in``.

        Usually the objective's ``g_loss`` on D's output. An objective with ``feature_split(D)``
        (feature matching) reads D's intermediate features as well: D runs as body = D[:n]
        and head = D[n:], the body also on the real batch (no cache kept), and
        ``g_loss_with_features(out, features, real_features, labels)`` returns the loss with its
        gradients at D's output (None: the output is not used) and at the fake features.
        """
        if not hasattr(self.objective, "feature_split"):
            out = self.D.forward(fake_in, train=True)
            loss, dout = self.objective.g_loss(out, fake_labels)
            return loss, self.D.backward(dout)
        if real_in is None:
            raise ValueError(f"{type(self.objective).__name__} compares fake and real features: "
                             "generator_step needs the real batch")
        split = self.objective.feature_split(self.D)
        body, head = self.D[:split], self.D[split:]
        real_features = body.forward(real_in, train=True, keep_cache=False)
        features = body.forward(fake_in, train=True)
        out = head.forward(features, train=True)
        loss, dout, dfeatures = self.objective.g_loss_with_features(out, features, real_features, fake_labels)
        if dout is None:
            head.clear_cache()
        else:
            dfeatures = dfeatures + head.backward(dout)
        return loss, body.backward(dfeatures)

    def _after(self, hook, *args):
        for ext in self.extensions:
            if hasattr(ext, hook):
                getattr(ext, hook)(self, *args)

    def after_epoch(self, epoch):
        """Called by a run when ``epoch`` epochs are done: the extensions' ``after_epoch`` hooks."""
        self._after("after_epoch", epoch)

    # -- history ------------------------------------------------------------------------
    def _record(self, d_loss, g_value, score_real, score_fake, penalties, g_turn):
        values = [d_loss, g_value, *self.objective.stats(score_real, score_fake), *penalties]
        metrics = self.xp.stack([self.xp.asarray(v, dtype=self.dtype) for v in values])
        self._pending.append((metrics, g_turn))
        if len(self._pending) >= self.sync_every:
            self.flush()

    def flush(self):
        """Copy pending metrics to the host history; raise DivergenceError on a non-finite loss."""
        if not self._pending:
            return
        rows = backend.asnumpy(self.xp.stack([m for m, _ in self._pending])).astype(np.float64)
        g_turns = [g for _, g in self._pending]
        first_step = self.d_steps - len(rows) + 1
        self._pending = []
        for offset, (row, g_turn) in enumerate(zip(rows, g_turns)):
            d_loss, g_value = row[0], row[1]
            if not math.isfinite(d_loss) or (g_turn and not math.isfinite(g_value)):
                raise DivergenceError(
                    f"non-finite loss at discriminator step {first_step + offset} "
                    f"(D loss {d_loss}, G loss {g_value}); stopping without saving this state")
            for key, value in zip(self.history_keys, row):
                self.history[key].append(float(value))

    def last(self, key):
        """The latest recorded value of ``key`` whose value is a number (G loss skips D-only steps)."""
        for value in reversed(self.history[key]):
            if not math.isnan(value):
                return value
        return math.nan

    # -- sampling ------------------------------------------------------------------
    def sampling_generator(self):
        """The generator samples come from: the average of G's weights when an extension keeps one
        (its ``averaged_generator(G)`` hook, gan/averaging.py), else G itself."""
        for ext in self.extensions:
            if hasattr(ext, "averaged_generator"):
                return ext.averaged_generator(self.G)
        return self.G

    def sample(self, n=None, noise=None, labels=None, batch_size=500, generator=None):
        """Generator samples in eval mode (BatchNorm uses its running statistics).

        A conditional model draws class ``labels`` (an array, one per sample), uniform if None.
        ``generator``: the model to sample (default ``sampling_generator()``; ``self.G`` for the raw one).
        """
        G = self.sampling_generator() if generator is None else generator
        noise = self.sample_noise(n) if noise is None else noise
        if self.conditional:
            labels = self.sample_labels(len(noise)) if labels is None else self.xp.asarray(labels)
        outs = [G.forward(self.with_labels(noise[i:i + batch_size], None if labels is None
                                           else labels[i:i + batch_size]), train=False, keep_cache=False)
                for i in range(0, len(noise), batch_size)]
        return self.xp.concatenate(outs)

    # -- state -------------------------------------------------------------------------
    def state_dict(self):
        self.flush()
        return {"d_steps": self.d_steps, "g_steps": self.g_steps, "rng": self.rng.state_dict(),
                "history": {k: list(v) for k, v in self.history.items()}}

    def extension_arrays(self):
        """Every extension's state as one flat dict of NumPy arrays, "<extension class>/<key>"."""
        return {f"{type(ext).__name__}/{key}": value for ext in self.extensions if hasattr(ext, "state_dict")
                for key, value in ext.state_dict().items()}

    def load_extension_arrays(self, arrays):
        for ext in self.extensions:
            if hasattr(ext, "load_state_dict"):
                prefix = f"{type(ext).__name__}/"
                ext.load_state_dict({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})

    def load_state_dict(self, state):
        self.d_steps, self.g_steps = int(state["d_steps"]), int(state["g_steps"])
        self.rng.load_state_dict(state["rng"])
        self.history = {k: list(state["history"][k]) for k in self.history_keys}
        self._pending = []
