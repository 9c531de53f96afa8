"""What every figure module shares: argument checks and the output path.

Every file goes through ``fileio.atomic_write``: a failed save leaves any old file
untouched and no partial one.
"""
from pathlib import Path

import numpy as np

from ..backend import asnumpy


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def unit_interval(value, name):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def series(values, name):
    """A 1-D float64 NumPy array from a list, NumPy or CuPy array."""
    x = np.asarray(asnumpy(values))
    if x.ndim != 1 or x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {x.shape} dtype {x.dtype}")
    return x.astype(np.float64)


def target(path):
    """``path`` as a Path, its folder created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
