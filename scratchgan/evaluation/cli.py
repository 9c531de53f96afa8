"""``scratchgan train-classifier`` and ``scratchgan evaluate``.

``add_commands(subparsers)`` registers both on the main ``scratchgan`` parser;
``python -m scratchgan.evaluation.cli ...`` runs them on their own.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from ..backend import DEVICES
from ..fileio import check_writable_file, write_json

DATASET_NAMES = ("mnist", "fashion-mnist")
NPY_MAGIC = b"\x93NUMPY"


def cmd_train_classifier(args):
    from .classifier import train_classifier
    check_seed(args.seed)
    out = args.out or f"{args.dataset}_classifier.npz"
    classifier = train_classifier(args.dataset, args.data_dir, epochs=args.epochs, seed=args.seed, out_path=out,
                                  batch_size=args.batch_size, lr=args.lr, max_shift=args.max_shift,
                                  limit=args.limit, device=args.device)
    print(f"saved {out}  sha256 {classifier.metadata['sha256']}")
    return 0


def load_samples(path, n, seed=0, generator="auto"):
    """Samples from an .npy of images in [0, 1] (the first n; all for n None), or n samples drawn from a
    checkpoint (.npz) by its ``generator`` (gan/sampling.py's load_generator: auto, average or raw)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".npy":
        return read_samples_npy(path)[:n]
    if path.suffix == ".npz":
        from ..gan.sampling import sample_from_checkpoint  # imported here: only checkpoints need it
        return sample_from_checkpoint(str(path), n, device="cpu", seed=seed, generator=generator)
    raise ValueError(f"{path}: expected samples (.npy, images in [0, 1]) or a training checkpoint (.npz)")


def read_samples_npy(path):
    """The array of a samples .npy: images (N, 28, 28) or (N, 1, 28, 28), floats or uint8; ValueError otherwise."""
    with open(path, "rb") as f:
        start = f.read(len(NPY_MAGIC))
    if start != NPY_MAGIC:
        raise ValueError(f"{path} is not a NumPy .npy file"
                         + (" (it is an .npz archive: checkpoints need the .npz suffix)" if start[:2] == b"PK" else ""))
    try:
        samples = np.load(path, allow_pickle=False)
    except ValueError as e:
        what = "it holds Python objects, not images" if "allow_pickle" in str(e) else f"corrupt: {e}"
        raise ValueError(f"{path}: cannot read samples ({what})") from None
    except EOFError as e:
        raise ValueError(f"{path}: cannot read samples (truncated: {e})") from None
    if samples.ndim not in (3, 4) or len(samples) == 0:
        raise ValueError(f"{path}: samples must have shape (N, 28, 28) or (N, 1, 28, 28) with N > 0, "
                         f"got {samples.shape}")
    if samples.dtype != np.uint8 and samples.dtype.kind != "f":
        raise ValueError(f"{path}: samples hold {samples.dtype} values; expected floats in [0, 1] "
                         f"(or uint8 pixels 0..255)")
    return samples


def crop_padded_mnist(samples, notes):
    """32x32 single-channel samples (progan's MNIST, padded by 2 pixels a side) cut to their central 28x28,
    with a note; any other samples unchanged."""
    if samples.ndim in (3, 4) and tuple(samples.shape[-2:]) == (32, 32) and (samples.ndim == 3 or samples.shape[1] == 1):
        notes.append("note: 32x32 samples cropped to their central 28x28 (MNIST padded by 2 pixels a side, "
                     "as progan trains on it)")
        return samples[..., 2:30, 2:30]
    return samples


def dataset_to_evaluate(path, asked):
    """(dataset, notes): the dataset a checkpoint records (asking for another is an error), else ``asked``."""
    path = Path(path)
    if path.suffix != ".npz":
        return asked or "mnist", []
    from ..gan.checkpoint import Checkpoint
    from ..gan.sampling import rebuild_setup
    checkpoint = Checkpoint(path)
    checkpoint.load_generator(rebuild_setup(checkpoint).G)  # the whole checkpoint checked before any data load
    meta = checkpoint.meta
    recorded = meta.get("dataset")
    if meta["image_shape"] != [1, 28, 28] or recorded not in DATASET_NAMES:
        raise ValueError(f"{path} is a run on {recorded!r} images of shape {tuple(meta['image_shape'])}: "
                         f"evaluate scores 1x28x28 runs on {' or '.join(DATASET_NAMES)} only")
    notes = []
    options = meta.get("options") or {}
    if options.get("ema"):   # a run keeping an average of G's weights (gan/averaging.py)
        notes.append(f"note: this run keeps an average of G's weights (--ema {options['ema']}); --generator "
                     f"auto and average score it, raw scores G itself")
    if asked is not None and asked != recorded:
        raise ValueError(f"{path} is a {recorded} run: --dataset {asked} would score it against the wrong "
                         f"data (leave --dataset out)")
    data = meta.get("data") or {}
    if data.get("match") in ("unknown", "modified official"):
        notes.append(f"note: this run trained on files that are not the official {recorded} data "
                     f"({data.get('source')}, {data.get('n')} images, SHA-256 {str(data.get('images_sha256'))[:16]}...); "
                     f"it is scored against the {recorded} data found now")
    return recorded, notes


def cmd_evaluate(args):
    from .classifier import load_classifier
    from .report import check_n, evaluate_samples, format_table, reference_row
    check_n(args.n)
    if args.labels is not None and Path(args.samples).suffix == ".npz":
        raise ValueError("--labels goes with .npy samples; a conditional checkpoint draws its own (the classes in "
                         "turn), and an unconditional one has none")
    check_seed(args.seed)
    if args.json:
        check_writable_file(args.json)  # before the work
    from ..gan.translate import evaluate_checkpoint   # cyclegan, srresnet, srgan checkpoints (issue 20)
    rows = evaluate_checkpoint(args)
    if rows is not None:
        if args.json:
            write_json(args.json, rows)
            print(f"wrote {args.json}")
        return 0
    dataset, notes = dataset_to_evaluate(args.samples, args.dataset)
    if args.dataset is None and Path(args.samples).suffix != ".npz":
        notes.append(f"note: scored as {dataset} samples (the default; pass --dataset for another dataset)")
    classifier = load_classifier(args.classifier, dataset=dataset)
    check_classifier_dataset(classifier, dataset, args.classifier)
    samples, labels, real, m = samples_and_real_data(args, dataset, classifier, notes)
    conditional = labels is not None
    rows = ([reference_row(n=m, real=real, classifier=classifier, seed=args.seed, conditional=conditional)]
            if not args.no_reference else [])
    rows.append(evaluate_samples(samples, n=m, classifier=classifier, seed=args.seed, real=real,
                                 name=Path(args.samples).name, labels=labels))
    for row in rows:
        row.update(dataset=dataset, n_requested=args.n)
    print("\n".join(notes + [format_table(rows)]))
    if args.json:
        write_json(args.json, rows)
        print(f"wrote {args.json}")
    return 0


def check_seed(seed):
    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {seed}")


def check_classifier_dataset(classifier, dataset, path=None):
    """ValueError if the classifier was trained on another dataset than the samples'."""
    trained_on = classifier.metadata.get("dataset", dataset)
    if trained_on != dataset:
        raise ValueError(f"the classifier {path or ''} was trained on {trained_on}, not {dataset}: pass a {dataset} "
                         f"classifier (scratchgan train-classifier --dataset {dataset} --out F.npz, then "
                         f"--classifier F.npz)")


def samples_and_real_data(args, dataset, classifier, notes):
    """(samples, their labels or None, real data, m): both sides at the same size m, the smallest of --n, the
    samples and the reference set (a note in ``notes`` when m < --n). From a checkpoint, only m samples are
    drawn (a conditional one draws the classes in turn); .npy samples get their labels from --labels."""
    from .. import backend
    from .classifier import as_image_batch
    from .report import check_sample_labels, classifier_classes, load_real_data, matched_size
    from_checkpoint = Path(args.samples).suffix == ".npz"
    samples, labels = (None, None) if from_checkpoint else (crop_padded_mnist(load_samples(args.samples, None), notes),
                                                             None)
    if samples is not None:  # their shape, range, count and labels checked before any real data are loaded
        if args.labels is not None:
            labels = check_sample_labels(read_labels_npy(args.labels), len(samples), classifier_classes(classifier),
                                         what=str(args.labels))[:args.n]
        samples = backend.asnumpy(as_image_batch(samples[:args.n], what=str(args.samples)))
        if len(samples) < 10:
            raise ValueError(f"{args.samples}: {len(samples)} samples; the evaluation needs at least 10 "
                             f"(the classifier score uses 10 splits)")
    wanted = args.n if samples is None else min(args.n, len(samples))
    real = load_real_data(dataset, args.data_dir, classifier, n=wanted, seed=args.seed)
    if from_checkpoint:
        from ..gan.sampling import sample_with_labels
        samples, labels = sample_with_labels(args.samples, min(args.n, len(real.reference)), device="cpu",
                                             seed=args.seed, generator=getattr(args, "generator", "auto"))
        samples = crop_padded_mnist(samples, notes)
        if labels is not None and int(labels.max()) >= classifier_classes(classifier):
            raise ValueError(f"{args.samples} draws {int(labels.max()) + 1} classes; the classifier tells "
                             f"{classifier_classes(classifier)} apart")
    m = matched_size(len(samples), real)
    if m < args.n:
        notes.append(f"note: {m} samples against {m} reference (training) images: sizes matched to the "
                     f"smaller side (--n {args.n}: {len(samples)} samples, {len(real.reference)} reference images)")
    return samples, labels, real, m


def _existing(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def read_labels_npy(path):
    """The class labels of a --labels file: an .npy of integers (N,), one per sample."""
    path = _existing(path)
    with open(path, "rb") as f:
        start = f.read(len(NPY_MAGIC))
    if start != NPY_MAGIC:
        raise ValueError(f"{path} is not a NumPy .npy file (--labels wants an .npy of integer class labels)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        what = "it holds Python objects" if "allow_pickle" in str(e) else f"corrupt: {e}"
        raise ValueError(f"{path}: cannot read labels ({what})") from None
    except EOFError as e:
        raise ValueError(f"{path}: cannot read labels (truncated: {e})") from None


def add_commands(subparsers):
    """Register ``train-classifier`` and ``evaluate`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "train-classifier", help="train the small CNN whose features the evaluation metrics use",
        description="Train the evaluation classifier (a small CNN written with scratchgan layers) on a "
                    "dataset's training split, report its test accuracy and save it as an .npz.")
    p.add_argument("--dataset", choices=DATASET_NAMES, default="mnist")
    p.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: cache / download)")
    p.add_argument("--out", help="where to save the weights (default: <dataset>_classifier.npz)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="initial Adam learning rate (cosine decay)")
    p.add_argument("--max-shift", type=int, default=2, help="random-shift augmentation in pixels (0: none)")
    p.add_argument("--limit", type=int, help="train on the first N training images only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.set_defaults(func=cmd_train_classifier)

    p = subparsers.add_parser(
        "evaluate", help="score generated samples: Fréchet distance, classifier score, coverage, Parzen, P/R",
        description="Compute the evaluation metrics for samples (.npy of images in [0, 1], shape (N, 28, 28) "
                    "or (N, 1, 28, 28); 32x32 samples, e.g. progan's padded MNIST, are cropped to their central "
                    "28x28) or for a training checkpoint (.npz, sampled on the CPU, scored on the "
                    "dataset it records), and print them beside the same metrics for real test data against "
                    "the training data. Samples and reference images are compared at the same size.")
    p.add_argument("samples", metavar="CHECKPOINT_OR_SAMPLES", help="a .npz checkpoint or a .npy of samples")
    p.add_argument("--n", type=int, default=10000, help="samples to evaluate (and real images per set)")
    p.add_argument("--dataset", choices=DATASET_NAMES,
                   help="the samples' dataset (default: a checkpoint's own, else mnist)")
    p.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: cache / download)")
    p.add_argument("--classifier", help="classifier weights (.npz, from train-classifier) instead of the shipped "
                                        "ones; needed for fashion-mnist")
    p.add_argument("--labels", metavar="LABELS.npy",
                   help="for .npy samples of a conditional model: the class each sample was drawn for (integers, "
                        "one per sample); adds the conditional accuracy and the per-class Fréchet distances "
                        "(a conditional checkpoint adds them without it)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--no-reference", action="store_true", help="skip the real-data reference row")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generator", choices=("auto", "average", "raw"), default="auto",
                   help="a checkpoint's generator to score: the run's weight average if it kept one (--ema), "
                        "else G (auto, default); average; or raw (G itself)")
    p.set_defaults(func=cmd_evaluate)


def main(argv=None):
    from ..cli import run_command
    parser = argparse.ArgumentParser(prog="python -m scratchgan.evaluation.cli")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_command(f"scratchgan {args.command}", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
