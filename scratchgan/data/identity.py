"""Which dataset a set of IDX files really holds: told by content, not by folder or file name.

A folder named ``mnist`` may hold Fashion-MNIST (or the test split under the training
split's names); training on it would silently give a wrong run. Every split loaded by
``load_dataset`` is identified here:

1. **Official, complete**: the MD5 of the uncompressed IDX file (header + data, rebuilt
   from the array, so gzip or not does not matter) equals the published one.
2. **Official subset**: the SHA-256 of its first 100 images and of its first 100 labels
   equal those of an official split, and it has fewer images (e.g. the first 10,000 MNIST
   training digits). With as many images as the official split but another MD5, the files
   are official ones that were *modified*: accepted with a warning.
3. **Another dataset's files** (case 1 or 2 for another dataset or split): refused.
4. **Unknown** content, e.g. a user's own IDX folder: if it holds at least 1,000 images whose
   statistics (mean pixel, fraction of zero pixels) are those of another known dataset and
   not of the one asked for, it is refused; otherwise it is accepted with a ``DataWarning``.

Every split's *fingerprint* (size, SHA-256 of the pixels and labels, statistics, label
histogram, and the verdict above) is returned so runs can record what they trained on.
"""
import hashlib
import struct
import warnings
from dataclasses import dataclass

import numpy as np

from .idx import DataError

HEAD = 100            # images whose hash identifies an official split
MIN_STATS_N = 1000    # fewer images: statistics too noisy to call a dataset by them


class DataWarning(UserWarning):
    """Data were accepted, but they are not what their name says (e.g. not the official files)."""


@dataclass(frozen=True)
class OfficialSplit:
    dataset: str
    split: str
    n: int
    images_md5: str        # MD5 of the uncompressed IDX file (published)
    labels_md5: str
    head_images_sha256: str  # SHA-256 of images[:HEAD].tobytes() (uint8, C order)
    head_labels_sha256: str  # SHA-256 of labels[:HEAD].tobytes()


# The MD5s are the published checksums of the *uncompressed* official files (the values
# torchvision and many MNIST scripts check; the .gz MD5s in datasets.py differ by
# compression). The head SHA-256s were computed with hashlib.sha256(x[:100].tobytes())
# from the files in the project's shared data folder: Fashion-MNIST (all four files) and
# the MNIST test files match the published MD5s above, and the MNIST training files there
# are the first 10,000 official digits, pixel-exact, in official order.
OFFICIAL = (
    OfficialSplit("mnist", "train", 60000, "6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
                  "c8d7b3ac57a59fa463cbbcdc21a53485e2990f12ca46d0fef62dd86cadfd67a3",
                  "2bfbc1f6423bc64f724ca221ee9d4f117eebbd783a11b667259d62e1019d8cdb"),
    OfficialSplit("mnist", "test", 10000, "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637",
                  "8a004a2f81a80f4866259cbb77cf37af89315036b298b250b4d45c24aaa92048",
                  "8333c1b5aeb5f50a2f5517fa21d8d824e3d69fb6160fb650fb58a373ad762f2a"),
    OfficialSplit("fashion-mnist", "train", 60000, "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                  "9018921c3c673c538a1fc5bad174d6f9",
                  "9fd5e05238929f78618002dd971c29d7154e418c5e6c5159dcbc48bead93a90f",
                  "c0c3d42d140003d09ab2e481b6fc8846cb57e949a19f2b01dcd68aea9b2e953f"),
    OfficialSplit("fashion-mnist", "test", 10000, "8181f5470baa50b63fa0f6fddb340f0a",
                  "15d484375f8d13e6eb1aabb0c3f46965",
                  "d8c9b85550f6c8fa33478e27cb3fe70fd34b4cc96e6ab91b911853b51fb3d527",
                  "5057fb8e79d3bebfff9b152d0741ff9c606d78bf884c63e64511f7eaba0b6dbc"),
)

# (mean pixel 0..255, fraction of zero pixels) of each dataset. Means: the published
# normalization constants (MNIST 0.1307, Fashion-MNIST 0.2860, times 255); zero fractions
# measured on the shared data (MNIST 0.808 train subset and test, Fashion-MNIST 0.502 train,
# 0.500 test). Random subsets of 1,000 images stay within +-1.5 of the mean and +-0.015 of the
# zero fraction (measured); the two datasets are 40 and 0.3 apart.
REFERENCE_STATS = {"mnist": (33.3, 0.808), "fashion-mnist": (72.9, 0.502)}
STATS_TOLERANCE = (6.0, 0.05)


