"""The GAN training step: k discriminator updates per generator update, by hand.

One call of ``GANTrainer.train_step(real)`` is one discriminator step::

    z ~ N(0, I);  fake = G(z)                                  (G runs once per step)
    D loss = BCE(D(real), t_real) + BCE(D(fake), t_fake);  backprop through D;  D update

and after every k-th discriminator step a generator step reuses that fake batch::

    G loss = non-saturating BCE(D(fake), 1) or minimax -BCE(D(fake), 0)
    dfake = D.backward(dG_loss / dD(fake))      (D's parameter gradients switched off)
    G.backward(dfake);  G update

This is the step of ``shared/bench/SPEC.md`` (for k = 1) and of the PyTorch DCGAN
example: the fake that D just learned from is shown to the *updated* D for G's turn.
"""
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import backend
from .objectives import d_targets, g_loss

HISTORY_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "acc_real", "acc_fake")


def _param_dtype(model):
    _, layer, key = model.named_parameters()[0]
    return layer.params[key].dtype.type


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
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        d = asdict(self)
        d["noise_shape"] = list(self.noise_shape)
        return d

    @classmethod
    def from_dict(cls, d):
        return cls(**{**d, "noise_shape": tuple(d.get("noise_shape", ()))})


class GANTrainer:
    """Holds G, D, their optimizers, the noise generator, counters and the history."""

    def __init__(self, G, D, opt_g, opt_d, head, config, device="cpu", sync_every=None):
        if config.k < 1:
            raise ValueError(f"k (discriminator steps per generator step) must be >= 1, got {config.k}")
        self.G, self.D, self.opt_g, self.opt_d, self.head, self.config = G, D, opt_g, opt_d, head, config
        self.device, self.xp = device, backend.xp_for(device)
        self.dtype = _param_dtype(G)
        self.rng = backend.RNG(config.seed + 1)   # noise and label flips; weights use the global one
        self.fixed_noise = backend.to_device(
            np.random.default_rng(config.seed + 2).standard_normal(self.noise_dims(config.n_progress))
            .astype(self.dtype), device)
        self.d_steps = 0   # discriminator updates done
        self.g_steps = 0   # generator updates done
        self.history = {key: [] for key in HISTORY_KEYS}
        self._pending = []  # per-step metrics still on the device
        self.sync_every = sync_every or (1 if device == "cpu" else 25)
        #: run D on real and fake as one batch (see discriminator_step); off if a layer mixes samples
        self.joint_d_batch = not any(layer.mixes_batch for _, layer in D.named_layers())

    # -- noise ------------------------------------------------------------------------
    def noise_dims(self, n):
        return (n, self.config.z_dim, *self.config.noise_shape)

    def sample_noise(self, n):
        return self.rng.normal(self.noise_dims(n), dtype=self.dtype, xp=self.xp)

    # -- one step ------------------------------------------------------------------
    def train_step(self, real):
        """One discriminator update, then a generator update if this is the k-th."""
        g_turn = (self.d_steps + 1) % self.config.k == 0
        fake = self.G.forward(self.sample_noise(len(real)), train=True, keep_cache=g_turn)
        d_loss, p_real, p_fake = self.discriminator_step(real, fake)
        g_value = self.generator_step(fake) if g_turn else self.xp.asarray(np.nan, dtype=self.dtype)
        self._record(d_loss, g_value, p_real, p_fake, g_turn)
        return g_turn

    def discriminator_step(self, real, fake):
        """D update on the real batch and the fake batch (G's output, treated as data).

        Returns D's loss, BCE(D(real), t_real) + BCE(D(fake), t_fake), and P(real) for each
        batch. When no layer of D mixes the samples of a batch (no BatchNorm), the two batches
        go through D as one: the same sums in matrix products twice as tall. Each BCE is a
        mean over its own N samples, so over the joined 2N the loss is half their sum, and
        loss and gradient are doubled.
        """
        cfg, xp = self.config, self.xp
        t_real, t_fake = (d_targets(len(batch), is_real, xp, self.dtype, cfg.label_smoothing, cfg.flip_prob,
                                    self.rng) for batch, is_real in ((real, True), (fake, False)))
        self.D.zero_grad()
        if self.joint_d_batch and len(real) == len(fake):
            d_loss, p = self._d_pass(xp.concatenate([real, fake]), xp.concatenate([t_real, t_fake]), scale=2)
            p_real, p_fake = p[:len(real)], p[len(real):]
        else:
            (loss_real, p_real), (loss_fake, p_fake) = self._d_pass(real, t_real), self._d_pass(fake, t_fake)
            d_loss = loss_real + loss_fake
        self.opt_d.step()
        self.d_steps += 1
        return d_loss, p_real, p_fake

    def _d_pass(self, batch, target, scale=1):
        """Forward and backward of ``batch`` through D, adding to D's gradients; (scale * loss, P(real))."""
        out = self.D.forward(batch, train=True)
        loss, dout = self.head.bce(out, target)
        if scale != 1:
            loss, dout = loss * self.dtype(scale), dout * self.dtype(scale)
        self.D.backward(dout, input_grad=False)   # the batch is data here: no dx needed
        return loss, self.head.prob_real(out)

    def generator_step(self, fake):
        """G update through D on the same fake batch; D only passes the gradient back."""
        self.D.requires_grad_(False)
        try:
            out = self.D.forward(fake, train=True)
            loss, dout = g_loss(self.head, out, self.config.g_loss)
            dfake = self.D.backward(dout)
        finally:
            self.D.requires_grad_(True)
        self.G.zero_grad()
        self.G.backward(dfake, input_grad=False)      # nor d(noise)
        self.opt_g.step()
        self.g_steps += 1
        return loss

    # -- history ------------------------------------------------------------------------
    def _record(self, d_loss, g_value, p_real, p_fake, g_turn):
        half = self.dtype(0.5)
        metrics = self.xp.stack([d_loss, g_value, p_real.mean(), p_fake.mean(),
                                 (p_real > half).mean(dtype=self.dtype), (p_fake < half).mean(dtype=self.dtype)])
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
            for key, value in zip(HISTORY_KEYS, row):
                self.history[key].append(float(value))

    def last(self, key):
        """The latest recorded value of ``key`` whose value is a number (G loss skips D-only steps)."""
        for value in reversed(self.history[key]):
            if not math.isnan(value):
                return value
        return math.nan

    # -- sampling ------------------------------------------------------------------
    def sample(self, n=None, noise=None, batch_size=500):
        """Generator samples in eval mode (BatchNorm uses its running statistics)."""
        noise = self.sample_noise(n) if noise is None else noise
        outs = [self.G.forward(noise[i:i + batch_size], train=False, keep_cache=False)
                for i in range(0, len(noise), batch_size)]
        return self.xp.concatenate(outs)

    # -- state -------------------------------------------------------------------------
    def state_dict(self):
        self.flush()
        return {"d_steps": self.d_steps, "g_steps": self.g_steps, "rng": self.rng.state_dict(),
                "history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state):
        self.d_steps, self.g_steps = int(state["d_steps"]), int(state["g_steps"])
        self.rng.load_state_dict(state["rng"])
        self.history = {k: list(state["history"][k]) for k in HISTORY_KEYS}
        self._pending = []
