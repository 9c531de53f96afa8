"""The real-data reference row beside a run's evaluation.json, cached on disk.

evaluation.json holds the model's row only. The reference row (real test images against the
training data, docs/evaluation.md) depends on the dataset, n, the seed and the classifier, not on
the run, and takes about 40 s at n = 10,000; so it is computed once with exactly the settings of
the run's evaluation and kept in the user cache ($SCRATCHGAN_CACHE or ~/.cache/scratchgan,
``reference-rows/``), keyed by the SHA-256 of those settings, the classifier and the pixels.
"""
import hashlib
import json

from ..fileio import write_json

CACHE_VERSION = 1  # bump when the metrics change, so old cached rows are not reused


class ReferenceUnavailable(Exception):
    """No reference row for this run; the message says why."""


def reference_for(evaluation, dataset, data_dir=None, seed=0, log=None):
    """(row, where) for a run's ``evaluation`` (its evaluation.json); ``where`` says what it was computed on."""
    from ..data import DataError
    from ..data.datasets import cache_dir, find_dataset_dir
    from ..evaluation import load_classifier, load_real_data, reference_row
    from ..evaluation.classifier import load_split, shipped_weights
    n = evaluation.get("n")
    if not isinstance(n, int):
        raise ReferenceUnavailable("evaluation.json does not say how many samples it used")
    try:
        _, classifier_sha = shipped_weights(dataset)
        train, _ = load_split(dataset, "train", data_dir, download=False)
        test, _ = load_split(dataset, "test", data_dir, download=False)
        folder = find_dataset_dir(dataset, data_dir)
    except (DataError, OSError, ValueError) as e:
        first_line = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ReferenceUnavailable(f"{dataset} data not available: {first_line}") from None
    key = _key(dataset, n, seed, classifier_sha, train, test)
    where = f"{len(train)} training and {len(test)} test images of {dataset} in {folder}, n = {n}, seed {seed}"
    cached = cache_dir("reference-rows") / f"{key}.json"
    if cached.is_file():
        try:
            return json.loads(cached.read_text()), where
        except (OSError, json.JSONDecodeError):
            pass  # recompute below and overwrite the damaged file
    if log:
        log(f"computing the real-data reference row ({dataset}, n = {n}; once, then cached in {cached.parent})")
    try:
        classifier = load_classifier(dataset=dataset)
        real = load_real_data(dataset, data_dir, classifier, n=n, seed=seed, download=False)
        row = reference_row(dataset, classifier=classifier, real=real, seed=seed)
    except (DataError, OSError, ValueError) as e:
        raise ReferenceUnavailable(f"reference row failed: {e}") from None
    row["class_histogram"] = [round(float(h), 4) for h in row["class_histogram"]]
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_json(cached, row)
    except OSError:
        pass  # a read-only cache only costs the next report the same 40 s
    return row, where


def _key(dataset, n, seed, classifier_sha, train, test):
    h = hashlib.sha256(json.dumps([CACHE_VERSION, dataset, n, seed, classifier_sha]).encode())
    for images in (train, test):
        h.update(str(images.shape).encode())
        h.update(images.tobytes())
    return h.hexdigest()[:32]
