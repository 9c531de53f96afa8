"""Training curves: losses, D's outputs, D's accuracy, and panels of curves to compare runs.

Plots use matplotlib's ``Figure`` with the Agg canvas, never pyplot, so saving a figure
changes no global backend and opens no window. Every figure is FIGSIZE at DPI
(an 800 x 450 PNG) except ``save_curve_panels``, which grows with its panels.
"""
from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..fileio import atomic_write
from .common import non_negative_int, positive_int, series, target

__all__ = ["moving_average", "save_loss_plot", "save_d_outputs_plot", "save_accuracy_plot", "save_curve_panels"]

FIGSIZE = (8, 4.5)          # inches; at DPI this is an 800 x 450 PNG
DPI = 100
CURVE_LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x), real", "d_fake": "D(G(z)), fake"}
CURVE_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def moving_average(x, window):
    """Mean of the last `window` values at each step (fewer at the start); same length as x.

    Non-finite values (a diverged step) are left out of the mean; a window holding none
    but non-finite values gives NaN. Finite input gives finite output.
    """
    x = series(x, "x")
    window = positive_int(window, "window")
    finite = np.isfinite(x)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, x, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    end = np.arange(1, len(x) + 1)
    start = np.maximum(end - window, 0)
    count = counts[end] - counts[start]
    return np.where(count > 0, (sums[end] - sums[start]) / np.maximum(count, 1), np.nan)



def _history_columns(history, keys, name="history"):
    """The named columns of a history dict as equal-length float64 arrays, plus 'epoch' if present."""
    if not isinstance(history, Mapping):
        raise TypeError(f"{name} must be a dict of per-step lists, got {type(history).__name__}")
    if not keys:
        raise ValueError("keys is empty: name at least one history column to plot")
    for key in keys:
        if key not in history:
            raise ValueError(f"{name} has no {key!r} column (it has {sorted(history)})")
    used = list(keys) + (["epoch"] if "epoch" in history else [])
    columns = {key: series(history[key], f"{name}[{key!r}]") for key in used}
    lengths = {key: len(column) for key, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{name} columns have different lengths: {lengths}")
    if lengths[keys[0]] == 0:
        raise ValueError(f"{name} is empty: no steps to plot")
    return columns


def _new_axes():
    # fixed margins (room for the title, the epoch axis on top and the labels): matplotlib's
    # constrained layout would cost about a second per figure, every epoch
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.09, right=0.97, bottom=0.11, top=0.83)
    return fig, fig.add_subplot()


def _save_figure(path, fig):
    path = target(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path


def _plot_curves(ax, columns, keys, smooth):
    """Each key's raw per-step curve faintly, its moving average on top; x = step 1, 2, ..."""
    smooth = non_negative_int(smooth, "smooth")
    steps = np.arange(1, len(columns[keys[0]]) + 1)
    for key, color in zip(keys, CURVE_COLORS):
        label = CURVE_LABELS.get(key, key)
        if smooth > 1:
            ax.plot(steps, columns[key], color=color, alpha=0.25, linewidth=0.8)
            ax.plot(steps, moving_average(columns[key], smooth), color=color, linewidth=1.8,
                    label=f"{label} (mean of last {smooth} steps)")
        else:
            ax.plot(steps, columns[key], color=color, linewidth=1.2, label=label)
    ax.set_xlabel("step (mini-batch)")
    ax.grid(alpha=0.3)
    if "epoch" in columns:
        _add_epoch_axis(ax, steps, columns["epoch"])


def _add_epoch_axis(ax, steps, epochs):
    """A second x axis on top in epochs, assuming a constant number of steps per epoch."""
    if not np.isfinite(epochs).all() or np.any(np.diff(epochs) < 0):
        raise ValueError("history['epoch'] must be finite and non-decreasing")
    if len(steps) < 2 or epochs[-1] == epochs[0]:
        return
    per_step = (epochs[-1] - epochs[0]) / (steps[-1] - steps[0])
    axis = ax.secondary_xaxis("top", functions=(lambda s: epochs[0] + (s - steps[0]) * per_step,
                                                lambda e: steps[0] + (e - epochs[0]) / per_step))
    axis.set_xlabel("epoch")


def save_loss_plot(path, history, smooth=50, keys=("d_loss", "g_loss"), title="Discriminator and generator loss"):
    """Per-step losses (history[key] for key in keys), raw and as a `smooth`-step moving average.

    With history["epoch"] (fractional epoch of each step) a top axis shows epochs.
    """
    keys = tuple(keys)
    columns = _history_columns(history, keys)
    fig, ax = _new_axes()
    _plot_curves(ax, columns, keys, smooth)
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(loc="best")
    return _save_figure(path, fig)


def save_d_outputs_plot(path, history, smooth=50, title="Discriminator outputs"):
    """D(x) (history["d_real"]) and D(G(z)) (history["d_fake"]) per step, with the 0.5 line."""
    keys = ("d_real", "d_fake")
    columns = _history_columns(history, keys)
    for key in keys:
        finite = columns[key][np.isfinite(columns[key])]
        if np.any((finite < 0) | (finite > 1)):
            raise ValueError(f"history[{key!r}] must hold probabilities in [0, 1], got values from "
                             f"{finite.min():.4g} to {finite.max():.4g}")
    fig, ax = _new_axes()
    _plot_curves(ax, columns, keys, smooth)
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="0.5: D cannot tell")
    ax.set_ylim(0, 1)
    ax.set_ylabel("P(real) given by D")
    ax.set_title(title)
    ax.legend(loc="best")
    return _save_figure(path, fig)


