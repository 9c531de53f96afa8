"""The spectrum of a real GAN: the leading eigenvalues of an MLP GAN's game Jacobian, over training.

Two small MLP GANs (64 tanh units per layer, Adam, float64) learn the ring of 8 Gaussians,
one of them with the R1 penalty. Every few epochs the script freezes the trainer on a fixed
batch, and ARPACK finds the eigenvalues of the game Jacobian J = dv/dw with the largest real
part (growth) and the largest imaginary part (rotation) from Jacobian-vector products alone:
J u ~ (v(w + e u) - v(w - e u)) / 2e, each v one D step and one G step of the library's
trainer. It prints them with ||v||, how far the samples moved and the modes covered, and draws
spectrum.png.

    python demos/gan_spectrum.py --epochs 30 --out runs/lab/mixture
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from scratchgan.cli import positive_int, run_command
from scratchgan.lab.figures import save_spectrum
from scratchgan.lab.mixtures import ToyRun, ring
from scratchgan.lab.spectrum import SPECTRUM_RUNS, float64_game, leading_eigenvalues, track_spectrum


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=positive_int, default=30)
    parser.add_argument("--every", type=positive_int, default=2, help="measure after every N-th epoch")
    parser.add_argument("--steps-per-epoch", type=positive_int, default=250)
    parser.add_argument("--k", type=positive_int, default=4, help="eigenvalues of each kind per measurement")
    parser.add_argument("--out", default="runs/lab/mixture")
    args = parser.parse_args()

    # One measurement, written out: the game of an untrained GAN and its eigenvalue of largest real part.
    options = SPECTRUM_RUNS["no regularization"]
    game = float64_game(ToyRun(ring(), options, dtype=np.float64))
    print(f"{len(game.w)} parameters ({game.n_theta} in G); ||v|| = {np.linalg.norm(game.v()):.4f}")
    values, products = leading_eigenvalues(game, k=args.k, which="LR")
    print(f"largest real parts at initialization: {values.round(4)} ({products} Jacobian-vector products)")
    print("positive real parts: directions in which v pushes the parameters away, like the Dirac-GAN's "
          "simultaneous steps")

    records = {}
    for label, options in SPECTRUM_RUNS.items():
        print(f"-- {label}: {options}")
        run = ToyRun(ring(), options, steps_per_epoch=args.steps_per_epoch, dtype=np.float64)
        records[label] = track_spectrum(run, args.epochs, k=args.k, every=args.every, log=print)
    path = save_spectrum(Path(args.out) / "spectrum.png", records)
    print(f"figure: {path}")


if __name__ == "__main__":
    sys.exit(run_command("gan_spectrum.py", main))
