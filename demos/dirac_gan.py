"""Dirac-GAN (Mescheder et al. 2018): why GAN training circles, in two parameters.

Real data sit at 0. The generator is one number, G(z) = theta; the discriminator is
D(x) = psi x, a bias-free Dense(1, 1). The game's gradient vector field is

    v(theta, psi) = (-dL_G/dtheta, -dL_D/dpsi)

and training is gradient steps along it. This script computes v with the library's own
trainer (its D and G steps, float64, optimizers frozen), takes v's Jacobian at the
equilibrium (0, 0) by central differences, and prints its eigenvalues beside the closed
forms: +-0.5i for the standard GAN (pure rotation: no convergence), a negative real part
once R1 damps the discriminator. It then does the same for the discrete update maps of
simultaneous and alternating gradient steps, whose eigenvalues must lie inside the unit
circle for training to converge, and draws the vector fields and the spectra.

    python demos/dirac_gan.py --out runs/lab/dirac
"""
import argparse
import sys

import numpy as np

from scratchgan.cli import run_command
from scratchgan.lab import dirac


def show_one_case(name):
    """The whole computation for one case, written out."""
    game = dirac.dirac_game(name)                          # G, D, objective, penalties, frozen trainer
    w = np.zeros(2)                                        # (theta, psi) at the equilibrium
    print(f"{name}: v(0, 0) = {game.v(w)}, v(0.5, 0.5) = {game.v(np.array([0.5, 0.5]))}")
    jacobian = game.jacobian(w)                            # fourth-order central differences of v
    print(f"  J = {jacobian.round(6).tolist()}, eigenvalues {np.linalg.eigvals(jacobian).round(6)}")
    for scheme in dirac.SCHEMES:
        step = dirac.step_map(game, scheme, lr=0.5)        # w -> w + 0.5 v(w), or D first then G
        values = np.linalg.eigvals(dirac.map_jacobian(step, w))
        print(f"  {scheme} steps, lr 0.5: eigenvalues {values.round(4)}, |.| = {np.abs(values).round(6)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/lab/dirac")
    args = parser.parse_args()
    show_one_case("GAN, non-saturating")
    report = dirac.analyse()
    print("\ncase | eigenvalues of J | closed form | spectral radius of the update maps (lr 0.1 0.5 1)")
    for case in report["cases"]:
        eig = " ".join(f"{re:+.3f}{im:+.3f}i" for re, im in case["eigenvalues"])
        exact = " ".join(f"{re:+.3f}{im:+.3f}i" for re, im in case["closed_form_eigenvalues"])
        radii = {s: " ".join(f"{m['spectral_radius']:.4f}" for m in case["maps"] if m["scheme"] == s)
                 for s in dirac.SCHEMES}
        print(f"{case['name']:22s} | {eig} | {exact} | simultaneous {radii['simultaneous']}, "
              f"alternating {radii['alternating']}")
    paths = dirac.write_figures(args.out, report)
    print(f"figures: {', '.join(map(str, paths))}")


if __name__ == "__main__":
    sys.exit(run_command("dirac_gan.py", main))
