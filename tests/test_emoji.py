"""Emoji data: the split, dataset specs, finding the folders, and the npm download (against a fake server)."""
import base64
import hashlib
import io
import json
import os
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchgan.data import DataError, datasets
from scratchgan.data import emoji

SHARED = next((p / "shared" / "data" for p in Path(__file__).resolve().parents if (p / "shared" / "data" / "emoji").is_dir()),
              None)
SHARED = Path(os.environ["SCRATCHGAN_DATA"]) if os.environ.get("SCRATCHGAN_DATA") and \
    (Path(os.environ["SCRATCHGAN_DATA"]) / "emoji" / "google").is_dir() else SHARED
needs_emoji = pytest.mark.skipif(SHARED is None, reason="needs the emoji images (set SCRATCHGAN_DATA)")


def test_split_is_a_fixed_fifth_by_name():
    names = [f"{i:05x}.png" for i in range(5000)]
    test = [n for n in names if emoji.split_of(n) == "test"]
    assert 0.18 < len(test) / len(names) < 0.22
    assert emoji.split_of("1f600.png") == emoji.split_of("1f600.jpg") == emoji.split_of("sub/../1f600.png".split("/")[-1])
    assert [emoji.split_of(n) for n in names[:50]] == [emoji.split_of(n) for n in names[:50]]   # no state
    assert emoji.select_split(names, "all") == list(range(5000))
    with pytest.raises(ValueError, match="split must be one of"):
        emoji.select_split(names, "val")


@pytest.mark.parametrize("spec, parsed", [("emoji-google", ("emoji", "google")), ("EMOJI-Twitter", ("emoji", "twitter")),
                                          ("folder:/x/y", ("folder", "/x/y"))])
def test_specs(spec, parsed):
    assert emoji.parse_image_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["mnist", "emoji-apple", "folder:", "folder:  ", 3])
def test_bad_specs_list_the_valid_forms(spec):
    with pytest.raises(ValueError, match="emoji-google, emoji-twitter, or folder:PATH"):
        emoji.parse_image_spec(spec)


# -- a fake npm registry ----------------------------------------------------------------------
def png_bytes(color):
    buffer = io.BytesIO()
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste(Image.new("RGBA", (32, 32), color), (16, 16))
    image.save(buffer, format="PNG")
    return buffer.getvalue()


ENTRIES = [  # (image, category, google, twitter, sort_order)
    ("1f600.png", "Smileys & Emotion", True, True, 3), ("1f601.png", "Smileys & Emotion", True, True, 1),
    ("1f1e6-1f1e8.png", "Flags", True, True, 2), ("1f3fb.png", "Component", True, True, 4),
    ("1f602.png", "Objects", True, False, 5), ("2764-fe0f.png", "Symbols", True, True, 0)]


def make_tarball(style, drop=None):
    index = [{"image": image, "short_name": image[:-4], "category": category, "subcategory": "x",
              "has_img_google": google, "has_img_twitter": twitter, "sort_order": order}
             for image, category, google, twitter, order in ENTRIES]
    files = {"package/emoji.json": json.dumps(index).encode(), "package/README.md": b"readme"}
    for i, (image, *_rest) in enumerate(ENTRIES):
        files[f"package/img/{style}/64/{image}"] = png_bytes((40 * i, 100, 200 if style == "google" else 50, 255))
        files[f"package/img/{style}/32/{image}"] = b"not used"
    files.pop(drop, None)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Response(io.BytesIO):
    def __init__(self, data):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """Fake tarballs served for both styles, their SHA-512 recorded as the package's; an empty cache."""
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SCRATCHGAN_DATA", raising=False)
    monkeypatch.setattr(datasets, "BACKOFF", 0)
    tarballs = {style: make_tarball(style) for style in emoji.PACKAGES}
    packages = {style: (name, base64.b64encode(hashlib.sha512(tarballs[style]).digest()).decode())
                for style, (name, _) in emoji.PACKAGES.items()}
    monkeypatch.setattr(emoji, "PACKAGES", packages)
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        for style in tarballs:
            if url == emoji.tarball_url(style):
                return Response(tarballs[style])
        raise urllib.error.URLError("no route")
    monkeypatch.setattr(datasets, "_urlopen", urlopen)
    return {"tarballs": tarballs, "calls": calls, "cache": tmp_path / "cache" / "emoji"}


