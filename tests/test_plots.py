"""Tests for scratchgan.plots: grid geometry, every image and plot file, the history CSV,
the spot-the-fake quiz, input validation, atomic saving, and the package's public names."""
import math
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from scratchgan import plots

H, W = 5, 7  # small non-square images catch transposed layouts


def constant_images(values, h=H, w=W):
    """One h x w image per value, every pixel equal to it."""
    return np.stack([np.full((h, w), v, dtype=np.float32) for v in values])


def pixels(path):
    with Image.open(path) as image:
        return np.array(image)


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def has_color(rgb, color, tol=40):
    """True when some pixel is within tol of color (in every channel)."""
    return bool(np.any(np.all(np.abs(rgb[..., :3].astype(int) - color) <= tol, axis=-1)))


def capture_figures(monkeypatch):
    """Record the Figure each saver writes, to inspect legends and axes."""
    figures = []
    original = plots.curves._save_figure

    def recording(path, fig):
        figures.append(fig)
        return original(path, fig)
    monkeypatch.setattr(plots.curves, "_save_figure", recording)
    return figures


def history(n=120, epochs=True):
    rng = np.random.default_rng(0)
    h = {"d_loss": 1.3 + 0.1 * rng.standard_normal(n), "g_loss": 0.8 + 0.1 * rng.standard_normal(n),
         "d_real": rng.uniform(0.5, 0.9, n), "d_fake": rng.uniform(0.1, 0.5, n)}
    if epochs:
        h["epoch"] = np.arange(1, n + 1) / 40
    return h


TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)


# --- image_grid ----------------------------------------------------------------------------

@pytest.mark.parametrize("n, nrow, padding", [(1, None, 2), (10, None, 2), (16, 4, 0), (7, 3, 1), (5, 8, 3)])
def test_grid_size_follows_the_padding_formula(n, nrow, padding):
    grid = plots.image_grid(constant_images(np.linspace(0, 1, n)), nrow=nrow, padding=padding)
    per_row = math.ceil(math.sqrt(n)) if nrow is None else nrow
    rows, cols = math.ceil(n / per_row), min(per_row, n)
    assert grid.dtype == np.uint8
    assert grid.shape == (rows * (H + padding) + padding, cols * (W + padding) + padding)


