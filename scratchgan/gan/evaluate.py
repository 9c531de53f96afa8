"""Evaluation during and after a run, in the features of the shipped digit classifier.

Available for 1x28x28 runs on a dataset with classifier weights (MNIST ships them). Each
epoch gets cheap metrics on 2,000 samples against the statistics of all training images
(Fréchet distance, classifier score, class coverage; ``n`` and ``reference_n`` recorded:
compare epochs with each other); the end of the run gets the full evaluation of
docs/evaluation.md on ``eval_samples`` (10,000), matched in size to the reference set.
Samples come from their own seeded noise, so evaluating never changes the training run. A
conditional model's samples are drawn for the classes 0, 1, ..., K-1 in turn (as many of each);
its rows add the conditional accuracy (per epoch) and the per-class Fréchet distances (at the end).
A run that keeps an average of G's weights gets the per-epoch metrics of both generators
(the average's as ``ema_...`` columns); the final evaluation scores the one the run samples
from (the average), and records which (``generator``).
"""
from .. import backend
from .conditional import balanced_labels

QUICK_SAMPLES = 2000
EVAL_SEED = 10_000
MIN_EVAL_SAMPLES = 10   # the classifier score uses 10 splits
#: the per-epoch metrics also recorded for a run's averaged generator (as ema_<name>)
AVERAGED_COLUMNS = ("frechet_distance", "classifier_score", "classes_covered", "coverage_kl", "conditional_accuracy")


class RunEvaluator:
    def __init__(self, classifier, dataset, data_dir, real_images):
        from ..evaluation import real_feature_stats
        self.classifier, self.dataset, self.data_dir = classifier, dataset, data_dir
        self.real_stats = real_feature_stats(classifier, real_images)
        self.n_real = len(real_images)

    @classmethod
    def create(cls, dataset, data_dir, images, quiet=False):
        """An evaluator for this run, or None (with the reason printed) where none applies."""
        if tuple(images.shape[1:]) != (1, 28, 28) or dataset not in ("mnist", "fashion-mnist"):
            return None
        from ..evaluation import load_classifier
        try:
            classifier = load_classifier(dataset=dataset)
        except (OSError, ValueError) as e:
            if not quiet:
                print(f"no evaluation for this run: {e}")
            return None
        return cls(classifier, dataset, data_dir, images)

    def samples(self, trainer, setup, n, seed, generator=None):
        """(n images in [0, 1], the labels they were drawn for or None) from noise seeded by ``seed``, drawn by
        ``generator`` (default: the one the run samples from)."""
        noise = trainer.sample_noise(n, rng=backend.RNG(seed))
        labels = balanced_labels(n, trainer.config.num_classes) if trainer.conditional else None
        return backend.asnumpy(setup.to_unit(trainer.sample(noise=noise, labels=labels, generator=generator))), labels

    def epoch(self, trainer, setup, epoch):
        """Quick metrics of G; with a weight average (gan/averaging.py), the same metrics of the
        averaged generator on the same noise, in columns prefixed ``ema_``."""
        from ..evaluation import quick_metrics
        images, labels = self.samples(trainer, setup, QUICK_SAMPLES, EVAL_SEED + epoch, generator=trainer.G)
        row = {"epoch": epoch, "g_steps": trainer.g_steps,
               **quick_metrics(images, self.classifier, self.real_stats, labels=labels)}
        average = trainer.sampling_generator()
        if average is not trainer.G:
            images, labels = self.samples(trainer, setup, QUICK_SAMPLES, EVAL_SEED + epoch, generator=average)
            metrics = quick_metrics(images, self.classifier, self.real_stats, labels=labels)
            row.update({f"ema_{key}": value for key, value in metrics.items() if key in AVERAGED_COLUMNS})
        return {**row, "reference_n": self.n_real}

    def final(self, trainer, setup, n=10000):
        """The full evaluation; the real data are loaded first, so a missing test split fails before sampling,
        and no more samples are drawn than the reference set can be compared with."""
        from ..evaluation import evaluate_samples, load_real_data
        real = load_real_data(self.dataset, self.data_dir, self.classifier, n)
        images, labels = self.samples(trainer, setup, min(n, len(real.reference)), EVAL_SEED)
        row = evaluate_samples(images, n=n, classifier=self.classifier, real=real, labels=labels)
        if trainer.sampling_generator() is not trainer.G:
            row["generator"] = "average"
        row["class_histogram"] = [round(float(h), 4) for h in row["class_histogram"]]
        return row
