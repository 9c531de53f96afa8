"""The lab's figures: vector fields with trajectories, eigenvalues against the unit circle, spectra over
training, coverage curves, sample scatters and their animation.

matplotlib's ``Figure`` with the Agg canvas (never pyplot), every file written atomically,
like the rest of scratchgan.plots.
"""
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from ..fileio import atomic_write
from ..plots.common import target

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray")
LR_MARKERS = ("o", "s", "^", "D", "v")
CASE_MARKERS = ("o", "o", "s", "D", "^", "v")


def _save(fig, path, dpi=100):
    FigureCanvasAgg(fig)
    path = target(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    return path


def _unit_circle(ax):
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(t), np.sin(t), color="black", lw=0.8)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.8", lw=0.5)
    ax.axvline(0, color="0.8", lw=0.5)


# -- Dirac-GAN ------------------------------------------------------------------------------------------
def save_dirac_fields(path, fields, extent=2.0):
    """One panel per case: the stream plot of v(theta, psi) and the iterates of both schemes.

    ``fields``: list of dicts with "name", "grid" (theta values), "v" ((2, n, n) v_theta, v_psi on the
    grid, psi along rows), "trajectories" {label: (T, 2) array}.
    """
    fig = Figure(figsize=(4 * len(fields), 4.2))
    for i, field in enumerate(fields):
        ax = fig.add_subplot(1, len(fields), i + 1)
        grid = field["grid"]
        speed = np.hypot(*field["v"])
        ax.streamplot(grid, grid, field["v"][0], field["v"][1], color=speed, cmap="Greys", density=0.7,
                      linewidth=0.7, arrowsize=0.8)
        for j, (label, points) in enumerate(field["trajectories"].items()):
            ax.plot(points[:, 0], points[:, 1], color=COLORS[j], lw=1.0, label=label)
            ax.plot(points[0, 0], points[0, 1], "o", color=COLORS[j], ms=4)
        ax.plot(0, 0, "*", color="black", ms=10)
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_title(field["name"], fontsize=10)
        ax.set_xlabel("theta (generator)")
        if i == 0:
            ax.set_ylabel("psi (discriminator)")
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Dirac-GAN: gradient vector field v and the iterates from (1, 1); * = equilibrium (0, 0)",
                 fontsize=11)
    return _save(fig, path, dpi=70)


def save_dirac_eigenvalues(path, report):
    """Three panels: the continuous-time eigenvalues of J, then those of the simultaneous and the
    alternating update maps at each learning rate, against the unit circle."""
    cases = report["cases"]
    lrs = sorted({m["lr"] for c in cases for m in c["maps"]})
    fig = Figure(figsize=(15, 5))
    ax = fig.add_subplot(1, 3, 1)
    for i, case in enumerate(cases):   # hollow markers of decreasing size: equal eigenvalues stay visible
        values = np.array(case["eigenvalues"])
        ax.plot(values[:, 0], values[:, 1], CASE_MARKERS[i % len(CASE_MARKERS)], color=COLORS[i], ms=12 - 2 * i,
                mfc="none", mew=1.5, label=case["name"])
    ax.axhline(0, color="0.8", lw=0.5)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-1.3, 0.4)
    ax.set_ylim(-1.2, 1.2)
    ax.set_aspect("equal")
    ax.set_title("eigenvalues of J at the equilibrium\n(converges if Re < 0)", fontsize=10)
    ax.set_xlabel("Re")
    ax.set_ylabel("Im")
    ax.legend(fontsize=7, loc="lower left")
    for k, scheme in enumerate(("simultaneous", "alternating")):
        ax = fig.add_subplot(1, 3, k + 2)
        _unit_circle(ax)
        for i, case in enumerate(cases):
            for m in case["maps"]:
                if m["scheme"] != scheme:
                    continue
                values = np.array(m["eigenvalues"])
                marker = LR_MARKERS[lrs.index(m["lr"]) % len(LR_MARKERS)]
                ax.plot(values[:, 0], values[:, 1], marker, color=COLORS[i], ms=5, mfc="none")
        for j, lr in enumerate(lrs):   # legend entries for the markers, in black
            ax.plot([], [], LR_MARKERS[j % len(LR_MARKERS)], color="black", mfc="none", label=f"lr {lr:g}")
        ax.set_xlim(-0.2, 1.35)
        ax.set_ylim(-1.15, 1.15)
        ax.set_title(f"{scheme} steps: eigenvalues of the update map\n(converges inside the unit circle)",
                     fontsize=10)
        ax.set_xlabel("Re")
        ax.legend(fontsize=7, loc="lower left", title="marker", title_fontsize=7)
    fig.suptitle("Dirac-GAN spectra (colours as in the left panel)", fontsize=11)
    return _save(fig, path)


