"""Training runs end to end on tiny synthetic data: outputs, checkpoints, resume, Ctrl-C, NaN, CLI."""
import json
import os
import signal

import numpy as np
import pytest
from PIL import Image

from scratchgan.cli import main
from scratchgan.data import write_idx
from scratchgan.gan import Checkpoint, CheckpointError, DivergenceError
from scratchgan.gan.run import Interrupted, RunError, train_run
from scratchgan.gan.sampling import sample_from_checkpoint

TINY = {"batch_size": 20, "seed": 3}


def digits(n=60, seed=0):
    """Blob 'digits': a bright rectangle at a random place on a dark 28x28 canvas."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, 28, 28), np.uint8)
    for im in images:
        r, c = rng.integers(4, 16, size=2)
        im[0, r:r + 8, c:c + 6] = 230
    return images


def run(tmp_path, name="run", epochs=2, **kw):
    return train_run("mlp", tmp_path / name, digits(), epochs=epochs, quiet=True, **{**TINY, **kw})


def checkpoint_arrays(path):
    c = Checkpoint(path)
    arrays = {k: v for k, v in c.arrays.items()}
    return arrays, c.meta


def assert_same_checkpoints(a, b):
    arrays_a, meta_a = checkpoint_arrays(a)
    arrays_b, meta_b = checkpoint_arrays(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for key in arrays_a:
        assert np.array_equal(arrays_a[key], arrays_b[key], equal_nan=True), key
    for key in ("trainer", "global_rng", "loader", "epoch"):
        assert meta_a[key] == meta_b[key], key


def test_run_writes_every_output(tmp_path):
    trainer = run(tmp_path)
    out = tmp_path / "run"
    for name in ("checkpoint.npz", "history.csv", "loss.png", "d_outputs.png", "progress.png", "progress.gif",
                 "samples.png", "accuracy.png", "spot_the_fake.png", "spot_the_fake_answers.png", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert trainer.d_steps == 2 * 3 and trainer.g_steps == 6
    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 3  # untrained, after epoch 1, after epoch 2
    meta = Checkpoint(out / "checkpoint.npz").meta
    assert meta["epoch"] == 2 and meta["recipe"] == "mlp" and meta["options"]["z_dim"] == 28


@pytest.mark.slow
def test_resume_continues_bit_identically(tmp_path):
    run(tmp_path, "straight", epochs=2, final_outputs=False)
    run(tmp_path, "resumed", epochs=1, final_outputs=False)
    train_run(None, tmp_path / "resumed", digits(), epochs=2, resume=True, quiet=True, final_outputs=False)
    assert_same_checkpoints(tmp_path / "straight/checkpoint.npz", tmp_path / "resumed/checkpoint.npz")


@pytest.mark.slow
def test_ctrl_c_saves_mid_epoch_and_resume_is_bit_identical(tmp_path):
    run(tmp_path, "straight", epochs=2, final_outputs=False, dropout=0.3)

    def press_ctrl_c(trainer):
        if trainer.d_steps == 4:  # in the middle of epoch 2 (3 steps per epoch)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        run(tmp_path, "interrupted", epochs=2, final_outputs=False, dropout=0.3, callback=press_ctrl_c)
    meta = Checkpoint(tmp_path / "interrupted/checkpoint.npz").meta
    assert meta["trainer"]["d_steps"] == 4 and meta["loader"]["batch"] == 1
    train_run(None, tmp_path / "interrupted", digits(), resume=True, quiet=True, final_outputs=False)
    assert_same_checkpoints(tmp_path / "straight/checkpoint.npz", tmp_path / "interrupted/checkpoint.npz")


def test_divergence_stops_with_last_good_checkpoint_intact(tmp_path):
    run(tmp_path, "good", epochs=1, final_outputs=False)
    good = (tmp_path / "good/checkpoint.npz").read_bytes()

    def poison(trainer):
        if trainer.d_steps == 4:
            trainer.D[0].params["weight"][...] = np.nan

    with pytest.raises(DivergenceError, match="non-finite loss at discriminator step 5"):
        train_run(None, tmp_path / "good", digits(), epochs=2, resume=True, quiet=True, callback=poison)
    assert (tmp_path / "good/checkpoint.npz").read_bytes() == good
    assert not [p for p in (tmp_path / "good").iterdir() if p.name.endswith(".part")]


def test_existing_run_needs_resume_and_options_cannot_change(tmp_path):
    run(tmp_path, epochs=1, final_outputs=False)
    with pytest.raises(RunError, match="--resume"):
        run(tmp_path, epochs=1)
    with pytest.raises(RunError, match="cannot change options"):
        train_run(None, tmp_path / "run", digits(), resume=True, quiet=True, z_dim=10)
    with pytest.raises(RunError, match="no checkpoint"):
        train_run("mlp", tmp_path / "nothing", digits(), resume=True, quiet=True)


def test_unknown_option_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no option"):
        run(tmp_path, ngf=3)


@pytest.mark.parametrize("recipe,options", [
    ("goodfellow2014", {"batch_size": 20}),
    ("mlp", {"batch_size": 20, "loss": "minimax", "k": 2, "label_smoothing": 0.1, "flip_prob": 0.1, "dropout": 0.5, "z_dim": 10}),
])
def test_other_recipes_and_options_train(tmp_path, recipe, options):
    trainer = train_run(recipe, tmp_path / recipe, digits(), epochs=1, quiet=True, **options)
    assert trainer.d_steps == 3 and np.all(np.isfinite(trainer.history["d_loss"]))


def test_sample_from_checkpoint_is_deterministic_in_unit_range(tmp_path):
    run(tmp_path, epochs=1, final_outputs=False)
    a = sample_from_checkpoint(tmp_path / "run/checkpoint.npz", 7, seed=1)
    b = sample_from_checkpoint(tmp_path / "run/checkpoint.npz", 7, seed=1)
    assert a.shape == (7, 1, 28, 28) and a.dtype == np.float32
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() <= 1


def test_corrupt_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*checkpoint.npz"):
        Checkpoint(bad)


@pytest.fixture
def idx_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", digits(1100)[:, 0])  # the evaluation holds out 1000
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(1100, np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", digits(40, seed=1)[:, 0])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(40, np.uint8))
    return folder


@pytest.mark.slow
def test_cli_train_resume_and_sample(tmp_path, idx_dir, capsys):
    out = tmp_path / "cli-run"
    args = ["train", "mlp", "--data-dir", str(idx_dir), "--epochs", "1", "--out", str(out),
            "--batch-size", "100", "--eval-samples", "300", "--quiet", "--no-report"]  # the report: test_report.py
    assert main(args) == 0
    assert (out / "samples.png").exists()
    # an MNIST-shaped run is evaluated with the shipped classifier, per epoch and at the end
    metrics = np.genfromtxt(out / "metrics.csv", delimiter=",", names=True)
    assert float(metrics["epoch"]) == 1 and 1 <= float(metrics["classes_covered"]) <= 10
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["n"] == 300 and evaluation["frechet_distance"] > 0 and 0 <= evaluation["recall"] <= 1
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    assert main(["train", "mlp", "--data-dir", str(idx_dir), "--epochs", "2", "--out", str(out),
                 "--resume", "--quiet", "--no-report"]) == 0
    assert Checkpoint(out / "checkpoint.npz").meta["epoch"] == 2
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "10", "-o", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (10, 28, 28) and samples.min() >= 0 and samples.max() <= 1
    assert main(["sample", str(out / "checkpoint.npz"), "-n", "16", "-o", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 28


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    assert main(["train", "mlp", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "nosuchrecipe"])


def test_cli_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--dataset", "--data-dir", "--epochs", "--device", "--out", "--seed", "--resume", "--z-dim",
                 "--dropout", "--label-smoothing", "--flip-prob", "--loss", "--k"):
        assert flag in text
