"""Mode collapse on 2-D mixtures, and Salimans et al.'s fixes one at a time.

A small MLP GAN learns the ring of 8 Gaussians and the 5 x 5 grid. Every epoch the script
draws 2,500 samples from fixed noise and counts the modes covered (at least 20 samples
within 3 standard deviations) and the share of high-quality samples; the animation shows
the generator's samples moving between modes. Then the same GAN is trained with each fix
switched on through the options every recipe has (gan/fixes.py): minibatch discrimination,
feature matching, historical averaging, one-sided label smoothing, virtual batch
normalization, and the modes covered are compared over several seeds.

    python demos/mode_collapse.py --epochs 60 --seeds 3 --out runs/lab/collapse
"""
import argparse
import sys
from pathlib import Path

from scratchgan.cli import positive_int, run_command
from scratchgan.lab.collapse import FIXES, animate, compare, format_summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixture", nargs="+", choices=("ring", "grid"), default=["ring", "grid"])
    parser.add_argument("--epochs", type=positive_int, default=60)
    parser.add_argument("--steps-per-epoch", type=positive_int, default=200)
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--fixes", nargs="+", choices=list(FIXES), default=list(FIXES))
    parser.add_argument("--out", default="runs/lab/collapse")
    args = parser.parse_args()
    out = Path(args.out)
    for mixture in args.mixture:
        run, paths = animate(out, mixture, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, label="no fix",
                             log=print)
        print(f"{mixture}: modes covered per epoch {[s['modes_covered'] for s in run.scores]}; {paths[0]}")
    report = compare(out, args.mixture, args.fixes, tuple(range(args.seeds)), args.epochs, args.steps_per_epoch,
                     log=print)
    print(format_summary(report["summary"]))
    print(f"figures and fixes.json in {out}/")


if __name__ == "__main__":
    sys.exit(run_command("mode_collapse.py", main))
