"""The better DCGAN-28 recipe (issue 18): the weight average of G, the dcgan options, dcgan-plus,
the learning-rate schedule, kept checkpoints; each resumed bit-identically."""
import json
import os
import signal

import numpy as np
import pytest

import scratchgan.layers as L
from realdata import MNIST_DIR, needs_mnist
from scratchgan.backend import RNG
from scratchgan.cli import main
from scratchgan.gan import Checkpoint, CheckpointError
from scratchgan.gan.averaging import GeneratorEMA
from scratchgan.gan.dcgan_plus import LRSchedule, PLUS_SETTINGS
from scratchgan.gan.recipes import get_recipe
from scratchgan.gan.run import Interrupted, train_run
from scratchgan.gan.sampling import load_generator, sample_from_checkpoint
from test_run import assert_same_checkpoints, digits

SMALL = {"batch_size": 20, "seed": 3, "ngf": 4, "ndf": 4}   # DCGAN-28 at width 4: 3 steps per epoch of 60 digits


def dcgan_run(path, epochs=1, recipe="dcgan", **options):
    return train_run(recipe, path, digits(60), epochs=epochs, quiet=True, evaluate=False,
                     final_outputs=options.pop("final_outputs", False), **{**SMALL, **options})


def small_generator():
    rng = RNG(0)
    return L.Chain(L.ConvTranspose2d(3, 4, 3, bias=False, rng=rng), L.BatchNorm(4), L.ReLU(),
                   L.ConvTranspose2d(4, 1, 3, rng=rng), L.Tanh())


# -- the weight average ------------------------------------------------------------------------

def test_average_follows_the_warmed_up_exponential_formula():
    G = small_generator()
    ema = GeneratorEMA(G, beta=0.9, noise_dims=(3, 1, 1))
    start = {k: v.copy() for k, v in G.state_dict().items()}
    expected = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in start.items()}
    for t in range(40):
        for _, layer, key in G.named_parameters():
            layer.params[key] += np.float32(0.1) * np.random.default_rng(t).standard_normal(layer.params[key].shape,
                                                                                              dtype=np.float32)
        G.forward(np.random.default_rng(t).standard_normal((5, 3, 1, 1)).astype(np.float32), train=True,
                  keep_cache=False)                                     # moves the BatchNorm statistics
        beta = min(0.9, (1 + t) / (10 + t))
        assert ema.decay() == pytest.approx(beta)
        ema.after_g_step(type("Trainer", (), {"G": G})())
        for name, value in G.state_dict().items():
            if value.dtype.kind == "f":
                expected[name] = beta * expected[name] + (1 - beta) * value
    state = ema.state_dict()
    assert int(state["updates"]) == 40
    for name, value in expected.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(state[name], value, rtol=2e-5, atol=1e-6, err_msg=name)
    assert state["1.num_batches_tracked"] == G.state_dict()["1.num_batches_tracked"]
    assert not np.allclose(state["0.weight"], G.state_dict()["0.weight"])   # an average, not a copy


def test_batchnorm_statistics_of_the_average_copy_average_or_reestimate():
    G = small_generator()
    noise = lambda seed: np.random.default_rng(seed).standard_normal((8, 3, 1, 1)).astype(np.float32)
    G.forward(noise(1), train=True, keep_cache=False)
    emas = {mode: GeneratorEMA(G, beta=0.5, bn=mode, noise_dims=(3, 1, 1)) for mode in ("copy", "average")}
    for ema in emas.values():
        ema.update(G)
    tracked = G[1].buffers["running_mean"].copy()
    G.forward(noise(2), train=True, keep_cache=False)                 # G's statistics move on
    copied = emas["copy"].averaged_generator(G)
    assert np.array_equal(copied[1].buffers["running_mean"], G[1].buffers["running_mean"])
    assert not copied[1].training                                    # eval mode for sampling
    averaged = emas["average"].averaged_generator(G)[1].buffers["running_mean"]
    assert np.array_equal(averaged, tracked) and not np.array_equal(averaged, G[1].buffers["running_mean"])
    # re-estimated: the mean over the noise batches of each batch's mean and unbiased variance, by hand
    ema = GeneratorEMA(G, beta=0.5, bn="reestimate", noise_dims=(3, 1, 1), bn_batches=4, bn_batch_size=16)
    sampler = ema.averaged_generator(G)
    rng, means, variances = RNG(7), [], []
    for _ in range(4):
        h = sampler[0].forward(rng.normal((16, 3, 1, 1), dtype=np.float32), train=False, keep_cache=False)
        values = h.transpose(1, 0, 2, 3).reshape(4, -1).astype(np.float64)
        means.append(values.mean(axis=1))
        variances.append(values.var(axis=1, ddof=1))
    np.testing.assert_allclose(sampler[1].buffers["running_mean"], np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sampler[1].buffers["running_var"], np.mean(variances, axis=0), rtol=1e-5)
    assert sampler[1].momentum == 0.1                                    # put back after the passes


