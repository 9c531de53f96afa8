"""Latent-size study: the same DCGAN-28 trained with z = 1, 10, 50, 100.

One seed's notes predict "imposed mode collapse" at z = 1: a one-dimensional latent space
can only trace a curve through image space, so G must drop most of the data's variety.
This demo trains one run per latent size (each a normal, resumable ``scratchgan train``
run directory) and writes, into --out:

    samples_by_z.png   64 samples per run, side by side
    losses_by_z.png    D and G loss, D(x) and D(G(z)) per run
    latent_study.json  per run: diversity (mean pairwise distance of samples, in pixels and
                       in classifier features) and class coverage from the shipped classifier

    python demos/latent_study.py --data-dir ~/data/mnist --epochs 3 --out runs/latent
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

from scratchgan import backend, plots
from scratchgan.cli import positive_int, run_command
from scratchgan.data import load_images
from scratchgan.gan.checkpoint import Checkpoint
from scratchgan.gan.run import CHECKPOINT, history_for_plots, train_run
from scratchgan.gan.sampling import sample_from_checkpoint


def mean_pairwise_distance(x):
    """Mean Euclidean distance between distinct rows of x (N, D): 0 for a collapsed sample set."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    sq = (x * x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    n = len(x)
    return float(np.sqrt(d2)[~np.eye(n, dtype=bool)].mean())


def train_or_resume(out, images, z_dim, epochs, device, seed, width=64, batch_size=None, data_dir=None,
                    identity=None):
    """A DCGAN-28 run for this latent size; an existing run directory is continued, not redone.
    ``data_dir`` is where the run's final evaluation reads the real MNIST data."""
    run_dir = out / f"z{z_dim}"
    checkpoint = run_dir / CHECKPOINT
    if checkpoint.exists() and Checkpoint(checkpoint).meta["epoch"] >= epochs:
        return run_dir
    train_run(None if checkpoint.exists() else "dcgan", run_dir, images, epochs=epochs, device=device,
              resume=checkpoint.exists(), dataset="mnist", data_dir=data_dir, data_identity=identity,
              **({} if checkpoint.exists() else {"z_dim": z_dim, "seed": seed, "ngf": width, "ndf": width,
                                                 "batch_size": batch_size}))
    return run_dir


def diversity(samples):
    """Diversity and, when the evaluation classifier is available, class coverage."""
    result = {"pixel_pairwise_distance": mean_pairwise_distance(samples[:1000])}
    try:
        from scratchgan.evaluation import load_classifier
        from scratchgan.evaluation.metrics import classifier_score, mode_coverage
    except ImportError:
        return result
    classifier = load_classifier()
    features, probs = classifier.features_and_proba(samples)
    coverage = mode_coverage(probs)
    result.update({"feature_pairwise_distance": mean_pairwise_distance(features[:1000]),
                   "classes_covered": coverage["classes_covered"], "coverage_kl": coverage["kl_to_uniform"],
                   "class_histogram": [round(float(h), 4) for h in coverage["histogram"]],
                   "classifier_score": classifier_score(probs)[0]})
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=positive_int, default=3)
    parser.add_argument("--z", type=positive_int, nargs="+", default=[1, 10, 50, 100], help="latent sizes")
    parser.add_argument("--device", default="cpu", choices=backend.DEVICES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=positive_int, default=2000, help="samples per run for the measures (>= 10)")
    parser.add_argument("--out", default="runs/latent")
    parser.add_argument("--width", type=positive_int, default=64, help="ngf = ndf (64 is DCGAN-28; smaller is faster)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: the recipe's 128")
    args = parser.parse_args()
    if args.n < 10:
        parser.error(f"--n must be at least 10 (the classifier score uses 10 splits), got {args.n}")
    out = Path(args.out)
    images, identity = load_images("mnist", data_dir=args.data_dir, with_identity=True)

    grids, panels, report = {}, {"D loss": {}, "G loss": {}, "D(x)": {}, "D(G(z))": {}}, {}
    for z_dim in args.z:
        run_dir = train_or_resume(out, images, z_dim, args.epochs, args.device, args.seed, args.width,
                                  args.batch_size, args.data_dir, identity)
        samples = sample_from_checkpoint(run_dir / CHECKPOINT, args.n, device=args.device, seed=1)
        grids[f"z = {z_dim}"] = samples[:64]
        history = history_for_plots(plots.read_history_csv(run_dir / "history.csv"), 1)
        for panel, key in (("D loss", "d_loss"), ("G loss", "g_loss"), ("D(x)", "d_real"), ("D(G(z))", "d_fake")):
            panels[panel][f"z = {z_dim}"] = history[key]
        report[f"z={z_dim}"] = diversity(samples)
        print(f"z = {z_dim}: {json.dumps({k: v for k, v in report[f'z={z_dim}'].items() if k != 'class_histogram'})}")

    plots.save_side_by_side(out / "samples_by_z.png", grids, nrow=8)
    plots.save_curve_panels(out / "losses_by_z.png", panels, smooth=25,
                            title=f"DCGAN-28 on MNIST, {args.epochs} epochs, by latent size")
    (out / "latent_study.json").write_text(json.dumps(report, indent=2))
    print(f"figures and latent_study.json in {out}/")


if __name__ == "__main__":
    sys.exit(run_command("latent_study.py", main))
