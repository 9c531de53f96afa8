"""Does the loss track sample quality? Runs side by side: D's loss (a critic's Wasserstein estimate)
per epoch beside the per-epoch Fréchet distance, against generator updates.

The WGAN paper's claim: the critic's estimate of the Wasserstein distance falls as the samples
improve, where the standard GAN's discriminator loss says nothing about them. For each run
directory (written by `scratchgan train` with its per-epoch evaluation: history.csv and
metrics.csv), this plots the per-epoch mean of the tracked quantity (`wasserstein` if the run
has it, else `d_loss`) and the Fréchet distance on a second axis, against G updates, and reports
their Spearman rank correlation over epochs (+1: they fall and rise together).

    python demos/wasserstein_tracking.py runs/dcgan28 runs/wgan-gp --labels DCGAN-28 WGAN-GP \\
        --out tracking.png
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scratchgan.cli import run_command
from scratchgan.fileio import atomic_write
from scratchgan.plots import read_history_csv, tracked_loss


def per_epoch(run_dir):
    """(G updates at each epoch's end, tracked quantity's mean per epoch, Fréchet distance, key, label)."""
    run_dir = Path(run_dir)
    history = read_history_csv(run_dir / "history.csv")
    metrics = read_history_csv(run_dir / "metrics.csv")
    key, label = tracked_loss(history)
    g_done = np.cumsum(np.isfinite(history["g_loss"]))           # G updates made by each D step
    epochs = np.asarray(metrics["epoch"], dtype=int)
    steps = len(history[key]) // int(max(epochs)) if len(epochs) else 0
    if "g_steps" in metrics:
        g_at_epoch = np.asarray(metrics["g_steps"])
    else:
        g_at_epoch = g_done[epochs * steps - 1]
    values = np.asarray(history[key], dtype=np.float64)
    means = np.array([np.nanmean(values[(e - 1) * steps:e * steps]) for e in epochs])
    return g_at_epoch, means, np.asarray(metrics["frechet_distance"], dtype=np.float64), key, label


def spearman(a, b):
    """Spearman's rank correlation (no ties expected in real-valued curves)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories with history.csv and metrics.csv")
    parser.add_argument("--labels", nargs="+", help="one title per run (default: the folder names)")
    parser.add_argument("--out", default="tracking.png")
    args = parser.parse_args()
    labels = args.labels or [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        raise ValueError(f"--labels: {len(labels)} labels for {len(args.runs)} runs")
    fig = Figure(figsize=(5.5 * len(args.runs), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.14, top=0.84, wspace=0.45)
    summary = {}
    for i, (run_dir, title) in enumerate(zip(args.runs, labels)):
        g, loss, frechet, key, label = per_epoch(run_dir)
        rho = spearman(loss, frechet)
        summary[title] = {"tracked": key, "spearman_vs_frechet": rho, "epochs": len(g),
                          "first_last_loss": [float(loss[0]), float(loss[-1])],
                          "first_last_frechet": [float(frechet[0]), float(frechet[-1])]}
        ax = fig.add_subplot(1, len(args.runs), i + 1)
        ax.plot(g, loss, color="tab:blue", marker="o", markersize=3, label=label.split(",")[0])
        ax.set_xlabel("generator updates")
        ax.set_ylabel(label.split(",")[0] + " (per-epoch mean)", color="tab:blue")
        ax.grid(alpha=0.3)
        right = ax.twinx()
        right.plot(g, frechet, color="tab:red", marker="s", markersize=3)
        right.set_ylabel("Fréchet distance (lower is better)", color="tab:red")
        ax.set_title(f"{title}\nSpearman(loss, FD) over epochs = {rho:+.2f}", fontsize="medium")
        print(title, json.dumps(summary[title]))
    fig.suptitle("Does the loss track sample quality? (per epoch, against generator updates)")
    out = Path(args.out)
    with atomic_write(out) as f:
        fig.savefig(f, format="png", dpi=100)
    with atomic_write(out.with_suffix(".json")) as f:
        f.write(json.dumps(summary, indent=2).encode())
    print(f"{out} and {out.with_suffix('.json')} written")


if __name__ == "__main__":
    sys.exit(run_command("wasserstein_tracking.py", main))
