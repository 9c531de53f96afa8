"""Figures a GAN run writes: sample grids, progress strips and animations, training curves,
discriminator diagnostics, the spot-the-fake quiz, and the per-step history CSV.

Images are floats in [0, 1] (values outside are clipped) laid out as (N, H, W),
(N, C, H, W) with C in {1, 3}, or flat (N, H*W) together with ``shape=(H, W)``;
NumPy or CuPy arrays. Every file goes through ``atomic_write``: a failed save leaves
any old file untouched and no partial one. Plots use matplotlib's ``Figure`` with the
Agg canvas, never pyplot, so saving a figure changes no global backend and opens no window.
"""
import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from .backend import asnumpy
from .fileio import atomic_write

FIGSIZE = (8, 4.5)          # inches; at DPI this is an 800 x 450 PNG
DPI = 100
FONT_SIZE = 14              # pixels, for captions and row labels on image files
TEXT_MARGIN = 4             # pixels around captions and labels
PANEL_GAP = 12              # pixels between side-by-side panels
FAKE_COLOR = (255, 0, 0)    # answer key: border of a generated image
REAL_COLOR = (0, 170, 0)    # answer key: border of a real image
QUIZ_PADDING = 6            # spot-the-fake grids: pixels between tiles (unscaled) ...
QUIZ_BORDER = 2             # ... of which each tile's coloured answer border takes this many
CURVE_LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x), real", "d_fake": "D(G(z)), fake"}
CURVE_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


# --- validating arguments ------------------------------------------------------------------

def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _unit_interval(value, name):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _series(values, name):
    """A 1-D float64 NumPy array from a list, NumPy or CuPy array."""
    x = np.asarray(asnumpy(values))
    if x.ndim != 1 or x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {x.shape} dtype {x.dtype}")
    return x.astype(np.float64)


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
    columns = {key: _series(history[key], f"{name}[{key!r}]") for key in used}
    lengths = {key: len(column) for key, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{name} columns have different lengths: {lengths}")
    if lengths[keys[0]] == 0:
        raise ValueError(f"{name} is empty: no steps to plot")
    return columns


# --- images as arrays ----------------------------------------------------------------------

def _image_batch(images, shape=None, name="images"):
    """(N, H, W) grey or (N, H, W, 3) RGB float32 in [0, 1] from any accepted layout."""
    x = np.asarray(asnumpy(images))
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected numbers, got dtype {x.dtype}")
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 3):
            raise ValueError(f"{name}: shape must be (H, W) or (C, H, W), got {shape}")
        if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(shape):
            raise ValueError(f"{name}: cannot view images of shape {x.shape[1:]} as shape={shape}")
        x = x.reshape((len(x),) + shape)
    elif x.ndim == 2:
        raise ValueError(f"{name}: 2-D input {x.shape} is read as flat (N, H*W) images; pass shape=(H, W)")
    if x.ndim == 4:
        channels = x.shape[1]
        if channels not in (1, 3):
            raise ValueError(f"{name}: {channels} channels in shape {x.shape}; expected 1 (grey) or 3 (RGB) "
                             "as (N, C, H, W)")
        x = x[:, 0] if channels == 1 else x.transpose(0, 2, 3, 1)
    elif x.ndim != 3:
        raise ValueError(f"{name}: expected (N, H, W), (N, C, H, W) or flat (N, H*W) with shape=, "
                         f"got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: no images (shape {x.shape})")
    bad = x.size - np.count_nonzero(np.isfinite(x))
    if bad:
        raise ValueError(f"{name}: {bad} pixel values are NaN or infinite")
    return np.clip(x.astype(np.float32, copy=False), 0.0, 1.0)


def _batch_list(batches, shape, name):
    """A list of image batches (one per row, epoch or panel) with equal image size."""
    if isinstance(batches, (str, bytes, Mapping)) or not hasattr(batches, "__iter__"):
        raise TypeError(f"{name} must be a list of image batches, got {type(batches).__name__}")
    result = [_image_batch(batch, shape, f"{name}[{i}]") for i, batch in enumerate(batches)]
    if not result:
        raise ValueError(f"{name} is empty: expected at least one image batch")
    for i, batch in enumerate(result):
        if batch.shape[1:3] != result[0].shape[1:3]:
            raise ValueError(f"{name}[{i}] has {batch.shape[1]}x{batch.shape[2]} images but {name}[0] has "
                             f"{result[0].shape[1]}x{result[0].shape[2]}")
    return result