# -- a real network's spectrum ------------------------------------------------------------------------------
def save_spectrum(path, runs):
    """``runs``: {label: track_spectrum's record}. Panels: the leading eigenvalues at the end (largest real
    part: filled, largest imaginary part: hollow), the largest real part over training, the real part of
    the fastest rotation over training, and how far the samples moved between measurements."""
    fig = Figure(figsize=(17, 4.2))
    axes = [fig.add_subplot(1, 4, i + 1) for i in range(4)]
    for i, (label, run) in enumerate(runs.items()):
        color, epochs = COLORS[i], run["epochs"]
        axes[0].plot(run["LR"][-1].real, run["LR"][-1].imag, "o", color=color, label=f"{label}: largest Re")
        axes[0].plot(run["LI"][-1].real, run["LI"][-1].imag, "o", mfc="none", color=color,
                     label=f"{label}: largest Im")
        axes[1].plot(epochs, [e.real.max() for e in run["LR"]], "-o", ms=3, color=color, label=label)
        rotation = [e[np.argmax(e.imag)] for e in run["LI"]]
        axes[2].plot(epochs, [z.real for z in rotation], "-o", ms=3, color=color, label=f"{label}: Re")
        axes[2].plot(epochs, [z.imag for z in rotation], "--", color=color, lw=0.8, label=f"{label}: Im")
        axes[3].semilogy(epochs[1:], run["drift"][1:], "-o", ms=3, color=color, label=label)
    axes[0].axvline(0, color="black", lw=0.8)
    axes[0].axhline(0, color="0.8", lw=0.5)
    axes[0].set_title("leading eigenvalues of J at the end", fontsize=10)
    axes[0].set_xlabel("Re")
    axes[0].set_ylabel("Im")
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set_title("largest real part of J's eigenvalues\n(> 0: a direction that grows)", fontsize=10)
    axes[2].axhline(0, color="black", lw=0.8)
    axes[2].set_title("the most rotating eigenvalue:\nRe (solid), Im (dashed)", fontsize=10)
    axes[3].set_title("samples' mean move\nbetween measurements", fontsize=10)
    for ax in axes[1:]:
        ax.set_xlabel("epoch")
    for ax in axes:
        ax.legend(fontsize=7)
    return _save(fig, path)


def save_convergence(path, runs, mixture):
    """``runs``: {label: track_full_batch's record}. Panels: ||v|| over the steps, the largest real part of J's
    eigenvalues and the real part of its most rotating one, the leading eigenvalues at the end, and each run's
    fixed-game samples at the end over the game's real points and the mixture's modes."""
    fig = Figure(figsize=(4.2 * (3 + len(runs)), 4.2))
    axes = [fig.add_subplot(1, 3 + len(runs), i + 1) for i in range(3 + len(runs))]
    for i, (label, run) in enumerate(runs.items()):
        color, steps = COLORS[i], run["steps"]
        axes[0].semilogy(steps, run["v_norm"], "-o", ms=3, color=color, label=label)
        largest = [np.max(e.real) if len(e) else np.nan for e in run["LR"]]
        axes[1].plot(steps, largest, "-o", ms=3, color=color, label=f"{label}: largest Re")
        rotation = [e[np.argmax(e.imag)].real if len(e) else np.nan for e in run["LI"]]
        axes[1].plot(steps, rotation, "--s", ms=3, mfc="none", color=color, label=f"{label}: Re of the most rotating")
        axes[2].plot(run["LR"][-1].real, run["LR"][-1].imag, "o", color=color, label=f"{label}: largest Re")
        axes[2].plot(run["LI"][-1].real, run["LI"][-1].imag, "o", mfc="none", color=color, label=f"{label}: largest Im")
        ax = axes[3 + i]
        ax.scatter(run["real"][:, 0], run["real"][:, 1], s=30, facecolors="none", edgecolors="0.6", label="the real points")
        ax.scatter(run["points"][-1][:, 0], run["points"][-1][:, 1], s=12, color=color, label="G's points")
        ax.legend(fontsize=7, loc="lower right")
        ax.scatter(mixture.centers[:, 0], mixture.centers[:, 1], s=40, marker="x", color="tab:red", linewidths=1)
        extent = max(mixture.extent, 1.1 * float(np.abs(run["points"][-1]).max()))   # escaped samples stay in view
        ax.set_xlim(-extent, extent)
        ax.set_ylim(-extent, extent)
        ax.set_aspect("equal")
        ax.set_title(f"{label}\nits {len(run['points'][-1])} samples at step {steps[-1]}: "
                     f"{100 * run['high_quality'][-1]:.0f}% high quality", fontsize=9)
    axes[0].set_title("||v||: the game's gradient field", fontsize=10)
    axes[1].axhline(0, color="black", lw=0.8)
    axes[1].set_title("real parts of J's eigenvalues\n(> 0: grows, < 0: damped)", fontsize=10)
    for ax in axes[:2]:
        ax.set_xlabel("gradient step")
    axes[2].axvline(0, color="black", lw=0.8)
    axes[2].axhline(0, color="0.8", lw=0.5)
    axes[2].set_title("leading eigenvalues of J at the end", fontsize=10)
    axes[2].set_xlabel("Re")
    axes[2].set_ylabel("Im")
    for ax in axes[:3]:
        ax.legend(fontsize=7)
    return _save(fig, path)


