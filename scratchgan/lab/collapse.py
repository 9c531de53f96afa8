"""Mode collapse on the ring and the grid, and what each of Salimans et al.'s fixes does about it.

``animate`` trains one toy GAN and writes its samples per epoch as a GIF with the modes covered
and the share of high-quality samples in each frame; ``compare`` trains the same GAN with each
fix switched on (the fix options of the original game's recipes: gan/fixes.py), over several seeds, and reports the
modes covered per epoch and at the end.
"""
from pathlib import Path

import numpy as np

from ..fileio import write_json
from .figures import save_coverage_curves, save_final_grid, save_mixture_gif, save_snapshots
from .mixtures import ToyRun, get_mixture

#: the GANs that collapse (toy MLPs with 128 tanh units, Adam beta1 0.5, non-saturating loss, batches of 128):
#: on the ring a one-dimensional latent, which hops between modes and then drops some (a line cannot reach 8
#: separate modes without crossing the gaps); on the grid 8 latent dimensions and lr 2e-3, which settle on
#: part of the 25 modes (16 and 6 for seeds 0 and 1 after 30 epochs: docs/dynamics.md)
COLLAPSE_OPTIONS = {"ring": {"hidden": 128, "batch_size": 128, "z_dim": 1, "lr": 1e-3},
                    "grid": {"hidden": 128, "batch_size": 128, "z_dim": 8, "lr": 2e-3}}
#: each fix alone on top of COLLAPSE_OPTIONS
FIXES = {
    "none": {},
    "minibatch": {"minibatch_kernels": 8, "minibatch_kernel_dim": 3},      # minibatch discrimination
    "feature-matching": {"feature_matching": 1.0},
    "historical-averaging": {"historical_averaging": 1e-5},
    "label-smoothing": {"label_smoothing": 0.1},                            # one-sided: real targets 0.9
    "vbn": {"vbn": 64},                                                     # virtual batch normalization in G
}
EPOCHS, STEPS_PER_EPOCH = 60, 200


def animate(out, mixture_name, options=None, epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, label="", log=None):
    """Train one toy GAN; write <mixture>_collapse.gif and <mixture>_snapshots.png into ``out``."""
    options = {**COLLAPSE_OPTIONS[mixture_name], **(options or {})}
    run = ToyRun(get_mixture(mixture_name), options, steps_per_epoch=steps_per_epoch)
    run.train(epochs, epoch_callback=_logger(log, f"{mixture_name} {label}".strip()))
    out = Path(out)
    gif = save_mixture_gif(out / f"{mixture_name}_collapse.gif", run, label=label)
    picks = sorted({0, *np.linspace(1, epochs, 5).round().astype(int)})
    png = save_snapshots(out / f"{mixture_name}_snapshots.png", run, picks, label=f"{mixture_name}: {label}")
    return run, [gif, png]


def compare(out, mixtures=("ring", "grid"), fixes=None, seeds=(0, 1, 2), epochs=EPOCHS,
            steps_per_epoch=STEPS_PER_EPOCH, log=None):
    """Every fix on every mixture and seed: coverage curves per mixture, the final samples of the first
    seed, and fixes.json (per epoch, and a summary table of the last epoch)."""
    fixes = fixes or list(FIXES)
    out = Path(out)
    results, finals = {}, {}
    for mixture_name in mixtures:
        results[mixture_name] = {}
        for fix in fixes:
            runs = []
            for seed in seeds:
                options = {**COLLAPSE_OPTIONS[mixture_name], **FIXES[fix], "seed": seed}
                run = ToyRun(get_mixture(mixture_name), options, steps_per_epoch=steps_per_epoch)
                run.train(epochs, epoch_callback=_logger(log, f"{mixture_name} / {fix} / seed {seed}"))
                runs.append(run.scores)
                if seed == seeds[0]:
                    finals.setdefault(mixture_name, {})[fix] = (run.snapshots[-1], run.mixture, run.scores[-1])
            results[mixture_name][fix] = runs
        modes = len(get_mixture(mixture_name).centers)
        save_coverage_curves(out / f"fixes_{mixture_name}.png", results[mixture_name], modes,
                             f"{mixture_name}: each fix alone, {len(seeds)} seeds (line: mean, band: range)")
    save_final_grid(out / "fixes_final.png", finals)
    report = {"options": {m: COLLAPSE_OPTIONS[m] for m in mixtures}, "fixes": {fix: FIXES[fix] for fix in fixes}, "seeds": list(seeds),
              "epochs": epochs, "steps_per_epoch": steps_per_epoch, "summary": summary(results),
              "per_epoch": {m: {f: [[{k: s[k] for k in ("modes_covered", "high_quality")} for s in run]
                                    for run in runs] for f, runs in r.items()} for m, r in results.items()}}
    write_json(out / "fixes.json", report)
    return report


def summary(results):
    """{mixture: {fix: mean and range of the last epoch's modes covered and high-quality share}}."""
    table = {}
    for mixture_name, by_fix in results.items():
        table[mixture_name] = {}
        for fix, runs in by_fix.items():
            modes = [run[-1]["modes_covered"] for run in runs]
            quality = [run[-1]["high_quality"] for run in runs]
            table[mixture_name][fix] = {"modes_covered": modes, "modes_mean": float(np.mean(modes)),
                                        "high_quality_mean": float(np.mean(quality)),
                                        "modes_min_over_last_5": int(min(min(s["modes_covered"] for s in run[-5:])
                                                                         for run in runs))}
    return table


def format_summary(table):
    lines = []
    for mixture_name, by_fix in table.items():
        lines.append(f"{mixture_name}:  fix | modes covered at the end (per seed) | mean | high quality")
        for fix, row in by_fix.items():
            lines.append(f"  {fix:26s} {row['modes_covered']}  {row['modes_mean']:.1f}  "
                         f"{100 * row['high_quality_mean']:.0f}%")
    return "\n".join(lines)


def _logger(log, label):
    if log is None:
        return None

    def epoch_done(run):
        score = run.scores[-1]
        log(f"{label}: epoch {len(run.scores) - 1}: {score['modes_covered']}/{score['modes']} modes, "
            f"{100 * score['high_quality']:.0f}% high quality")
    return epoch_done