def _to_uint8(x):
    return (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _grey_to_rgb(tiles):
    """(N, H, W) grey -> (N, H, W, 3); RGB (N, H, W, 3) is returned as it is."""
    return tiles if tiles.ndim == 4 else np.repeat(tiles[..., None], 3, axis=-1)


def _tile_rows(rows, padding, pad_value):
    """uint8 canvas with one row of tiles per batch, `padding` pixels around and between tiles.

    Missing tiles at the end of a short row show pad_value; if any batch is RGB, all are.
    """
    height, width = rows[0].shape[1:3]
    rgb = any(row.ndim == 4 for row in rows)
    ncol = max(len(row) for row in rows)
    canvas_shape = (len(rows) * (height + padding) + padding, ncol * (width + padding) + padding)
    canvas = np.full(canvas_shape + ((3,) if rgb else ()), _to_uint8(pad_value), dtype=np.uint8)
    for i, row in enumerate(rows):
        tiles = _to_uint8(_grey_to_rgb(row) if rgb else row)
        top = padding + i * (height + padding)
        for j, tile in enumerate(tiles):
            left = padding + j * (width + padding)
            canvas[top:top + height, left:left + width] = tile
    return canvas


def image_grid(images, nrow=None, padding=2, pad_value=1.0, shape=None):
    """Tile images row-major into one uint8 picture, (H, W) for grey input or (H, W, 3) for RGB.

    nrow is the number of images per row (default ceil(sqrt(N))). With h x w images the grid is
    rows * (h + padding) + padding high and min(nrow, N) * (w + padding) + padding wide;
    padding and the unused end of the last row have the value pad_value (in [0, 1]).
    """
    return _grid(_image_batch(images, shape), nrow, padding, pad_value)


def _grid(batch, nrow=None, padding=2, pad_value=1.0):
    """image_grid for a batch already in the (N, H, W) or (N, H, W, 3) form of _image_batch."""
    nrow = math.ceil(math.sqrt(len(batch))) if nrow is None else _positive_int(nrow, "nrow")
    padding = _non_negative_int(padding, "padding")
    pad_value = _unit_interval(pad_value, "pad_value")
    return _tile_rows([batch[i:i + nrow] for i in range(0, len(batch), nrow)], padding, pad_value)


def _upscale(pixels, scale):
    """Nearest-neighbour enlargement by an integer factor (keeps 28x28 digits crisp)."""
    scale = _positive_int(scale, "scale")
    return pixels.repeat(scale, axis=0).repeat(scale, axis=1)


# --- text and composition with Pillow ------------------------------------------------------

def _font():
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: only the small fixed bitmap font
        return ImageFont.load_default()


def _text_box(text, font):
    """(left, top, right, bottom) of text drawn at the origin."""
    return ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)


def _ink(image):
    return 0 if image.mode == "L" else (0, 0, 0)


def _paper(mode):
    return 255 if mode == "L" else (255, 255, 255)


