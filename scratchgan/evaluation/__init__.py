"""Evaluating generators offline: metrics in the features of a small classifier trained with scratchgan.

- ``classifier``: the CNN (``build_classifier``, ``train_classifier``, ``load_classifier``);
  the package ships MNIST weights, checked against their recorded SHA-256.
- ``metrics``: Fréchet distance, classifier score, mode coverage, Parzen window,
  precision/recall, discriminator accuracy (NumPy float64, any backend's arrays in).
- ``report``: every metric for a set of samples, beside real test data (``evaluate_samples``,
  ``reference_row``, ``format_table``), and ``quick_metrics`` for use once per epoch.
- ``cli``: the ``train-classifier`` and ``evaluate`` commands.

The names below are imported on first use, so registering the commands on the
``scratchgan`` parser does not make every command pay for importing SciPy.
See docs/evaluation.md.
"""
import importlib

_EXPORTS = {
    "classifier": ["ChecksumError", "Classifier", "build_classifier", "load_classifier", "train_classifier"],
    "metrics": ["classifier_score", "discriminator_accuracy", "feature_statistics", "frechet_distance",
                "frechet_distance_from_stats", "mode_coverage", "parzen_log_likelihoods",
                "parzen_window_estimate", "precision_recall", "select_parzen_sigma", "trace_sqrt_product"],
    "report": ["evaluate_samples", "format_table", "load_real_data", "quick_metrics", "real_feature_stats",
               "reference_row"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
