"""``scratchgan lab dirac|mixture|converge|collapse``: the GAN dynamics lab from the command line (docs/dynamics.md)."""
import json
import sys
from pathlib import Path

import numpy as np


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


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _positive(name, value):
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


def cmd_mixture(args):
    from ..fileio import check_writable_dir, write_json
    from .figures import save_snapshots, save_spectrum
    from .mixtures import ToyRun, get_mixture
    from .spectrum import SPECTRUM_RUNS, spectrum_report, track_spectrum
    for name in ("epochs", "steps_per_epoch", "k", "every"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    out = Path(args.out)
    check_writable_dir(out)
    records, runs = {}, {}
    for label, options in SPECTRUM_RUNS.items():
        _log(f"-- {label}: {options}")
        runs[label] = ToyRun(get_mixture("ring"), {**options, "seed": args.seed}, steps_per_epoch=args.steps_per_epoch,
                             dtype=np.float64)
        records[label] = track_spectrum(runs[label], args.epochs, k=args.k, every=args.every, log=_log)
    paths = [save_spectrum(out / "spectrum.png", records)]
    for i, (label, run) in enumerate(runs.items()):
        picks = sorted({0, *np.linspace(1, args.epochs, 4).round().astype(int)})
        paths.append(save_snapshots(out / f"spectrum_run{i + 1}.png", run, picks, label=label))
    report = {"runs": {label: {"options": SPECTRUM_RUNS[label], **r} for label, r in spectrum_report(records).items()},
              "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "k": args.k, "every": args.every,
              "seed": args.seed,
              "method": "v from GANTrainer's steps in float64 on 512 fixed real and noise samples; J u by "
                        "central differences of v; eigenvalues by ARPACK (scipy.sparse.linalg.eigs)"}
    write_json(out / "spectrum.json", report)
    paths.append(out / "spectrum.json")
    for label, r in report["runs"].items():
        print(f"{label}: largest real part {r['largest_real_part'][0]:+.4f} -> {r['largest_real_part'][-1]:+.4f}, "
              f"||v|| {r['v_norm'][0]:.3g} -> {r['v_norm'][-1]:.3g}, drift {r['drift'][-1]:.3g}, "
              f"modes {r['modes'][-1]}/8")
    print(f"written: {', '.join(map(str, paths))}")
    return 0


def cmd_converge(args):
    from ..fileio import check_writable_dir, write_json
    from .figures import save_convergence
    from .mixtures import ring
    from .spectrum import FULL_BATCH_RUNS, full_batch_report, track_full_batch
    for name in ("steps", "every", "k", "samples"):
        _positive(f"--{name}", getattr(args, name))
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    out = Path(args.out)
    check_writable_dir(out)
    records = {}
    for label, options in FULL_BATCH_RUNS.items():
        _log(f"-- {label}: {options}")
        records[label] = track_full_batch(options, args.steps, args.every, lr=args.lr, samples=args.samples, k=args.k,
                                          seed=args.seed, log=_log)
    paths = [save_convergence(out / "convergence.png", records, ring())]
    report = {"runs": {label: {"options": FULL_BATCH_RUNS[label], **r} for label, r in full_batch_report(records).items()},
              "steps": args.steps, "every": args.every, "lr": args.lr, "samples": args.samples, "k": args.k,
              "seed": args.seed,
              "method": f"alternating gradient steps (D, then G) on one fixed batch of {args.samples} real points and "
                        f"noise vectors; v from GANTrainer's steps in float64; J u by central differences of v; "
                        f"eigenvalues by ARPACK (scipy.sparse.linalg.eigs; 'LR' keeps what converged in "
                        f"its iteration limit; more effort at the last step)"}
    write_json(out / "convergence.json", report)
    paths.append(out / "convergence.json")
    for label, r in report["runs"].items():
        print(f"{label}: ||v|| {r['v_norm'][0]:.3g} -> {r['v_norm'][-1]:.3g}, largest real part "
              f"{r['largest_real_part'][-1]:+.2e}, moved {r['drift'][-1]:.3g} in the last {args.every} steps, "
              f"{100 * r['high_quality'][-1]:.0f}% high quality")
    print(f"written: {', '.join(map(str, paths))}")
    return 0


def cmd_collapse(args):
    from ..fileio import check_writable_dir
    from .collapse import FIXES, animate, compare, format_summary
    for name in ("epochs", "steps_per_epoch"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    unknown = [fix for fix in args.fixes or () if fix not in FIXES]
    if unknown:
        raise ValueError(f"unknown fix(es) {unknown}; choose from {', '.join(FIXES)}")
    out = Path(args.out)
    check_writable_dir(out)
    paths = []
    for mixture in args.mixture:
        _, written = animate(out, mixture, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                             label="no fix", log=_log)
        paths += written
    if not args.no_fixes:
        report = compare(out, args.mixture, args.fixes, tuple(range(args.seeds)), args.epochs,
                         args.steps_per_epoch, log=_log)
        print(format_summary(report["summary"]))
        paths += [out / f"fixes_{m}.png" for m in args.mixture] + [out / "fixes_final.png", out / "fixes.json"]
    print(f"written: {', '.join(map(str, paths))}")
    return 0


def add_commands(sub):
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

    p = parts.add_parser("mixture", help="a real network: the leading eigenvalues of an MLP GAN's game Jacobian "
                                         "on the 8-Gaussian ring, tracked over training",
                         description="Train two MLP GANs on the ring of 8 Gaussians in float64 (without and with "
                                     "R1) and after every --every epochs estimate the leading eigenvalues of the full "
                                     "game Jacobian with Jacobian-vector products (central differences of the "
                                     "hand-written gradients, float64) and ARPACK. Writes spectrum.png, "
                                     "spectrum.json and a row of samples per run.")
    p.add_argument("--out", default="runs/lab/mixture", help="folder for the figures (default runs/lab/mixture)")
    p.add_argument("--epochs", type=int, default=30, help="epochs to train (default 30)")
    p.add_argument("--steps-per-epoch", type=int, default=250, help="training steps per epoch (default 250)")
    p.add_argument("--k", type=int, default=4, help="eigenvalues of each kind per measurement (default 4)")
    p.add_argument("--every", type=int, default=2, help="measure after every N-th epoch (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of both runs (default 0)")
    p.set_defaults(func=cmd_mixture)

    p = parts.add_parser("converge", help="a run that converges: gradient play on one fixed batch, with and without "
                                          "R1, and the spectrum of exactly that game",
                         description="Train the mixture part's MLP GAN by plain alternating gradient steps on one "
                                     "fixed batch of the ring (real points and noise fixed), with R1 (gamma 1) and "
                                     "without; every --every steps measure ||v||, the leading eigenvalues of the "
                                     "game Jacobian (ARPACK on Jacobian-vector products) and the samples. Writes "
                                     "convergence.png and convergence.json.")
    p.add_argument("--out", default="runs/lab/converge", help="folder for the figure (default runs/lab/converge)")
    p.add_argument("--steps", type=int, default=40000, help="gradient steps (default 40000)")
    p.add_argument("--every", type=int, default=4000, help="measure after every N-th step (default 4000)")
    p.add_argument("--lr", type=float, default=0.2, help="step size of both players (default 0.2)")
    p.add_argument("--samples", type=int, default=64, help="real points and noise vectors in the game (default 64)")
    p.add_argument("--k", type=int, default=4, help="eigenvalues of each kind per measurement (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of both runs (default 0)")
    p.set_defaults(func=cmd_converge)

    p = parts.add_parser("collapse", help="mode collapse on the ring and the 5x5 grid: animation, modes covered, "
                                          "and each of Salimans et al.'s fixes",
                         description="Train a toy GAN that collapses on each mixture and animate its samples "
                                     "(<mixture>_collapse.gif, with modes covered and high-quality samples per "
                                     "epoch), then train it again with each fix (minibatch discrimination, feature "
                                     "matching, historical averaging, one-sided label smoothing, virtual batch "
                                     "normalization) over several seeds: fixes_<mixture>.png, fixes_final.png, "
                                     "fixes.json.")
    p.add_argument("--out", default="runs/lab/collapse", help="folder for the figures (default runs/lab/collapse)")
    p.add_argument("--mixture", nargs="+", choices=("ring", "grid"), default=["ring", "grid"])
    p.add_argument("--epochs", type=int, default=60, help="epochs per run (default 60)")
    p.add_argument("--steps-per-epoch", type=int, default=200, help="training steps per epoch (default 200)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per fix (default 3)")
    p.add_argument("--fixes", nargs="+", help="which to compare (default all): none minibatch feature-matching historical-averaging "
                        "label-smoothing vbn")
    p.add_argument("--no-fixes", action="store_true", help="only the animation of the run without fixes")
    p.set_defaults(func=cmd_collapse)
