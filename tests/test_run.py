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
    with pytest.raises(CheckpointError, match=".*checkpoint.npz is not a scratchgan checkpoint"):
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
    assert evaluation["frechet_distance"] > 0 and 0 <= evaluation["recall"] <= 1
    # 1,100 training images: 1,000 for the Parzen sigma, 100 in the reference set; 300 samples are cut to match
    assert evaluation["n"] == evaluation["reference_n"] == 100 and evaluation["n_requested"] == 300
    assert Checkpoint(out / "checkpoint.npz").meta["data"]["match"] == "unknown"   # blob digits are not MNIST
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


# --- reliability: checks before work, signals, divergence, what is on disk ----------------------

@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The checkpoint of an uninterrupted two-epoch run, to compare stopped-and-resumed runs with."""
    folder = tmp_path_factory.mktemp("straight")
    run(folder, "straight", epochs=2, final_outputs=False)
    return folder / "straight" / "checkpoint.npz"


@pytest.mark.parametrize("option, value", [
    ("epochs", 0), ("epochs", -1), ("lr", -1.0), ("lr", 0.0), ("lr", float("nan")), ("lr", float("inf")),
    ("z_dim", 0), ("batch_size", 0), ("k", 0), ("seed", -1), ("dropout", 1.0), ("label_smoothing", 0.5),
    ("flip_prob", -0.1), ("loss", "hinge"), ("epochs", 2.5)])
def test_every_option_is_checked_before_any_work(tmp_path, option, value):
    steps = []
    with pytest.raises(ValueError, match=f"option {option} must be"):
        run(tmp_path, callback=steps.append, **{option: value})
    assert steps == [] and not (tmp_path / "run").exists()


def test_every_recipe_option_has_a_check():
    from scratchgan.gan.recipes import OPTION_CHECKS, RECIPES
    for recipe in RECIPES.values():
        unchecked = set(recipe.defaults) - set(OPTION_CHECKS) - set(recipe.checks)
        assert not unchecked, f"{recipe.name}: add checks for {sorted(unchecked)} (OPTION_CHECKS or Recipe.checks)"
        recipe.options()   # the defaults pass their own checks


def test_eval_samples_is_checked_before_any_work(tmp_path):
    steps = []
    with pytest.raises(ValueError, match="eval_samples \\(--eval-samples\\) must be an integer >= 10.*--no-evaluate"):
        run(tmp_path, callback=steps.append, eval_samples=0)
    assert steps == []
    run(tmp_path, "off", epochs=1, evaluate=False, eval_samples=0, final_outputs=False)  # irrelevant when off


def test_resume_cannot_undo_epochs_and_equal_epochs_redo_the_final_outputs(tmp_path, straight):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(straight.read_bytes())    # two epochs, no final outputs yet
    with pytest.raises(RunError, match="--epochs 1 is fewer than the 2 epoch"):
        train_run(None, out, digits(), epochs=1, resume=True, quiet=True, evaluate=False)
    trainer = train_run(None, out, digits(), epochs=2, resume=True, quiet=True, evaluate=False)
    assert trainer.d_steps == 6 and (out / "samples.png").exists() and (out / "summary.json").exists()


def test_resume_mid_epoch_needs_at_least_that_epoch(tmp_path):
    def stop(trainer):
        if trainer.d_steps == 4:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(Interrupted):
        run(tmp_path, epochs=3, callback=stop, final_outputs=False)
    with pytest.raises(RunError, match="1 epoch\\(s\\) and part of epoch 2.*ask for 2 or more"):
        train_run(None, tmp_path / "run", digits(), epochs=1, resume=True, quiet=True)


def test_resume_on_other_data_is_refused(tmp_path):
    run(tmp_path, epochs=1, final_outputs=False)
    with pytest.raises(RunError, match="was trained on other data"):
        train_run(None, tmp_path / "run", digits(seed=1), resume=True, quiet=True, epochs=2)
    with pytest.raises(RunError, match="images of shape \\(1, 28, 28\\)"):
        train_run(None, tmp_path / "run", digits()[:, :, :14], resume=True, quiet=True, epochs=2)


def test_the_run_records_its_data(tmp_path):
    identity = {"dataset": "mnist", "match": "unknown", "images_sha256": "ab" * 32, "n": 60}
    run(tmp_path, epochs=1, data_identity=identity, evaluate=False)
    data = Checkpoint(tmp_path / "run" / "checkpoint.npz").meta["data"]
    assert data["match"] == "unknown" and data["images_sha256"] == "ab" * 32
    assert data["array_shape"] == [60, 1, 28, 28] and len(data["array_sha256"]) == 64
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["data"] == data


def test_sigterm_mid_epoch_saves_and_resume_is_bit_identical(tmp_path, straight):

    def terminate(trainer):
        if trainer.d_steps == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted, match="SIGTERM: checkpoint saved after step 2") as info:
        run(tmp_path, "terminated", epochs=2, final_outputs=False, callback=terminate)
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL   # handlers restored
    train_run(None, tmp_path / "terminated", digits(), resume=True, quiet=True, final_outputs=False)
    assert_same_checkpoints(straight, tmp_path / "terminated/checkpoint.npz")


def test_ctrl_c_at_the_last_step_of_an_epoch_resumes_bit_identically(tmp_path, straight):
    """The epoch is complete: it is saved as done, not as "epoch 1, no batch left" (which trained one too many)."""

    def press_ctrl_c(trainer):
        if trainer.d_steps == 3:  # the last of epoch 1's three steps
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted, match="stopped after epoch 1"):
        run(tmp_path, "stopped", epochs=2, final_outputs=False, callback=press_ctrl_c)
    assert Checkpoint(tmp_path / "stopped/checkpoint.npz").meta["epoch"] == 1
    trainer = train_run(None, tmp_path / "stopped", digits(), resume=True, quiet=True, final_outputs=False)
    assert trainer.d_steps == 6
    assert_same_checkpoints(straight, tmp_path / "stopped/checkpoint.npz")


def test_ctrl_c_during_the_last_epochs_end_of_epoch_work_is_honoured(tmp_path, monkeypatch):
    from scratchgan.gan import run as run_module
    write_outputs = run_module._write_epoch_outputs

    def outputs_then_ctrl_c(out, trainer, *args):
        if trainer.d_steps == 6:   # the last epoch's figures
            os.kill(os.getpid(), signal.SIGINT)
        return write_outputs(out, trainer, *args)

    monkeypatch.setattr(run_module, "_write_epoch_outputs", outputs_then_ctrl_c)
    with pytest.raises(Interrupted, match="stopped after epoch 2") as info:
        run(tmp_path, epochs=2)
    assert info.value.exit_code == 130
    assert Checkpoint(tmp_path / "run/checkpoint.npz").meta["epoch"] == 2
    assert not (tmp_path / "run/summary.json").exists()   # the final outputs were not started


def test_ctrl_c_during_the_final_outputs_stops_at_once(tmp_path, monkeypatch):
    from scratchgan.gan import run as run_module

    def final_outputs(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the signal should have stopped the run before this line")

    monkeypatch.setattr(run_module, "write_final_outputs", final_outputs)
    # a shell's background job starts with Ctrl-C ignored; the run must restore whatever it found
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(Interrupted, match="Ctrl-C during the final outputs: training is complete and saved"):
            run(tmp_path, epochs=1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert Checkpoint(tmp_path / "run/checkpoint.npz").meta["epoch"] == 1


def test_divergence_before_any_checkpoint_says_so(tmp_path):
    def poison(trainer):
        trainer.D[0].params["weight"][...] = np.nan

    with pytest.raises(DivergenceError, match="No checkpoint was written .* nothing to resume"):
        run(tmp_path, epochs=2, callback=poison)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_divergence_names_the_intact_checkpoint(tmp_path):
    run(tmp_path, epochs=1, final_outputs=False)

    def poison(trainer):
        if trainer.d_steps == 4:
            trainer.D[0].params["weight"][...] = np.nan

    with pytest.raises(DivergenceError, match="checkpoint.npz is intact: the last good state, after epoch 1 \\(step 3\\)"):
        train_run(None, tmp_path / "run", digits(), epochs=2, resume=True, quiet=True, callback=poison)


def test_non_finite_weights_are_never_saved(tmp_path):
    """A step can leave NaN weights behind a finite loss: the end-of-epoch save must refuse them."""
    run(tmp_path, epochs=1, final_outputs=False)
    good = (tmp_path / "run/checkpoint.npz").read_bytes()

    def poison_generator_after_last_step(trainer):
        if trainer.d_steps == 6:
            trainer.G[0].params["weight"][0, 0] = np.inf

    with pytest.raises(DivergenceError, match="non-finite weights in G.0.weight after discriminator step 6"):
        train_run(None, tmp_path / "run", digits(), epochs=2, resume=True, quiet=True,
                  callback=poison_generator_after_last_step)
    assert (tmp_path / "run/checkpoint.npz").read_bytes() == good


def test_stale_temporaries_of_a_killed_save_are_removed_and_only_those(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = [out / ".checkpoint.npz.k3j_x9a2.part", out / ".loss.png.abcdefgh.part"]
    kept = [out / ".notes.txt.abcdefgh.part", out / "mine.part", out / ".checkpoint.npz.part",
            out / ".checkpoint.npz.toolongname1.part"]
    for path in stale + kept:
        path.write_bytes(b"x")
    run(tmp_path, epochs=1, final_outputs=False)
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept)


def test_unwritable_out_is_found_before_any_work(tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    steps = []
    with pytest.raises(OSError, match="cannot write into .*file/run"):
        train_run("mlp", tmp_path / "file" / "run", digits(), epochs=1, quiet=True, callback=steps.append,
                  **TINY)
    assert steps == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_out_is_found_before_any_work(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    out.chmod(0o500)
    steps = []
    try:
        with pytest.raises(OSError, match="cannot write into"):
            run(tmp_path, callback=steps.append)
    finally:
        out.chmod(0o700)
    assert steps == []


@pytest.mark.parametrize("fails_in", ["epoch", "final"])
def test_a_failed_evaluation_leaves_no_stale_evaluation_behind(tmp_path, monkeypatch, capsys, fails_in):
    from scratchgan.gan import run as run_module
    out = tmp_path / "run"
    out.mkdir()
    (out / "evaluation.json").write_text('{"frechet_distance": 1.0}')   # from an earlier, shorter run

    class FailingEvaluator:
        def epoch(self, trainer, setup, epoch):
            if fails_in == "epoch":
                raise ValueError("per-epoch evaluation broke")
            return {"epoch": epoch, "n": 60, "frechet_distance": 1.0, "classifier_score": 1.0,
                    "classifier_score_std": 0.0, "coverage_kl": 0.0, "classes_covered": 1, "reference_n": 60}

        def final(self, trainer, setup, n):
            raise ValueError("no test data")

    monkeypatch.setattr(run_module.RunEvaluator, "create", classmethod(lambda cls, *a, **k: FailingEvaluator()))
    run(tmp_path, epochs=1)
    assert not (out / "evaluation.json").exists() and "evaluation" not in json.loads((out / "summary.json").read_text())
    err = capsys.readouterr().err
    assert ("per-epoch evaluation failed" if fails_in == "epoch" else "final evaluation failed") in err
