"""Emoji in two styles, for image-to-image translation: Google's Noto Emoji and Twitter's Twemoji.

The images come from the npm packages ``emoji-datasource-google`` and ``emoji-datasource-twitter``
(version 16.0.0): the 64 x 64 PNGs of every emoji both packages draw, less the Flags and
Component categories and without skin-tone variants -- 1,636 emoji, each file named by its code
points (``1f600.png``) and present in both styles, so every image has its true counterpart.
Licences: Noto Emoji images by Google (Apache 2.0); Twemoji images by Twitter, Inc. and other
contributors (CC BY 4.0: attribution required where they are shown).

Built-in dataset names: ``emoji-google`` and ``emoji-twitter``. Their folders (``google/``,
``twitter/``, beside ``emoji.csv``) are looked up in ``data_dir``/emoji, ``data_dir``,
$SCRATCHGAN_DATA/emoji, $SCRATCHGAN_DATA and the user cache (``cache_dir("emoji")``); if none
holds them, the package's tarball is downloaded from the npm registry, its SHA-512 (npm's
"integrity") checked, and only the selected 64 x 64 images extracted into the cache.
Any other folder of images is named ``folder:PATH``.

Images are read as RGB with transparent pixels laid over white (``folder.load_image``) and resized
to ``image_size`` (Lanczos). ``split_of(name)`` assigns every file name to "train" (80%) or
"test" (20%) by a hash of the name: the same on every machine, for both styles, and for a folder.
"""
import base64
import csv
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import http.client
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import datasets
from .folder import FOLDER_PREFIX, find_image_files, load_image, split_spec
from .idx import DataError

VERSION = "16.0.0"
REGISTRY = "https://registry.npmjs.org"
#: style -> (npm package, SHA-512 of its tarball as npm's "integrity" prints it)
PACKAGES = {
    "google": ("emoji-datasource-google",
               "ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A=="),
    "twitter": ("emoji-datasource-twitter",
                "7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ=="),
}
DATASET_NAMES = {f"emoji-{style}": style for style in PACKAGES}
EXCLUDED_CATEGORIES = ("Flags", "Component")
INDEX_FILE = "emoji.csv"
TEST_FRACTION = 0.2
SPLITS = ("train", "test", "all")


def tarball_url(style):
    package = PACKAGES[style][0]
    return f"{REGISTRY}/{package}/-/{package}-{VERSION}.tgz"


