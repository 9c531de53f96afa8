"""All metrics for a set of samples in one row, beside a reference row of real test data.

Conventions (see docs/evaluation.md):

- the *reference set* is up to n training images; the Fréchet distance and
  precision/recall compare a row's images with it. Both sides always have the same size:
  with fewer samples (or fewer reference images) than n, both are cut to the smaller
  number, and every row records ``n`` (samples), ``reference_n``, ``test_n`` and ``n_requested``;
- the Parzen window is fitted on the row's images, its sigma chosen on 1,000 held-out
  training images (never in the reference set), and evaluated on up to n test images;
- the reference row treats the real test images as the "samples" (its Parzen row fits
  the window on the reference set instead: test images cannot score themselves);
- samples with class labels (a conditional model's, each drawn for a requested class) add the
  conditional accuracy (how often the classifier names the requested class) and the Fréchet
  distance of each class's samples to the reference images of that class, and its mean; the
  reference row's are the real test images with their true labels.
"""
from dataclasses import dataclass, replace

import numpy as np

from .. import backend
from .classifier import as_image_batch, load_classifier, load_split
from .metrics import (classifier_score, feature_statistics, frechet_distance_from_stats, mode_coverage,
                      parzen_window_estimate, precision_recall)

N_VALIDATION = 1000  # held-out training images for choosing the Parzen sigma
QUICK_N = 2000       # samples quick_metrics uses at most


@dataclass
class RealData:
    """Real images of one dataset, and the reference set's classifier features."""
    dataset: str
    reference: np.ndarray            # training images the samples are compared with, (N, 1, 28, 28)
    validation: np.ndarray           # held-out training images, for the Parzen sigma
    test: np.ndarray                 # test images: Parzen evaluation points, and the reference row
    reference_features: np.ndarray   # classifier features of `reference`
    reference_stats: tuple           # their (mean, covariance)
    reference_labels: np.ndarray = None   # the classes of `reference` and `test` (per-class metrics)
    test_labels: np.ndarray = None

    def matched(self, n):
        """These data with the reference set and the test images cut to at most n (a seeded random
        subset already: the reference set is drawn from shuffled training images)."""
        if n >= len(self.reference) and n >= len(self.test):
            return self
        features = self.reference_features[:n]
        cut = (lambda a: None if a is None else a[:n])
        return replace(self, reference=self.reference[:n], test=self.test[:n], reference_features=features,
                       reference_stats=feature_statistics(features), reference_labels=cut(self.reference_labels),
                       test_labels=cut(self.test_labels))


def load_real_data(dataset="mnist", data_dir=None, classifier=None, n=10000, n_validation=N_VALIDATION,
                   seed=0, download=True):
    """Split the training data (seeded) into validation and reference sets; take up to n test images."""
    check_n(n)
    classifier = load_classifier(dataset=dataset) if classifier is None else classifier
    trained_on = classifier.metadata.get("dataset", dataset)
    if trained_on != dataset:
        raise ValueError(f"the classifier was trained on {trained_on}, not {dataset}: its features say "
                         f"nothing about {dataset} images; pass a {dataset} classifier")
    train, train_labels = load_split(dataset, "train", data_dir, download)
    test, test_labels = load_split(dataset, "test", data_dir, download)
    if len(train) < n_validation + 10:
        raise ValueError(f"{dataset}: the training split has {len(train)} images; the evaluation needs "
                         f"{n_validation} for validation and at least 10 more")
    order = np.random.default_rng(seed).permutation(len(train))
    reference = train[order[n_validation:n_validation + n]]
    features = classifier.features(reference)
    return RealData(dataset, reference, train[order[:n_validation]], test[:n], features,
                    feature_statistics(features), train_labels[order[n_validation:n_validation + n]], test_labels[:n])


def check_n(n):
    if n < 10:
        raise ValueError(f"n must be at least 10 (the classifier score uses 10 splits), got {n}")


