"""MNIST and Fashion-MNIST: where to find them on disk, and how to download them.

`load_dataset` looks for a dataset's files in these folders, in order:

1. the `data_dir` argument (the CLI's --data-dir);
2. the folder named by the environment variable SCRATCHGAN_DATA;
3. the user cache, $XDG_CACHE_HOME/scratchgan/<name> (default ~/.cache/scratchgan/<name>;
   SCRATCHGAN_CACHE replaces the scratchgan/ root);
4. Debian's /usr/share/datasets/<name> (apt-get install dataset-fashion-mnist).

Folders 1 and 2 may hold the files themselves or a `<name>/` subfolder holding them
(SCRATCHGAN_DATA naming no folder at all gets a `DataWarning`). Each
file may be gzipped or not (`train-images-idx3-ubyte.gz` or `train-images-idx3-ubyte`).
Files this module downloads are checked against the official MD5s. Every split loaded is
then identified by its content (`identity.py`): another dataset's files under this one's
name are refused, and files that are not the official ones (a subset of them is fine, e.g.
the first 10,000 MNIST digits) are accepted with a `DataWarning` naming their fingerprint.
"""
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from ..fileio import atomic_write, remove_stale_temporaries
from .identity import DataWarning, identify
from .idx import DataError, read_idx

DEBIAN_ROOT = Path("/usr/share/datasets")
ATTEMPTS = 3      # per mirror
BACKOFF = 1.0     # seconds before the first retry, doubled for each further one
TIMEOUT = 30      # seconds without data before a download attempt fails
_urlopen = urllib.request.urlopen  # replaced by a fake in tests

SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


@dataclass(frozen=True)
class Dataset:
    """A dataset published as the four canonical IDX files of MNIST."""
    name: str
    mirrors: tuple        # base URLs, tried in order
    md5: dict             # file name -> MD5 of the official .gz file
    apt_package: Optional[str] = None  # the Debian package installing it under DEBIAN_ROOT

    @property
    def files(self):
        return tuple(self.md5)


DATASETS = {
    "mnist": Dataset(
        "mnist",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f9a8a09"}),
    "fashion-mnist": Dataset(
        "fashion-mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
        apt_package="dataset-fashion-mnist"),
}


def load_dataset(name, split="train", data_dir=None, download=True, quiet=False, with_identity=False):
    """Return (images uint8 (N, 28, 28), labels uint8 (N,)) of a split, "train" or "test".

    Looks in the folders listed in this module's docstring; if none holds the files,
    downloads them into the user cache (unless download=False). quiet=True, or the
    environment variable SCRATCHGAN_QUIET, hides the download progress bar.
    The content is identified (see identity.py): DataError if it is another dataset's.
    with_identity=True returns (images, labels, fingerprint dict) instead.
    """
    images_file, labels_file = _split_files(split)
    folder = find_dataset_dir(name, data_dir, split)
    if folder is None:
        if not download:
            raise DataError(f"{name} not found (download=False).\n" + _how_to_provide(_dataset(name)))
        folder = download_dataset(name, split, quiet=quiet)
    images = read_idx(_existing(folder / images_file))
    labels = read_idx(_existing(folder / labels_file))
    if images.dtype != "uint8" or images.ndim != 3 or labels.dtype != "uint8" or labels.ndim != 1:
        raise DataError(f"{folder}: expected uint8 images (N, H, W) and labels (N,), "
                        f"got {images.dtype} {images.shape} and {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{folder}: {split} split has {len(images)} images but {len(labels)} labels")
    identity = identify(name, split, images, labels, folder)
    return (images, labels, identity) if with_identity else (images, labels)


def find_dataset_dir(name, data_dir=None, split=None):
    """The first folder holding `name`'s files for `split` (None: all four), or None.

    An explicit `data_dir` lacking the files is an error, not a reason to look elsewhere.
    """
    files = _needed_files(name, split)
    if data_dir is not None:
        return _explicit_dir(name, Path(data_dir).expanduser(), files)
    env = os.environ.get("SCRATCHGAN_DATA")
    if env and not Path(env).expanduser().is_dir():  # a typo would otherwise go unnoticed (and download)
        warnings.warn(f"SCRATCHGAN_DATA={env} is not a folder; looking for {name} elsewhere", DataWarning,
                      stacklevel=2)
    candidates = [Path(env).expanduser() / name, Path(env).expanduser()] if env else []
    candidates += [cache_dir(name), DEBIAN_ROOT / name]
    return next((folder for folder in candidates if not _missing(folder, files)), None)


def cache_dir(name):
    """The folder downloads of dataset `name` go to."""
    root = os.environ.get("SCRATCHGAN_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scratchgan"
    return Path(root).expanduser() / name


def download_dataset(name, split=None, quiet=False):
    """Download the files of `split` (None: all) missing from the cache; return the cache folder."""
    folder = cache_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder, _dataset(name).files)  # left by a download that was killed
    for file in _missing(folder, _needed_files(name, split)):
        _download(_dataset(name), file, folder / file, quiet)
    return folder


def _download(dataset, file, dest, quiet):
    """Fetch `file` from the first mirror that serves it, retrying each mirror a few times."""
    failures = []
    for mirror in dataset.mirrors:
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF * 2 ** (attempt - 1))
            try:
                return _fetch(mirror + file, dest, dataset.md5[file], quiet)
            except (OSError, http.client.HTTPException) as err:
                error = err
                if isinstance(err, urllib.error.HTTPError) and err.code < 500:
                    break  # the mirror lacks the file: retrying will not help
        failures.append(f"  {mirror + file}: {error}")
    raise DataError(f"could not download {file} of {dataset.name}: every mirror failed\n"
                    + "\n".join(failures) + "\n" + _how_to_provide(dataset))