def test_download_extracts_the_selected_64px_images_and_the_index(registry):
    folder = emoji.download_emoji("google", quiet=True)
    assert folder == registry["cache"] / "google"
    assert sorted(os.listdir(folder)) == ["1f600.png", "1f601.png", "2764-fe0f.png"]   # both styles, no Flags/Component
    lines = (registry["cache"] / "emoji.csv").read_text().splitlines()
    assert lines[0] == "image,short_name,category,subcategory"
    assert [line.split(",")[0] for line in lines[1:]] == ["2764-fe0f.png", "1f601.png", "1f600.png"]  # sort_order
    assert registry["calls"] == ["https://registry.npmjs.org/emoji-datasource-google/-/emoji-datasource-google-16.0.0.tgz"]
    assert not [p for p in registry["cache"].iterdir() if p.name.startswith(".")], "no temporary left behind"


def test_load_domain_downloads_once_then_reads_the_cache(registry):
    images, names, identity = emoji.load_domain("emoji-twitter", "all", image_size=16, quiet=True)
    assert images.shape == (3, 3, 16, 16) and images.dtype == np.uint8
    assert names == ["1f600.png", "1f601.png", "2764-fe0f.png"]
    assert (images[:, :, 0, 0] == 255).all(), "transparent pixels become white"
    assert identity["n"] == 3 and identity["source"] == str(registry["cache"] / "twitter")
    emoji.load_domain("emoji-twitter", "all", image_size=16, quiet=True)
    assert len(registry["calls"]) == 1


def test_a_tarball_with_another_checksum_is_refused_and_nothing_is_cached(registry, monkeypatch):
    monkeypatch.setitem(emoji.PACKAGES, "google", ("emoji-datasource-google", "A" * 88))
    with pytest.raises(DataError, match="checksum mismatch.*SHA-512"):
        emoji.download_emoji("google", quiet=True)
    assert not (registry["cache"] / "google").exists()


def test_a_tarball_missing_a_selected_image_is_refused(registry, monkeypatch):
    data = make_tarball("google", drop="package/img/google/64/1f601.png")
    monkeypatch.setitem(emoji.PACKAGES, "google", ("emoji-datasource-google",
                                                   base64.b64encode(hashlib.sha512(data).digest()).decode()))
    monkeypatch.setattr(datasets, "_urlopen", lambda url, timeout=None: Response(data))
    with pytest.raises(DataError, match="lacks 1 of the selected images.*1f601.png"):
        emoji.download_emoji("google", quiet=True)


def test_no_network_says_how_to_provide_the_images(registry, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(datasets, "_urlopen", offline)
    with pytest.raises(DataError, match=r"could not download emoji-google(.|\n)*To use emoji-google offline"):
        emoji.load_domain("emoji-google", quiet=True)


def test_download_false_and_an_explicit_data_dir_without_images(registry, tmp_path):
    with pytest.raises(DataError, match="not found"):
        emoji.load_domain("emoji-google", download=False)
    with pytest.raises(DataError, match="no emoji-google images"):
        emoji.load_domain("emoji-google", data_dir=tmp_path)


def test_a_folder_domain_is_split_by_file_name(tmp_path):
    for i in range(30):
        Image.new("RGB", (20, 24), (i * 8, 0, 0)).save(tmp_path / f"img{i:02d}.png")
    train, train_names, _ = emoji.load_domain(f"folder:{tmp_path}", "train", image_size=8)
    test, test_names, _ = emoji.load_domain(f"folder:{tmp_path}", "test", image_size=8)
    assert sorted(train_names + test_names) == [f"img{i:02d}.png" for i in range(30)]
    assert all(emoji.split_of(n) == "test" for n in test_names) and train.shape[1:] == (3, 8, 8)


@needs_emoji
def test_the_shared_emoji_split():
    """1,636 emoji in both styles: 1,278 train, 358 held out, the same names in both styles."""
    a, a_names, _ = emoji.load_domain("emoji-google", "test", data_dir=SHARED, image_size=32, quiet=True)
    b, b_names, _ = emoji.load_domain("emoji-twitter", "test", data_dir=SHARED, image_size=32, quiet=True)
    assert a_names == b_names and len(a_names) == 358 and a.shape == b.shape == (358, 3, 32, 32)
    assert not np.array_equal(a, b)