def metrics_row(name, images, classifier, real, parzen_kernels=None, n_requested=None, labels=None):
    """Every metric for images (N, 1, 28, 28) in [0, 1] against ``real``, as a JSON-ready dict;
    with ``labels`` (the class each image was drawn for), the conditional metrics too."""
    features, probs = classifier.features_and_proba(images)
    score, score_std = classifier_score(probs, splits=10)
    coverage = mode_coverage(probs)
    precision, recall = precision_recall(real.reference_features, features, k=3)
    kernels = images if parzen_kernels is None else parzen_kernels
    parzen = parzen_window_estimate(flat(kernels), flat(real.validation), flat(real.test))
    return {"name": name, "n": len(images), "reference_n": len(real.reference), "test_n": len(real.test),
            "n_requested": len(images) if n_requested is None else n_requested,
            "classifier_sha256": classifier.metadata.get("sha256"),
            "frechet_distance": frechet_distance_from_stats(*feature_statistics(features), *real.reference_stats),
            "classifier_score": score, "classifier_score_std": score_std,
            "coverage_kl": coverage["kl_to_uniform"], "classes_covered": coverage["classes_covered"],
            "num_classes": probs.shape[1], "class_histogram": coverage["histogram"].tolist(),
            "parzen_ll": parzen["mean"], "parzen_std_error": parzen["std_error"], "parzen_sigma": parzen["sigma"],
            "precision": precision, "recall": recall,
            **({} if labels is None else conditional_metrics(features, probs, labels, real))}


def conditional_metrics(features, probs, labels, real):
    """For images drawn for classes ``labels``: the conditional accuracy (the fraction the classifier
    puts in their requested class), and per class k the Fréchet distance between the features of the
    images of class k and those of the reference images of class k, and the mean over the classes.
    A class with fewer than 2 images on either side has no distance (None)."""
    labels = np.asarray(backend.asnumpy(labels)).astype(np.int64)
    num_classes = probs.shape[1]
    per_class = []
    for k in range(num_classes):
        mine, theirs = features[labels == k], real.reference_features[real.reference_labels == k]
        per_class.append(frechet_distance_from_stats(*feature_statistics(mine), *feature_statistics(theirs))
                         if len(mine) >= 2 and len(theirs) >= 2 else None)
    measured = [d for d in per_class if d is not None]
    return {"conditional_accuracy": float((probs.argmax(axis=1) == labels).mean()),
            "per_class_frechet": per_class,
            "mean_per_class_frechet": float(np.mean(measured)) if len(measured) == num_classes else None}


def check_sample_labels(labels, n, num_classes, what="labels"):
    """``labels`` as int64 (N,) NumPy: one class in 0 .. num_classes - 1 per sample, or ValueError."""
    labels = np.asarray(backend.asnumpy(labels))
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{what}: expected integer class labels of shape (N,), got {labels.dtype} {labels.shape}")
    if len(labels) != n:
        raise ValueError(f"{what}: {len(labels)} labels for {n} samples; give one label per sample")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{what}: labels run from {labels.min()} to {labels.max()}, outside the {num_classes} "
                         f"classes 0..{num_classes - 1}")
    return labels.astype(np.int64)


def flat(images):
    """(N, 1, 28, 28) -> (N, 784) float64 for the Parzen window (pixel space)."""
    return images.reshape(len(images), -1).astype(np.float64)


def evaluate_samples(samples, dataset="mnist", data_dir=None, n=10000, classifier=None, seed=0, real=None,
                     name="model", labels=None):
    """All metrics for the first n samples ((N, 28, 28) or (N, 1, 28, 28), floats in [0, 1]).

    ``classifier`` defaults to the shipped one for ``dataset``; ``real`` (from
    load_real_data) can be passed to share real data and features between calls. Samples and
    reference set are compared at the same size, the smaller of the two (see matched_size).
    ``labels``: the class each sample was drawn for (conditional models): adds the conditional metrics.
    """
    check_n(n)
    classifier = load_classifier(dataset=dataset) if classifier is None else classifier
    images = backend.asnumpy(as_image_batch(samples))
    if labels is not None:
        labels = check_sample_labels(labels, len(images), classifier_classes(classifier))
    images = images[:n]
    if len(images) < 10:
        raise ValueError(f"samples: need at least 10 samples, got {len(images)}")
    real = load_real_data(dataset, data_dir, classifier, len(images), seed=seed) if real is None else real
    m = matched_size(len(images), real)
    return metrics_row(name, images[:m], classifier, real.matched(m), n_requested=n,
                       labels=None if labels is None else labels[:m])


def classifier_classes(classifier):
    """How many classes the classifier tells apart (its last layer's outputs)."""
    _, layer, key = classifier.net.named_parameters()[-1]
    return int(layer.params[key].shape[0])