def test_bad_average_settings_are_refused():
    with pytest.raises(ValueError, match="beta must be a number in \\(0, 1\\)"):
        GeneratorEMA(small_generator(), beta=1.0)
    with pytest.raises(ValueError, match="bn must be one of copy, average, reestimate"):
        GeneratorEMA(small_generator(), bn="running")


@pytest.mark.slow
def test_the_average_never_changes_training(tmp_path):
    """Same run with and without --ema: every saved array but the progress images is identical."""
    dcgan_run(tmp_path / "plain", epochs=2, final_outputs=True)
    dcgan_run(tmp_path / "ema", epochs=2, final_outputs=True, ema=0.99)
    plain, ema = Checkpoint(tmp_path / "plain/checkpoint.npz"), Checkpoint(tmp_path / "ema/checkpoint.npz")
    assert {k for k in ema.arrays if not k.startswith("ext/")} == set(plain.arrays)
    for key, value in plain.arrays.items():
        if key != "progress":       # the progress rows come from the average
            assert np.array_equal(value, ema.arrays[key]), key
    for key in ("trainer", "global_rng", "loader"):
        assert plain.meta[key] == ema.meta[key]
    assert int(ema.arrays["ext/GeneratorEMA/updates"]) == 6


@pytest.mark.slow
def test_every_option_together_resumes_bit_identically_and_keeps_checkpoints(tmp_path):
    options = dict(ema=0.9, spectral_norm=True, augment="translation,cutout", g_lr=1e-4, d_lr=3e-4,
                   label_smoothing=0.1)
    dcgan_run(tmp_path / "straight", epochs=2, keep_checkpoints=1, **options)
    dcgan_run(tmp_path / "one", epochs=1, **options)
    train_run(None, tmp_path / "one", digits(60), epochs=2, resume=True, quiet=True, evaluate=False,
              final_outputs=False)
    assert_same_checkpoints(tmp_path / "straight/checkpoint.npz", tmp_path / "one/checkpoint.npz")
    assert_same_checkpoints(tmp_path / "straight/checkpoint_e002.npz", tmp_path / "straight/checkpoint.npz")
    dcgan_run(tmp_path / "short", epochs=1, **options)
    assert_same_checkpoints(tmp_path / "straight/checkpoint_e001.npz", tmp_path / "short/checkpoint.npz")
    arrays = Checkpoint(tmp_path / "straight/checkpoint.npz").arrays
    assert {"D/0.step", "D/1.u", "D/1.v", "D/1.layer.weight", "ext/GeneratorEMA/0.weight"} <= set(arrays)
    assert int(arrays["D/0.step"]) == 3 * 2 * 3   # DiffAugment: real, fake and G's pass in each of 2 x 3 steps


def test_keep_checkpoints_is_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="keep_checkpoints \\(--keep-checkpoints\\) must be an integer >= 1"):
        dcgan_run(tmp_path / "run", keep_checkpoints=0)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_checkpoints_sample_the_average_by_default_and_g_on_request(tmp_path, capsys):
    dcgan_run(tmp_path / "ema", epochs=1, ema=0.5, ema_bn="copy")
    path = str(tmp_path / "ema/checkpoint.npz")
    auto, average = sample_from_checkpoint(path, 8), sample_from_checkpoint(path, 8, generator="average")
    raw = sample_from_checkpoint(path, 8, generator="raw")
    assert np.array_equal(auto, average) and not np.allclose(auto, raw)
    G, _ = load_generator(path, generator="raw")
    checkpoint = Checkpoint(path)
    assert np.array_equal(G.state_dict()["0.weight"], checkpoint.arrays["G/0.weight"])
    A, _ = load_generator(path)
    assert np.array_equal(A.state_dict()["0.weight"], checkpoint.arrays["ext/GeneratorEMA/0.weight"])
    assert np.array_equal(A.state_dict()["1.running_mean"], checkpoint.arrays["G/1.running_mean"])   # "copy"
    dcgan_run(tmp_path / "plain", epochs=1)
    with pytest.raises(CheckpointError, match="without a weight average"):
        sample_from_checkpoint(str(tmp_path / "plain/checkpoint.npz"), 4, generator="average")
    # the same 8 samples as `raw` (not 4 of them: BLAS may round a product of another width differently)
    assert main(["sample", path, "-n", "8", "-o", str(tmp_path / "raw.npy"), "--generator", "raw"]) == 0
    assert np.array_equal(np.load(tmp_path / "raw.npy"), raw[:, 0])
    assert main(["sample", str(tmp_path / "plain/checkpoint.npz"), "-n", "4", "-o", str(tmp_path / "x.npy"),
                 "--generator", "average"]) == 2
    assert "without a weight average" in capsys.readouterr().err


