"""A run directory as the report sees it: its files read as they are, nothing recomputed.

``read_run(path)`` gathers what ``scratchgan train`` wrote (see scratchgan/gan/run.py):
summary.json, the checkpoint's meta, history.csv, metrics.csv, evaluation.json and the images
the page embeds. Every file but one of checkpoint.npz, summary.json and history.csv may be
missing (a run in progress, a run without evaluation); what is missing becomes a note.
"""
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..plots import read_history_csv

# Images the page shows when the run has them: file name -> caption.
IMAGES = {
    "progress.gif": "the fixed-noise samples after every epoch (row 0: the untrained generator)",
    "samples.png": "a final grid of 64 samples",
    "class_grid.png": "one row per class (conditional model)",
    "class_progress.gif": "the class grid after every epoch (conditional model)",
    "loss_vs_frechet.png": "D's loss, or a critic's Wasserstein estimate, beside the per-epoch Fréchet distance",
    # image-to-image runs (issue 20)
    "translations.png": "held-out a | G(a) | F(G(a)) | b | F(b) | G(F(b)) after the last epoch (CycleGAN)",
    "losses.png": "the four networks' losses per step (CycleGAN)",
    "heldout.png": "mean L1 to the true counterparts on the held-out pairs, per epoch (CycleGAN)",
    "quality.png": "PSNR and SSIM on MNIST test digits, per epoch (SRResNet, SRGAN)",
}
MAX_POINTS = 1000  # at most this many points per curve on the page; longer histories are bucket means
FINGERPRINT_KEYS = ("data", "dataset_fingerprint", "fingerprint")  # "data": what gan/run.py records


class ReportError(ValueError):
    """A run directory (or a file in it) cannot be reported on."""


@dataclass
class Run:
    """Everything the page shows about one run, as read from its directory."""
    path: Path
    name: str
    info: dict                        # recipe, options, dataset, image_shape (+ device, epoch_seconds, ...)
    summary: Optional[dict]           # summary.json, None if absent
    checkpoint_meta: Optional[dict]   # the checkpoint's JSON meta, None if absent
    history: Optional[dict]           # history.csv: column -> np.ndarray (one value per D step)
    metrics: Optional[dict]           # metrics.csv: column -> np.ndarray (one value per epoch)
    evaluation: Optional[dict]        # evaluation.json
    images: dict                      # file name -> bytes, for the names in IMAGES the run has
    epochs_done: int
    finished: bool
    notes: list = field(default_factory=list)

    @property
    def options(self):
        return self.info.get("options", {})

    @property
    def checkpoint(self):
        path = self.path / "checkpoint.npz"
        return path if path.is_file() else None

    @property
    def fingerprint(self):
        """The dataset fingerprint the run recorded (under one of FINGERPRINT_KEYS), or None."""
        for source in (self.summary or {}, self.checkpoint_meta or {}):
            for key in FINGERPRINT_KEYS:
                if source.get(key) is not None:
                    return source[key]
        return None

    def recorded(self, key):
        """``key`` from the newest record: the checkpoint's meta (written every epoch), else summary.json."""
        for source in (self.checkpoint_meta or {}, self.summary or {}):
            if source.get(key) is not None:
                return source[key]
        return None

    @property
    def steps_per_epoch(self):
        """D steps per epoch (history.csv is written at the end of each epoch), or None if unknown."""
        if not self.history or not self.epochs_done:
            return None
        rows = len(next(iter(self.history.values())))
        return rows // self.epochs_done if rows % self.epochs_done == 0 and rows else None


