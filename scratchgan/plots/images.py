"""Image files: sample grids, per-epoch progress rows and GIFs, labelled strips, side-by-side panels.

Images are floats in [0, 1] (values outside are clipped) laid out as (N, H, W),
(N, C, H, W) with C in {1, 3}, or flat (N, H*W) together with ``shape=(H, W)``;
NumPy or CuPy arrays. Captions and row labels are drawn with Pillow. The helpers without
a leading underscore that are not in ``__all__`` (``image_batch``, ``grid_of_batch``,
``upscale``, ``with_caption``, ``save_png``) are shared with ``quiz``.
"""
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..backend import asnumpy
from ..fileio import atomic_write
from .common import non_negative_int, positive_int, target, unit_interval

__all__ = ["image_grid", "save_grid", "save_progress", "save_progress_gif", "save_image_strips", "save_side_by_side"]

FONT_SIZE = 14              # pixels, for captions and row labels on image files
TEXT_MARGIN = 4             # pixels around captions and labels
PANEL_GAP = 12              # pixels between side-by-side panels


# --- images as arrays ----------------------------------------------------------------------

def image_batch(images, shape=None, name="images"):
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
    result = [image_batch(batch, shape, f"{name}[{i}]") for i, batch in enumerate(batches)]
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
    return grid_of_batch(image_batch(images, shape), nrow, padding, pad_value)


def grid_of_batch(batch, nrow=None, padding=2, pad_value=1.0):
    """image_grid for a batch already in the (N, H, W) or (N, H, W, 3) form of image_batch."""
    nrow = math.ceil(math.sqrt(len(batch))) if nrow is None else positive_int(nrow, "nrow")
    padding = non_negative_int(padding, "padding")
    pad_value = unit_interval(pad_value, "pad_value")
    return _tile_rows([batch[i:i + nrow] for i in range(0, len(batch), nrow)], padding, pad_value)


def upscale(pixels, scale):
    """Nearest-neighbour enlargement by an integer factor (keeps 28x28 digits crisp)."""
    scale = positive_int(scale, "scale")
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


def with_caption(image, text, where="top"):
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


def save_png(path, image):
    path = target(path)
    with atomic_write(path) as f:
        image.save(f, format="PNG")
    return path


# --- image files ---------------------------------------------------------------------------

def save_grid(path, images, nrow=None, scale=2, **grid_kw):
    """Write image_grid(images, nrow, **grid_kw) as a PNG enlarged `scale` times; returns the path."""
    pixels = upscale(image_grid(images, nrow=nrow, **grid_kw), scale)
    return save_png(path, Image.fromarray(pixels))


def save_progress(path, rows, scale=2, shape=None, epochs=None, padding=2):
    """One PNG with a row of samples per epoch, "epoch k" written left of each row.

    rows[i] is a batch of images (e.g. 15 samples of a fixed noise batch after epoch i + 1);
    epochs gives the numbers to write (default 1, 2, ...).
    """
    batches = _batch_list(rows, shape, "rows")
    labels = _epoch_labels(epochs, len(batches))
    padding = non_negative_int(padding, "padding")
    pixels = upscale(_tile_rows(batches, padding, 1.0), scale)
    centres = _row_centres(batches[0].shape[1], len(batches), padding, scale)
    return save_png(path, _with_row_labels(Image.fromarray(pixels), labels, centres))


def save_progress_gif(path, rows, nrow=None, duration_ms=400, shape=None, scale=3, epochs=None, captions=None):
    """An animated GIF, one frame per epoch: a grid of that epoch's samples captioned "epoch k"
    (or ``captions``, one text per frame, e.g. ProGAN's stage).

    Frames are shown duration_ms each and the animation loops forever.
    """
    batches = _batch_list(rows, shape, "rows")
    labels = _epoch_labels(epochs, len(batches)) if captions is None else _labels(captions, len(batches), "captions")
    duration_ms = positive_int(duration_ms, "duration_ms")
    frames = [with_caption(Image.fromarray(upscale(grid_of_batch(batch, nrow), scale)), label)
              for batch, label in zip(batches, labels)]
    mode = "RGB" if any(frame.mode == "RGB" for frame in frames) else "L"
    size = (max(f.width for f in frames), max(f.height for f in frames))
    frames = [_on_canvas(frame.convert(mode), size) for frame in frames]
    path = target(path)
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
    padding = non_negative_int(padding, "padding")
    image = Image.fromarray(upscale(_tile_rows(batches, padding, 1.0), scale))
    if labels is not None:
        image = _with_row_labels(image, labels, _row_centres(batches[0].shape[1], len(batches), padding, scale))
    return save_png(path, image)


def save_side_by_side(path, grids, nrow=None, scale=2, shape=None):
    """One PNG with a titled sample grid per entry of grids ({title: images}), left to right."""
    if not isinstance(grids, Mapping) or not grids:
        raise ValueError("grids must be a non-empty dict {title: images}")
    panels = [with_caption(Image.fromarray(upscale(image_grid(images, nrow=nrow, shape=shape), scale)),
                            str(title)) for title, images in grids.items()]
    mode = "RGB" if any(panel.mode == "RGB" for panel in panels) else "L"
    width = sum(panel.width for panel in panels) + PANEL_GAP * (len(panels) - 1)
    canvas = Image.new(mode, (width, max(panel.height for panel in panels)), _paper(mode))
    left = 0
    for panel in panels:
        canvas.paste(panel.convert(mode), (left, 0))
        left += panel.width + PANEL_GAP
    return save_png(path, canvas)

