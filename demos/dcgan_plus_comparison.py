"""dcgan against dcgan-plus: the per-epoch Fréchet distance of every run, and samples of each.

For run directories written by `scratchgan train` on MNIST (metrics.csv and checkpoint.npz),
the left panel plots each run's per-epoch Fréchet distance (metrics.csv: 2,000 samples against
the training set, so compare curves, not these numbers with `scratchgan evaluate`'s), G itself
as a solid line and, for runs keeping a weight average (--ema), the averaged generator dashed.
The right panels show 64 samples of the first run of each group from the same noise, drawn
from what the run samples from (the average, for a run with --ema such as dcgan-plus), each
titled with the recipe, its learning rates and the epoch its checkpoint.npz holds.

This figure compares curves; the issue's verdict is `scratchgan evaluate` on 10,000 samples of
each run's kept checkpoints (docs/dcgan.md).

    python demos/dcgan_plus_comparison.py --dcgan runs/dcgan_s0 runs/dcgan_s1 \\
        --plus runs/plus_s0 runs/plus_s1 --out dcgan_plus.png
"""
import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from scratchgan.cli import run_command
from scratchgan.fileio import atomic_write
from scratchgan.gan import Checkpoint
from scratchgan.gan.sampling import sample_from_checkpoint
from scratchgan.plots import read_history_csv

#: (name, colour, line width): dcgan's lines drawn wider, so a dcgan-plus G that equals dcgan's (same seed:
#: the average never changes training) shows as a thin line inside a wide one rather than hiding it
GROUPS = (("dcgan", "tab:blue", 3.0), ("dcgan-plus", "tab:red", 1.2))


def curves(run_dir):
    """(epochs, Fréchet distance of G, of the averaged G or None) from a run's metrics.csv."""
    metrics = read_history_csv(Path(run_dir) / "metrics.csv")
    if "frechet_distance" not in metrics:
        raise ValueError(f"{run_dir}/metrics.csv has no frechet_distance column (an MNIST run with its "
                         f"per-epoch evaluation is needed)")
    average = metrics.get("ema_frechet_distance")
    return np.asarray(metrics["epoch"]), np.asarray(metrics["frechet_distance"]), average


def samples_of(run_dir, n=64):
    """n samples (seed 0) of a run's checkpoint.npz, from what it samples from, and a title saying what they are."""
    path = Path(run_dir) / "checkpoint.npz"
    meta = Checkpoint(path).meta
    o = meta["options"]
    which = f"averaged G (--ema {o['ema']})" if o.get("ema") else "G"
    g_lr, d_lr = o.get("g_lr") or o["lr"], o.get("d_lr") or o["lr"]
    rates = f"lr {g_lr:g}" if g_lr == d_lr else f"lr G {g_lr:g}, D {d_lr:g}"
    samples = sample_from_checkpoint(str(path), n, seed=0)
    return samples, f"{meta['recipe']} ({Path(run_dir).name}), {rates}, epoch {meta['epoch']}: {which}"


def grid(samples, nrow=8):
    """(n, 1, H, W) images in [0, 1] as one (nrow H, nrow W) mosaic."""
    n, _, h, w = samples.shape
    tiles = samples[:nrow * nrow, 0].reshape(nrow, nrow, h, w)
    return tiles.transpose(0, 2, 1, 3).reshape(nrow * h, nrow * w)


def figure(groups, out):
    fig = Figure(figsize=(15, 5), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.88, wspace=0.15)
    ax = fig.add_subplot(1, 3, 1)
    for (name, color, width), runs in zip(GROUPS, groups):
        for run in runs:
            epochs, raw, average = curves(run)
            ax.plot(epochs, raw, color=color, linewidth=width, alpha=0.7, label=f"{name} G ({Path(run).name})")
            if average is not None:
                ax.plot(epochs, average, color=color, linewidth=width, linestyle="--", alpha=0.7,
                        label=f"{name} averaged G ({Path(run).name})")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("Fréchet distance, 2,000 samples (lower is better)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small")
    ax.set_title("Per-epoch Fréchet distance (metrics.csv)", fontsize="medium")
    for i, runs in enumerate(groups):
        samples, title = samples_of(runs[0])
        panel = fig.add_subplot(1, 3, i + 2)
        panel.imshow(grid(samples), cmap="gray", vmin=0, vmax=1)
        panel.set_axis_off()
        panel.set_title(title, fontsize="medium")
    with atomic_write(out) as f:
        fig.savefig(f, format="png")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dcgan", nargs="+", required=True, help="run directories of the dcgan recipe")
    parser.add_argument("--plus", nargs="+", required=True, help="run directories of the dcgan-plus recipe")
    parser.add_argument("--out", default="dcgan_plus.png")
    args = parser.parse_args()
    print(f"wrote {figure((args.dcgan, args.plus), args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command("dcgan_plus_comparison", main))
