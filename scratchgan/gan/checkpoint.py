"""Checkpoints: one ``.npz`` holding everything needed to continue a run exactly.

Arrays are stored under prefixes (``G/``, ``D/``, ``opt_g/``, ``opt_d/``, ``history/``, ``ext/``
for the trainer's extensions)
beside ``fixed_noise`` and ``progress`` (the per-epoch samples; ``class_progress``, the class grids, for a
conditional run); everything else (recipe
and options, counters, the states of every random generator and of the batch loader)
is one JSON string under ``meta``. Files are written atomically: a crash or Ctrl-C
while saving leaves the previous checkpoint untouched.

Reading checks the file before trusting it: anything that is not such an archive (empty,
random bytes, a truncated copy, another program's .npz, malformed metadata) raises
CheckpointError saying what the file is and is not.
"""
import json
import zipfile
import zlib

import numpy as np

from .. import backend
from ..fileio import atomic_write
from ..layers import Layer

FORMAT_VERSION = 1

#: options a recipe gained after runs had been recorded without them, with the value those runs
#: trained with, so a recorded run is rebuilt as it ran whatever the recipe's default is now
#: (cdcgan-plus samples from a weight average since ``ema`` became a conditional option; its
#: earlier runs kept none)
OPTIONS_ADDED_LATER = {"ema": 0.0}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


def checkpoint_parts(setup):
    """{prefix: model or optimizer} to save: a recipe Setup's G, D and their optimizers, or such a dict as given
    (an image-to-image run's four networks, say)."""
    if isinstance(setup, dict):
        return setup
    return {"G": setup.G, "D": setup.D, "opt_g": setup.opt_g, "opt_d": setup.opt_d}


def save_checkpoint(path, meta, setup, trainer, progress, class_progress=None):
    """Write the models and optimizers of ``setup`` (a Setup: G, D, opt_g, opt_d; or a dict {prefix: part}),
    the trainer's history (and extensions' states, fixed noise if it has them) and ``meta`` (a JSON-able dict);
    a conditional run also its per-epoch class grids (``class_progress``)."""
    arrays = {}
    for prefix, part in checkpoint_parts(setup).items():
        arrays.update({f"{prefix}/{k}": v for k, v in part.state_dict().items()})
    trainer_state = trainer.state_dict()
    arrays.update({f"history/{k}": np.asarray(v, dtype=np.float64) for k, v in trainer_state.pop("history").items()})
    if hasattr(trainer, "extension_arrays"):
        arrays.update({f"ext/{k}": backend.asnumpy(v) for k, v in trainer.extension_arrays().items()})
    if getattr(trainer, "fixed_noise", None) is not None:
        arrays["fixed_noise"] = backend.asnumpy(trainer.fixed_noise)
    arrays["progress"] = np.asarray(progress, dtype=np.float32)
    if class_progress is not None:
        arrays["class_progress"] = np.asarray(class_progress, dtype=np.float32)
    meta = {**meta, "format": FORMAT_VERSION, "trainer": trainer_state,
            "global_rng": backend.global_rng().state_dict()}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_write(path) as f:
        np.savez(f, **arrays)


ZIP_MAGIC = b"PK\x03\x04"   # how every .npz file starts
META_KEYS = {"format": int, "recipe": str, "options": dict, "image_shape": list, "epoch": int}


class Checkpoint:
    """A loaded checkpoint: ``meta`` (dict) and the arrays, restorable into a fresh setup."""

    def __init__(self, path):
        self.path = path
        self.arrays = _read_arrays(path)
        if "meta" not in self.arrays:
            raise CheckpointError(f"{path} is not a scratchgan checkpoint (an .npz archive without its 'meta' "
                                  f"entry: {', '.join(sorted(self.arrays)[:5]) or 'empty'})")
        self.meta = _parse_meta(path, self.arrays.pop("meta"))

    def options(self, defaults):
        """The options the run trained with: the recorded ones, and for each option of ``defaults``
        (its recipe's) gained since it was recorded, the value it had then (OPTIONS_ADDED_LATER)."""
        recorded = self.meta["options"]
        added = {k: v for k, v in OPTIONS_ADDED_LATER.items() if k in defaults and k not in recorded}
        return {**added, **recorded}

    def part(self, prefix):
        return {k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)}

    def load_generator(self, G, prefix="G"):
        """Load the model saved under ``prefix`` (the generator by default) into ``G``."""
        self._load(G, f"{prefix}/")

    def restore(self, setup, trainer):
        """Put models, optimizers (of a Setup, or a dict {prefix: part}), trainer counters, history and
        random generators back."""
        parts = checkpoint_parts(setup)
        models = {prefix: part for prefix, part in parts.items() if isinstance(part, Layer)}
        for prefix, model in models.items():
            self._load(model, f"{prefix}/")
        try:
            for prefix, part in parts.items():
                if prefix not in models:
                    part.load_state_dict(self.part(f"{prefix}/"))
            history = {k: v.tolist() for k, v in self.part("history/").items()}
            trainer.load_state_dict({**self.meta["trainer"], "history": history})
            if hasattr(trainer, "load_extension_arrays"):
                trainer.load_extension_arrays(self.part("ext/"))
            if "fixed_noise" in self.arrays:
                trainer.fixed_noise = backend.to_device(self.arrays["fixed_noise"], trainer.device)
            backend.global_rng().load_state_dict(self.meta["global_rng"])
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"checkpoint {self.path} cannot be resumed: its training state is "
                                  f"incomplete or does not fit ({type(e).__name__}: {e})") from None

    def progress(self, key="progress"):
        """The per-epoch images saved under ``key``: "progress" (fixed noise), "class_progress" (class grids)."""
        return list(self.arrays.get(key, []))

    def _load(self, model, prefix):
        try:
            model.load_state_dict(self.part(prefix))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint {self.path} does not fit the model: {e}") from None


def _read_arrays(path):
    """Every array of the .npz at ``path``; CheckpointError for anything that is not a readable .npz."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(ZIP_MAGIC))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a checkpoint (give the run's checkpoint.npz)") from None
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if not start:
        raise CheckpointError(f"{path} is empty (0 bytes): not a scratchgan checkpoint (scratchgan writes "
                              f"checkpoints atomically, so this file was not written, or was emptied, elsewhere)")
    if start != ZIP_MAGIC:
        raise CheckpointError(f"{path} is not a scratchgan checkpoint (not an .npz archive: it starts with "
                              f"0x{start.hex()})")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ValueError as e:
        if "pickle" in str(e):  # an object array: never unpickle, and never advise allow_pickle
            raise CheckpointError(f"{path} is not a scratchgan checkpoint (it holds Python objects)") from None
        raise CheckpointError(f"cannot read checkpoint {path}: corrupt ({e})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: truncated or corrupt ({e})") from None


def _parse_meta(path, raw):
    """The checkpoint's metadata dict, checked for the entries every reader needs."""
    try:
        meta = json.loads(str(raw))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} has malformed metadata (not JSON: {e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has malformed metadata (a JSON {type(meta).__name__}, "
                              f"not an object)")
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {meta.get('format')!r}, "
                              f"this version of scratchgan reads format {FORMAT_VERSION}")
    for key, kind in META_KEYS.items():
        if not isinstance(meta.get(key), kind):
            raise CheckpointError(f"checkpoint {path} has malformed metadata: {key!r} is "
                                  f"{meta.get(key)!r}, expected a {kind.__name__}")
    shape = meta["image_shape"]
    if len(shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise CheckpointError(f"checkpoint {path} has malformed metadata: image_shape {shape}, "
                              f"expected [channels, height, width]")
    return meta
