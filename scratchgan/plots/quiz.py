"""The tutorial's "spot the fake" quiz: reals and fakes mixed in one grid, and its answer key."""
import numpy as np
from PIL import Image

from ..backend import asnumpy
from .common import positive_int, unit_interval
from .images import grid_of_batch, image_batch, save_png, upscale, with_caption

__all__ = ["spot_the_fake", "save_spot_the_fake"]

FAKE_COLOR = (255, 0, 0)    # answer key: border of a generated image
REAL_COLOR = (0, 170, 0)    # answer key: border of a real image
QUIZ_PADDING = 6            # quiz grids: pixels between tiles (unscaled) ...
QUIZ_BORDER = 2             # ... of which each tile's coloured answer border takes this many


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
    n = positive_int(n, "n")
    n_fake = round(n * unit_interval(fake_fraction, "fake_fraction"))
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
    x = image_batch(images, shape)
    is_fake = np.asarray(asnumpy(is_fake))
    if is_fake.dtype != bool or is_fake.shape != (len(x),):
        raise ValueError(f"is_fake must be a boolean mask of shape ({len(x)},), got {is_fake.dtype} "
                         f"of shape {is_fake.shape}")
    nrow = positive_int(nrow, "nrow")
    pixels = grid_of_batch(x, nrow, padding=QUIZ_PADDING)
    answers = _answer_borders(pixels, is_fake, x.shape[1:3], min(nrow, len(x)))
    n_fake = int(is_fake.sum())
    quiz = with_caption(Image.fromarray(upscale(pixels, scale)),
                         f"{n_fake} of {len(x)} images are generated - which ones?", where="bottom")
    key = with_caption(Image.fromarray(upscale(answers, scale)),
                        "red = fake (generated), green = real", where="bottom")
    return save_png(path, quiz), save_png(answer_path, key)