def _with_caption(image, text, where="top"):
    """The image with a white strip above or below holding the centred caption."""
    font = _font()
    left, top, right, bottom = _text_box(text, font)
    strip = bottom + 2 * TEXT_MARGIN
    width = max(image.width, right - left + 2 * TEXT_MARGIN)
    canvas = Image.new(image.mode, (width, image.height + strip), _paper(image.mode))
    image_top = strip if where == "top" else 0
    canvas.paste(image, ((width - image.width) // 2, image_top))
    text_top = TEXT_MARGIN if where == "top" else image.height + TEXT_MARGIN
    ImageDraw.Draw(canvas).text(((width - (right - left)) // 2 - left, text_top), text,
                                fill=_ink(canvas), font=font)
    return canvas


def _with_row_labels(image, labels, centres):
    """The image with a white column on the left holding labels[i] centred at height centres[i]."""
    font = _font()
    boxes = [_text_box(label, font) for label in labels]
    column = max(right for _, _, right, _ in boxes) + 2 * TEXT_MARGIN
    canvas = Image.new(image.mode, (image.width + column, image.height), _paper(image.mode))
    canvas.paste(image, (column, 0))
    draw = ImageDraw.Draw(canvas)
    for label, (_, top, _, bottom), centre in zip(labels, boxes, centres):
        draw.text((TEXT_MARGIN, round(centre - (top + bottom) / 2)), label, fill=_ink(canvas), font=font)
    return canvas


def _row_centres(image_height, n_rows, padding, scale):
    return [(padding + i * (image_height + padding) + image_height / 2) * scale for i in range(n_rows)]


def _labels(labels, count, name):
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != count:
        raise ValueError(f"{name} has {len(labels)} entries but there are {count} rows")
    return labels


def _epoch_labels(epochs, count):
    epochs = list(range(1, count + 1)) if epochs is None else list(epochs)
    if len(epochs) != count:
        raise ValueError(f"epochs has {len(epochs)} entries but there are {count} sample batches")
    return [f"epoch {epoch}" for epoch in epochs]


def _target(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save_png(path, image):
    path = _target(path)
    with atomic_write(path) as f:
        image.save(f, format="PNG")
    return path


# --- image files ---------------------------------------------------------------------------

def save_grid(path, images, nrow=None, scale=2, **grid_kw):
    """Write image_grid(images, nrow, **grid_kw) as a PNG enlarged `scale` times; returns the path."""
    pixels = _upscale(image_grid(images, nrow=nrow, **grid_kw), scale)
    return _save_png(path, Image.fromarray(pixels))


def save_progress(path, rows, scale=2, shape=None, epochs=None, padding=2):
    """One PNG with a row of samples per epoch, "epoch k" written left of each row.

    rows[i] is a batch of images (e.g. 15 samples of a fixed noise batch after epoch i + 1);
    epochs gives the numbers to write (default 1, 2, ...).
    """
    batches = _batch_list(rows, shape, "rows")
    labels = _epoch_labels(epochs, len(batches))
    padding = _non_negative_int(padding, "padding")
    pixels = _upscale(_tile_rows(batches, padding, 1.0), scale)
    centres = _row_centres(batches[0].shape[1], len(batches), padding, scale)
    return _save_png(path, _with_row_labels(Image.fromarray(pixels), labels, centres))


def save_progress_gif(path, rows, nrow=None, duration_ms=400, shape=None, scale=3, epochs=None):
    """An animated GIF, one frame per epoch: a grid of that epoch's samples captioned "epoch k".

    Frames are shown duration_ms each and the animation loops forever.
    """
    batches = _batch_list(rows, shape, "rows")
    labels = _epoch_labels(epochs, len(batches))
    duration_ms = _positive_int(duration_ms, "duration_ms")
    frames = [_with_caption(Image.fromarray(_upscale(_grid(batch, nrow), scale)), label)
              for batch, label in zip(batches, labels)]
    mode = "RGB" if any(frame.mode == "RGB" for frame in frames) else "L"
    size = (max(f.width for f in frames), max(f.height for f in frames))
    frames = [_on_canvas(frame.convert(mode), size) for frame in frames]
    path = _target(path)
    with atomic_write(path) as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration_ms, loop=0)
    return path


def _on_canvas(image, size):
    """The image at the top left of a white canvas of the given size."""
    if image.size == size:
        return image
    canvas = Image.new(image.mode, size, _paper(image.mode))
    canvas.paste(image, (0, 0))
    return canvas


def save_image_strips(path, strips, scale=2, labels=None, shape=None, padding=2):
    """One PNG with each batch in `strips` as a row (e.g. latent interpolations), optional row labels."""
    batches = _batch_list(strips, shape, "strips")
    labels = _labels(labels, len(batches), "labels")
    padding = _non_negative_int(padding, "padding")
    image = Image.fromarray(_upscale(_tile_rows(batches, padding, 1.0), scale))
    if labels is not None:
        image = _with_row_labels(image, labels, _row_centres(batches[0].shape[1], len(batches), padding, scale))
    return _save_png(path, image)


def save_side_by_side(path, grids, nrow=None, scale=2, shape=None):
    """One PNG with a titled sample grid per entry of grids ({title: images}), left to right."""
    if not isinstance(grids, Mapping) or not grids:
        raise ValueError("grids must be a non-empty dict {title: images}")
    panels = [_with_caption(Image.fromarray(_upscale(image_grid(images, nrow=nrow, shape=shape), scale)),
                            str(title)) for title, images in grids.items()]
    mode = "RGB" if any(panel.mode == "RGB" for panel in panels) else "L"
    width = sum(panel.width for panel in panels) + PANEL_GAP * (len(panels) - 1)
    canvas = Image.new(mode, (width, max(panel.height for panel in panels)), _paper(mode))
    left = 0
    for panel in panels:
        canvas.paste(panel.convert(mode), (left, 0))
        left += panel.width + PANEL_GAP
    return _save_png(path, canvas)


# --- spot the fake -------------------------------------------------------------------------

def spot_the_fake(real, fake, n=36, fake_fraction=1 / 3, rng=None):
    """Mix round(n * fake_fraction) random fakes among random reals at random positions.

    Returns (images, is_fake): n images with the layout of the inputs and a boolean mask
    that is True exactly where images holds a generated one. rng: a np.random.Generator
    (or a seed; None draws fresh entropy).
    """
    real, fake = np.asarray(asnumpy(real)), np.asarray(asnumpy(fake))
    if real.ndim < 2 or fake.ndim < 2 or real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake must be image batches of the same layout, got shapes "
                         f"{real.shape} and {fake.shape}")
    n = _positive_int(n, "n")
    n_fake = round(n * _unit_interval(fake_fraction, "fake_fraction"))
    for pool, name, needed in ((fake, "fake", n_fake), (real, "real", n - n_fake)):
        if len(pool) < needed:
            raise ValueError(f"{name} has {len(pool)} images but the quiz needs {needed} "
                             f"(n={n}, fake_fraction={fake_fraction})")
    rng = np.random.default_rng(rng)
    is_fake = np.zeros(n, dtype=bool)
    is_fake[rng.choice(n, size=n_fake, replace=False)] = True
    images = np.empty((n,) + real.shape[1:], dtype=np.result_type(real.dtype, fake.dtype))
    images[is_fake] = fake[rng.choice(len(fake), size=n_fake, replace=False)]
    images[~is_fake] = real[rng.choice(len(real), size=n - n_fake, replace=False)]
    return images, is_fake


def _answer_borders(pixels, is_fake, tile_shape, ncol):
    """Paint a QUIZ_BORDER-wide frame around each tile of a QUIZ_PADDING grid, red or green."""
    pixels = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels.copy()
    height, width = tile_shape
    b = QUIZ_BORDER
    for i, fake in enumerate(is_fake):
        top = QUIZ_PADDING + (i // ncol) * (height + QUIZ_PADDING)
        left = QUIZ_PADDING + (i % ncol) * (width + QUIZ_PADDING)
        color = FAKE_COLOR if fake else REAL_COLOR
        pixels[top - b:top, left - b:left + width + b] = color
        pixels[top + height:top + height + b, left - b:left + width + b] = color
        pixels[top:top + height, left - b:left] = color
        pixels[top:top + height, left + width:left + width + b] = color
    return pixels


def save_spot_the_fake(path, answer_path, images, is_fake, nrow=6, scale=3, shape=None):
    """Write the quiz grid and its answer key (fakes framed red, reals framed green).

    Both pictures have the same tile layout, so a tile in the quiz is at the same place in
    the key. Returns (path, answer_path).
    """
    x = _image_batch(images, shape)
    is_fake = np.asarray(asnumpy(is_fake))
    if is_fake.dtype != bool or is_fake.shape != (len(x),):
        raise ValueError(f"is_fake must be a boolean mask of shape ({len(x)},), got {is_fake.dtype} "
                         f"of shape {is_fake.shape}")
    nrow = _positive_int(nrow, "nrow")
    pixels = _grid(x, nrow, padding=QUIZ_PADDING)
    answers = _answer_borders(pixels, is_fake, x.shape[1:3], min(nrow, len(x)))
    n_fake = int(is_fake.sum())
    quiz = _with_caption(Image.fromarray(_upscale(pixels, scale)),
                         f"{n_fake} of {len(x)} images are generated - which ones?", where="bottom")
    key = _with_caption(Image.fromarray(_upscale(answers, scale)),
                        "red = fake (generated), green = real", where="bottom")
    return _save_png(path, quiz), _save_png(answer_path, key)


# --- plots ---------------------------------------------------------------------------------

def moving_average(x, window):
    """Mean of the last `window` values at each step (fewer at the start); same length as x.

    Non-finite values (a diverged step) are left out of the mean; a window holding none
    but non-finite values gives NaN. Finite input gives finite output.
    """
    x = _series(x, "x")
    window = _positive_int(window, "window")
    finite = np.isfinite(x)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, x, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    end = np.arange(1, len(x) + 1)
    start = np.maximum(end - window, 0)
    count = counts[end] - counts[start]
    return np.where(count > 0, (sums[end] - sums[start]) / np.maximum(count, 1), np.nan)


def _new_axes():
    # fixed margins (room for the title, the epoch axis on top and the labels): matplotlib's
    # constrained layout would cost about a second per figure, every epoch
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.09, right=0.97, bottom=0.11, top=0.83)
    return fig, fig.add_subplot()


def _save_figure(path, fig):
    path = _target(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path


def _plot_curves(ax, columns, keys, smooth):
    """Each key's raw per-step curve faintly, its moving average on top; x = step 1, 2, ..."""
    smooth = _non_negative_int(smooth, "smooth")
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
    series = {"real images": _series(acc_real, "acc_real"), "generated images": _series(acc_fake, "acc_fake")}
    fig, ax = _new_axes()
    for (name, acc), color in zip(series.items(), CURVE_COLORS):
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


def save_grad_norm_plot(path, steps, norms, title="Gradient norm per layer", log=True):
    """Gradient norm of each named layer (norms[name], one value per entry of steps) over training.

    On the log scale a norm of exactly 0 cannot be drawn and leaves a gap in its curve.
    """
    steps = _series(steps, "steps")
    if not isinstance(norms, Mapping) or not norms:
        raise ValueError("norms must be a non-empty dict {layer name: norms per step}")
    fig, ax = _new_axes()
    for i, (name, values) in enumerate(norms.items()):
        values = _series(values, f"norms[{name!r}]")
        if len(values) != len(steps):
            raise ValueError(f"norms[{name!r}] has {len(values)} values but steps has {len(steps)}")
        if np.any(values < 0):
            raise ValueError(f"norms[{name!r}] has negative values; a norm is >= 0")
        ax.plot(steps, values, color=CURVE_COLORS[i % len(CURVE_COLORS)], linewidth=1.2, label=str(name))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step (mini-batch)")
    ax.set_ylabel("gradient norm" + (" (log scale)" if log else ""))
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if log else "major")
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
    ncols = min(_positive_int(ncols, "ncols"), len(panels))
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
            values = _series(values, f"{panel}[{label!r}]")
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


# --- history CSV ---------------------------------------------------------------------------

def write_history_csv(path, history):
    """One column per key, one row per step. Integer columns are written as integers, float
    columns with repr (shortest exact form), so read_history_csv gets back the same numbers."""
    if not isinstance(history, Mapping) or not history:
        raise ValueError("history must be a non-empty dict of per-step lists")
    columns = {}
    for key, values in history.items():
        if not isinstance(key, str):
            raise ValueError(f"history keys must be strings, got {key!r}")
        x = np.asarray(asnumpy(values))
        if x.ndim != 1 or x.dtype.kind not in "biuf":
            raise ValueError(f"history[{key!r}] must be a 1-D sequence of numbers, got shape {x.shape} "
                             f"dtype {x.dtype}")
        columns[key] = [str(int(v)) for v in x] if x.dtype.kind in "biu" else [repr(float(v)) for v in x]
    lengths = {key: len(column) for key, column in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history columns have different lengths: {lengths}")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(zip(*columns.values()))
    path = _target(path)
    with atomic_write(path) as f:
        f.write(text.getvalue().encode("utf-8"))
    return path


def read_history_csv(path):
    """{column name: np.ndarray}: int64 for columns of integers, float64 otherwise."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file, expected a header row of column names")
    header, body = rows[0], rows[1:]
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: repeated column names in header {header}")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields but the header has {len(header)}")
    return {name: _parse_column(path, name, [row[i] for row in body]) for i, name in enumerate(header)}


def _parse_column(path, name, fields):
    try:
        return np.array([int(field) for field in fields], dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.array([float(field) for field in fields], dtype=np.float64)
    except ValueError:
        bad = next(field for field in fields if not _is_float(field))
        raise ValueError(f"{path}: column {name!r} holds {bad!r}, which is not a number") from None


def _is_float(text):
    try:
        float(text)
        return True
    except ValueError:
        return False