def _fetch(url, dest, md5, quiet):
    """Stream `url` into `dest` with a progress bar; `dest` appears only if the MD5 matches."""
    digest = hashlib.md5()
    with _urlopen(url, timeout=TIMEOUT) as response, atomic_write(dest) as f:
        size = int(response.headers.get("Content-Length") or 0) or None
        hide = True if quiet or os.environ.get("SCRATCHGAN_QUIET") else None  # None: hide unless a TTY
        with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, disable=hide) as bar:
            while chunk := response.read(1 << 16):
                f.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if digest.hexdigest() != md5:
            raise DataError(f"{dest.name}: checksum mismatch for {url}: "
                            f"expected MD5 {md5}, got {digest.hexdigest()}")


def _how_to_provide(dataset):
    """Instructions for putting the files in place by hand."""
    files = "".join(f"\n  {file}" for file in dataset.files)
    text = (f"To use {dataset.name} offline, download these files (e.g. from {dataset.mirrors[0]}):"
            f"{files}\ninto {cache_dir(dataset.name)}, or into a folder you pass with --data-dir "
            f"or name in the SCRATCHGAN_DATA environment variable (the folder itself or its "
            f"parent holding {dataset.name}/). Each file may also be stored uncompressed, without .gz.")
    if dataset.apt_package:
        text += (f"\nOn Debian or Ubuntu, `apt-get install {dataset.apt_package}` installs them "
                 f"into {DEBIAN_ROOT / dataset.name}.")
    return text


def _explicit_dir(name, data_dir, files):
    """`data_dir/<name>` or `data_dir` itself, whichever holds `files`, else raise."""
    candidates = [data_dir / name, data_dir]
    for folder in candidates:
        if not _missing(folder, files):
            return folder
    missing = min((_missing(folder, files) for folder in candidates), key=len)
    raise DataError(f"{data_dir}: no {name} data here or in {data_dir / name}: "
                    f"missing {', '.join(missing)} (each may also be uncompressed, without .gz)")


def _missing(folder, files):
    """The names in `files` present in `folder` neither gzipped nor uncompressed."""
    return [file for file in files if _existing(folder / file) is None]


def _existing(path):
    """`path` (foo.gz) or its uncompressed twin (foo), whichever exists, else None."""
    return next((p for p in (path, path.with_suffix("")) if p.is_file()), None)


def _dataset(name):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def _needed_files(name, split):
    """The files of `split`, or all four of dataset `name` if split is None."""
    dataset = _dataset(name)
    return _split_files(split) if split else dataset.files


def _split_files(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return SPLITS[split]
