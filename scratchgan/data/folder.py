"""Folders of image files (PNG, JPEG, BMP, GIF, WebP) as uint8 arrays, e.g. for DCGAN-64.

Every image goes through the same steps, in the spirit of torchvision's
``Resize(s) + CenterCrop(s)`` on a PIL image:

1. decode with Pillow, turned upright by its EXIF orientation tag (camera photos);
   animated GIF/WebP files give their first frame;
2. convert to RGB (channels=3) or greyscale L (channels=1): transparent pixels are laid
   over white, 16-bit greyscale is scaled to 0..255 (Pillow's own conversion would clip it);
3. resize so the shorter side equals `image_size` (Lanczos), the longer side to
   ``int(image_size * long / short)``;
4. crop the centred `image_size` square, its offsets ``round((length - image_size) / 2)``.

The CLI names a dataset with `parse_dataset_spec`: "mnist", "fashion-mnist" or "folder:PATH".
"""
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from .datasets import DATASETS
from .idx import DataError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")
BACKGROUND = (255, 255, 255)  # what transparent pixels become
FOLDER_PREFIX = "folder:"
_MODES = {1: "L", 3: "RGB"}
_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit greyscale PNGs open as these
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_LANCZOS = getattr(Image, "Resampling", Image).LANCZOS  # Image.Resampling is Pillow >= 9.1


def load_image_folder(path, image_size=64, channels=3, limit=None, quiet=False):
    """Every image under `path` (searched recursively) as uint8 (N, channels, image_size, image_size).

    Files are taken in sorted order of their path below `path`, compared folder by folder, so
    the result is the same on every machine; names starting with "." (hidden files and
    folders, macOS "._x.jpg" droppings) are skipped, as are files of other extensions.
    limit: keep only the first `limit` files of that order.
    quiet=True, or the environment variable SCRATCHGAN_QUIET, hides the progress bar
    (it is also hidden when stderr is not a terminal).
    Raises DataError naming the file if one cannot be decoded, and naming the folder if it
    does not exist or holds no images.
    """
    _check_arguments(image_size, channels, limit)
    files = find_image_files(path)[:limit]
    images = np.empty((len(files), channels, image_size, image_size), np.uint8)
    hide = True if quiet or os.environ.get("SCRATCHGAN_QUIET") else None  # None: hide unless a TTY
    for i, file in enumerate(tqdm(files, desc=f"loading {Path(path).name or path}", unit="img",
                                  disable=hide)):
        images[i] = load_image(file, image_size, channels)
    return images


def find_image_files(path):
    """The image files below folder `path`, in deterministic order; raises DataError if none."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: give the folder holding the images")
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        files += [Path(folder, name) for name in names
                  if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)]
    if not files:
        raise DataError(f"no images in {root} or its subfolders: looked for files ending in "
                        f"{', '.join(IMAGE_EXTENSIONS)} (any case)")
    return sorted(files, key=lambda file: file.relative_to(root).parts)


def load_image(path, image_size=64, channels=3):
    """One image file as uint8 (channels, image_size, image_size), prepared as the module says."""
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:
        raise DataError(f"cannot read image {path}: cannot identify image file "
                        f"(not an image, or a format Pillow cannot decode)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot read image {path}: {err}") from None
    image = center_crop(resize_shorter_side(to_mode(image, _MODES[channels]), image_size), image_size)
    pixels = np.asarray(image, np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def to_mode(image, mode):
    """A PIL image in `mode` ("RGB" or "L"), alpha laid over BACKGROUND, 16-bit scaled to 8-bit."""
    if image.mode in _HIGH_DEPTH_MODES:
        image = _high_depth_to_grey(image)
    if image.mode in _ALPHA_MODES or image.info.get("transparency") is not None:
        background = Image.new("RGBA", image.size, BACKGROUND + (255,))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert(mode)


def resize_shorter_side(image, size):
    """Scale `image` so its shorter side is `size`, keeping the aspect ratio as torchvision does."""
    width, height = image.size
    if width <= height:
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    return image if new_size == image.size else image.resize(new_size, _LANCZOS)


def center_crop(image, size):
    """The centred size x size square of an image at least that large in both directions."""
    width, height = image.size
    left, top = int(round((width - size) / 2)), int(round((height - size) / 2))
    return image.crop((left, top, left + size, top + size))


def parse_dataset_spec(spec):
    """The CLI's dataset name -> (kind, value): ("idx", "mnist") or ("folder", "PATH").

    Valid forms: a name of DATASETS ("mnist", "fashion-mnist", any case) or "folder:PATH".
    """
    kind, value = split_spec(spec, DATASETS, _valid_specs())
    if kind is None:
        raise ValueError(f"unknown dataset {spec!r}; {_valid_specs()}")
    return ("idx", value) if kind == "name" else (kind, value)


def split_spec(spec, names, valid):
    """A dataset spec -> ("folder", PATH) for "folder:PATH", ("name", name) for a key of ``names`` (any case),
    or (None, name) for anything else; ValueError (ending in ``valid``) for a non-string or an empty folder."""
    if not isinstance(spec, str):
        raise ValueError(f"dataset must be a string, got {type(spec).__name__}; {valid}")
    if spec[:len(FOLDER_PREFIX)].lower() == FOLDER_PREFIX:
        folder = spec[len(FOLDER_PREFIX):]
        if not folder.strip():
            raise ValueError(f"dataset {spec!r} names no folder; {valid}")
        return "folder", folder
    name = spec.strip().lower()
    return ("name" if name in names else None), name


def _valid_specs():
    return f"valid forms: {', '.join(DATASETS)}, or {FOLDER_PREFIX}PATH (a folder of images)"


def _high_depth_to_grey(image):
    """16-bit greyscale (values 0..65535) -> 8-bit "L", rounding v * 255 / 65535."""
    values = np.asarray(image).astype(np.int64).clip(0, 65535)
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))  # 2-D uint8: mode "L"


def _check_arguments(image_size, channels, limit):
    if not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    if channels not in _MODES:
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be None or a positive integer, got {limit!r}")
