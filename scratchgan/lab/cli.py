"""``scratchgan lab dirac|mixture|collapse``: the GAN dynamics lab from the command line (docs/dynamics.md)."""
import json
import sys
from pathlib import Path


def cmd_dirac(args):
    from .dirac import LEARNING_RATES, analyse, write_figures
    lrs = tuple(args.lr or LEARNING_RATES)
    if any(not lr > 0 for lr in lrs):
        raise ValueError(f"--lr values must be > 0, got {list(lrs)}")
    report = analyse(lrs)
    if not args.no_figures:
        paths = write_figures(args.out, report)
        print(f"figures: {', '.join(map(str, paths))}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(report["method"])
    for case in report["cases"]:
        eig = ", ".join(f"{re:+.4f}{im:+.4f}i" for re, im in case["eigenvalues"])
        print(f"\n{case['name']}: eigenvalues of J {eig} (closed form: max |J - J_exact| = "
              f"{case['jacobian_error']:.1e}); {case['note']}")
        for m in case["maps"]:
            print(f"  {m['scheme']:12s} lr {m['lr']:<5g} spectral radius {m['spectral_radius']:.6f}  {m['verdict']}")
    return 0


def add_commands(sub):
    from .. import cli as main_cli
    lab = sub.add_parser("lab", help="the GAN dynamics lab: Dirac-GAN Jacobians, a real network's spectrum, "
                                     "mode collapse and its fixes (docs/dynamics.md)",
                         description="Make the dynamics of GAN training visible: see docs/dynamics.md.")
    parts = lab.add_subparsers(dest="part", required=True)
    p = parts.add_parser("dirac", help="Dirac-GAN: Jacobian eigenvalues, update maps, vector fields",
                         description="The Dirac-GAN (Mescheder et al. 2018) for the standard GAN (non-saturating, "
                                     "minimax), WGAN, WGAN-GP and R1: the Jacobian of the gradient vector field at "
                                     "the equilibrium (float64 central differences of the library's own gradients) "
                                     "beside its closed form, and the eigenvalues of simultaneous and alternating "
                                     "steps at each learning rate. Writes dirac_fields.png and dirac_eigenvalues.png.")
    p.add_argument("--out", default="runs/lab/dirac", help="folder for the figures (default runs/lab/dirac)")
    p.add_argument("--lr", type=float, nargs="+", help="learning rates of the update maps (default 0.1 0.5 1.0)")
    p.add_argument("--json", action="store_true",
                   help='print the report as JSON: {"cases": [{"name", "eigenvalues": [[re, im], ...], ...}]}')
    p.add_argument("--no-figures", action="store_true", help="compute and print only")
    p.set_defaults(func=cmd_dirac)
    del main_cli