@pytest.mark.parametrize("pad_value", [1.0, 0.0])
def test_grid_places_tiles_row_major_and_pads_the_rest(pad_value):
    values = [0.1 * k for k in range(7)]
    padding = 2
    grid = plots.image_grid(constant_images(values), nrow=3, padding=padding, pad_value=pad_value)
    covered = np.zeros(grid.shape, dtype=bool)
    for k, value in enumerate(values):
        top, left = padding + (k // 3) * (H + padding), padding + (k % 3) * (W + padding)
        tile = grid[top:top + H, left:left + W]
        assert np.all(tile == round(value * 255)), f"tile {k}"
        covered[top:top + H, left:left + W] = True
    assert np.all(grid[~covered] == round(pad_value * 255))  # padding and the 2 empty slots


def test_grid_scales_to_uint8_and_clips():
    grid = plots.image_grid(constant_images([-0.5, 0.0, 0.5, 1.0, 1.7]), nrow=5, padding=0)
    assert grid.dtype == np.uint8
    assert list(grid[0, ::W]) == [0, 0, 128, 255, 255]


def test_grid_of_grey_channel_images_is_2d_and_rgb_is_3d():
    grey = constant_images([0.2, 0.4, 0.6])
    plain = plots.image_grid(grey, nrow=3)
    assert plain.ndim == 2
    np.testing.assert_array_equal(plots.image_grid(grey[:, None], nrow=3), plain)

    rgb = np.stack([grey, 1 - grey, np.full_like(grey, 0.5)], axis=1)  # (N, 3, H, W)
    colored = plots.image_grid(rgb, nrow=3, padding=2)
    assert colored.shape == plain.shape + (3,)
    for k, value in enumerate([0.2, 0.4, 0.6]):
        left = 2 + k * (W + 2)
        assert tuple(colored[2, left]) == (round(value * 255), round((1 - value) * 255), 128)


def test_grid_reads_flat_images_with_shape_row_major():
    images = np.random.default_rng(1).random((6, H, W), dtype=np.float32)
    flat = images.reshape(6, H * W)
    np.testing.assert_array_equal(plots.image_grid(flat, shape=(H, W)), plots.image_grid(images))
    rgb = np.random.default_rng(2).random((4, 3, H, W), dtype=np.float32)
    np.testing.assert_array_equal(plots.image_grid(rgb.reshape(4, -1), shape=(3, H, W)), plots.image_grid(rgb))


@pytest.mark.parametrize("images, kwargs, problem", [
    (np.zeros(10), {}, "got shape"),
    (np.zeros((2, 1, 1, 4, 4)), {}, "got shape"),
    (np.zeros((2, 2, 4, 4)), {}, "2 channels"),
    (np.zeros((2, 16)), {}, "pass shape"),
    (np.zeros((2, 16)), {"shape": (5, 5)}, "cannot view"),
    (np.zeros((0, 4, 4)), {}, "no images"),
    (np.full((2, 4, 4), np.nan), {}, "NaN"),
    (np.array([["a"]]), {}, "expected numbers"),
    (np.zeros((2, 4, 4)), {"nrow": 0}, "nrow"),
    (np.zeros((2, 4, 4)), {"padding": -1}, "padding"),
    (np.zeros((2, 4, 4)), {"pad_value": 2.0}, "pad_value"),
])
def test_grid_rejects_bad_input(images, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        plots.image_grid(images, **kwargs)


@pytest.mark.gpu
def test_grid_accepts_cupy_arrays(cupy):
    images = np.random.default_rng(3).random((5, 1, H, W), dtype=np.float32)
    np.testing.assert_array_equal(plots.image_grid(cupy.asarray(images)), plots.image_grid(images))


# --- image files ---------------------------------------------------------------------------

def test_save_grid_writes_the_upscaled_grid(tmp_path):
    images = np.random.default_rng(4).random((10, H, W), dtype=np.float32)
    path = plots.save_grid(tmp_path / "run" / "samples.png", images, nrow=5, scale=3, padding=1)
    grid = plots.image_grid(images, nrow=5, padding=1)
    assert png_size(path) == (grid.shape[1] * 3, grid.shape[0] * 3)
    np.testing.assert_array_equal(pixels(path), grid.repeat(3, axis=0).repeat(3, axis=1))
    with pytest.raises(ValueError, match="scale"):
        plots.save_grid(tmp_path / "bad.png", images, scale=0)
    assert not (tmp_path / "bad.png").exists()


def test_save_progress_draws_rows_and_epoch_labels(tmp_path):
    rows = [constant_images(np.full(15, 0.1 * e)) for e in range(4)]
    path = plots.save_progress(tmp_path / "progress.png", rows, scale=2, epochs=[1, 5, 10, 20])
    out = pixels(path)
    strip = plots.image_grid(np.concatenate(rows), nrow=15).repeat(2, 0).repeat(2, 1)  # a row per epoch
    label_width = out.shape[1] - strip.shape[1]
    assert out.shape[0] == strip.shape[0] and label_width > 0
    np.testing.assert_array_equal(out[:, label_width:], strip)
    for e in range(4):  # some ink in the label column level with each row of tiles
        top = (2 + e * (H + 2)) * 2
        assert out[top:top + 2 * H, :label_width].min() < 128, f"no label for row {e}"
    with pytest.raises(ValueError, match="epochs has 2 entries"):
        plots.save_progress(tmp_path / "p2.png", rows, epochs=[1, 2])
    with pytest.raises(ValueError, match=r"rows\[1\] has 3x3 images"):
        plots.save_progress(tmp_path / "p3.png", [rows[0], np.zeros((15, 3, 3))])


def test_save_progress_gif_has_one_looping_frame_per_epoch(tmp_path):
    batches = [np.random.default_rng(e).random((9, H, W), dtype=np.float32) for e in range(5)]
    path = plots.save_progress_gif(tmp_path / "progress.gif", batches, nrow=3, duration_ms=250, scale=2)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
        assert gif.info["loop"] == 0 and gif.info["duration"] == 250
        for e, batch in enumerate(batches):
            gif.seek(e)
            frame = np.array(gif.convert("L"))
            grid = plots.image_grid(batch, nrow=3).repeat(2, 0).repeat(2, 1)
            assert frame.shape[0] > grid.shape[0]  # caption strip on top
            left = (frame.shape[1] - grid.shape[1]) // 2
            np.testing.assert_array_equal(frame[-grid.shape[0]:, left:left + grid.shape[1]], grid)


def test_save_progress_gif_handles_rgb(tmp_path):
    batches = [np.random.default_rng(e).random((4, 3, H, W), dtype=np.float32) for e in range(3)]
    path = plots.save_progress_gif(tmp_path / "rgb.gif", batches)
    with Image.open(path) as gif:
        assert gif.n_frames == 3


def test_save_image_strips_with_and_without_labels(tmp_path):
    strips = [constant_images(np.linspace(0, 1, 8)), constant_images(np.linspace(1, 0, 6))]
    plain = plots.save_image_strips(tmp_path / "strips.png", strips, scale=2)
    expected = (2 * (8 * (W + 2) + 2), 2 * (2 * (H + 2) + 2))  # width from the longer strip
    assert png_size(plain) == expected
    labelled = plots.save_image_strips(tmp_path / "labelled.png", strips, scale=2, labels=["a -> b", "c -> d"])
    width, height = png_size(labelled)
    assert height == expected[1] and width > expected[0]
    with pytest.raises(ValueError, match="labels has 1 entries"):
        plots.save_image_strips(tmp_path / "bad.png", strips, labels=["only one"])


def test_save_side_by_side_puts_titled_panels_in_a_row(tmp_path):
    grey = constant_images(np.linspace(0, 1, 4), 28, 28)
    rgb = np.random.default_rng(5).random((9, 3, 28, 28), dtype=np.float32)
    path = plots.save_side_by_side(tmp_path / "side.png", {"latent 2": grey, "latent 100": rgb}, scale=2)
    grids = [plots.image_grid(x).repeat(2, 0).repeat(2, 1) for x in (grey, rgb)]
    out = pixels(path)
    assert out.ndim == 3  # one RGB panel makes the whole picture RGB
    assert out.shape[1] == grids[0].shape[1] + plots.images.PANEL_GAP + grids[1].shape[1]
    title = out.shape[0] - grids[1].shape[0]  # the tallest panel fills the height below its title
    assert title > 0
    left = grids[0].shape[1] + plots.images.PANEL_GAP
    np.testing.assert_array_equal(out[title:, left:], grids[1])
    np.testing.assert_array_equal(out[title:title + grids[0].shape[0], :grids[0].shape[1], 1], grids[0])
    with pytest.raises(ValueError, match="non-empty dict"):
        plots.save_side_by_side(tmp_path / "bad.png", {})


# --- spot the fake -------------------------------------------------------------------------

def test_spot_the_fake_mixes_the_right_number_of_fakes_at_random_places():
    real = constant_images(range(50))          # real image i is all i
    fake = constant_images(range(100, 140))    # fake image j is all 100 + j
    images, is_fake = plots.spot_the_fake(real, fake, n=36, fake_fraction=1 / 3, rng=np.random.default_rng(0))
    assert images.shape == (36, H, W) and is_fake.dtype == bool and is_fake.sum() == 12
    ids = images[:, 0, 0]
    assert np.all(ids[is_fake] >= 100) and np.all(ids[~is_fake] < 100)
    assert len(set(ids)) == 36  # no image used twice
    again, mask_again = plots.spot_the_fake(real, fake, n=36, rng=0)
    other, mask_other = plots.spot_the_fake(real, fake, n=36, rng=1)
    assert np.array_equal(plots.spot_the_fake(real, fake, n=36, rng=0)[1], mask_again)
    assert not np.array_equal(mask_again, mask_other)
    assert not np.array_equal(again[~mask_again], other[~mask_other])  # reals drawn at random too


def test_spot_the_fake_extreme_fractions_and_errors():
    real, fake = constant_images(range(10)), constant_images(range(100, 110))
    assert plots.spot_the_fake(real, fake, n=10, fake_fraction=0, rng=0)[1].sum() == 0
    assert plots.spot_the_fake(real, fake, n=10, fake_fraction=1, rng=0)[1].all()
    with pytest.raises(ValueError, match="fake has 10 images but the quiz needs 12"):
        plots.spot_the_fake(real, fake, n=36)
    with pytest.raises(ValueError, match="same layout"):
        plots.spot_the_fake(real, np.zeros((10, H * W)), n=6)
    with pytest.raises(ValueError, match="fake_fraction"):
        plots.spot_the_fake(real, fake, n=6, fake_fraction=1.5)


def test_save_spot_the_fake_frames_fakes_red_and_reals_green(tmp_path):
    size = 28
    images = np.random.default_rng(6).random((12, 1, size, size), dtype=np.float32)
    is_fake = np.zeros(12, dtype=bool)
    is_fake[[0, 5, 7]] = True
    quiz_path, key_path = plots.save_spot_the_fake(tmp_path / "quiz.png", tmp_path / "answers.png",
                                                   images, is_fake, nrow=4, scale=2)
    grid = plots.image_grid(images, nrow=4, padding=plots.quiz.QUIZ_PADDING).repeat(2, 0).repeat(2, 1)
    quiz, key = pixels(quiz_path), pixels(key_path)
    assert quiz.shape[0] > grid.shape[0] and key.shape[0] > grid.shape[0]  # captions below
    quiz_left = (quiz.shape[1] - grid.shape[1]) // 2  # the grid is centred under a wider caption
    key_left = (key.shape[1] - grid.shape[1]) // 2
    np.testing.assert_array_equal(quiz[:grid.shape[0], quiz_left:quiz_left + grid.shape[1]], grid)
    key = key[:grid.shape[0], key_left:key_left + grid.shape[1]]
    pad = plots.quiz.QUIZ_PADDING
    for i in range(12):
        top, left = 2 * (pad + (i // 4) * (size + pad)), 2 * (pad + (i % 4) * (size + pad))
        expected = plots.quiz.FAKE_COLOR if is_fake[i] else plots.quiz.REAL_COLOR
        assert tuple(key[top - 1, left - 1]) == expected, f"tile {i} border"
        assert tuple(key[top + 2 * size, left + 2 * size]) == expected, f"tile {i} border"
        assert tuple(key[top - 2 * plots.quiz.QUIZ_BORDER - 1, left]) == (255, 255, 255), "gap between frames"
        tile = np.s_[top:top + 2 * size, left:left + 2 * size]
        np.testing.assert_array_equal(key[tile], np.repeat(grid[tile][..., None], 3, -1))  # image untouched
    with pytest.raises(ValueError, match="boolean mask of shape"):
        plots.save_spot_the_fake(tmp_path / "q.png", tmp_path / "a.png", images, is_fake[:5])


# --- curves --------------------------------------------------------------------------------

def naive_moving_average(x, window):
    return np.array([np.mean(x[max(0, i - window + 1):i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("window", [1, 3, 50, 500])
def test_moving_average_matches_a_naive_loop(window):
    x = np.random.default_rng(window).standard_normal(300).astype(np.float32) * 3 + 10
    smoothed = plots.moving_average(x, window)
    assert smoothed.shape == x.shape and np.isfinite(smoothed).all()
    np.testing.assert_allclose(smoothed, naive_moving_average(x.astype(np.float64), window), rtol=1e-12)


def test_moving_average_skips_non_finite_values():
    x = np.array([1.0, np.nan, 3.0, np.inf, np.nan, np.nan, 5.0])
    np.testing.assert_allclose(plots.moving_average(x, 2), [1, 1, 3, 3, np.nan, np.nan, 5])
    with pytest.raises(ValueError, match="window"):
        plots.moving_average(x, 0)
    with pytest.raises(ValueError, match="1-D"):
        plots.moving_average(np.zeros((3, 3)), 2)


def test_save_loss_plot_draws_both_curves_and_an_epoch_axis(tmp_path, monkeypatch):
    figures = capture_figures(monkeypatch)
    path = plots.save_loss_plot(tmp_path / "loss.png", history(), smooth=10)
    assert png_size(path) == (plots.curves.FIGSIZE[0] * plots.curves.DPI, plots.curves.FIGSIZE[1] * plots.curves.DPI)
    rgb = pixels(path)
    assert has_color(rgb, TAB_BLUE, tol=10) and has_color(rgb, TAB_ORANGE, tol=10)
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "D loss (mean of last 10 steps)", "G loss (mean of last 10 steps)"]
    (epoch_axis,) = ax.child_axes
    assert epoch_axis.get_xlabel() == "epoch"
    assert epoch_axis.get_xlim() == pytest.approx(np.array(ax.get_xlim()) / 40)  # 40 steps per epoch


def test_save_loss_plot_without_epochs_or_smoothing_and_with_a_diverged_step(tmp_path, monkeypatch):
    figures = capture_figures(monkeypatch)
    h = history(epochs=False)
    h["g_loss"][50] = np.nan
    plots.save_loss_plot(tmp_path / "loss.png", h, smooth=0)
    ax = figures[0].axes[0]
    assert not ax.child_axes and len(ax.lines) == 2


@pytest.mark.parametrize("change, problem", [
    (lambda h: h.update(g_loss=h["g_loss"][:-1]), "different lengths"),
    (lambda h: h.pop("g_loss"), "no 'g_loss' column"),
    (lambda h: h.update(epoch=h["epoch"][::-1]), "non-decreasing"),
    (lambda h: h.update(d_loss=[], g_loss=[], epoch=[]), "empty"),
    (lambda h: h.update(d_loss=np.zeros((120, 2))), "1-D"),
])
def test_save_loss_plot_rejects_bad_history(tmp_path, change, problem):
    h = history()
    change(h)
    with pytest.raises(ValueError, match=problem):
        plots.save_loss_plot(tmp_path / "loss.png", h)
    assert list(tmp_path.iterdir()) == []


def test_save_d_outputs_plot(tmp_path, monkeypatch):
    figures = capture_figures(monkeypatch)
    path = plots.save_d_outputs_plot(tmp_path / "d.png", history())
    assert png_size(path) == (800, 450)
    ax = figures[0].axes[0]
    assert ax.get_ylim() == (0, 1)
    assert any(line.get_linestyle() == "--" and set(line.get_ydata()) == {0.5} for line in ax.lines)
    bad = history()
    bad["d_fake"][3] = 2.5  # a logit passed by mistake
    with pytest.raises(ValueError, match=r"history\['d_fake'\] must hold probabilities"):
        plots.save_d_outputs_plot(tmp_path / "bad.png", bad)


def test_save_accuracy_plot_reports_means(tmp_path, monkeypatch):
    figures = capture_figures(monkeypatch)
    acc_real, acc_fake = np.array([1.0, 0.9, 0.8, 0.9]), [0.5, 0.75, 0.25]
    path = plots.save_accuracy_plot(tmp_path / "acc.png", acc_real, acc_fake)
    assert png_size(path) == (800, 450)
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert legend == ["real images (mean 0.900)", "generated images (mean 0.500)"]
    with pytest.raises(ValueError, match="must be in"):
        plots.save_accuracy_plot(tmp_path / "bad.png", [1.2], [0.5])
    with pytest.raises(ValueError, match="no accuracies"):
        plots.save_accuracy_plot(tmp_path / "bad.png", [], [0.5])


# --- history CSV ---------------------------------------------------------------------------

def test_history_csv_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(7)
    original = {
        "step": np.arange(1, 201),
        "epoch": [int(i) // 50 for i in range(200)],
        "d_loss": rng.standard_normal(200) * 10.0 ** rng.integers(-30, 30, 200),
        "g_loss32": rng.standard_normal(200).astype(np.float32),
        "odd": np.r_[[np.nan, np.inf, -np.inf, 0.0, -0.0, 1 / 3, 5e-324, 1.7976931348623157e308],
                     np.zeros(192)],
    }
    path = plots.write_history_csv(tmp_path / "history.csv", original)
    back = plots.read_history_csv(path)
    assert list(back) == list(original)
    assert back["step"].dtype == np.int64 and back["epoch"].dtype == np.int64
    np.testing.assert_array_equal(back["step"], original["step"])
    np.testing.assert_array_equal(back["epoch"], original["epoch"])
    assert back["d_loss"].dtype == np.float64
    assert np.array_equal(back["d_loss"], original["d_loss"])
    assert np.array_equal(back["g_loss32"].astype(np.float32), original["g_loss32"])
    assert np.array_equal(back["g_loss32"], original["g_loss32"].astype(np.float64))
    assert np.array_equal(back["odd"], original["odd"], equal_nan=True)
    assert np.signbit(back["odd"][4])  # -0.0 keeps its sign


def test_history_csv_errors(tmp_path):
    with pytest.raises(ValueError, match="different lengths"):
        plots.write_history_csv(tmp_path / "h.csv", {"a": [1, 2], "b": [1.0]})
    with pytest.raises(ValueError, match=r"history\['a'\] must be a 1-D sequence of numbers"):
        plots.write_history_csv(tmp_path / "h.csv", {"a": ["x", "y"]})
    assert not (tmp_path / "h.csv").exists()
    (tmp_path / "bad.csv").write_text("a,b\n1,2.5\n3,oops\n")
    with pytest.raises(ValueError, match="column 'b' holds 'oops'"):
        plots.read_history_csv(tmp_path / "bad.csv")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match="line 3: 1 fields"):
        plots.read_history_csv(tmp_path / "ragged.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty file"):
        plots.read_history_csv(tmp_path / "empty.csv")


# --- atomic saving -------------------------------------------------------------------------

def fail_midway(monkeypatch, cls, method):
    """Make cls.method write a few bytes to its file argument and then crash."""
    def broken(self, f, *args, **kwargs):
        f.write(b"half a file")
        raise OSError("disk full")
    monkeypatch.setattr(cls, method, broken)


@pytest.mark.parametrize("save, cls, method", [
    (lambda p: plots.save_grid(p, np.zeros((4, H, W))), Image.Image, "save"),
    (lambda p: plots.save_progress_gif(p, [np.zeros((4, H, W))] * 2), Image.Image, "save"),
    (lambda p: plots.save_loss_plot(p, history()), Figure, "savefig"),
])
def test_a_failing_save_leaves_no_partial_file(tmp_path, monkeypatch, save, cls, method):
    fail_midway(monkeypatch, cls, method)
    old = tmp_path / "old.out"
    old.write_bytes(b"previous run")
    with pytest.raises(OSError, match="disk full"):
        save(old)
    with pytest.raises(OSError, match="disk full"):
        save(tmp_path / "new.out")
    assert old.read_bytes() == b"previous run"
    assert [p.name for p in tmp_path.iterdir()] == ["old.out"]  # no new file, no .part left over


def test_saving_plots_does_not_touch_pyplot(tmp_path):
    script = ("import sys, numpy as np; from scratchgan import plots; "
              f"plots.save_d_outputs_plot({str(tmp_path / 'd.png')!r}, "
              "{'d_real': np.full(5, 0.7), 'd_fake': np.full(5, 0.3)}); "
              "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert png_size(tmp_path / "d.png") == (800, 450)


def test_save_curve_panels_draws_every_panel_and_checks_input(tmp_path):
    steps = np.arange(100)
    panels = {"D loss": {"z=1": np.sin(steps) + 2, "z=100": np.cos(steps) + 2},
              "grad norm": {"minimax": np.exp(-steps / 20), "non-saturating": np.ones(100)},
              "D(x)": {"run": np.full(100, 0.7)}}
    path = plots.save_curve_panels(tmp_path / "panels.png", panels, smooth=5, log_panels=("grad norm",),
                                   title="comparison")
    with Image.open(path) as im:
        assert im.size == (2 * 550, 2 * 360)  # 2 columns x 2 rows of 5.5 x 3.6 inch panels at 100 dpi
    with pytest.raises(ValueError, match="non-empty"):
        plots.save_curve_panels(tmp_path / "bad.png", {})
    with pytest.raises(ValueError, match="panel 'x'"):
        plots.save_curve_panels(tmp_path / "bad.png", {"x": {}})
    assert not (tmp_path / "bad.png").exists()


def test_the_package_re_exports_each_module_public_function():
    modules = (plots.images, plots.curves, plots.quiz, plots.history)
    assert sorted(plots.__all__) == sorted(name for module in modules for name in module.__all__)
    for module in modules:
        for name in module.__all__:
            assert getattr(plots, name) is getattr(module, name), name
