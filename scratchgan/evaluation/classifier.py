"""A small MNIST / Fashion-MNIST CNN, trained with scratchgan itself, as the feature network of the metrics.

No pretrained Inception network can be downloaded here, so the Fréchet distance,
classifier score, coverage and precision/recall use this classifier instead:

    input (N, 1, 28, 28) in [0, 1]
    Conv2d(1, 32, 5, stride 2, pad 2)  -> BatchNorm -> ReLU      (N, 32, 14, 14)
    Conv2d(32, 32, 5, stride 2, pad 2) -> BatchNorm -> ReLU      (N, 32, 7, 7)
    Flatten -> Dense(1568, 128)        -> BatchNorm -> ReLU      (N, 128)   <- features
    Dropout(0.3) -> Dense(128, 10)                               (N, 10)    logits

The package ships weights trained on MNIST (``weights/mnist_classifier.npz``), with
their SHA-256 recorded in ``weights/checksums.json`` and checked on every load. The
.npz holds the parameters, the BatchNorm buffers and a JSON ``metadata`` entry saying
how and on what data the weights were trained. Saving a classifier into the weights
folder (``train_classifier(out_path=...)`` or ``scratchgan train-classifier --out``)
records its SHA-256 there, so regenerating the shipped weights keeps them loadable.
"""
import hashlib
import io
import json
import math
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import __version__, backend, losses
from ..data import BatchLoader, load_dataset, to_float
from ..fileio import atomic_write, check_writable_file, remove_stale_temporaries, write_json
from ..layers import BatchNorm, Chain, Conv2d, Dense, Dropout, Flatten, ReLU
from ..optim import Adam

ARCHITECTURE = "scratchgan-cnn-v1"
FEATURE_DIM = 128
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CHECKSUMS_FILE = "checksums.json"   # {dataset: {"file": ..., "sha256": ...}} inside WEIGHTS_DIR


class ChecksumError(ValueError):
    """A weights file's SHA-256 differs from the one recorded for it."""