def fingerprint(images, labels=None):
    """What names a set of uint8 images (and labels): size, SHA-256s, statistics, label histogram."""
    images = np.ascontiguousarray(images)
    n = max(images.size, 1)
    result = {"n": int(len(images)), "image_shape": list(images.shape[1:]),
              "images_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
              "mean_pixel": round(float(images.sum(dtype=np.uint64)) / n, 3),
              "zero_fraction": round(float(1 - np.count_nonzero(images) / n), 4)}
    if labels is not None:
        labels = np.ascontiguousarray(labels)
        result["labels_sha256"] = hashlib.sha256(labels.tobytes()).hexdigest()
        result["label_histogram"] = np.bincount(labels.astype(np.int64).ravel()).tolist() if len(labels) else []
    return result


def identify(name, split, images, labels, source):
    """The fingerprint of a split loaded as ``name``/``split`` from ``source``, with its verdict.

    Raises DataError when the content is another known dataset or split; warns
    (DataWarning) when it is not the official data of ``name``. The verdict is under
    "match": "official", "official subset", "modified official" or "unknown".
    """
    record = {"dataset": name, "split": split, "source": str(source), **fingerprint(images, labels)}
    official = _official_by_head(images)
    if official is None:
        _refuse_lookalike(name, split, record, source)
        record["match"] = "unknown"
        kind = (f"their statistics are {name}'s, but their first images are not the official ones"
                if _resembles(record, name) else "their content matches no known dataset")
        _warn(f"{source}: the {split} files are not the official {name} data ({kind}); using them as "
              f"{name!r} anyway. {_describe(record)}")
        return record
    if (official.dataset, official.split) != (name, split):
        raise DataError(f"{source}: these are {official.dataset} {official.split} files, not {name} {split} "
                        f"(their first {HEAD} images are those of the official {official.dataset} "
                        f"{official.split} split); {_fix(name, official.dataset)}")
    record["match"] = _official_verdict(official, images, labels)
    if record["match"] == "modified official":
        _warn(f"{source}: the {split} files start like the official {name} {split} split but differ from it "
              f"({len(images)} images, official {official.n}, or other pixels or labels); using them anyway. "
              f"{_describe(record)}")
    return record


def _official_by_head(images):
    """The official split whose first HEAD images these are, or None."""
    if len(images) < HEAD or images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        return None
    head = hashlib.sha256(np.ascontiguousarray(images[:HEAD]).tobytes()).hexdigest()
    return next((s for s in OFFICIAL if s.head_images_sha256 == head), None)


def _official_verdict(official, images, labels):
    """"official" (complete, MD5-verified), "official subset" (its first N) or "modified official"."""
    labels_head = hashlib.sha256(np.ascontiguousarray(labels[:HEAD]).tobytes()).hexdigest()
    if labels_head != official.head_labels_sha256:
        return "modified official"
    if len(images) < official.n:
        return "official subset"
    if len(images) == official.n and idx_md5(images) == official.images_md5 \
            and idx_md5(labels) == official.labels_md5:
        return "official"
    return "modified official"


def idx_md5(array):
    """MD5 of ``array`` (uint8) as an uncompressed IDX file: header, then the data."""
    array = np.ascontiguousarray(array)
    header = struct.pack(f">2xBB{array.ndim}I", 0x08, array.ndim, *array.shape)
    digest = hashlib.md5(header)
    digest.update(array.tobytes())
    return digest.hexdigest()


def _refuse_lookalike(name, split, record, source):
    """Raise DataError if unknown content has the statistics of another known dataset, not of ``name``."""
    if record["n"] < MIN_STATS_N or record["image_shape"] != [28, 28]:
        return
    near = [other for other in REFERENCE_STATS if _resembles(record, other)]
    if near and name not in near:
        other = near[0]
        expected = "".join(f"; {d}: {m}, {z:.0%}" for d, (m, z) in REFERENCE_STATS.items() if d in (name, other))
        raise DataError(f"{source}: these {split} images look like {other}, not {name}: mean pixel "
                        f"{record['mean_pixel']:.1f} and {record['zero_fraction']:.0%} zero pixels "
                        f"({expected[2:]}); {_fix(name, other)}")


def _resembles(record, dataset):
    if dataset not in REFERENCE_STATS:
        return False
    mean, zeros = REFERENCE_STATS[dataset]
    return (abs(record["mean_pixel"] - mean) <= STATS_TOLERANCE[0]
            and abs(record["zero_fraction"] - zeros) <= STATS_TOLERANCE[1])


def _fix(asked, found):
    return (f"use --dataset {found} for them, or point --data-dir (or SCRATCHGAN_DATA) at a folder "
            f"holding {asked}")


def _describe(record):
    return (f"Fingerprint (recorded in runs): {record['n']} images, SHA-256 {record['images_sha256'][:16]}..., "
            f"mean pixel {record['mean_pixel']:.1f}, {record['zero_fraction']:.0%} zero pixels")


def _warn(message):
    warnings.warn(message, DataWarning, stacklevel=4)
