"""ProGAN (issue 14): the growth schedule, the real images at each stage, the drift term, the loader's
optimizer resets, and (slow) whole runs: training end to end through every stage, a bit-identical resume
across a phase boundary, `scratchgan sample` (--resolution) and `scratchgan evaluate` (32x32 cropped to 28x28).
The models' and layers' gradients: tests/test_multiscale_layers.py and the gradcheck suite."""
import json

import numpy as np
import pytest
from PIL import Image

from scratchgan.cli import main
from scratchgan.gan import Checkpoint
from scratchgan.gan.progan import GrowingLoader, GrowthSchedule, ProGANGame, reals_at
from scratchgan.gan.recipes import get_recipe
from scratchgan.gan.run import train_run
from scratchgan.gradcheck import numeric_gradient, rel_error

from realdata import MNIST_DIR, needs_mnist
from test_run import assert_same_checkpoints, digits

TINY = dict(z_dim=4, width=2, batch_size=8, group_size=4, phase_images=16, seed=1)


def test_schedule_fades_each_resolution_in_then_stabilises_it():
    schedule = GrowthSchedule(32, phase_images=100)
    assert schedule.phases == [(4, False), (8, True), (8, False), (16, True), (16, False), (32, True), (32, False)]
    assert schedule.total_images == 700
    assert schedule.stage(0) == (0, 4, 1.0) and schedule.stage(99) == (0, 4, 1.0)
    assert schedule.stage(100) == (1, 8, 0.0) and schedule.stage(125) == (1, 8, 0.25)
    assert schedule.stage(200) == (2, 8, 1.0) and schedule.stage(550) == (5, 32, 0.5)
    assert schedule.stage(10 ** 6) == (6, 32, 1.0)          # after the schedule the final resolution goes on
    assert schedule.describe(3) == "16x16 fade-in"


def test_real_images_are_seen_at_the_stage_and_blended_during_a_fade_in():
    x = np.random.default_rng(0).standard_normal((2, 1, 32, 32))
    at8 = reals_at(x, 8, 1.0)
    np.testing.assert_allclose(at8, x.reshape(2, 1, 8, 4, 8, 4).mean(axis=(3, 5)), rtol=1e-12)
    coarse = at8.reshape(2, 1, 4, 2, 4, 2).mean(axis=(3, 5)).repeat(2, axis=2).repeat(2, axis=3)
    np.testing.assert_allclose(reals_at(x, 8, 0.25), 0.25 * at8 + 0.75 * coarse, rtol=1e-12)
    assert reals_at(x, 32, 1.0) is x


def test_drift_term_adds_eps_mean_square_of_the_real_scores():
    game, plain = ProGANGame(drift=0.01), ProGANGame(drift=0.0)
    out = np.random.default_rng(1).standard_normal((6, 1))
    value, grad = game.d_loss(out, True, None, None)
    base, _ = plain.d_loss(out, True, None, None)
    assert value == pytest.approx(base + 0.01 * np.mean(out ** 2))
    assert rel_error(grad, numeric_gradient(lambda: np.array(game.d_loss(out, True, None, None)[0]), out)) < 1e-8
    fake_value, _ = game.d_loss(out, False, None, None)      # no drift on fakes
    assert fake_value == pytest.approx(plain.d_loss(out, False, None, None)[0])


class _Model:
    def set_stage(self, resolution, alpha):
        self.resolution, self.alpha = resolution, alpha


class _Optimizer:
    def __init__(self):
        self.state, self.t = {"m": 1}, 3


class _Batches:
    """A BatchLoader stand-in: ``n`` batches of 4 zero images a pass, its position saved as the pass count."""

    def __init__(self, n=3):
        self.n, self.passes = n, 0

    def __len__(self):
        return self.n

    def __iter__(self):
        self.passes += 1
        for _ in range(self.n):
            yield np.zeros((4, 1, 32, 32))

    def state_dict(self):
        return {"passes": self.passes}

    def load_state_dict(self, state):
        self.passes = state["passes"]


def test_loader_resets_the_optimizers_when_a_phase_begins_and_resumes_the_stage_exactly():
    schedule = GrowthSchedule(8, phase_images=8)               # 4x4: images 0-7, fade to 8x8: 8-15, 8x8: 16-
    model, optimizer = _Model(), _Optimizer()
    loader = GrowingLoader(_Batches(), schedule, [model], [optimizer])
    shapes = [batch.shape[-1] for batch in loader]             # batches start at 0, 4, 8 images
    assert shapes == [4, 4, 8] and (model.resolution, model.alpha) == (8, 0.0)
    assert optimizer.t == 0 and optimizer.state == {}          # reset as the fade-in began
    state = loader.state_dict()
    assert state["images"] == 12 and state["stage_images"] == 8
    optimizer.t = 5
    resumed_model, resumed_optimizer = _Model(), _Optimizer()
    resumed = GrowingLoader(_Batches(), schedule, [resumed_model], [resumed_optimizer])
    resumed.load_state_dict(state)
    assert (resumed_model.resolution, resumed_model.alpha) == (8, 0.0)   # the stage of the last batch
    next(iter(resumed))                                        # images 12-15: still the fade-in, no reset
    assert resumed_optimizer.t == 3 and resumed_model.alpha == 0.5
    with pytest.raises(ValueError, match="stage set at 13"):
        resumed.load_state_dict({**state, "stage_images": 13})


@pytest.mark.parametrize("options, match", [
    ({"batch_size": 6}, r"batch_size \(6\) must be a multiple of group_size \(4\)"),
    ({"phase_images": 0}, "phase_images"), ({"width": 0}, "width"), ({"drift": -1.0}, "drift")])
