"""Where tests find the real datasets, if this machine has them.

Looked up once, at import (tests that isolate themselves from the environment may unset
SCRATCHGAN_DATA later), in: $SCRATCHGAN_DATA (as the library reads it: the folder itself
or its <name>/ subfolder), $SCRATCHGAN_TEST_SHARED_DATA, then a ``shared/data`` folder beside
any folder above this file (the project's development data). A folder counts only if its
test images are the official ones of that dataset, so a variable pointing at the wrong
dataset makes tests skip rather than fail.
"""
import os
from pathlib import Path

import pytest

from scratchgan.data.identity import _official_by_head
from scratchgan.data.idx import read_idx

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _roots():
    roots = [os.environ.get("SCRATCHGAN_DATA"), os.environ.get("SCRATCHGAN_TEST_SHARED_DATA")]
    roots += [str(folder / "shared" / "data") for folder in Path(__file__).resolve().parents]
    return [Path(root).expanduser() for root in roots if root]


def _holds(folder, name):
    """True if ``folder`` has the four files and its test images are the official ``name`` ones."""
    found = [next((p for p in (folder / f"{f}.gz", folder / f) if p.is_file()), None) for f in FILES]
    if None in found:
        return False
    try:
        official = _official_by_head(read_idx(found[2]))
    except (OSError, ValueError):
        return False
    return official is not None and (official.dataset, official.split) == (name, "test")


def _find(name):
    for root in _roots():
        for folder in (root / name, root):
            if _holds(folder, name):
                return folder
    return None


MNIST_DIR = _find("mnist")
FASHION_DIR = _find("fashion-mnist")
needs_mnist = pytest.mark.skipif(MNIST_DIR is None, reason="needs the real MNIST files (set SCRATCHGAN_DATA)")
needs_fashion = pytest.mark.skipif(FASHION_DIR is None,
                                   reason="needs the real Fashion-MNIST files (set SCRATCHGAN_DATA)")
