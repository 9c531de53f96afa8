"""``scratchgan train-classifier`` and ``scratchgan evaluate``.

``add_commands(subparsers)`` registers both on the main ``scratchgan`` parser;
``python -m scratchgan.evaluation.cli ...`` runs them on their own.
"""
import argparse
import functools
import sys
from pathlib import Path

import numpy as np

from ..backend import DEVICES, DeviceError
from ..fileio import write_json

DATASET_NAMES = ("mnist", "fashion-mnist")


def reports_errors(command):
    """Turn a bad file or bad input into one line on stderr and exit status 2, not a traceback."""
    @functools.wraps(command)
    def run(args):
        try:
            return command(args)
        except (OSError, ValueError, DeviceError) as err:   # ValueError includes DataError, ChecksumError
            print(f"scratchgan {getattr(args, 'command', '')}: error: {err}", file=sys.stderr)
            return 2
    return run


@reports_errors
def cmd_train_classifier(args):
    from .classifier import train_classifier
    out = args.out or f"{args.dataset}_classifier.npz"
    classifier = train_classifier(args.dataset, args.data_dir, epochs=args.epochs, seed=args.seed, out_path=out,
                                  batch_size=args.batch_size, lr=args.lr, max_shift=args.max_shift,
                                  limit=args.limit, device=args.device)
    print(f"saved {out}  sha256 {classifier.metadata['sha256']}")
    return 0


def load_samples(path, n, seed=0):
    """Samples from an .npy of images in [0, 1], or n samples drawn from a checkpoint (.npz)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)[:n]
    if path.suffix == ".npz":
        from ..gan.sampling import sample_from_checkpoint  # imported here: only checkpoints need it
        return sample_from_checkpoint(str(path), n, device="cpu", seed=seed)
    raise ValueError(f"{path}: expected samples (.npy, images in [0, 1]) or a training checkpoint (.npz)")


@reports_errors
def cmd_evaluate(args):
    from .classifier import load_classifier
    from .report import evaluate_samples, format_table, load_real_data, reference_row
    samples = load_samples(args.samples, args.n, args.seed)
    classifier = load_classifier(args.classifier, dataset=args.dataset)
    real = load_real_data(args.dataset, args.data_dir, classifier, n=args.n, seed=args.seed)
    rows = [reference_row(real=real, classifier=classifier, seed=args.seed)] if not args.no_reference else []
    rows.append(evaluate_samples(samples, n=args.n, classifier=classifier, seed=args.seed, real=real,
                                 name=Path(args.samples).name))
    print(format_table(rows))
    if args.json:
        write_json(args.json, rows)
        print(f"wrote {args.json}")
    return 0


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
                    "or (N, 1, 28, 28)) or for a training checkpoint (.npz, sampled on the CPU), and print "
                    "them beside the same metrics for real test data against the training data.")
    p.add_argument("samples", metavar="CHECKPOINT_OR_SAMPLES", help="a .npz checkpoint or a .npy of samples")
    p.add_argument("--n", type=int, default=10000, help="samples to evaluate (and real images per set)")
    p.add_argument("--dataset", choices=DATASET_NAMES, default="mnist")
    p.add_argument("--data-dir", help="folder holding the dataset's IDX files (default: cache / download)")
    p.add_argument("--classifier", help="classifier weights (.npz) to use instead of the shipped ones")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("--no-reference", action="store_true", help="skip the real-data reference row")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scratchgan.evaluation.cli")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