@pytest.mark.slow
@needs_mnist
def test_metrics_csv_records_the_averaged_generator_too(tmp_path):
    from scratchgan.data import load_images
    from scratchgan.plots import read_history_csv
    images = load_images("mnist", data_dir=MNIST_DIR)[:200]
    train_run("dcgan", tmp_path / "run", images, epochs=2, quiet=True, dataset="mnist", data_dir=MNIST_DIR,
              eval_samples=100, batch_size=50, ngf=4, ndf=4, ema=0.9)
    metrics = read_history_csv(tmp_path / "run/metrics.csv")
    for key in ("frechet_distance", "classifier_score", "classes_covered", "coverage_kl"):
        assert len(metrics[f"ema_{key}"]) == 2 and np.isfinite(metrics[f"ema_{key}"]).all()
    assert not np.array_equal(metrics["frechet_distance"], metrics["ema_frechet_distance"])
    assert json.loads((tmp_path / "run/evaluation.json").read_text())["generator"] == "average"
    assert (tmp_path / "run/metrics.png").stat().st_size > 0


@pytest.mark.slow
@needs_mnist
def test_evaluate_scores_either_generator_of_an_averaging_run(tmp_path, capsys):
    from scratchgan.data import load_images
    images = load_images("mnist", data_dir=MNIST_DIR)[:120]
    train_run("dcgan", tmp_path / "run", images, epochs=1, quiet=True, dataset="mnist", evaluate=False,
              final_outputs=False, batch_size=40, ngf=4, ndf=4, ema=0.9)
    scores = {}
    for generator in ("raw", "average"):
        out = tmp_path / f"{generator}.json"
        assert main(["evaluate", str(tmp_path / "run/checkpoint.npz"), "--n", "100", "--data-dir", str(MNIST_DIR),
                     "--generator", generator, "--json", str(out)]) == 0
        assert "keeps an average of G's weights" in capsys.readouterr().out
        scores[generator] = json.loads(out.read_text())[-1]["frechet_distance"]
    assert scores["raw"] != scores["average"]


# -- the options ----------------------------------------------------------------------------------

def test_dcgan_plus_keeps_dcgan_s_layers_and_widths():
    """Spectral normalisation and augmentation add buffers, not parameters: every option on, G and D
    have dcgan's parameters, name for name and shape for shape (the architecture of the issue)."""
    dcgan, plus = get_recipe("dcgan"), get_recipe("dcgan-plus")
    assert {k: v for k, v in plus.defaults.items() if dcgan.defaults[k] != v} == PLUS_SETTINGS
    base = dcgan.setup(dcgan.options())
    every = dcgan.setup(dcgan.options(spectral_norm=True, augment="translation,cutout", ema=0.999))
    for a, b in ((base.G, every.G), (base.D, every.D)):
        shapes = lambda model: sorted(tuple(layer.params[key].shape) for _, layer, key in model.named_parameters())
        assert shapes(a) == shapes(b) and a.num_params() == b.num_params()
    kinds = [type(layer).__name__ for layer in every.D]
    assert kinds[0] == "DiffAugment" and kinds.count("SpectralNorm") == 3
    assert all(isinstance(layer.layer, L.Conv2d) for layer in every.D if isinstance(layer, L.SpectralNorm))
    assert every.opt_g.lr == every.opt_d.lr == 2e-4
    split = dcgan.setup(dcgan.options(g_lr=1e-4, d_lr=4e-4))
    assert (split.opt_g.lr, split.opt_d.lr) == (1e-4, 4e-4)


@pytest.mark.slow
def test_dcgan_plus_trains_what_dcgan_with_its_settings_trains(tmp_path):
    """dcgan-plus is dcgan with PLUS_SETTINGS and nothing else: the two runs agree array for array
    (models, optimizers, the average, every random generator), so a run of ``dcgan`` with those
    options measures ``dcgan-plus`` (docs/dcgan.md's table)."""
    dcgan_run(tmp_path / "plus", epochs=2, recipe="dcgan-plus")
    dcgan_run(tmp_path / "dcgan", epochs=2, **PLUS_SETTINGS)
    assert_same_checkpoints(tmp_path / "plus/checkpoint.npz", tmp_path / "dcgan/checkpoint.npz")


@pytest.mark.parametrize("option, value, wanted", [
    ("ema", 1.0, "0 \\(off\\) or a number in \\(0, 1\\)"), ("ema", -0.5, "0 \\(off\\)"),
    ("ema_bn", "mean", "one of copy, average, reestimate"), ("spectral_norm", "yes", "True or False"),
    ("augment", "colour", "one of none, translation"), ("lr_schedule", "cosine", "one of constant, linear"),
    ("g_lr", 0.0, "a finite number > 0")])
