"""Tests for scratchgan.data: IDX files, dataset lookup and download, transforms, batching.

Everything runs offline on tiny files written to tmp_path; downloads go to a fake opener.
"""
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import struct
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest

from scratchgan.data import (DATASETS, BatchLoader, DataError, Dataset, DataWarning, binarize, cache_dir, datasets,
                             find_dataset_dir, flatten, from_tanh_range, identity, load_dataset, load_images,
                             read_idx, to_float, to_tanh_range, write_idx)
from scratchgan.fileio import atomic_write

from realdata import FASHION_DIR, MNIST_DIR, needs_fashion, needs_mnist

TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
REAL_DIRS = {"mnist": MNIST_DIR, "fashion-mnist": FASHION_DIR}


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """Isolate every test from the user's environment, disks and the network."""
    for var in ("SCRATCHGAN_DATA", "SCRATCHGAN_QUIET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "DEBIAN_ROOT", tmp_path / "debian")
    monkeypatch.setattr(datasets, "BACKOFF", 0)

    def no_network(url, timeout=None):
        raise AssertionError(f"test tried to open {url}")
    monkeypatch.setattr(datasets, "_urlopen", no_network)


def make_dataset(folder, n=4, fill=0, gz=True, files=TRAIN + TEST):
    """Write `files` of an n-sample dataset whose pixels all equal `fill`; return folder."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = np.full((n, 28, 28), fill, np.uint8), np.arange(n, dtype=np.uint8) % 10
    for name in files:
        array = images if "images" in name else labels
        write_idx(folder / (name if gz else name[:-3]), array)
    return folder


# --- IDX -------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype, shape", [("uint8", (5, 3, 2)), ("int8", (7,)), ("int16", (2, 3)),
                                          ("int32", (4, 1, 2, 3)), ("float32", (3, 4)), ("float64", (6,))])
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    values = np.random.default_rng(0).uniform(info.min / 2, info.max / 2, size=shape)
    array = values.astype(dtype)
    path = tmp_path / f"a-idx{len(shape)}{suffix}"
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == array.dtype and out.dtype.isnative and out.flags.writeable
    np.testing.assert_array_equal(out, array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if suffix else b"\0\0")
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind


def test_idx_bytes_follow_the_format(tmp_path):
    write_idx(tmp_path / "a", np.array([[1, 2, 3], [4, 5, 255]], np.uint8))
    header = b"\0\0\x08\x02" + struct.pack(">II", 2, 3)  # ubyte, 2 dims: 2 x 3
    assert (tmp_path / "a").read_bytes() == header + bytes([1, 2, 3, 4, 5, 255])
    # big-endian int16, written by hand: 0x0102 = 258, 0xfffe = -2
    (tmp_path / "b").write_bytes(b"\0\0\x0b\x01\0\0\0\x02" + b"\x01\x02\xff\xfe")
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), np.array([258, -2], np.int16))


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    write_idx(tmp_path / "plain.gz.tmp", array)
    (tmp_path / "plain.gz.tmp").rename(tmp_path / "plain.gz")
    write_idx(tmp_path / "packed.gz", array)
    (tmp_path / "packed.gz").rename(tmp_path / "packed")
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed"), array)


@pytest.mark.parametrize("array", [np.zeros(3, np.uint16), np.zeros(3, bool), np.array(1, np.uint8),
                                   np.zeros((1,) * 5, np.uint8)])
def test_write_idx_rejects_what_idx_cannot_store(tmp_path, array):
    with pytest.raises(ValueError):
        write_idx(tmp_path / "a.gz", array)
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write(b"new, half written")
        raise RuntimeError
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f"]


VALID = b"\0\0\x08\x03" + struct.pack(">III", 3, 2, 2) + bytes(range(12))


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("content, problem", [
    (b"", "too short"),
    (b"\0\0", "too short"),
    (b"\x01" + VALID[1:], "not an IDX or gzip file: starts with 0x01000803"),
    (VALID[:2] + b"\x0a" + VALID[3:], "unknown IDX type code 0x0a"),
    (VALID[:3] + b"\x00" + VALID[4:], "0 dimensions"),
    (VALID[:3] + b"\x09" + VALID[4:], "9 dimensions"),
    (VALID[:9], "truncated header: 3 dimensions need 16 header bytes, file has 9"),
    (VALID[:-1], "truncated: header says 3x2x2 uint8 = 12 bytes of data, file has 11"),
    (VALID[:16], "truncated: header says 3x2x2 uint8 = 12 bytes of data, file has 0"),
    (VALID + b"\0\0", "2 trailing bytes: header says 3x2x2 uint8 = 12 bytes of data, file has 14"),
])
def test_corrupt_idx_raises_data_error_naming_file(tmp_path, content, problem, compress):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(str(path)) and problem in str(info.value)


def _flip_crc(data):
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


@pytest.mark.parametrize("corrupt", [lambda d: d[:-5], lambda d: d[:12], _flip_crc,
                                     lambda d: d[:3] + b"junk" * 9])
def test_corrupt_gzip_raises_data_error(tmp_path, corrupt):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(corrupt(gzip.compress(VALID)))
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: corrupt gzip data"):
        read_idx(path)


def test_sanity_of_valid_fixture(tmp_path):
    (tmp_path / "ok").write_bytes(VALID)  # the corruption tests above start from a valid file
    np.testing.assert_array_equal(read_idx(tmp_path / "ok"), np.arange(12, dtype=np.uint8).reshape(3, 2, 2))


# --- lookup ------------------------------------------------------------------------------

def test_lookup_order(tmp_path, monkeypatch):
    explicit = make_dataset(tmp_path / "explicit", fill=1)
    make_dataset(tmp_path / "env" / "mnist", fill=2)
    make_dataset(cache_dir("mnist"), fill=3)
    make_dataset(datasets.DEBIAN_ROOT / "mnist", fill=4)
    monkeypatch.setenv("SCRATCHGAN_DATA", str(tmp_path / "env"))

    def source(data_dir=None):
        """The pixel value that identifies the folder the test split was loaded from."""
        return load_dataset("mnist", "test", data_dir=data_dir)[0][0, 0, 0]
    assert source(explicit) == 1
    assert source() == 2
    monkeypatch.delenv("SCRATCHGAN_DATA")
    assert source() == 3
    for name in TEST:
        (cache_dir("mnist") / name).unlink()
    assert source() == 4
    assert find_dataset_dir("mnist", split="test") == datasets.DEBIAN_ROOT / "mnist"


def test_env_naming_no_folder_is_said(tmp_path, monkeypatch):
    make_dataset(cache_dir("mnist"))
    monkeypatch.setenv("SCRATCHGAN_DATA", str(tmp_path / "typo"))
    with pytest.warns(DataWarning, match="SCRATCHGAN_DATA=.*typo is not a folder; looking for mnist elsewhere"):
        assert find_dataset_dir("mnist", split="test") == cache_dir("mnist")


def test_env_dir_lacking_files_falls_through(tmp_path, monkeypatch):
    make_dataset(tmp_path / "env" / "mnist", files=TRAIN)
    make_dataset(cache_dir("mnist"))
    monkeypatch.setenv("SCRATCHGAN_DATA", str(tmp_path / "env"))
    assert find_dataset_dir("mnist", split="train") == tmp_path / "env" / "mnist"
    assert find_dataset_dir("mnist", split="test") == cache_dir("mnist")
    assert find_dataset_dir("mnist") == cache_dir("mnist")  # split=None needs all four files


@pytest.mark.parametrize("via", ["data_dir", "env"])
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("gz", [False, True])
def test_folder_itself_or_parent_and_plain_or_gz(tmp_path, monkeypatch, via, nested, gz):
    root = tmp_path / "data"
    make_dataset(root / "fashion-mnist" if nested else root, n=3, fill=7, gz=gz)
    if via == "env":
        monkeypatch.setenv("SCRATCHGAN_DATA", str(root))
    images, labels = load_dataset("fashion-mnist", "train", data_dir=root if via == "data_dir" else None)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8 and (images == 7).all()
    np.testing.assert_array_equal(labels, [0, 1, 2])


def test_explicit_data_dir_missing_files_is_an_error(tmp_path):
    make_dataset(cache_dir("mnist"))  # present, but must not be used instead
    folder = make_dataset(tmp_path / "mine", files=TRAIN[:1])
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", data_dir=folder)
    message = str(info.value)
    assert str(folder) in message and "missing train-labels-idx1-ubyte.gz" in message
    assert "missing train-images" not in message
    with pytest.raises(DataError, match="missing t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"):
        load_dataset("mnist", "test", data_dir=folder)


def test_count_mismatch_between_images_and_labels(tmp_path):
    folder = make_dataset(tmp_path / "d", n=4)
    write_idx(folder / TRAIN[1], np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="4 images but 3 labels"):
        load_dataset("mnist", data_dir=folder)


def test_wrong_array_kinds_are_rejected(tmp_path):
    folder = make_dataset(tmp_path / "d")
    write_idx(folder / TRAIN[0], np.zeros((4, 28, 28), np.float32))
    with pytest.raises(DataError, match="expected uint8 images"):
        load_dataset("mnist", data_dir=folder)


def test_unknown_dataset_or_split(tmp_path):
    folder = make_dataset(tmp_path / "cifar")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; known: mnist, fashion-mnist"):
        load_dataset("cifar", data_dir=folder)
    with pytest.raises(ValueError, match="split must be one of train, test"):
        load_dataset("mnist", "valid")


def test_not_found_without_download_explains_what_to_do():
    with pytest.raises(DataError) as info:
        load_dataset("mnist", download=False)
    assert "download=False" in str(info.value) and str(cache_dir("mnist")) in str(info.value)


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("SCRATCHGAN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("mnist") == tmp_path / "xdg" / "scratchgan" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir("mnist") == Path.home() / ".cache" / "scratchgan" / "mnist"


# --- identity: what the files really hold -------------------------------------------------

def random_split(n, seed=0, zero_fraction=0.8, low=1, high=256):
    """uint8 images (n, 28, 28) with about `zero_fraction` zero pixels, the rest uniform in [low, high), and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(low, high, size=(n, 28, 28))
    images[rng.random((n, 28, 28)) < zero_fraction] = 0
    return images.astype(np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write_split(folder, split, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    names = TRAIN if split == "train" else TEST
    write_idx(folder / names[0], images)
    write_idx(folder / names[1], labels)
    return folder


def pretend_official(monkeypatch, dataset, split, images, labels, n=None):
    """Make (images, labels) the "official" (dataset, split) for this test, as identity.py records them."""
    sha = lambda a: hashlib.sha256(a.tobytes()).hexdigest()  # noqa: E731
    entry = identity.OfficialSplit(dataset, split, n or len(images), identity.idx_md5(images),
                                   identity.idx_md5(labels), sha(images[:identity.HEAD]),
                                   sha(labels[:identity.HEAD]))
    monkeypatch.setattr(identity, "OFFICIAL", (entry,))


@contextlib.contextmanager
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_unknown_idx_folder_is_accepted_with_a_warning_and_a_fingerprint(tmp_path):
    images, labels = random_split(300)
    folder = write_split(tmp_path / "mine", "train", images, labels)
    with pytest.warns(DataWarning, match=r"not the official mnist data \(their content matches no known dataset\)"):
        loaded, _, record = load_dataset("mnist", "train", data_dir=folder, with_identity=True)
    np.testing.assert_array_equal(loaded, images)
    assert record["match"] == "unknown" and record["source"] == str(folder) and record["n"] == 300
    assert record["images_sha256"] == hashlib.sha256(images.tobytes()).hexdigest()
    assert record["labels_sha256"] == hashlib.sha256(labels.tobytes()).hexdigest()
    assert record["label_histogram"] == [30] * 10 and record["image_shape"] == [28, 28]
    assert record["mean_pixel"] == pytest.approx(images.mean(), abs=1e-3)
    assert record["zero_fraction"] == pytest.approx((images == 0).mean(), abs=1e-4)
    json.dumps(record)  # recorded in checkpoints and summaries


def test_official_files_complete_subset_and_modified(tmp_path, monkeypatch):
    images, labels = random_split(300, seed=1)
    pretend_official(monkeypatch, "mnist", "train", images, labels)
    with no_warnings():
        assert identity.identify("mnist", "train", images, labels, "d")["match"] == "official"
        assert identity.identify("mnist", "train", images[:150], labels[:150], "d")["match"] == "official subset"
    changed = images.copy()
    changed[200, 5, 5] ^= 1    # beyond the first 100: only the whole-file MD5 sees it
    for bad_images, bad_labels in ((changed, labels), (images, np.roll(labels, 1))):
        with pytest.warns(DataWarning, match="start like the official mnist train split but differ"):
            record = identity.identify("mnist", "train", bad_images, bad_labels, "d")
        assert record["match"] == "modified official"
    folder = write_split(tmp_path / "subset", "train", images[:120], labels[:120])
    with no_warnings():
        assert load_dataset("mnist", data_dir=folder, with_identity=True)[2]["match"] == "official subset"


def test_another_datasets_files_are_refused_naming_both(tmp_path, monkeypatch):
    images, labels = random_split(200, seed=2)
    pretend_official(monkeypatch, "fashion-mnist", "train", images, labels, n=60000)
    folder = write_split(tmp_path / "data", "train", images, labels)
    monkeypatch.setenv("SCRATCHGAN_DATA", str(folder))   # the case: the variable names the wrong folder
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train")
    message = str(info.value)
    assert message.startswith(str(folder)) and "\n" not in message
    assert "fashion-mnist train files, not mnist train" in message and "--dataset fashion-mnist" in message
    assert load_dataset("fashion-mnist", "train", data_dir=folder)[0].shape == (200, 28, 28)


def test_the_test_split_under_the_training_names_is_refused(tmp_path, monkeypatch):
    images, labels = random_split(150, seed=3)
    pretend_official(monkeypatch, "mnist", "test", images, labels, n=10000)
    folder = write_split(tmp_path / "data", "train", images, labels)
    with pytest.raises(DataError, match="these are mnist test files, not mnist train"):
        load_dataset("mnist", "train", data_dir=folder)


def test_unknown_content_with_another_datasets_statistics_is_refused(tmp_path):
    # Fashion-MNIST-like statistics: half the pixels zero, the rest averaging ~146 (mean ~73)
    images, labels = random_split(1000, seed=4, zero_fraction=0.5, low=37, high=256)
    with pytest.raises(DataError, match=r"look like fashion-mnist, not mnist: mean pixel 7\d\.\d and 50% zero"):
        identity.identify("mnist", "train", images, labels, "d")
    with pytest.warns(DataWarning, match="their statistics are fashion-mnist's"):
        assert identity.identify("fashion-mnist", "train", images, labels, "d")["match"] == "unknown"
    with pytest.warns(DataWarning):   # below 1,000 images statistics decide nothing
        identity.identify("mnist", "train", images[:999], labels[:999], "d")
    mnist_like, mnist_labels = random_split(1000, seed=5, zero_fraction=0.81, low=80, high=256)
    with pytest.raises(DataError, match="look like mnist, not fashion-mnist"):
        identity.identify("fashion-mnist", "test", mnist_like, mnist_labels, "d")


def test_load_images_returns_the_identity_and_folders_get_a_fingerprint(tmp_path):
    images, labels = random_split(120, seed=6)
    folder = write_split(tmp_path / "idx", "train", images, labels)
    loaded, record = load_images("mnist", data_dir=folder, with_identity=True)
    assert loaded.shape == (120, 1, 28, 28) and record["match"] == "unknown" and record["n"] == 120
    from PIL import Image
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "pics" / "a.png")
    loaded, record = load_images(f"folder:{tmp_path / 'pics'}", image_size=8, with_identity=True)
    assert record["match"] == "image folder" and record["n"] == 1 and record["image_shape"] == [3, 8, 8]
    assert record["images_sha256"] == hashlib.sha256(loaded.tobytes()).hexdigest()


@needs_fashion
def test_real_fashion_mnist_is_not_accepted_as_mnist(monkeypatch):
    monkeypatch.setenv("SCRATCHGAN_DATA", str(FASHION_DIR))
    with pytest.raises(DataError, match="these are fashion-mnist test files, not mnist test"):
        load_dataset("mnist", "test")   # the test split: the same check as train, a sixth of the reading
    with no_warnings():
        images, labels, record = load_dataset("fashion-mnist", "test", with_identity=True)
    assert record["match"] == "official"
    order = np.random.default_rng(0).permutation(len(images))[:2000]   # shuffled: no official head
    with pytest.raises(DataError, match="look like fashion-mnist, not mnist"):
        identity.identify("mnist", "test", images[order], labels[order], "shuffled")


@needs_mnist
def test_real_mnist_is_recognized_and_not_accepted_as_fashion_mnist(tmp_path):
    with no_warnings():
        train = load_dataset("mnist", "train", data_dir=MNIST_DIR, with_identity=True)[2]
        test = load_dataset("mnist", "test", data_dir=MNIST_DIR, with_identity=True)[2]
    assert train["match"] == ("official" if train["n"] == 60000 else "official subset")
    assert test["match"] == "official"
    with pytest.raises(DataError, match="these are mnist train files, not fashion-mnist train"):
        load_dataset("fashion-mnist", "train", data_dir=MNIST_DIR)
    swapped = tmp_path / "swapped"      # the test files under the training names
    swapped.mkdir()
    for src, dst in zip(TEST, TRAIN):
        source = MNIST_DIR / src if (MNIST_DIR / src).exists() else MNIST_DIR / src[:-3]
        (swapped / (dst if source.suffix == ".gz" else dst[:-3])).write_bytes(source.read_bytes())
    with pytest.raises(DataError, match="these are mnist test files, not mnist train"):
        load_dataset("mnist", "train", data_dir=swapped)


# --- download ----------------------------------------------------------------------------

class FakeResponse(io.BytesIO):
    def __init__(self, data, fail_after=None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.fail_after = fail_after

    def read(self, size):
        if self.fail_after is None:
            return super().read(size)
        if self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset mid-download")
        return super().read(min(size, self.fail_after - self.tell()))


class FakeWeb:
    """An opener serving `routes`: url -> list of replies (bytes, FakeResponse or exception)."""

    def __init__(self, routes):
        self.routes, self.calls = routes, []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        replies = self.routes.get(url) or [urllib.error.URLError("no route to host")]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply if isinstance(reply, FakeResponse) else FakeResponse(reply)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A registered dataset 'toy' with two mirrors; returns {file name: served .gz bytes}."""
    server = make_dataset(tmp_path / "server", n=5, fill=9)
    payload = {name: (server / name).read_bytes() for name in TRAIN + TEST}
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in payload.items()}
    monkeypatch.setitem(DATASETS, "toy", Dataset("toy", ("https://a.test/", "https://b.test/"), md5))
    return payload


def serve(monkeypatch, routes):
    web = FakeWeb(routes)
    monkeypatch.setattr(datasets, "_urlopen", web)
    return web


def test_download_lands_verified_files_in_cache(monkeypatch, toy):
    web = serve(monkeypatch, {"https://a.test/" + name: [data] for name, data in toy.items()})
    images, labels = load_dataset("toy", "train")
    assert images.shape == (5, 28, 28) and (images == 9).all() and labels.tolist() == [0, 1, 2, 3, 4]
    assert sorted(os.listdir(cache_dir("toy"))) == sorted(TRAIN)  # only the split asked for
    for name in TRAIN:
        assert hashlib.md5((cache_dir("toy") / name).read_bytes()).hexdigest() == DATASETS["toy"].md5[name]
    calls = len(web.calls)
    load_dataset("toy", "train")
    assert len(web.calls) == calls  # served from the cache now


def test_checksum_mismatch_leaves_nothing_behind(monkeypatch, toy):
    serve(monkeypatch, {"https://a.test/" + name: [data + b"x"] for name, data in toy.items()})
    with pytest.raises(DataError) as info:
        load_dataset("toy", "train")
    name, expected = TRAIN[0], DATASETS["toy"].md5[TRAIN[0]]
    actual = hashlib.md5(toy[name] + b"x").hexdigest()
    assert str(info.value) == (f"{name}: checksum mismatch for https://a.test/{name}: "
                               f"expected MD5 {expected}, got {actual}")
    assert os.listdir(cache_dir("toy")) == []


def test_falls_back_to_second_mirror_after_retries(monkeypatch, toy):
    web = serve(monkeypatch, {**{"https://a.test/" + name: [urllib.error.URLError("down")] for name in toy},
                              **{"https://b.test/" + name: [data] for name, data in toy.items()}})
    load_dataset("toy", "test")
    first = TEST[0]
    assert web.calls[:4] == ["https://a.test/" + first] * datasets.ATTEMPTS + ["https://b.test/" + first]


def test_http_404_skips_the_mirror_without_retrying(monkeypatch, toy):
    not_found = urllib.error.HTTPError("https://a.test/", 404, "Not Found", {}, None)
    web = serve(monkeypatch, {**{"https://a.test/" + name: [not_found] for name in toy},
                              **{"https://b.test/" + name: [data] for name, data in toy.items()}})
    load_dataset("toy", "test")
    assert web.calls[:2] == ["https://a.test/" + TEST[0], "https://b.test/" + TEST[0]]


def test_retries_back_off_and_survive_a_broken_transfer(monkeypatch, toy):
    sleeps = []
    monkeypatch.setattr(datasets, "BACKOFF", 0.5)
    monkeypatch.setattr(datasets.time, "sleep", sleeps.append)
    serve(monkeypatch, {  # per file: a transfer cut short, a timeout, then success
        "https://a.test/" + name: [FakeResponse(data, fail_after=10), OSError("timed out"), data]
        for name, data in toy.items()})
    images, _ = load_dataset("toy", "train")
    assert (images == 9).all() and sorted(os.listdir(cache_dir("toy"))) == sorted(TRAIN)
    assert sleeps == [0.5, 1.0] * len(TRAIN)


def test_offline_message_says_what_to_put_where(monkeypatch):
    web = serve(monkeypatch, {})
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", "train")
    message = str(info.value)
    for needle in [*TRAIN, *TEST, str(cache_dir("fashion-mnist")), "--data-dir", "SCRATCHGAN_DATA",
                   "apt-get install dataset-fashion-mnist", "no route to host",
                   "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"]:
        assert needle in message
    assert len(web.calls) == datasets.ATTEMPTS  # gave up after the first file
    assert os.listdir(cache_dir("fashion-mnist")) == []
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train")
    assert "apt-get" not in str(info.value) and "storage.googleapis.com" in str(info.value)


def test_registry_holds_the_official_files():
    for dataset in DATASETS.values():
        assert set(dataset.files) == set(TRAIN + TEST)
        assert all(len(md5) == 32 for md5 in dataset.md5.values())
    assert DATASETS["mnist"].md5["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert DATASETS["mnist"].mirrors[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"


# --- transforms --------------------------------------------------------------------------

PIXELS = np.array([[0, 51, 255]], np.uint8)


def test_to_float():
    x = to_float(PIXELS)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [[0, 0.2, 1]], rtol=1e-6)
    assert to_float(PIXELS, np.float64).dtype == np.float64
    assert PIXELS.tolist() == [[0, 51, 255]]  # input untouched
    with pytest.raises(TypeError, match="uint8"):
        to_float(x)


def test_tanh_range_round_trip():
    x = to_tanh_range(PIXELS)
    assert x.dtype == np.float32 and x[0, 0] == -1 and x[0, 2] == 1
    np.testing.assert_allclose(x, [[-1, 51 / 127.5 - 1, 1]], rtol=1e-6)
    back = from_tanh_range(x)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, to_float(PIXELS), atol=1e-7)
    assert to_tanh_range(PIXELS, np.float64).dtype == np.float64


def test_from_tanh_range_clips():
    out = from_tanh_range(np.array([-1.5, -1, 0, 0.5, 1, 2], np.float32))
    assert out.dtype == np.float32 and out.tolist() == [0, 0, 0.5, 0.75, 1, 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binarize_is_strictly_greater(dtype):
    out = binarize(np.array([0.0, 0.2, 0.5, 0.51, 1.0], dtype))
    assert out.dtype == dtype and out.tolist() == [0, 0, 0, 1, 1]
    assert binarize(np.array([0.2, 0.3], dtype), threshold=0.25).tolist() == [0, 1]


def test_flatten():
    x = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(flatten(x), np.arange(24).reshape(2, 12))
    assert flatten(np.zeros((0, 28, 28))).shape == (0, 784)


# --- loader ------------------------------------------------------------------------------

def epoch(loader):
    return [batch.tolist() if isinstance(batch, np.ndarray) else [b.tolist() for b in batch]
            for batch in loader]


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 3, True, [3, 3, 3]), (10, 3, False, [3, 3, 3, 1]), (9, 3, True, [3, 3, 3]),
    (9, 3, False, [3, 3, 3]), (4, 9, False, [4])])
def test_batch_counts(n, batch_size, drop_last, sizes):
    loader = BatchLoader(np.arange(n), batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [len(b) for b in epoch(loader)] == sizes


def test_each_sample_once_per_epoch_in_a_new_order():
    loader = BatchLoader(np.arange(100), 7, drop_last=False)
    first, second = sum(epoch(loader), []), sum(epoch(loader), [])
    assert sorted(first) == sorted(second) == list(range(100))
    assert first != second and first != list(range(100))
    dropped = sum(epoch(BatchLoader(np.arange(100), 7)), [])
    assert len(dropped) == len(set(dropped)) == 98


def test_without_shuffle_order_is_kept():
    assert epoch(BatchLoader(np.arange(5), 2, shuffle=False, drop_last=False)) == [[0, 1], [2, 3], [4]]


def test_seeded_determinism():
    def run(seed):
        loader = BatchLoader(np.arange(50), 8, seed=seed)
        return epoch(loader) + epoch(loader)
    assert run(3) == run(3)
    assert run(3) != run(4)


def test_tuple_data_stays_aligned_and_batches_are_copies():
    x, y = np.arange(20).reshape(10, 2), np.arange(10) * 10
    for bx, by in BatchLoader((x, y), 3, device="cpu"):
        assert isinstance(bx, np.ndarray) and bx.shape == (3, 2)
        np.testing.assert_array_equal(bx[:, 0] * 5, by)
        bx[:] = -1
    assert (x >= 0).all()


@pytest.mark.parametrize("consumed", [0, 3, 4, 5, 9])  # batches already seen; 4 per epoch
def test_state_dict_resumes_with_the_same_batches(consumed):
    data = np.arange(17)
    old = BatchLoader(data, 4, seed=1)
    stream = (batch for _ in range(10) for batch in old)
    for _ in range(consumed):
        next(stream)
    state = json.loads(json.dumps(old.state_dict()))  # checkpoints may store it as JSON
    expected = [next(stream).tolist() for _ in range(8)]

    new = BatchLoader(data, 4, seed=99)
    new.load_state_dict(state)
    rest = epoch(new)  # the rest of the interrupted epoch, or a whole new one
    assert len(rest) == 4 - consumed % 4
    assert rest + epoch(new) == expected[:len(rest) + 4]


def test_invalid_loader_arguments():
    with pytest.raises(ValueError, match="batch_size 11 is larger than the 10 samples.*drop_last=False"):
        BatchLoader(np.arange(10), 11)
    with pytest.raises(ValueError, match="differ in length"):
        BatchLoader((np.arange(10), np.arange(9)), 2)
    with pytest.raises(ValueError, match="positive"):
        BatchLoader(np.arange(10), 0)


# --- the real data, where this machine has it ---------------------------------------------

@pytest.mark.parametrize("name, train_size, first_train, first_test", [
    ("mnist", 10_000, [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]),
    ("fashion-mnist", 60_000, [9, 0, 0, 3, 0, 2, 7, 2, 5, 5], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7])])
def test_shared_real_data(name, train_size, first_train, first_test):
    folder = REAL_DIRS[name]
    if folder is None:
        pytest.skip(f"no real {name} files here (set SCRATCHGAN_DATA)")
    for data_dir in ((folder.parent,) if folder.name == name else ()) + (folder,):
        for split, size, first in (("train", train_size, first_train), ("test", 10_000, first_test)):
            images, labels = load_dataset(name, split, data_dir=data_dir, download=False)
            if split == "train" and name == "mnist":
                size = len(images)  # the development data hold the first 10,000 of 60,000
            assert images.shape == (size, 28, 28) and images.dtype == np.uint8
            assert labels.shape == (size,) and labels.max() == 9 and labels.min() == 0
            assert labels[:10].tolist() == first and images.max() == 255
