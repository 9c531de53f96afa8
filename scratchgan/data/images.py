"""Training images as uint8 (N, C, H, W), from a dataset name or an image folder."""
import numpy as np

from pathlib import Path

from .datasets import load_dataset
from .folder import load_image_folder, parse_dataset_spec
from .identity import fingerprint


def load_images(spec="mnist", split="train", data_dir=None, image_size=None, channels=None,
                download=True, quiet=False, with_identity=False, with_labels=False):
    """uint8 images (N, C, H, W) for ``spec``: "mnist", "fashion-mnist" or "folder:PATH".

    IDX datasets are 28x28 grey; ``image_size`` other than 28 resizes them (bilinear, via
    Pillow), e.g. to 32 or 64 for DCGAN. Folders are resized and centre-cropped to
    ``image_size`` (default 64) with ``channels`` (default 3).
    with_identity=True returns (images, dict): the files' fingerprint and verdict for IDX
    datasets (see identity.py), the folder and the images' fingerprint for folders.
    with_labels=True puts the class labels (int64 (N,); None for a folder) after the images:
    (images, labels) or (images, labels, identity).
    """
    kind, value = parse_dataset_spec(spec)
    if kind == "folder":
        images = load_image_folder(value, image_size=image_size or 64, channels=channels or 3, quiet=quiet)
        identity = {"dataset": spec, "source": str(Path(value).expanduser()), "match": "image folder",
                    **fingerprint(images)}
        return _result(images, None, identity, with_identity, with_labels)
    if channels not in (None, 1):
        raise ValueError(f"{value} images are greyscale: channels must be 1, got {channels}")
    images, labels, identity = load_dataset(value, split, data_dir=data_dir, download=download, quiet=quiet,
                                            with_identity=True)
    if image_size not in (None, images.shape[1]):
        images = resize(images, image_size)
    return _result(images[:, None], labels.astype(np.int64), identity, with_identity, with_labels)


def _result(images, labels, identity, with_identity, with_labels):
    """images alone, or (images, [labels], [identity]) as asked."""
    parts = [images] + ([labels] if with_labels else []) + ([identity] if with_identity else [])
    return tuple(parts) if len(parts) > 1 else images


def resize(images, size):
    """Bilinear resize of uint8 (N, H, W) images to (N, size, size)."""
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
