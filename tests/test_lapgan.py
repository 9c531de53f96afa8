"""LAPGAN (issue 14): the Laplacian pyramid and its inverse, the level models' shapes at 28 and 32, the
sampler's cascade (with stub generators returning a known pyramid), the trainer's wiring (every level on
its own slice of the real pyramid; G_l's gradient through D_l against finite differences in float64),
option errors before any work, and (slow) whole runs: every output written, `scratchgan sample` and
`scratchgan evaluate` on the checkpoint, a 32x32 folder run, and a resumed run equal to the straight one."""
import json

import numpy as np
import pytest
from PIL import Image

from scratchgan import backend
from scratchgan import layers as L
from scratchgan.cli import main
from scratchgan.gan import Checkpoint
from scratchgan.gan.lapgan import LAPGANTrainer, collapse_pyramid, laplacian_pyramid, level_sizes, levels_rows
from scratchgan.gan.multiscale import upscale_nearest
from scratchgan.gan.recipes import get_recipe
from scratchgan.gan.run import train_run
from scratchgan.gradcheck import numeric_gradient, rel_error
from scratchgan.layers.base import Layer

from realdata import MNIST_DIR, needs_mnist
from test_run import assert_same_checkpoints, digits

TINY = dict(z_dim=4, ngf=2, ndf=2, batch_size=8, seed=1)


def _setup(size=28, channels=1, **options):
    recipe = get_recipe("lapgan")
    return recipe.setup(recipe.options(**{**TINY, **options}), (channels, size, size))


