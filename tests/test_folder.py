"""Tests for scratchgan.data.folder: image folders as uint8 arrays, and the CLI's dataset names.

Every image is a small file written with Pillow into tmp_path.
"""
import sys

import numpy as np
import pytest
from PIL import Image, features

from scratchgan.data.folder import (IMAGE_EXTENSIONS, find_image_files, load_image_folder,
                                    parse_dataset_spec)
from scratchgan.data.idx import DataError

RED, GREEN, BLUE, YELLOW, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 255, 255)
JPEG_TOLERANCE = 4  # a uniform 8x8 block decodes to within a few levels of its colour
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".webp": "WEBP"}


@pytest.fixture(autouse=True)
def no_quiet_env(monkeypatch):
    monkeypatch.delenv("SCRATCHGAN_QUIET", raising=False)


def save(image, path, **options):
    """Save a PIL image (format from the suffix, lossless WebP), creating folders; return path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".webp":
        options.setdefault("lossless", True)
    image.save(path, FORMATS[path.suffix.lower()], **options)
    return path


def solid(colour, size=(40, 30), mode="RGB"):
    return Image.new(mode, size, colour)


def bands(width, height, colours, vertical=True):
    """An RGB image of equal-width colour bands, left to right (or top to bottom if not vertical)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    edges = np.linspace(0, width if vertical else height, len(colours) + 1).astype(int)
    for colour, start, stop in zip(colours, edges[:-1], edges[1:]):
        if vertical:
            pixels[:, start:stop] = colour
        else:
            pixels[start:stop, :] = colour
    return Image.fromarray(pixels)


def load_one(path, **kwargs):
    images = load_image_folder(path.parent, quiet=True, **kwargs)
    assert len(images) == 1
    return images[0]


def assert_colour(pixels, colour, tolerance=0):
    """Every pixel of (3, H, W) `pixels` within `tolerance` of `colour` in each channel."""
    expected = np.array(colour, np.int16)[:, None, None]
    assert np.abs(pixels.astype(np.int16) - expected).max() <= tolerance, pixels.reshape(3, -1)[:, :4]


# --- shapes and formats ----------------------------------------------------------------

@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_and_dtype(tmp_path, image_size, channels):
    for i, size in enumerate([(100, 80), (50, 70), (64, 64), (20, 20)]):  # down, up and no resize
        save(solid((10 * i, 20, 30), size), tmp_path / f"{i}.png")
    images = load_image_folder(tmp_path, image_size=image_size, channels=channels, quiet=True)
    assert images.shape == (4, channels, image_size, image_size)
    assert images.dtype == np.uint8 and images.flags.c_contiguous


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_every_accepted_format_decodes_to_its_colour(tmp_path, suffix):
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    save(solid((200, 40, 90)), tmp_path / f"x{suffix}")
    lossy = suffix in (".jpg", ".jpeg")
    # GIF stores a palette of RGB colours, so the colour survives exactly
    assert_colour(load_one(tmp_path / f"x{suffix}", image_size=16), (200, 40, 90),
                  JPEG_TOLERANCE if lossy else 0)


def test_extensions_match_in_any_case_and_other_files_are_ignored(tmp_path):
    save(solid(RED), tmp_path / "a.PNG")
    save(solid(GREEN), tmp_path / "b.JpEg")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "c.png.bak").write_bytes(b"garbage")
    images = load_image_folder(tmp_path, image_size=8, quiet=True)
    assert len(images) == 2
    assert_colour(images[0], RED)
    assert_colour(images[1], GREEN, JPEG_TOLERANCE)