def test_bad_option_values_are_named(option, value, wanted):
    with pytest.raises(ValueError, match=f"option {option} must be {wanted}"):
        get_recipe("dcgan-plus").options(**{option: value})


def test_cli_switch_takes_on_or_off(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "dcgan", "--spectral-norm", "maybe", "--out", str(tmp_path / "x")])
    assert "--spectral-norm expects on or off" in capsys.readouterr().err


def test_linear_schedule_scales_both_rates_from_the_steps_done():
    opt_g, opt_d = type("Opt", (), {"lr": 2e-4})(), type("Opt", (), {"lr": 4e-4})()
    trainer = type("Trainer", (), {"opt_g": opt_g, "opt_d": opt_d, "steps_per_epoch": 5, "d_steps": 0})()
    schedule = LRSchedule("linear", epochs=2)
    for t, scale in ((0, 1.0), (5, 0.5), (9, 0.1), (10, 0.0), (12, 0.0)):
        trainer.d_steps = t
        schedule.before_step(trainer)
        assert (opt_g.lr, opt_d.lr) == pytest.approx((2e-4 * scale, 4e-4 * scale))
    restored = LRSchedule("linear", epochs=7)
    restored.load_state_dict(schedule.state_dict())
    assert (restored.base, restored.total) == ((2e-4, 4e-4), 10)


@pytest.mark.slow
def test_a_scheduled_run_stopped_mid_epoch_resumes_bit_identically(tmp_path):
    dcgan_run(tmp_path / "straight", epochs=2, lr_schedule="linear", ema=0.9)

    def press_ctrl_c(trainer):
        if trainer.d_steps == 4:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        dcgan_run(tmp_path / "stopped", epochs=2, lr_schedule="linear", ema=0.9, callback=press_ctrl_c)
    train_run(None, tmp_path / "stopped", digits(60), epochs=2, resume=True, quiet=True, evaluate=False,
              final_outputs=False)
    assert_same_checkpoints(tmp_path / "straight/checkpoint.npz", tmp_path / "stopped/checkpoint.npz")
    state = Checkpoint(tmp_path / "straight/checkpoint.npz").part("ext/LRSchedule/")
    assert int(state["total"]) == 6 and np.allclose(state["base"], [2e-4, 2e-4])


@pytest.mark.slow
def test_comparison_figure_from_two_groups_of_runs(tmp_path):
    """demos/dcgan_plus_comparison.py on tiny runs (their metrics.csv written here: blob digits get no
    classifier metrics): curves of G and of the averaged G, sample grids from each group's checkpoint."""
    from PIL import Image
    from scratchgan.plots import write_history_csv
    import subprocess
    import sys
    from test_demos import DEMOS, demo_env, load_demo, run_demo
    dcgan_run(tmp_path / "dcgan", epochs=1)
    dcgan_run(tmp_path / "plus", epochs=1, recipe="dcgan-plus")
    write_history_csv(tmp_path / "dcgan/metrics.csv", {"epoch": [1, 2], "frechet_distance": [300.0, 200.0]})
    write_history_csv(tmp_path / "plus/metrics.csv", {"epoch": [1, 2], "frechet_distance": [290.0, 190.0],
                                                      "ema_frechet_distance": [250.0, 150.0]})
    out = run_demo("dcgan_plus_comparison.py", "--dcgan", tmp_path / "dcgan", "--plus", tmp_path / "plus",
                   "--out", tmp_path / "fig.png")
    assert "wrote" in out
    with Image.open(tmp_path / "fig.png") as im:
        assert im.size == (1500, 500)
    demo = load_demo("dcgan_plus_comparison.py")
    plus, title = demo.samples_of(tmp_path / "plus")
    assert title == "dcgan-plus (plus), lr 0.0004, epoch 1: averaged G (--ema 0.999)"
    assert np.array_equal(plus, sample_from_checkpoint(str(tmp_path / "plus/checkpoint.npz"), 64, seed=0))
    assert demo.samples_of(tmp_path / "dcgan")[1] == "dcgan (dcgan), lr 0.0002, epoch 1: G"
    (tmp_path / "dcgan/metrics.csv").unlink()
    result = subprocess.run([sys.executable, str(DEMOS / "dcgan_plus_comparison.py"), "--dcgan", str(tmp_path / "dcgan"),
                             "--plus", str(tmp_path / "plus"), "--out", str(tmp_path / "fig2.png")],
                            capture_output=True, text=True, timeout=600, env=demo_env())
    assert result.returncode == 2 and not (tmp_path / "fig2.png").exists()
    assert result.stderr.count("\n") == 1 and "dcgan/metrics.csv" in result.stderr, result.stderr