# -- the pyramid ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size, sides", [(28, (7, 14, 28)), (32, (8, 16, 32))])
def test_pyramid_levels_are_block_means_and_residuals_the_detail_upsampling_misses(size, sides):
    x = np.random.default_rng(0).standard_normal((3, 2, size, size))
    images, residuals = laplacian_pyramid(x)
    assert level_sizes(size) == sides and [im.shape[-1] for im in images] == list(sides)
    assert images[-1] is x
    s = size // sides[0]
    np.testing.assert_allclose(images[0], x.reshape(3, 2, sides[0], s, sides[0], s).mean(axis=(3, 5)), rtol=1e-12)
    coarse_up = images[0].repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_allclose(residuals[0], images[1] - coarse_up, rtol=0, atol=0)
    # each residual has zero mean over every 2x2 block: it is exactly what the block mean loses
    assert np.abs(residuals[1].reshape(3, 2, size // 2, 2, size // 2, 2).mean(axis=(3, 5))).max() < 1e-12


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_collapsing_the_pyramid_gives_the_image_back(dtype, tolerance):
    x = np.random.default_rng(1).uniform(-1, 1, (4, 3, 32, 32)).astype(dtype)
    images, residuals = laplacian_pyramid(x)
    back = collapse_pyramid(images[0], residuals)
    assert back.dtype == dtype and np.abs(back - x).max() < tolerance
    np.testing.assert_allclose(collapse_pyramid(images[0], residuals[:1]), images[1], atol=tolerance)


# -- models ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, channels", [(28, 1), (32, 1), (32, 3)])
def test_level_models_have_the_pyramids_shapes(size, channels):
    setup = _setup(size, channels)
    G, D = setup.G, setup.D
    sides = level_sizes(size)
    assert G.sizes == sides and G.noise_size == 4 + sides[1] ** 2 + sides[2] ** 2
    assert setup.config.z_dim == G.noise_size and setup.config.noise_shape == ()
    n = 3
    noise = G.split_noise(np.random.default_rng(0).standard_normal((n, G.noise_size)).astype(np.float32))
    assert [p.shape for p in noise] == [(n, 4)] + [(n, 1, s, s) for s in sides[1:]]
    coarse = G.levels[0].forward(noise[0], train=False)
    assert coarse.shape == (n, channels, sides[0], sides[0]) and np.abs(coarse).max() <= 1
    assert D.levels[0].forward(coarse, train=False).shape == (n, 1)
    for level, side in enumerate(sides[1:], start=1):
        cond = np.zeros((n, channels, side, side), np.float32)
        residual = G.levels[level].forward((noise[level], cond), train=False)
        assert residual.shape == (n, channels, side, side)
        assert D.levels[level].forward((cond + residual, cond), train=False).shape == (n, 1)
    assert G.forward(np.zeros((n, G.noise_size), np.float32), train=False).shape == (n, channels, size, size)


def test_the_cascade_refuses_wrong_noise_and_training_passes():
    G = _setup().G
    with pytest.raises(ValueError, match=r"expected noise of shape \(N, 984\) \(z 4 \+ a plane per finer level, "
                                         r"14x14 \+ 28x28\), got \(2, 100\)"):
        G.forward(np.zeros((2, 100), np.float32), train=False)
    with pytest.raises(RuntimeError, match="samples only"):
        G.forward(np.zeros((2, G.noise_size), np.float32), train=True)
    with pytest.raises(TypeError, match="each level runs on its own input"):
        _setup().D.forward(np.zeros((2, 1, 28, 28), np.float32))


# -- the sampler's cascade --------------------------------------------------------------------------
class _Known(Layer):
    """A stand-in generator: returns ``out`` (its slice of a known pyramid); records what it was given."""

    def __init__(self, out):
        super().__init__()
        self.out, self.seen = out, []

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        self.seen.append(x)
        return self.out


@pytest.mark.parametrize("size", [28, 32])
def test_the_sampler_runs_the_cascade_coarse_image_upsampled_plus_each_residual(size):
    x = np.random.default_rng(2).uniform(-1, 1, (2, 1, size, size))
    images, residuals = laplacian_pyramid(x)
    G = _setup(size).G.to(dtype=np.float64)
    G.levels = [_Known(images[0])] + [_Known(r) for r in residuals]
    z = np.random.default_rng(3).standard_normal((2, G.noise_size))
    np.testing.assert_allclose(G.forward(z, train=False), x, atol=1e-14)
    noise = G.split_noise(z)
    assert G.levels[0].seen[0] is not None and np.array_equal(G.levels[0].seen[0], noise[0])
    for level in (1, 2):   # G_l is given (its noise plane, the upsampled image the cascade has so far)
        plane, cond = G.levels[level].seen[0]
        assert np.array_equal(plane, noise[level])
        np.testing.assert_allclose(cond, upscale_nearest(images[level - 1]), atol=1e-14)
    stages = G.stages(z)
    assert [s["image"].shape[-1] for s in stages] == list(G.sizes)
    np.testing.assert_allclose(stages[1]["residual"], residuals[0], atol=0)
    G.output_size = G.sizes[1]   # scratchgan sample --resolution 14 (16)
    np.testing.assert_allclose(G.forward(z, train=False), images[1], atol=1e-14)


def test_levels_figure_rows_show_each_level_upsampled_residual_and_sum():
    G = _setup().G
    rows, labels = levels_rows(G, np.random.default_rng(0).standard_normal((5, G.noise_size)).astype(np.float32))
    assert labels == ["7x7: G0(z)", "14x14: upsampled", "14x14: + G1 residual", "14x14: sum",
                      "28x28: upsampled", "28x28: + G2 residual", "28x28: sum"]
    assert all(r.shape == (5, 1, 28, 28) and 0 <= r.min() and r.max() <= 1 for r in rows)
    np.testing.assert_array_equal(rows[0], rows[1])   # u(x_0) at 14, enlarged to 28, is x_0 enlarged


# -- the trainer ----------------------------------------------------------------------------------
def _trainer(setup):
    return LAPGANTrainer.from_setup(setup)


def test_each_level_trains_on_its_own_slice_of_the_real_pyramid():
    setup = _setup()
    trainer = _trainer(setup)
    calls = {level: [] for level in range(3)}
    for level, D in enumerate(setup.D.levels):
        def spy(x, train=None, keep_cache=None, *, grad=None, _D=D, _level=level, _forward=type(D).forward):
            calls[_level].append(x)
            return _forward(_D, x, train=train, keep_cache=keep_cache)
        D.forward = spy
    batch = np.random.default_rng(4).uniform(-1, 1, (8, 1, 28, 28)).astype(np.float32)
    params = {name: layer.params[key].copy() for name, layer, key in setup.G.named_parameters()}
    trainer.train_step(batch)
    images, _ = laplacian_pyramid(batch)
    assert np.array_equal(calls[0][0], images[0])                           # D_0: real 7x7, then G_0's fake
    assert calls[0][1].shape == (8, 1, 7, 7) and not np.array_equal(calls[0][1], images[0])
    for level in (1, 2):                                                    # D_l: (x_l, u(x_{l-1})), then the fake
        (real, cond), (fake, fake_cond) = calls[level][:2]
        assert np.array_equal(real, images[level]) and np.array_equal(cond, upscale_nearest(images[level - 1]))
        assert fake_cond is cond and fake.shape == real.shape and not np.array_equal(fake, real)
    assert [len(c) for c in calls.values()] == [3, 3, 3]                    # real, fake, and the G step's fake
    changed = {name.split(".")[0] for name, layer, key in setup.G.named_parameters()
               if not np.array_equal(layer.params[key], params[name])}
    assert changed == {"level0", "level1", "level2"}
    assert trainer.d_steps == trainer.g_steps == 1
    assert len(trainer.history["d_loss"]) == 1
    total = sum(trainer.history[f"d_loss_{s}"][0] for s in (7, 14, 28))
    assert trainer.history["d_loss"][0] == pytest.approx(total, rel=1e-6)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_a_levels_generator_gradient_through_its_discriminator_matches_finite_differences(level):
    """G_l's gradient as the trainer computes it (non-saturating loss of D_l on u(x_{l-1}) + G_l(n_l, u(x_{l-1})),
    conditioned on u(x_{l-1})), float64, against central differences of every parameter of G_l. The models'
    ReLUs are swapped for tanh: with thousands of ReLU inputs a difference quotient crosses kinks; the check
    is of the trainer's wiring (the residual's gradient, D's own switched off), the layers have theirs. The
    error is measured against each array's largest entry (normwise): G_0's Dense weight has entries near 0 whose
    entry-wise relative error is the difference quotient's rounding (about 1e-12 absolute, on entries of 1e-2)."""
    backend.set_default_dtype(np.float64)
    setup = _setup(ngf=2, ndf=2)
    trainer = _trainer(setup)
    G, D = setup.G.levels[level], setup.D.levels[level]
    for model in (G, D):   # smooth activations: no kink for a difference quotient to cross
        model.layers = [L.Tanh() if isinstance(layer, (L.ReLU, L.LeakyReLU)) else layer for layer in model.layers]
    rng = np.random.default_rng(5)
    for _, layer, key in G.named_parameters() + D.named_parameters():   # weights of order 1, not DCGAN's 0.02,
        layer.params[key] = rng.normal(0, 0.3, layer.params[key].shape)   # which a step h = 1e-3 would dwarf
    side = setup.G.sizes[level]
    cond = None if level == 0 else upscale_nearest(rng.uniform(-1, 1, (8, 1, side // 2, side // 2)))
    noise = rng.standard_normal((8, 4)) if level == 0 else rng.standard_normal((8, 1, side, side))

    def loss():
        fake = G.forward(noise, train=True, keep_cache=False) if level == 0 else \
            cond + G.forward((noise, cond), train=True, keep_cache=False)
        out = D.forward(fake if level == 0 else (fake, cond), train=True, keep_cache=False)
        return np.array(trainer.objective.g_loss(out, None)[0])

    setup.G.zero_grad()
    fake = trainer._generate(level, noise, cond)
    value = trainer._generator_level(level, fake, cond)
    assert float(value) == pytest.approx(float(loss()), rel=1e-12)
    for name, layer, key in G.named_parameters():
        numeric = numeric_gradient(loss, layer.params[key])
        analytic = layer.grads[key]   # errors against the array's largest entry: a few entries are near 0
        assert np.abs(analytic - numeric).max() < 1e-8 * np.abs(numeric).max(), (name, rel_error(analytic, numeric))
    assert all(not layer.grads[key].any() for _, layer, key in D.named_parameters())   # D's own: switched off


# -- options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, match", [
    ({"ngf": 0}, "option ngf must be an integer >= 1"), ({"z_dim": 0}, "option z_dim"),
    ({"lr": -1.0}, "option lr"), ({"k": 2}, r"recipe 'lapgan' has no option\(s\) \['k'\]"),
    ({"loss": "hinge"}, "option loss must be one of non-saturating, minimax")])
def test_bad_options_are_refused_before_any_work(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        train_run("lapgan", tmp_path / "run", digits(16), quiet=True, evaluate=False, **{**TINY, **options})
    assert not (tmp_path / "run").exists()


def test_only_28_and_32_pixel_squares_make_a_pyramid(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"lapgan builds pyramids of square images of size 28 or 32"):
        get_recipe("lapgan").setup(get_recipe("lapgan").options(), (1, 16, 16))
    assert main(["train", "lapgan", "--dataset", f"folder:{tmp_path / 'none'}", "--out", str(tmp_path / "run")]) == 2
    assert "lapgan supports images of size 28, 32, not 64 (--image-size)" in capsys.readouterr().err


# -- whole runs (slow) ----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_writes_every_output_and_samples_its_cascade(tmp_path, capsys):
    out = tmp_path / "run"
    trainer = train_run("lapgan", out, digits(40), epochs=2, quiet=True, evaluate=False, **TINY)
    assert trainer.d_steps == trainer.g_steps == 10
    for name in ("checkpoint.npz", "history.csv", "loss.png", "d_outputs.png", "progress.png", "progress.gif",
                 "samples.png", "spot_the_fake.png", "spot_the_fake_answers.png", "summary.json", "levels.png"):
        assert (out / name).stat().st_size > 0, name
    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 3
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert {"d_loss", "g_loss", "d_loss_7", "g_loss_14", "d_real_28", "acc_fake_28"} <= set(header)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"] == "lapgan" and "g_loss_28" in summary["final"]
    with Image.open(out / "levels.png") as levels:
        assert levels.height > 7 * 28

    ckpt = str(out / "checkpoint.npz")
    assert main(["sample", ckpt, "-n", "6", "-o", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (6, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    np.testing.assert_array_equal(samples, np.load(tmp_path / "s.npy"))
    assert main(["sample", ckpt, "-n", "6", "-o", str(tmp_path / "s.png")]) == 0
    assert main(["sample", ckpt, "-n", "4", "--resolution", "7", "-o", str(tmp_path / "s7.npy")]) == 0
    assert np.load(tmp_path / "s7.npy").shape == (4, 7, 7)
    capsys.readouterr()
    assert main(["sample", ckpt, "-n", "4", "--resolution", "8", "-o", str(tmp_path / "bad.npy")]) == 2
    assert "--resolution 8: a lapgan cascade has the levels 7, 14, 28" in capsys.readouterr().err


@pytest.mark.slow
def test_a_32_pixel_folder_run_builds_the_8_16_32_pyramid(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "lapgan", "--dataset", f"folder:{folder}", "--image-size", "32", "--channels", "3",
                 "--epochs", "1", "--batch-size", "8", "--z-dim", "4", "--ngf", "2", "--ndf", "2", "--quiet",
                 "--out", str(out)]) == 0
    assert Checkpoint(out / "checkpoint.npz").meta["image_shape"] == [3, 32, 32]
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "3", "-o", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 3, 32, 32)


@pytest.mark.slow
def test_a_run_stopped_and_resumed_equals_the_straight_run_bit_for_bit(tmp_path):
    train_run("lapgan", tmp_path / "straight", digits(40), epochs=3, quiet=True, evaluate=False, **TINY)
    train_run("lapgan", tmp_path / "resumed", digits(40), epochs=1, quiet=True, evaluate=False, **TINY)
    train_run("lapgan", tmp_path / "resumed", digits(40), epochs=3, resume=True, quiet=True, evaluate=False, **TINY)
    assert_same_checkpoints(tmp_path / "straight/checkpoint.npz", tmp_path / "resumed/checkpoint.npz")


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_by_g_steps_resumes_bit_for_bit(tmp_path):
    train_run("lapgan", tmp_path / "straight", digits(40), epochs=2, quiet=True, evaluate=False, **TINY)
    train_run("lapgan", tmp_path / "resumed", digits(40), quiet=True, evaluate=False, **{**TINY, "g_steps": 6})
    assert Checkpoint(tmp_path / "resumed/checkpoint.npz").meta["loader"]["batch"] == 1
    train_run("lapgan", tmp_path / "resumed", digits(40), epochs=2, resume=True, quiet=True, evaluate=False,
              **{**TINY, "g_steps": 10})
    assert_same_checkpoints(tmp_path / "straight/checkpoint.npz", tmp_path / "resumed/checkpoint.npz")


@pytest.mark.slow
@needs_mnist
def test_a_run_on_mnist_is_evaluated_per_epoch_and_its_checkpoint_and_samples_by_evaluate(tmp_path, capsys):
    from scratchgan.data import load_images
    out = tmp_path / "run"
    images = load_images("mnist", data_dir=MNIST_DIR)[:40]
    train_run("lapgan", out, images, epochs=2, quiet=True, dataset="mnist", data_dir=MNIST_DIR, eval_samples=20,
              **TINY)
    metrics = (out / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3 and "frechet_distance" in metrics[0]
    assert json.loads((out / "evaluation.json").read_text())["n"] == 20
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "20", "-o", str(tmp_path / "s.npy")]) == 0
    for target in (tmp_path / "s.npy", out / "checkpoint.npz"):
        assert main(["evaluate", str(target), "--n", "20", "--data-dir", str(MNIST_DIR), "--no-reference",
                     "--json", str(tmp_path / "e.json")]) == 0
        row = json.loads((tmp_path / "e.json").read_text())[0]
        assert row["n"] == 20 and np.isfinite(row["frechet_distance"])
