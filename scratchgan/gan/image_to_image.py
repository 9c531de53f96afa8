"""What the image-to-image families (CycleGAN, SRGAN) share: a trainer's history and a run's bookkeeping.

Their steps do not fit ``GANTrainer``'s noise-to-image step (two generators and two critics;
a generator fed images with a content loss), so each family has its own trainer class with
this module's ``StepHistory`` inside it, and its own run class (``train_run``'s protocol,
see ``run.GANRun``) built on ``ImageToImageRun``.
"""
import math

import numpy as np

from .. import backend
from .trainer import DivergenceError


class StepHistoryTrainer:
    """What a run reads of an image-to-image trainer's bookkeeping, kept in ``self.steps`` (a StepHistory)."""

    history = property(lambda self: self.steps.history)
    d_steps = property(lambda self: self.steps.d_steps)

    def last(self, key):
        return self.steps.last(key)

    def flush(self):
        self.steps.flush()

    def state_dict(self):
        return self.steps.state_dict()

    def load_state_dict(self, state):
        self.steps.load_state_dict(state)


class StepHistory:
    """Per-step metrics of a trainer: recorded as device arrays, copied to the host every
    ``sync_every`` steps (``flush``), checked for NaN/inf there (DivergenceError naming the step).

    ``d_steps`` counts training steps (one per batch), the name run.py's messages read.
    """

    def __init__(self, keys, device="cpu", sync_every=None):
        self.history_keys = tuple(keys)
        self.history = {key: [] for key in self.history_keys}
        self.d_steps = 0
        self.sync_every = sync_every or (1 if device == "cpu" else 25)
        self._pending = []

    def record(self, values):
        """One step's values (0-d arrays or numbers, in ``history_keys`` order)."""
        xp = backend.get_xp(next((v for v in values if hasattr(v, "dtype")), np.zeros(())))
        self._pending.append(xp.stack([xp.asarray(v, dtype=np.float32) for v in values]))
        if len(self._pending) >= self.sync_every:
            self.flush()

    def flush(self):
        if not self._pending:
            return
        rows = backend.asnumpy(backend.get_xp(self._pending[0]).stack(self._pending)).astype(np.float64)
        first = self.d_steps - len(rows) + 1
        self._pending = []
        for offset, row in enumerate(rows):
            bad = [key for key, value in zip(self.history_keys, row) if not math.isfinite(value)]
            if bad:
                raise DivergenceError(f"non-finite {', '.join(bad)} at step {first + offset} "
                                      f"({', '.join(f'{k} {v}' for k, v in zip(self.history_keys, row))}); "
                                      f"stopping without saving this state")
            for key, value in zip(self.history_keys, row):
                self.history[key].append(float(value))

    def last(self, key):
        return self.history[key][-1] if self.history[key] else math.nan

    def state_dict(self):
        self.flush()
        return {"d_steps": self.d_steps, "history": {k: list(v) for k, v in self.history.items()}}

    def load_state_dict(self, state):
        self.d_steps = int(state["d_steps"])
        self.history = {k: list(state["history"][k]) for k in self.history_keys}
        self._pending = []


class ImageToImageRun:
    """Bookkeeping of an image-to-image family's run: subclasses set ``networks`` and ``optimizers``
    ({checkpoint prefix: object}), ``trainer`` and ``loader``, and write their own figures."""

    files = ()
    class_progress = ()   # no class grids
    draws_samples = False   # G maps images to images: no samples from noise (no quiz, no report at the end)
    networks: dict
    optimizers: dict

    def models(self):
        return dict(self.networks)

    def parts(self):
        return {**self.networks, **self.optimizers}

    def restore(self, checkpoint):
        checkpoint.restore(self.parts(), self.trainer)

    def evaluator(self, dataset, data_dir, quiet):
        return None   # image-to-image runs measure themselves in write_epoch_outputs / write_final_outputs

    def end_epoch(self, epoch):
        pass


def set_learning_rate(optimizers, lr):
    for optimizer in optimizers:
        optimizer.lr = lr