def as_image_batch(samples, what="samples"):
    """Samples (N, 28, 28) or (N, 1, 28, 28), floats in [0, 1] (or uint8 0..255), as float32 (N, 1, 28, 28).

    Stays on the samples' device; raises a clear error for any other shape or range.
    """
    xp = backend.get_xp(samples)
    x = xp.asarray(samples)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE or len(x) == 0:
        raise ValueError(f"{what}: expected shape (N, 28, 28) or (N, 1, 28, 28) with N > 0, "
                         f"got {tuple(np.shape(samples))}")
    if x.dtype == np.uint8:
        return to_float(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{what}: expected float pixels in [0, 1] (or uint8), got {x.dtype}")
    low, high = float(x.min()), float(x.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{what}: contains NaN or infinite values")
    if low < -1e-6 or high > 1 + 1e-6:
        hint = " (tanh output? map it with scratchgan.data.from_tanh_range)" if low < 0 else ""
        raise ValueError(f"{what}: pixel values must lie in [0, 1], got [{low:.3g}, {high:.3g}]{hint}")
    return x.astype(np.float32, copy=False)


class Classifier:
    """The CNN above: ``features`` (N, 128), ``logits`` and ``predict_proba`` (N, 10), in eval mode."""

    def __init__(self, net, num_feature_layers, metadata=None):
        self.net = net                                  # Chain: input ... logits
        self.body = net[:num_feature_layers]           # input -> features (sharing net's layers)
        self.head = net[num_feature_layers:]           # features -> logits
        self.metadata = dict(metadata or {})

    @property
    def device(self):
        return backend.device_of(self.net.layers[0].params["weight"])

    def to(self, device):
        self.net.to(device)
        return self

    def eval(self):
        self.net.eval()
        return self

    def _run(self, model, x, batch_size):
        """model's eval-mode output for x, batch by batch on the classifier's device, as a NumPy array."""
        outputs = [backend.asnumpy(model.forward(backend.to_device(x[i:i + batch_size], self.device),
                                                 train=False, keep_cache=False))
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(outputs)

    def features(self, samples, batch_size=500):
        """The penultimate layer's activations, NumPy float32 (N, 128)."""
        return self._run(self.body, as_image_batch(samples), batch_size)

    def logits(self, samples, batch_size=500):
        return self._run(self.net, as_image_batch(samples), batch_size)

    def predict_proba(self, samples, batch_size=500):
        """Class probabilities p(y|x), NumPy float64 (N, 10) (softmax of the logits)."""
        return softmax64(self.logits(samples, batch_size))

    def features_and_proba(self, samples, batch_size=500):
        """``features`` and ``predict_proba`` from one pass through the network."""
        features = self.features(samples, batch_size)
        return features, softmax64(self._run(self.head, features, batch_size))

    def predict(self, samples, batch_size=500):
        return self.logits(samples, batch_size).argmax(axis=1)

    def accuracy(self, images, labels, batch_size=500):
        labels = backend.asnumpy(labels)
        if len(labels) != len(images):
            raise ValueError(f"accuracy: {len(images)} images but {len(labels)} labels")
        return float((self.predict(images, batch_size) == labels).mean())

    def save(self, path):
        """Write parameters, buffers and metadata to an .npz (atomically); return its SHA-256."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, metadata=np.array(json.dumps(self.metadata, sort_keys=True)),
                            **self.net.state_dict())
        data = buffer.getvalue()
        with atomic_write(Path(path)) as f:
            f.write(data)
        return hashlib.sha256(data).hexdigest()


def softmax64(logits):
    """Row-wise softmax in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def build_classifier(num_classes=NUM_CLASSES, feature_dim=FEATURE_DIM, dropout=0.3, seed=0):
    """A freshly initialized classifier; ``seed`` fixes its initial weights and dropout masks."""
    rng = backend.RNG(seed)
    net = Chain(Conv2d(1, 32, 5, stride=2, padding=2, rng=rng), BatchNorm(32), ReLU(),
                Conv2d(32, 32, 5, stride=2, padding=2, rng=rng), BatchNorm(32), ReLU(),
                Flatten(), Dense(32 * 7 * 7, feature_dim, rng=rng), BatchNorm(feature_dim), ReLU(),
                Dropout(dropout, rng=rng), Dense(feature_dim, num_classes, rng=rng))
    metadata = {"architecture": ARCHITECTURE, "num_classes": num_classes, "feature_dim": feature_dim,
                "dropout": dropout}
    return Classifier(net, num_feature_layers=10, metadata=metadata)


# --- training ----------------------------------------------------------------------------

def random_shift(images, max_shift, rng):
    """Shift each image (N, 1, H, W) by a random whole number of pixels in [-max_shift, max_shift] per axis."""
    if max_shift == 0:
        return images
    n, _, h, w = images.shape
    m = max_shift
    padded = np.pad(images, ((0, 0), (0, 0), (m, m), (m, m)))
    dy, dx = rng.integers(0, 2 * m + 1, size=(2, n))
    rows = (dy[:, None] + np.arange(h))[:, :, None]     # (N, H, 1)
    cols = (dx[:, None] + np.arange(w))[:, None, :]     # (N, 1, W)
    return padded[np.arange(n)[:, None, None], 0, rows, cols][:, None]


def fit(classifier, images, labels, epochs=15, batch_size=128, lr=2e-3, max_shift=2, seed=0, log=None):
    """Train ``classifier`` on host images (N, 1, 28, 28) in [0, 1] and labels (N,) with Adam.

    Softmax cross-entropy on the logits, minibatches shuffled by a seeded BatchLoader,
    random shifts of up to ``max_shift`` pixels, and a cosine learning-rate decay
    from ``lr`` over the epochs. Returns the mean training loss of each epoch.
    """
    model, device = classifier.net, classifier.device
    loader = BatchLoader((images, labels), batch_size=min(batch_size, len(images)), shuffle=True, seed=seed)
    optimizer, shift_rng = Adam(model, lr=lr), np.random.default_rng(seed + 1)
    model.train()
    history = []
    for epoch in range(epochs):
        optimizer.lr = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        total = 0.0
        for x, y in loader:
            x = backend.to_device(random_shift(x, max_shift, shift_rng), device)
            loss, dlogits = losses.softmax_cross_entropy(model.forward(x), backend.to_device(y, device))
            model.zero_grad()
            model.backward(dlogits)
            optimizer.step()
            total += float(loss)
        history.append(total / len(loader))
        if log:
            log(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
    model.eval()
    return history


def load_split(dataset, split, data_dir=None, download=True, limit=None):
    """(images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,)) of a dataset split; ``limit``: first N."""
    images, labels = load_dataset(dataset, split, data_dir=data_dir, download=download)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        images, labels = images[:limit], labels[:limit]
    return to_float(images)[:, None], labels.astype(np.int64)


def pixels_sha256(images):
    """SHA-256 of images in [0, 1] as the uint8 pixels (N, 28, 28) they came from: names the training data."""
    pixels = np.rint(backend.asnumpy(images).reshape(len(images), 28, 28) * 255).astype(np.uint8)
    return hashlib.sha256(pixels.tobytes()).hexdigest()


def train_classifier(dataset="mnist", data_dir=None, epochs=15, seed=0, out_path=None, batch_size=128,
                     lr=2e-3, max_shift=2, limit=None, device="cpu", download=True, log=print):
    """Train a classifier on a dataset's training split, test it, and save it to ``out_path`` (if given).

    ``limit`` trains on the first ``limit`` training images only. Returns the classifier;
    its ``metadata`` records the data (split, size, SHA-256 of the images), the
    hyperparameters, the training time, the test accuracy and, once saved, the file's SHA-256.
    """
    _check_training_options(epochs=epochs, batch_size=batch_size, lr=lr, max_shift=max_shift, seed=seed, limit=limit)
    if out_path is not None:  # before the training, not after it
        check_writable_file(out_path)
        remove_stale_temporaries(Path(out_path).parent, [Path(out_path).name])
    train_x, train_y = load_split(dataset, "train", data_dir, download, limit)
    test_x, test_y = load_split(dataset, "test", data_dir, download)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    classifier = build_classifier(num_classes=num_classes, seed=seed).to(device)
    start = time.perf_counter()
    history = fit(classifier, train_x, train_y, epochs, batch_size, lr, max_shift, seed, log)
    seconds = time.perf_counter() - start
    accuracy = classifier.accuracy(test_x, test_y)
    classifier.metadata.update({
        "dataset": dataset, "train_split": "train", "train_size": len(train_x),
        "train_images_sha256": pixels_sha256(train_x),
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "max_shift": max_shift, "seed": seed,
        "train_loss": history, "train_seconds": round(seconds, 1), "device": device,
        "test_size": len(test_x), "test_accuracy": accuracy, "scratchgan_version": __version__})
    if log:
        log(f"test accuracy {accuracy:.4f} on {len(test_x)} {dataset} test images "
            f"({len(train_x)} training images, {epochs} epochs, {seconds:.0f} s)")
    if out_path is not None:
        classifier.metadata["sha256"] = classifier.save(out_path)
        record_if_shipped(out_path, dataset, classifier.metadata["sha256"])
    return classifier


def _check_training_options(**options):
    """ValueError naming the first option of train_classifier that makes no sense."""
    minimum = {"epochs": 1, "batch_size": 1, "max_shift": 0, "seed": 0, "limit": 1}
    for name, value in options.items():
        if name == "lr":
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value) or value <= 0:
                raise ValueError(f"lr must be a finite number > 0, got {value!r}")
        elif not (value is None and name == "limit"):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum[name]:
                raise ValueError(f"{name} must be an integer >= {minimum[name]}, got {value!r}")


def record_if_shipped(path, dataset, sha256):
    """If ``path`` is in the package's weights folder, record it as the shipped weights for ``dataset``
    in checksums.json (atomically). Returns True if it did."""
    path = Path(path).resolve()
    if path.parent != WEIGHTS_DIR:
        return False
    checksums = WEIGHTS_DIR / CHECKSUMS_FILE
    table = _shipped_table() if checksums.is_file() else {}
    table[dataset] = {"file": path.name, "sha256": sha256}
    write_json(checksums, dict(sorted(table.items())))
    return True


# --- loading -----------------------------------------------------------------------------

def shipped_weights(dataset="mnist"):
    """(path, sha256) of the weights shipped for ``dataset``, or a clear error when there are none."""
    table = _shipped_table()
    if dataset not in table:
        raise FileNotFoundError(
            f"no classifier weights ship for {dataset!r} (shipped: {', '.join(sorted(table))}); train one with "
            f"`scratchgan train-classifier --dataset {dataset} --out {dataset}_classifier.npz`, then pass it: "
            f"`scratchgan evaluate CHECKPOINT --classifier {dataset}_classifier.npz` (or load_classifier(path))")
    entry = table[dataset]
    return WEIGHTS_DIR / entry["file"], entry["sha256"]


def _shipped_table():
    """checksums.json: {dataset: {"file", "sha256"}}; ValueError if it is missing or malformed."""
    path = WEIGHTS_DIR / CHECKSUMS_FILE
    try:
        table = json.loads(path.read_text())
        if all(isinstance(e, dict) and {"file", "sha256"} <= set(e) for e in table.values()):
            return table
    except (OSError, ValueError, AttributeError):
        pass
    raise ValueError(f"{path} is missing or corrupt: reinstall scratchgan (it records the shipped weights' checksums)")


def load_classifier(path=None, dataset="mnist", sha256=None, device="cpu"):
    """Load a classifier: the shipped weights for ``dataset`` (path=None), or an .npz from ``train_classifier``.

    The file's SHA-256 must equal ``sha256`` (for the shipped weights: the recorded one),
    else ChecksumError. A file that is not a classifier .npz, or weights of another
    architecture, raise ValueError.
    """
    shipped = path is None
    if shipped:
        path, sha256 = shipped_weights(dataset)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights {path} not found")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256:
        fix = (f"reinstall scratchgan, or regenerate them with `scratchgan train-classifier --dataset {dataset} "
               f"--out {path}` (which records the new checksum)") if shipped else "check the file"
        raise ChecksumError(f"{path}: SHA-256 {actual} does not match the recorded {sha256}; the file is "
                            f"corrupt or was replaced: {fix}")
    metadata, state = _read_classifier_file(path, data)
    if metadata.get("architecture") != ARCHITECTURE:
        raise ValueError(f"{path}: architecture {metadata.get('architecture')!r} is not this version's "
                         f"{ARCHITECTURE!r}; retrain with `scratchgan train-classifier`")
    try:
        classifier = build_classifier(metadata["num_classes"], metadata["feature_dim"], metadata["dropout"])
        classifier.net.load_state_dict(state)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a usable scratchgan classifier file ({type(e).__name__}: {e})") from None
    classifier.metadata = {**metadata, "sha256": actual, "path": str(path)}
    return classifier.to(device).eval()


def _read_classifier_file(path, data):
    """(metadata dict, parameter arrays) of a classifier .npz's bytes; ValueError for anything else."""
    not_ours = f"{path}: not a scratchgan classifier file"
    if not data.startswith(b"PK\x03\x04"):
        raise ValueError(f"{not_ours} (not an .npz archive)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if "metadata" not in archive.files:
                raise ValueError(f"{not_ours} (no metadata entry)")
            metadata = json.loads(str(archive["metadata"]))
            state = {name: archive[name] for name in archive.files if name != "metadata"}
    except ValueError as e:
        if str(e).startswith(not_ours):
            raise
        raise ValueError(f"{not_ours} (unreadable: {'it holds Python objects' if 'pickle' in str(e) else e})") \
            from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"{not_ours} (truncated or corrupt: {e})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{not_ours} (malformed metadata)")
    return metadata, state