# -- mixtures ---------------------------------------------------------------------------------------------
def _scatter(ax, points, mixture, title):
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.35, color="tab:blue", linewidths=0)
    ax.scatter(mixture.centers[:, 0], mixture.centers[:, 1], s=30, marker="x", color="tab:red", linewidths=1)
    ax.set_xlim(-mixture.extent, mixture.extent)
    ax.set_ylim(-mixture.extent, mixture.extent)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def _caption(score):
    return f"{score['modes_covered']}/{score['modes']} modes, {100 * score['high_quality']:.0f}% high quality"


def save_mixture_gif(path, run, label="", duration_ms=300, size=3.2):
    """An animated GIF of a ToyRun's samples, one frame per epoch (frame 0: before training)."""
    frames = []
    for epoch, (points, score) in enumerate(zip(run.snapshots, run.scores)):
        fig = Figure(figsize=(size, size))
        ax = fig.add_subplot(1, 1, 1)
        _scatter(ax, points, run.mixture, f"{label} epoch {epoch}\n{_caption(score)}")
        FigureCanvasAgg(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        buffer.seek(0)
        frames.append(Image.open(buffer).convert("P", palette=Image.ADAPTIVE, colors=64))
    path = target(path)
    with atomic_write(path) as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return path


def save_snapshots(path, run, epochs, label=""):
    """One row of scatters of a ToyRun at the given epochs."""
    fig = Figure(figsize=(2.6 * len(epochs), 3.1))
    for i, epoch in enumerate(epochs):
        ax = fig.add_subplot(1, len(epochs), i + 1)
        _scatter(ax, run.snapshots[epoch], run.mixture, f"epoch {epoch}\n{_caption(run.scores[epoch])}")
    if label:
        fig.suptitle(label, fontsize=10)
    return _save(fig, path)


def save_coverage_curves(path, curves, modes, title):
    """``curves``: {label: list of coverage dicts per epoch (or a list of such lists, one per seed)}.
    Two panels: modes covered and the high-quality fraction per epoch (mean over seeds, with range)."""
    fig = Figure(figsize=(11, 4))
    axes = [fig.add_subplot(1, 2, i + 1) for i in range(2)]
    for i, (label, runs) in enumerate(curves.items()):
        runs = runs if runs and isinstance(runs[0], list) else [runs]
        for ax, key in zip(axes, ("modes_covered", "high_quality")):
            values = np.array([[score[key] for score in run] for run in runs], dtype=np.float64)
            epochs = np.arange(values.shape[1])
            ax.plot(epochs, values.mean(axis=0), color=COLORS[i % len(COLORS)], label=label)
            if len(runs) > 1:
                ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=COLORS[i % len(COLORS)],
                                alpha=0.15)
    axes[0].set_ylim(-0.3, modes + 0.5)
    axes[0].set_title(f"modes covered (of {modes})", fontsize=10)
    axes[1].set_title("high-quality samples (within 3 sigma of a mode)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def save_final_grid(path, rows):
    """``rows``: {row label: {column label: (points, mixture, score)}}: the final samples of each run."""
    labels = list(rows)
    columns = list(next(iter(rows.values())))
    fig = Figure(figsize=(2.4 * len(columns), 2.7 * len(labels)))
    for i, row in enumerate(labels):
        for j, column in enumerate(columns):
            points, mixture, score = rows[row][column]
            ax = fig.add_subplot(len(labels), len(columns), i * len(columns) + j + 1)
            _scatter(ax, points, mixture, f"{row}: {column}\n{_caption(score)}")
    return _save(fig, path)