def save_accuracy_plot(path, acc_real, acc_fake, title="Discriminator accuracy per evaluation batch"):
    """Accuracy of D on each evaluation mini-batch of real and of generated images, means in the legend."""
    accuracies = {"real images": series(acc_real, "acc_real"), "generated images": series(acc_fake, "acc_fake")}
    fig, ax = _new_axes()
    for (name, acc), color in zip(accuracies.items(), CURVE_COLORS):
        if len(acc) == 0:
            raise ValueError(f"no accuracies given for {name}")
        if np.any((acc < 0) | (acc > 1)) or not np.isfinite(acc).all():
            raise ValueError(f"accuracies for {name} must be in [0, 1], got values from {acc.min():.4g} "
                             f"to {acc.max():.4g}")
        mean = acc.mean()
        ax.plot(np.arange(1, len(acc) + 1), acc, color=color, marker=".", markersize=4, linewidth=1,
                label=f"{name} (mean {mean:.3f})")
        ax.axhline(mean, color=color, linestyle="--", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("evaluation mini-batch")
    ax.set_ylabel("fraction classified correctly")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save_figure(path, fig)


def save_curve_panels(path, panels, smooth=0, log_panels=(), title=None, ncols=2, x=None,
                      xlabel="step (mini-batch)"):
    """Several line plots in one figure: panels = {panel title: {curve label: values per step}}.

    Used to compare runs (e.g. the losses of the latent-size study, or D(x), D(G(z)) and G's
    gradient norms of the domination demo). ``smooth`` > 1 draws moving averages;
    panels named in ``log_panels`` get a log y axis. ``x`` (default 1, 2, ...) is shared by all curves.
    """
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError("panels must be a non-empty dict {panel title: {label: values}}")
    ncols = min(positive_int(ncols, "ncols"), len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(5.5 * ncols, 3.6 * nrows), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.86 if title else 0.92, wspace=0.25,
                        hspace=0.55)
    for i, (panel, curves) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if not isinstance(curves, Mapping) or not curves:
            raise ValueError(f"panel {panel!r} needs a non-empty dict {{label: values}}")
        for j, (label, values) in enumerate(curves.items()):
            values = series(values, f"{panel}[{label!r}]")
            shown = moving_average(values, smooth) if smooth > 1 else values
            xs = np.arange(1, len(values) + 1) if x is None else np.asarray(x)[:len(values)]
            ax.plot(xs, shown, color=CURVE_COLORS[j % len(CURVE_COLORS)], linewidth=1.3, label=str(label),
                    marker="o" if len(values) < 40 else None, markersize=3)
        if panel in log_panels:
            ax.set_yscale("log")
        ax.set_title(str(panel))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    return _save_figure(path, fig)




# -- Wasserstein GANs (issue 17): does the loss track sample quality? -----------------------------------

def tracked_loss(history):
    """(key, label) of the loss a run's quality should be read from: the critic's Wasserstein
    estimate where the history has one, else D's loss."""
    if "wasserstein" in history:
        return "wasserstein", "critic's Wasserstein estimate, mean D(x) - mean D(G(z))"
    return "d_loss", "D loss"


def loss_per_epoch(history, key, steps_per_epoch):
    """The mean of history[key] over each complete epoch of ``steps_per_epoch`` steps (NaN skipped)."""
    values = series(history[key], f"history[{key!r}]")
    epochs = len(values) // positive_int(steps_per_epoch, "steps_per_epoch")
    rows = values[:epochs * steps_per_epoch].reshape(epochs, steps_per_epoch)
    with np.errstate(invalid="ignore"):
        return np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in rows])


def save_loss_vs_frechet(path, history, epoch_metrics, title=None):
    """D's loss (or a critic's Wasserstein estimate) per step and per epoch, beside the per-epoch Fréchet
    distance on a second axis: the WGAN paper's claim is that its estimate falls as samples improve,
    where the standard GAN's D loss says nothing about them. ``history`` as ``history_for_plots``
    gives it (with "epoch"); ``epoch_metrics``: rows with "epoch" and "frechet_distance"."""
    key, label = tracked_loss(history)
    columns = _history_columns(history, (key, "epoch"))
    rows = [m for m in epoch_metrics if np.isfinite(m.get("frechet_distance", np.nan))]
    if not rows:
        raise ValueError("epoch_metrics has no Fréchet distance to plot")
    fig, ax = _new_axes()
    ax.plot(columns["epoch"], columns[key], color=CURVE_COLORS[0], alpha=0.2, linewidth=0.6)
    ax.plot(columns["epoch"], moving_average(columns[key], 50), color=CURVE_COLORS[0], linewidth=1.8,
            label=f"{label} (mean of last 50 steps)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(label.split(",")[0], color=CURVE_COLORS[0])
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot([m["epoch"] for m in rows], [m["frechet_distance"] for m in rows], color=CURVE_COLORS[3],
               marker="o", markersize=3, linewidth=1.5, label="Fréchet distance (per epoch; lower is better)")
    right.set_ylabel("Fréchet distance", color=CURVE_COLORS[3])
    lines = ax.get_legend_handles_labels(), right.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], loc="upper right", fontsize="small")
    ax.set_title(title or f"Does the {label.split(',')[0]} track sample quality?")
    return _save_figure(path, fig)


__all__ += ["save_loss_vs_frechet", "tracked_loss", "loss_per_epoch"]
