"""Atomic file writing, shared by data downloads, checkpoints and run outputs.

Also the checks that let a command fail before doing any work, rather than after it:
``check_writable_dir`` and ``check_writable_file``; and ``remove_stale_temporaries``,
which deletes what a killed ``atomic_write`` left behind.
"""

import contextlib
import json
import math
import os
import re
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".part"
_TEMP_RANDOM = r"[a-z0-9_]{8}"   # what tempfile.mkstemp puts between prefix and suffix


class OutputError(OSError):
    """An output file or folder cannot be written (checked before any work starts)."""


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file beside `path`; move it onto `path` only if the block succeeds.

    Readers of `path` see either the old content or the complete new one, never a part;
    if the block raises (Ctrl-C included), the temporary file is deleted. Only a process
    killed outright leaves it, as `.<name>.XXXXXXXX.part` (see remove_stale_temporaries).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path, value):
    """``value`` as indented JSON in ``path``, written atomically. NaN and infinities (which JSON does
    not have, and most readers refuse) are written as null: "no value"."""
    with atomic_write(path) as f:
        f.write((json.dumps(_finite(value), indent=2, allow_nan=False) + "\n").encode())


def _finite(value):
    """``value`` with every non-finite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def remove_stale_temporaries(folder, names):
    """Delete the temporary files atomic_write left in ``folder`` for the files ``names``; return them.

    Only names of the exact form `.<name>.XXXXXXXX.part` are touched, for the given names.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile("|".join(rf"\.{re.escape(name)}\.{_TEMP_RANDOM}{re.escape(TEMP_SUFFIX)}"
                                  for name in names))
    removed = []
    for entry in folder.iterdir():
        if pattern.fullmatch(entry.name) and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


def check_writable_dir(folder, create=True):
    """Make sure files can be written into ``folder`` (created with its parents if ``create``).

    Raises OutputError with a one-line reason; writes and deletes a probe file to find out.
    """
    problem = _folder_problem(Path(folder), create)
    if problem:
        raise OutputError(f"cannot write into {folder}: {problem}")
    return Path(folder)


def check_writable_file(path):
    """Make sure ``path`` can be written: its folder exists and is writable, and it is not a folder."""
    path = Path(path)
    problem = "it is a folder" if path.is_dir() else _folder_problem(path.parent, create=False)
    if problem:
        raise OutputError(f"cannot write {path}: {problem}")
    return path


def _folder_problem(folder, create):
    """Why files cannot be written into ``folder``, or None."""
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            return f"{folder} is not a folder" if folder.exists() else f"folder {folder} does not exist"
        with tempfile.TemporaryFile(dir=folder):
            pass
    except FileExistsError:
        return "it is a file, not a folder"
    except OSError as e:
        return e.strerror or str(e)
    return None
