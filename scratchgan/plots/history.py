"""The per-step history as a CSV file: one column per key, one row per step, read back exactly."""
import csv
import io
from collections.abc import Mapping

import numpy as np

from ..backend import asnumpy
from ..fileio import atomic_write
from .common import target

__all__ = ["write_history_csv", "read_history_csv"]


def write_history_csv(path, history):
    """One column per key, one row per step. Integer columns are written as integers, float
    columns with repr (shortest exact form), so read_history_csv gets back the same numbers."""
    if not isinstance(history, Mapping) or not history:
        raise ValueError("history must be a non-empty dict of per-step lists")
    columns = {}
    for key, values in history.items():
        if not isinstance(key, str):
            raise ValueError(f"history keys must be strings, got {key!r}")
        x = np.asarray(asnumpy(values))
        if x.ndim != 1 or x.dtype.kind not in "biuf":
            raise ValueError(f"history[{key!r}] must be a 1-D sequence of numbers, got shape {x.shape} "
                             f"dtype {x.dtype}")
        columns[key] = [str(int(v)) for v in x] if x.dtype.kind in "biu" else [repr(float(v)) for v in x]
    lengths = {key: len(column) for key, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history columns have different lengths: {lengths}")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values()))
    path = target(path)
    with atomic_write(path) as f:
        f.write(text.getvalue().encode("utf-8"))
    return path


def read_history_csv(path):
    """{column name: np.ndarray}: int64 for columns of integers, float64 otherwise."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file, expected a header row of column names")
    header, body = rows[0], rows[1:]
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: repeated column names in header {header}")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields but the header has {len(header)}")
    return {name: _parse_column(path, name, [row[i] for row in body]) for i, name in enumerate(header)}


def _parse_column(path, name, fields):
    try:
        return np.array([int(field) for field in fields], dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.array([float(field) for field in fields], dtype=np.float64)
    except ValueError:
        bad = next(field for field in fields if not _is_float(field))
        raise ValueError(f"{path}: column {name!r} holds {bad!r}, which is not a number") from None


def _is_float(text):
    try:
        float(text)
        return True
    except ValueError:
        return False
