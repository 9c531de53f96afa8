"""Atomic file writing, shared by data downloads, checkpoints and run outputs."""

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file beside `path`; move it onto `path` only if the block succeeds.

    Readers of `path` see either the old content or the complete new one, never a part;
    if the block raises (Ctrl-C included), the temporary file is deleted.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
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
    """``value`` as indented JSON in ``path``, written atomically."""
    with atomic_write(path) as f:
        f.write((json.dumps(value, indent=2) + "\n").encode())