def read_run(path, name=None):
    """Read the run directory ``path``; raises ReportError if it is not one or a file is unreadable."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: not a directory")
    if not any((path / f).is_file() for f in ("checkpoint.npz", "summary.json", "history.csv")):
        raise ReportError(f"{path}: not a run directory (no checkpoint.npz, summary.json or history.csv)")
    summary = _read_json(path / "summary.json")
    ckpt = _read_checkpoint_meta(path / "checkpoint.npz")
    info = _run_info(path, summary, ckpt)
    history = _read_csv(path / "history.csv")
    metrics = _read_csv(path / "metrics.csv")
    evaluation = _read_json(path / "evaluation.json")
    images = {f: (path / f).read_bytes() for f in IMAGES if (path / f).is_file()}
    planned = info.get("options", {}).get("epochs")
    epochs_done = ckpt["epoch"] if ckpt is not None else planned or 0
    summary_current = summary is not None and (
        ckpt is None or summary.get("d_steps") == ckpt.get("trainer", {}).get("d_steps"))
    finished = summary_current and (planned is None or epochs_done >= planned)
    planned_g = info.get("options", {}).get("g_steps")   # --g-steps N: the run's length in generator updates
    if planned_g:
        finished = summary_current and _g_steps_done(ckpt, summary) >= planned_g
    run = Run(path, name or path.name, info, summary, ckpt, history, metrics, evaluation, images,
              epochs_done, finished)
    run.notes.extend(_notes(run, summary_current))
    return run


def _run_info(path, summary, ckpt):
    info = summary if summary is not None else ckpt
    if info is None or "recipe" not in info or "options" not in info:
        raise ReportError(f"{path}: neither summary.json nor checkpoint.npz says which recipe and options "
                          f"the run used")
    return info


def _notes(run, summary_current):
    notes = []
    planned = run.options.get("epochs")
    planned_g = run.options.get("g_steps")
    if not run.finished and planned_g:
        notes.append(f"This run has not finished: {_g_steps_done(run.checkpoint_meta, run.summary)} of "
                     f"{planned_g} generator updates done (--g-steps; `scratchgan train --resume` continues it).")
    elif not run.finished:
        notes.append(f"This run has not finished: {run.epochs_done} of {planned} epochs done "
                     f"(in progress, or stopped; `scratchgan train --resume` continues it). "
                     + ("summary.json is from an earlier end of the run." if run.summary is not None
                        else "There is no summary.json yet, so no final numbers."))
    if run.history is None:
        notes.append("No history.csv: no epoch has finished yet, so there are no curves.")
    if run.metrics is None:
        notes.append("No metrics.csv: this run has no per-epoch evaluation (only MNIST-shaped runs on a dataset "
                     "with a shipped classifier get one, and not with --no-evaluate).")
    if run.evaluation is None and run.finished:
        notes.append("No evaluation.json: this run was not evaluated after training.")
    return notes


def _g_steps_done(checkpoint_meta, summary):
    """Generator updates made: the checkpoint's count, else summary.json's."""
    return ((checkpoint_meta or {}).get("trainer", {}).get("g_steps") or (summary or {}).get("g_steps") or 0)


def _read_json(path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"cannot read {path}: {e}") from None


def _read_csv(path):
    if not path.is_file():
        return None
    try:
        columns = read_history_csv(path)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ReportError(f"cannot read {path}: {e}") from None
    if not columns or not len(next(iter(columns.values()))):
        return None
    return columns


def _read_checkpoint_meta(path):
    """The checkpoint's JSON meta alone (the arrays stay on disk), or None if there is no checkpoint."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise ReportError(f"cannot read checkpoint {path}: {e}") from None


def downsample(x, y, max_points=MAX_POINTS):
    """(x, y) with at most ``max_points`` points: the means of equal contiguous buckets, if longer.

    Deterministic, and NaN-aware (a bucket's mean skips NaN; an all-NaN bucket stays NaN).
    Returns (x, y, bucket) with bucket the number of original points per output point (1: none).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(y) <= max_points:
        return x, y, 1
    buckets = np.array_split(np.arange(len(y)), max_points)
    xs = np.array([x[b].mean() for b in buckets])
    ys = np.array([_nanmean(y[b]) for b in buckets])
    return xs, ys, int(np.ceil(len(y) / max_points))


def _nanmean(values):
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")