# -- the split ------------------------------------------------------------------------------
def split_of(name):
    """"test" for a fixed 20% of file names, "train" for the rest: the first 8 bytes of the name's
    SHA-256, as an integer, modulo 100 below 20. Depends on the name alone (its stem, so
    ``1f600.png`` and ``1f600.jpg`` agree), never on the order or number of files."""
    digest = hashlib.sha256(Path(name).stem.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < round(100 * TEST_FRACTION) else "train"


def select_split(names, split):
    """Indices of ``names`` in ``split`` ("train", "test" or "all")."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return [i for i, name in enumerate(names) if split == "all" or split_of(name) == split]


# -- specs: emoji-google, emoji-twitter, folder:PATH -----------------------------------------
def parse_image_spec(spec):
    """("emoji", style) for ``emoji-google``/``emoji-twitter`` (any case), ("folder", PATH) for ``folder:PATH``."""
    kind, value = split_spec(spec, DATASET_NAMES, _valid_specs())
    if kind is None:
        raise ValueError(f"unknown image dataset {spec!r}; {_valid_specs()}")
    return ("emoji", DATASET_NAMES[value]) if kind == "name" else (kind, value)


def _valid_specs():
    return f"valid forms: {', '.join(DATASET_NAMES)}, or {FOLDER_PREFIX}PATH (a folder of images)"


def load_domain(spec, split="train", data_dir=None, image_size=32, download=True, quiet=False):
    """One domain of an image-to-image data set: (uint8 images (N, 3, s, s), file names, identity dict).

    ``spec``: ``emoji-google``, ``emoji-twitter`` or ``folder:PATH``; ``split``: "train", "test"
    or "all" (``split_of``). Names are the files' paths below the folder, sorted; identity records
    the source folder, the split and the SHA-256 of the names and of the pixels.
    """
    kind, value = parse_image_spec(spec)
    if kind == "emoji":
        folder = find_emoji_dir(value, data_dir) or (download_emoji(value, quiet=quiet) if download else None)
        if folder is None:
            raise DataError(f"{spec} not found (download=False).\n" + _how_to_provide(value))
    else:
        folder = Path(value).expanduser()
    files = find_image_files(folder)
    names = [file.relative_to(folder).as_posix() for file in files]
    keep = select_split(names, split)
    if not keep:
        raise DataError(f"{folder}: none of its {len(names)} images falls in the {split!r} split")
    images = np.empty((len(keep), 3, image_size, image_size), np.uint8)
    hide = True if quiet or os.environ.get("SCRATCHGAN_QUIET") else None
    for row, i in enumerate(tqdm(keep, desc=f"loading {spec} ({split})", unit="img", disable=hide)):
        images[row] = load_image(files[i], image_size, 3)
    names = [names[i] for i in keep]
    identity = {"dataset": spec, "source": str(folder), "split": split, "n": len(names),
                "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
                "images_sha256": hashlib.sha256(images.tobytes()).hexdigest()}
    return images, names, identity


# -- finding and downloading -----------------------------------------------------------------
def find_emoji_dir(style, data_dir=None):
    """The first folder holding ``style``'s images (a ``<style>/`` folder of PNGs), or None.

    An explicit ``data_dir`` that holds neither ``emoji/<style>`` nor ``<style>`` is an error."""
    def holding(root):
        return next((root / sub / style for sub in ("emoji", ".") if _has_pngs(root / sub / style)), None)
    if data_dir is not None:
        found = holding(Path(data_dir).expanduser())
        if found is None:
            raise DataError(f"{data_dir}: no emoji-{style} images in {Path(data_dir) / 'emoji' / style} or "
                            f"{Path(data_dir) / style}")
        return found
    env = os.environ.get("SCRATCHGAN_DATA")
    roots = ([Path(env).expanduser()] if env else []) + [datasets.cache_dir("emoji").parent]
    return next((found for found in map(holding, roots) if found is not None), None)


def _has_pngs(folder):
    return folder.is_dir() and any(name.endswith(".png") for name in os.listdir(folder))


def download_emoji(style, quiet=False):
    """Download ``style``'s npm tarball, check its SHA-512, extract the selected 64 x 64 images into
    the cache (``cache_dir("emoji")/<style>``, plus ``emoji.csv``); return that folder."""
    root = datasets.cache_dir("emoji")
    root.mkdir(parents=True, exist_ok=True)
    data = _download_tarball(style, quiet)
    index, images = _read_tarball(data, style)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{style}.") as tmp:
        for entry in index:
            (Path(tmp) / entry["image"]).write_bytes(images[entry["image"]])
        target = root / style
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        os.makedirs(tmp)   # TemporaryDirectory removes it on exit
    _write_index(root / INDEX_FILE, index)
    return root / style


def selected_emoji(emoji_json, style=""):
    """The entries of the package's emoji.json that both styles draw, less Flags and Component, sorted by
    ``sort_order``: [{"image", "short_name", "category", "subcategory"}]."""
    try:
        entries = json.loads(emoji_json)
        chosen = [e for e in entries if e["has_img_google"] and e["has_img_twitter"]
                  and e["category"] not in EXCLUDED_CATEGORIES]
        chosen.sort(key=lambda e: e["sort_order"])
        return [{k: e[k] for k in ("image", "short_name", "category", "subcategory")} for e in chosen]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"emoji-{style}: the package's emoji.json is not what version {VERSION} holds ({e})") from None


def _download_tarball(style, quiet):
    """The tarball's bytes, from the first of a few attempts whose SHA-512 matches."""
    url, expected = tarball_url(style), PACKAGES[style][1]
    error = None
    for attempt in range(datasets.ATTEMPTS):
        if attempt:
            time.sleep(datasets.BACKOFF * 2 ** (attempt - 1))
        try:
            data = _fetch(url, quiet)
        except (OSError, http.client.HTTPException) as err:
            error = err
            if isinstance(err, urllib.error.HTTPError) and err.code < 500:
                break
            continue
        got = base64.b64encode(hashlib.sha512(data).digest()).decode()
        if got != expected:
            raise DataError(f"emoji-{style}: checksum mismatch for {url}: expected SHA-512 {expected}, got {got}")
        return data
    raise DataError(f"could not download emoji-{style} from {url}: {error}\n" + _how_to_provide(style))


def _fetch(url, quiet):
    with datasets._urlopen(url, timeout=datasets.TIMEOUT) as response:
        size = int(response.headers.get("Content-Length") or 0) or None
        hide = True if quiet or os.environ.get("SCRATCHGAN_QUIET") else None
        chunks = []
        with tqdm(total=size, unit="B", unit_scale=True, desc=Path(url).name, disable=hide) as bar:
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                bar.update(len(chunk))
    return b"".join(chunks)


def _read_tarball(data, style):
    """(selected_emoji entries, {file name: PNG bytes} of the 64 x 64 images) from the tarball's bytes,
    in one pass over its members (a gzip stream cannot seek back cheaply)."""
    prefix, index_json, images = f"package/img/{style}/64/", None, {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                if member.name == "package/emoji.json":
                    index_json = tar.extractfile(member).read()
                elif member.name.startswith(prefix) and member.isfile():
                    images[member.name[len(prefix):]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"emoji-{style}: the downloaded tarball cannot be read ({e})") from None
    if index_json is None:
        raise DataError(f"emoji-{style}: the tarball has no package/emoji.json")
    index = selected_emoji(index_json, style)
    missing = [entry["image"] for entry in index if entry["image"] not in images]
    if missing:
        raise DataError(f"emoji-{style}: the tarball lacks {len(missing)} of the selected images "
                        f"(e.g. {prefix}{missing[0]})")
    return index, images


def _write_index(path, index):
    from ..fileio import atomic_write
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["image", "short_name", "category", "subcategory"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(index)
    with atomic_write(path) as f:
        f.write(text.getvalue().encode())


def _how_to_provide(style):
    return (f"To use emoji-{style} offline, download {tarball_url(style)} (npm pack "
            f"{PACKAGES[style][0]}@{VERSION}), and put the 64x64 PNGs of package/img/{style}/64/ into "
            f"{datasets.cache_dir('emoji') / style}, or into DIR/emoji/{style} for --data-dir DIR "
            f"(or $SCRATCHGAN_DATA=DIR); or train on any folder with folder:PATH")