def test_hidden_files_and_folders_are_skipped(tmp_path):
    save(solid(RED), tmp_path / "a.png")
    (tmp_path / "._a.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    save(solid(BLUE), tmp_path / ".thumbnails" / "a.png")
    images = load_image_folder(tmp_path, image_size=8, quiet=True)
    assert len(images) == 1
    assert_colour(images[0], RED)


# --- colour modes -----------------------------------------------------------------------

def test_greyscale_becomes_three_equal_channels(tmp_path):
    save(solid(77, mode="L"), tmp_path / "grey.png")
    assert_colour(load_one(tmp_path / "grey.png", image_size=8), (77, 77, 77))


def test_rgb_to_one_channel_uses_the_luma_weights(tmp_path):
    save(bands(32, 32, [RED, GREEN]), tmp_path / "rg.png")
    grey = load_one(tmp_path / "rg.png", image_size=32, channels=1)
    assert grey.shape == (1, 32, 32)
    # L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601-2, Pillow's convert("L")), rounded
    assert (grey[0, :, :16] == 76).all() and (grey[0, :, 16:] == 150).all()


def test_alpha_is_laid_over_white(tmp_path):
    pixels = np.zeros((16, 16, 4), np.uint8)
    pixels[:, :8] = (255, 0, 0, 255)    # opaque red
    pixels[:, 8:12] = (0, 0, 255, 0)    # fully transparent blue: white
    pixels[:, 12:] = (0, 0, 255, 128)   # half transparent blue over white
    save(Image.fromarray(pixels), tmp_path / "rgba.png")
    image = load_one(tmp_path / "rgba.png", image_size=16)
    assert_colour(image[:, :, :8], RED)
    assert_colour(image[:, :, 8:12], WHITE)
    assert_colour(image[:, :, 12:], (127, 127, 255), tolerance=1)
    grey = load_one(tmp_path / "rgba.png", image_size=16, channels=1)
    assert (grey[0, :, 8:12] == 255).all() and (grey[0, :, :8] == 76).all()


def test_grey_with_alpha_is_laid_over_white(tmp_path):
    pixels = np.zeros((8, 8, 2), np.uint8)
    pixels[:4] = (30, 255)
    pixels[4:] = (30, 0)
    save(Image.fromarray(pixels, "LA"), tmp_path / "la.png")
    image = load_one(tmp_path / "la.png", image_size=8)
    assert_colour(image[:, :4], (30, 30, 30))
    assert_colour(image[:, 4:], WHITE)


def test_palette_colours_and_transparent_index(tmp_path):
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (3 * 253)
    indices = np.zeros((12, 12), np.uint8)
    indices[:, 4:8] = 1
    indices[:, 8:] = 2
    image = Image.fromarray(indices, "P")
    image.putpalette(palette)
    save(image, tmp_path / "opaque" / "o.png")
    save(image, tmp_path / "transparent" / "t.gif", transparency=2)
    opaque = load_one(tmp_path / "opaque" / "o.png", image_size=12)
    assert_colour(opaque[:, :, :4], RED)
    assert_colour(opaque[:, :, 4:8], GREEN)
    assert_colour(opaque[:, :, 8:], BLUE)
    transparent = load_one(tmp_path / "transparent" / "t.gif", image_size=12)
    assert_colour(transparent[:, :, 4:8], GREEN)
    assert_colour(transparent[:, :, 8:], WHITE)


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 64, 257 * 128, 65535]], np.uint16).repeat(4, axis=0)
    save(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")  # really a 16-bit file
    grey = load_one(tmp_path / "deep.png", image_size=4, channels=1)
    np.testing.assert_array_equal(grey[0], [[0, 64, 128, 255]] * 4)
    assert_colour(load_one(tmp_path / "deep.png", image_size=4)[:, :, 2:3], (128, 128, 128))


def test_exif_orientation_turns_photos_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    save(bands(40, 20, [RED, BLUE]), tmp_path / "photo.jpg", exif=exif, quality=95)
    image = load_one(tmp_path / "photo.jpg", image_size=16)
    # displayed 20 wide x 40 tall, the stored left half (red) on top
    assert_colour(image[:, :6], RED, JPEG_TOLERANCE * 3)
    assert_colour(image[:, 10:], BLUE, JPEG_TOLERANCE * 3)


# --- resize and centre crop -----------------------------------------------------------

@pytest.mark.parametrize("vertical", [True, False])
def test_non_square_images_keep_their_centre(tmp_path, vertical):
    # 96 x 64 landscape (or 64 x 96 portrait): the outer 16-pixel bands are cropped away,
    # so only red and blue survive, split down the middle; squashing would keep green and
    # yellow, and a corner crop would keep green
    long_side, short_side = 96, 64
    size = (long_side, short_side) if vertical else (short_side, long_side)
    image = bands(*size, [GREEN, RED, RED, BLUE, BLUE, YELLOW], vertical=vertical)
    save(image, tmp_path / "wide.png")
    for image_size in (32, 64):
        out = load_one(tmp_path / "wide.png", image_size=image_size)
        out = out if vertical else out.transpose(0, 2, 1)  # make the bands run along the width
        half, margin = image_size // 2, 3  # Lanczos blurs a few pixels either side of an edge
        assert_colour(out[:, :, margin:half - margin], RED)
        assert_colour(out[:, :, half + margin:-margin], BLUE)
        assert out[1].max() < 32  # green and yellow (full green channel) are gone, even at the edges


@pytest.mark.parametrize("long_side, offset", [(80, 8), (67, 2), (65, 0), (66, 1)])
def test_crop_offsets_follow_torchvision(tmp_path, long_side, offset):
    # short side already 64: no resampling, so the crop must be an exact slice, its offset
    # int(round((long - 64) / 2)) with Python's round-half-to-even, as torchvision's CenterCrop
    noise = np.random.default_rng(long_side).integers(0, 256, (64, long_side, 3), dtype=np.uint8)
    save(Image.fromarray(noise), tmp_path / "landscape" / "l.png")
    save(Image.fromarray(noise.transpose(1, 0, 2).copy()), tmp_path / "portrait" / "p.png")
    expected = noise[:, offset:offset + 64].transpose(2, 0, 1)
    np.testing.assert_array_equal(load_one(tmp_path / "landscape" / "l.png"), expected)
    np.testing.assert_array_equal(load_one(tmp_path / "portrait" / "p.png"),
                                  expected.transpose(0, 2, 1))


def test_resize_matches_pillow_lanczos_of_the_shorter_side(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, (50, 90, 3), dtype=np.uint8)
    save(Image.fromarray(noise), tmp_path / "n.png")
    # shorter side 50 -> 32, longer int(32 * 90 / 50) = 57, then columns round(25 / 2) = 12 ..
    reference = np.asarray(Image.fromarray(noise).resize((57, 32), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(load_one(tmp_path / "n.png", image_size=32),
                                  reference[:, 12:44].transpose(2, 0, 1))


def test_small_images_are_upscaled(tmp_path):
    save(bands(10, 8, [RED, BLUE]), tmp_path / "tiny.png")
    out = load_one(tmp_path / "tiny.png", image_size=64)  # 80 x 64, crop columns 8..72
    assert out.shape == (3, 64, 64)
    # an 8x Lanczos upscale rings up to 3 source pixels (24 output pixels) from the edge
    assert_colour(out[:, :, :8], RED, tolerance=16)
    assert_colour(out[:, :, -8:], BLUE, tolerance=16)
    assert (out[0, :, :28] > out[0, :, 36:].max()).all() and (out[2, :, 36:] > out[2, :, :28].max()).all()


# --- order and limit --------------------------------------------------------------------

def make_ordered_folder(root):
    """Files whose grey level encodes their expected position; written out of order."""
    expected = ["a/c/y.png", "a/z.jpg", "a.png", "b/A.png", "b/b.png", "c.bmp"]
    for position in (3, 5, 0, 4, 2, 1):
        save(solid(40 * position, (9, 9), mode="L"), root / expected[position])
    return expected


def test_files_are_taken_in_sorted_order_including_subfolders(tmp_path):
    expected = make_ordered_folder(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in find_image_files(tmp_path)] == expected
    images = load_image_folder(tmp_path, image_size=8, channels=1, quiet=True)
    levels = images.reshape(len(images), -1).mean(axis=1)
    np.testing.assert_allclose(levels, 40 * np.arange(len(expected)), atol=JPEG_TOLERANCE)
    np.testing.assert_array_equal(load_image_folder(str(tmp_path), image_size=8, channels=1,
                                                    quiet=True), images)


def test_limit_takes_the_first_files(tmp_path):
    make_ordered_folder(tmp_path)
    everything = load_image_folder(tmp_path, image_size=8, quiet=True)
    np.testing.assert_array_equal(load_image_folder(tmp_path, image_size=8, limit=2, quiet=True),
                                  everything[:2])
    assert len(load_image_folder(tmp_path, image_size=8, limit=100, quiet=True)) == len(everything)


# --- errors -----------------------------------------------------------------------------

def test_undecodable_file_is_named(tmp_path):
    save(solid(RED), tmp_path / "a.png")
    bad = tmp_path / "sub" / "broken.png"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a PNG at all" * 10)
    with pytest.raises(DataError, match="cannot read image .*broken.png: cannot identify image file"):
        load_image_folder(tmp_path, quiet=True)


def test_truncated_file_is_named(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = save(Image.fromarray(noise), tmp_path / "whole.png").read_bytes()
    (tmp_path / "whole.png").unlink()
    (tmp_path / "cut.png").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(DataError, match="cannot read image .*cut.png: .*truncated"):
        load_image_folder(tmp_path, quiet=True)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match=f"image folder {tmp_path / 'nope'} does not exist"):
        load_image_folder(tmp_path / "nope", quiet=True)


def test_file_instead_of_folder(tmp_path):
    file = save(solid(RED), tmp_path / "a.png")
    with pytest.raises(DataError, match="a.png is not a folder"):
        load_image_folder(file, quiet=True)


def test_folder_without_images_names_path_and_extensions(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.txt").write_text("hello")
    for folder in (tmp_path / "empty", tmp_path / "texts"):
        with pytest.raises(DataError) as info:
            load_image_folder(folder, quiet=True)
        message = str(info.value)
        assert f"no images in {folder}" in message
        assert all(extension in message for extension in IMAGE_EXTENSIONS)


@pytest.mark.parametrize("arguments, problem", [
    ({"channels": 2}, "channels must be 1"), ({"channels": 4}, "channels must be 1"),
    ({"image_size": 0}, "image_size must be a positive"), ({"image_size": 32.0}, "image_size"),
    ({"limit": 0}, "limit must be None or a positive"), ({"limit": 1.5}, "limit")])
def test_bad_arguments(tmp_path, arguments, problem):
    save(solid(RED), tmp_path / "a.png")
    with pytest.raises(ValueError, match=problem):
        load_image_folder(tmp_path, quiet=True, **arguments)


# --- progress bar -----------------------------------------------------------------------

@pytest.mark.parametrize("quiet, env, shown", [(False, None, True), (True, None, False),
                                               (False, "1", False)])
def test_progress_bar(tmp_path, capsys, monkeypatch, quiet, env, shown):
    for i in range(3):
        save(solid(RED), tmp_path / f"{i}.png")
    if env:
        monkeypatch.setenv("SCRATCHGAN_QUIET", env)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # as on a terminal
    load_image_folder(tmp_path, image_size=8, quiet=quiet)
    assert ("3/3" in capsys.readouterr().err) == shown


# --- dataset names for the CLI ------------------------------------------------------------

@pytest.mark.parametrize("spec, parsed", [
    ("mnist", ("idx", "mnist")), ("fashion-mnist", ("idx", "fashion-mnist")),
    ("MNIST", ("idx", "mnist")), ("folder:/data/celeba", ("folder", "/data/celeba")),
    ("folder:~/faces", ("folder", "~/faces")), ("folder:C:/imgs", ("folder", "C:/imgs")),
    ("folder:rel/dir with space", ("folder", "rel/dir with space"))])
def test_parse_dataset_spec(spec, parsed):
    assert parse_dataset_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["cifar10", "folder:", "folder:  ", "", "mnist:x", None])
def test_parse_dataset_spec_rejects_unknown_forms(spec):
    with pytest.raises(ValueError, match="valid forms: mnist, fashion-mnist, or folder:PATH"):
        parse_dataset_spec(spec)
