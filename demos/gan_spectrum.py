"""The spectrum of a real GAN: the leading eigenvalues of an MLP GAN's game Jacobian, over training.

Two small MLP GANs (64 tanh units per layer, Adam, float64) learn the ring of 8 Gaussians,
one of them with the R1 penalty. Every few epochs the script freezes the trainer on a fixed
batch, and ARPACK finds the eigenvalues of the game Jacobian J = dv/dw with the largest real
part (growth) and the largest imaginary part (rotation) from Jacobian-vector products alone:
J u ~ (v(w + e u) - v(w - e u)) / 2e, each v one D step and one G step of the library's
trainer. It prints them with ||v||, how far the samples moved and the modes covered, and draws
spectrum.png.

With --full-batch it plays one fixed game instead (64 real points and noise vectors, plain
alternating gradient steps, with and without R1), so J is the Jacobian of exactly the dynamics
being run: the R1 run converges (||v|| -> 0, nothing grows), and convergence.png shows how.

    python demos/gan_spectrum.py --epochs 30 --out runs/lab/mixture
    python demos/gan_spectrum.py --full-batch --steps 40000 --every-steps 4000 --out runs/lab/converge
"""
import argparse
import sys
from pathlib import Path

import numpy as np

from scratchgan.cli import positive_int, run_command
from scratchgan.lab.figures import save_convergence, save_spectrum
from scratchgan.lab.mixtures import ToyRun, ring
from scratchgan.lab.spectrum import (FULL_BATCH_RUNS, SPECTRUM_RUNS, float64_game, leading_eigenvalues,
                                     track_full_batch, track_spectrum)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=positive_int, default=30)
    parser.add_argument("--every", type=positive_int, default=2, help="measure after every N-th epoch")
    parser.add_argument("--steps-per-epoch", type=positive_int, default=250)
    parser.add_argument("--k", type=positive_int, default=4, help="eigenvalues of each kind per measurement")
    parser.add_argument("--out", default="runs/lab/mixture")
    parser.add_argument("--full-batch", action="store_true", help="play one fixed game by gradient steps instead")
    parser.add_argument("--steps", type=positive_int, default=40000, help="--full-batch: gradient steps")
    parser.add_argument("--every-steps", type=positive_int, default=4000, help="--full-batch: measure every N steps")
    args = parser.parse_args()
    if args.full_batch:
        return full_batch(args)

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


def full_batch(args):
    records = {}
    for label, options in FULL_BATCH_RUNS.items():
        print(f"-- {label}: {options}")
        records[label] = track_full_batch(options, args.steps, args.every_steps, k=args.k, log=print)
        last = records[label]
        print(f"   ||v|| {last['v_norm'][0]:.3g} -> {last['v_norm'][-1]:.3g}; the last measurement's eigenvalues of "
              f"largest real part {last['LR'][-1].round(5)}")
    path = save_convergence(Path(args.out) / "convergence.png", records, ring())
    print(f"figure: {path}")


if __name__ == "__main__":
    sys.exit(run_command("gan_spectrum.py", main))