def reference_row(dataset="mnist", data_dir=None, n=10000, classifier=None, seed=0, real=None,
                  name="real test vs train", conditional=False):
    """The same metrics for real test images against the training data: what a perfect model scores.

    The test images used are as many as the reference set holds (at most n). ``conditional`` adds
    the conditional metrics of the test images with their true labels."""
    classifier = load_classifier(dataset=dataset) if classifier is None else classifier
    real = load_real_data(dataset, data_dir, classifier, n, seed=seed) if real is None else real
    real = real.matched(matched_size(n, real, with_test=True))
    return metrics_row(name, real.test, classifier, real, parzen_kernels=real.reference, n_requested=n,
                       labels=real.test_labels if conditional else None)


def matched_size(n, real, with_test=False):
    """How many images a comparison uses on each side: the smaller of n and the reference set (and of
    the test images, where they are the compared "samples", as in the reference row)."""
    m = min(n, len(real.reference), len(real.test) if with_test else n)
    if m < 10:
        raise ValueError(f"only {m} images to compare (samples {n}, reference set {len(real.reference)}, "
                         f"test images {len(real.test)}); the evaluation needs at least 10")
    return m


def real_feature_stats(classifier, images):
    """(mean, covariance) of the classifier features of real images, for quick_metrics."""
    return feature_statistics(classifier.features(images))


def quick_metrics(samples, classifier, real_features_stats, max_samples=QUICK_N, labels=None):
    """Fréchet distance, classifier score and coverage on up to ``max_samples`` samples: cheap enough per epoch;
    with ``labels`` (the classes the samples were drawn for), the conditional accuracy too.

    With ~2,000 samples the Fréchet distance is biased upward against the 10,000-sample
    value (fewer samples, noisier covariance): compare it across epochs, not with the full evaluation.
    """
    images = as_image_batch(samples)[:max_samples]
    if len(images) < 10:
        raise ValueError(f"samples: need at least 10 samples, got {len(images)}")
    features, probs = classifier.features_and_proba(images)
    score, score_std = classifier_score(probs, splits=10)
    coverage = mode_coverage(probs)
    row = {"n": len(images),
           "frechet_distance": frechet_distance_from_stats(*feature_statistics(features), *real_features_stats),
           "classifier_score": score, "classifier_score_std": score_std,
           "coverage_kl": coverage["kl_to_uniform"], "classes_covered": coverage["classes_covered"]}
    if labels is not None:
        requested = np.asarray(backend.asnumpy(labels))[:len(images)]
        row["conditional_accuracy"] = float((probs.argmax(axis=1) == requested).mean())
    return row


TABLE_LINES = [  # (label, how to format a row's value)
    ("samples", lambda r: f"{r['n']}"),
    ("reference (train) / test images", lambda r: f"{r.get('reference_n', '?')} / {r.get('test_n', '?')}"),
    ("Frechet distance (features)  lower", lambda r: f"{r['frechet_distance']:.3f}"),
    ("classifier score  higher", lambda r: f"{r['classifier_score']:.3f} +- {r['classifier_score_std']:.3f}"),
    ("coverage: KL to uniform  lower", lambda r: f"{r['coverage_kl']:.4f}"),
    ("coverage: classes >= 2%", lambda r: f"{r['classes_covered']} / {r['num_classes']}"),
    ("Parzen log-lik. (nats)  higher", lambda r: f"{r['parzen_ll']:.1f} +- {r['parzen_std_error']:.1f}"),
    ("Parzen sigma", lambda r: f"{r['parzen_sigma']:.3f}"),
    ("precision (k=3)  higher", lambda r: f"{r['precision']:.3f}"),
    ("recall (k=3)  higher", lambda r: f"{r['recall']:.3f}"),
]


CONDITIONAL_LINES = [  # shown when a row has labelled samples
    ("conditional accuracy  higher", lambda r: _or_dash(r.get("conditional_accuracy"), "{:.4f}")),
    ("per-class Frechet, mean  lower", lambda r: _or_dash(r.get("mean_per_class_frechet"), "{:.3f}")),
    ("per-class Frechet, worst  lower", lambda r: _or_dash(_worst(r.get("per_class_frechet")), "{:.3f}")),
]


def _or_dash(value, fmt):
    return "-" if value is None else fmt.format(value)


def _worst(per_class):
    measured = [d for d in per_class or [] if d is not None]
    return max(measured) if measured else None


def format_table(rows):
    """A plain-text table: one line per metric, one column per row (e.g. reference, then model)."""
    header = ["metric"] + [row["name"] for row in rows]
    table_lines = TABLE_LINES + (CONDITIONAL_LINES if any("conditional_accuracy" in row for row in rows) else [])
    lines = [header] + [[label] + [fmt(row) for row in rows] for label, fmt in table_lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)
