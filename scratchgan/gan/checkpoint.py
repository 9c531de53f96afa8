"""Checkpoints: one ``.npz`` holding everything needed to continue a run exactly.

Arrays are stored under prefixes (``G/``, ``D/``, ``opt_g/``, ``opt_d/``, ``history/``, ``ext/``
for the trainer's extensions)
beside ``fixed_noise`` and ``progress`` (the per-epoch samples); everything else (recipe
and options, counters, the states of every random generator and of the batch loader)
is one JSON string under ``meta``. Files are written atomically: a crash or Ctrl-C
while saving leaves the previous checkpoint untouched.
"""
import json
import zipfile

import numpy as np

from .. import backend
from ..fileio import atomic_write

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


def save_checkpoint(path, meta, setup, trainer, progress):
    """Write G, D, both optimizers, the trainer's history and ``meta`` (a JSON-able dict)."""
    arrays = {}
    for prefix, state in (("G/", setup.G.state_dict()), ("D/", setup.D.state_dict()),
                          ("opt_g/", setup.opt_g.state_dict()), ("opt_d/", setup.opt_d.state_dict())):
        arrays.update({prefix + k: v for k, v in state.items()})
    trainer_state = trainer.state_dict()
    arrays.update({f"history/{k}": np.asarray(v, dtype=np.float64) for k, v in trainer_state.pop("history").items()})
    arrays.update({f"ext/{k}": backend.asnumpy(v) for k, v in trainer.extension_arrays().items()})
    arrays["fixed_noise"] = backend.asnumpy(trainer.fixed_noise)
    arrays["progress"] = np.asarray(progress, dtype=np.float32)
    meta = {**meta, "format": FORMAT_VERSION, "trainer": trainer_state,
            "global_rng": backend.global_rng().state_dict()}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_write(path) as f:
        np.savez(f, **arrays)


class Checkpoint:
    """A loaded checkpoint: ``meta`` (dict) and the arrays, restorable into a fresh setup."""

    def __init__(self, path):
        self.path = path
        try:
            with np.load(path, allow_pickle=False) as data:
                self.arrays = {k: data[k] for k in data.files}
            self.meta = json.loads(str(self.arrays.pop("meta")))
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {path} does not exist") from None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
            raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
        if self.meta.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint {path} has format {self.meta.get('format')}, "
                                  f"this version of scratchgan reads format {FORMAT_VERSION}")

    def part(self, prefix):
        return {k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)}

    def load_generator(self, G):
        self._load(G, "G/")

    def restore(self, setup, trainer):
        """Put models, optimizers, trainer counters, history and random generators back."""
        self._load(setup.G, "G/")
        self._load(setup.D, "D/")
        setup.opt_g.load_state_dict(self.part("opt_g/"))
        setup.opt_d.load_state_dict(self.part("opt_d/"))
        history = {k: v.tolist() for k, v in self.part("history/").items()}
        trainer.load_state_dict({**self.meta["trainer"], "history": history})
        trainer.load_extension_arrays(self.part("ext/"))
        trainer.fixed_noise = backend.to_device(self.arrays["fixed_noise"], trainer.device)
        backend.global_rng().load_state_dict(self.meta["global_rng"])

    def progress(self):
        return list(self.arrays["progress"])

    def _load(self, model, prefix):
        try:
            model.load_state_dict(self.part(prefix))
        except ValueError as e:
            raise CheckpointError(f"checkpoint {self.path} does not fit the model: {e}") from None