def test_bad_options_are_refused_before_any_work(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):
        train_run("progan", tmp_path / "run", digits(48), quiet=True, evaluate=False, **{**TINY, **options})
    assert not (tmp_path / "run").exists()


def test_only_28_and_32_pixel_squares_grow():
    with pytest.raises(ValueError, match="progan grows square images of size 28 or 32"):
        get_recipe("progan").setup(get_recipe("progan").options(), (1, 16, 16))


@pytest.mark.slow
def test_a_run_grows_through_every_stage_and_samples_at_each(tmp_path, capsys):
    out = tmp_path / "run"
    trainer = train_run("progan", out, digits(48), quiet=True, evaluate=False, **TINY)
    assert trainer.d_steps == 18                  # 7 phases x 16 images need 112: 3 epochs of 6 batches of 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["epochs"] == 3
    assert summary["stage"] == {"resolution": 32, "alpha": 1.0, "images_shown": 144, "phase": "32x32 stabilise"}
    for name in ("loss.png", "d_outputs.png", "progress.png", "samples.png", "history.csv"):
        assert (out / name).stat().st_size > 0, name
    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 4                  # untrained, then after each epoch
    history = (out / "history.csv").read_text().splitlines()
    assert "gradient_penalty" in history[0] and len(history) == 19

    assert main(["sample", str(out / "checkpoint.npz"), "-n", "12", "-o", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (12, 32, 32) and 0 <= samples.min() and samples.max() <= 1
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "5", "--resolution", "8", "-o",
                 str(tmp_path / "s8.npy")]) == 0
    assert np.load(tmp_path / "s8.npy").shape == (5, 8, 8)
    capsys.readouterr()
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "5", "--resolution", "12", "-o",
                 str(tmp_path / "bad.npy")]) == 2
    assert "--resolution 12: this run has grown to 32x32; choose one of 4, 8, 16, 32" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_stopped_early_samples_at_its_stage_and_refuses_finer_resolutions(tmp_path, capsys):
    out = tmp_path / "run"
    train_run("progan", out, digits(48), epochs=1, quiet=True, evaluate=False, **TINY)
    assert json.loads((out / "summary.json").read_text())["stage"]["resolution"] == 8
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "3", "-o", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 8, 8)
    capsys.readouterr()
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "3", "--resolution", "16", "-o",
                 str(tmp_path / "s16.npy")]) == 2
    assert "has grown to 8x8; choose one of 4, 8" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_across_a_phase_boundary_is_bit_identical(tmp_path):
    """Epoch 1 ends at 48 images, where the 16x16 fade-in begins: the resumed run must reset Adam at the
    same batch as the straight one."""
    train_run("progan", tmp_path / "straight", digits(48), quiet=True, evaluate=False, **TINY)
    train_run("progan", tmp_path / "resumed", digits(48), epochs=1, quiet=True, evaluate=False, **TINY)
    assert Checkpoint(tmp_path / "resumed/checkpoint.npz").meta["loader"]["images"] == 48
    train_run("progan", tmp_path / "resumed", digits(48), epochs=3, resume=True, quiet=True, evaluate=False, **TINY)
    assert_same_checkpoints(tmp_path / "straight/checkpoint.npz", tmp_path / "resumed/checkpoint.npz")


def test_sample_resolution_is_for_progan_only(tmp_path, capsys):
    from test_run import run
    run(tmp_path, epochs=1, evaluate=False)
    assert main(["sample", str(tmp_path / "run/checkpoint.npz"), "-n", "3", "--resolution", "8", "-o",
                 str(tmp_path / "s.npy")]) == 2
    assert "--resolution applies to progan and lapgan checkpoints only" in capsys.readouterr().err


@pytest.mark.slow
@needs_mnist
def test_a_run_on_mnist_is_evaluated_and_its_samples_are_cropped_to_28(tmp_path, capsys):
    from scratchgan.data import load_images
    out = tmp_path / "run"
    images = load_images("mnist", data_dir=MNIST_DIR)[:48]
    train_run("progan", out, images, quiet=True, dataset="mnist", data_dir=MNIST_DIR, eval_samples=20, **TINY)
    metrics = (out / "metrics.csv").read_text().splitlines()       # per epoch: the stage's samples, 32 -> 28
    assert len(metrics) == 4 and "frechet_distance" in metrics[0]
    assert json.loads((out / "evaluation.json").read_text())["n"] == 20
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "20", "-o", str(tmp_path / "s.npy")]) == 0
    capsys.readouterr()
    for target in (tmp_path / "s.npy", out / "checkpoint.npz"):
        assert main(["evaluate", str(target), "--n", "20", "--data-dir", str(MNIST_DIR), "--no-reference",
                     "--json", str(tmp_path / "e.json")]) == 0
        assert "32x32 samples cropped to their central 28x28" in capsys.readouterr().out
        row = json.loads((tmp_path / "e.json").read_text())[0]
        assert row["n"] == 20 and np.isfinite(row["frechet_distance"])


def test_growth_gif_frames_carry_the_stage_captions(tmp_path):
    from scratchgan.plots import save_progress_gif
    rows = [np.full((4, 1, 32, 32), v, np.float32) for v in (0.0, 0.5, 1.0)]
    save_progress_gif(tmp_path / "g.gif", rows, captions=["4x4", "8x8, alpha 0.50", "8x8"])
    with Image.open(tmp_path / "g.gif") as gif:
        assert gif.n_frames == 3
    with pytest.raises(ValueError, match="captions has 2 entries but there are 3 rows"):
        save_progress_gif(tmp_path / "h.gif", rows, captions=["a", "b"])
