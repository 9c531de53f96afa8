"""Every command on hostile input: exit status 2 (3 for divergence, 128 + signal for a stop), one short
stderr message and never a traceback, nothing written that claims success, and no work done in vain."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from scratchgan.cli import main
from scratchgan.data import write_idx
from scratchgan.evaluation import classifier as classifier_module
from scratchgan.evaluation.classifier import build_classifier, load_classifier
from scratchgan.gan import Checkpoint
from scratchgan.gan.recipes import RECIPES
from scratchgan.gan.run import train_run

from test_classifier import synthetic_digits
from test_run import digits

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No test here may find the user's data or reach the network."""
    from scratchgan.data import datasets
    monkeypatch.delenv("SCRATCHGAN_DATA", raising=False)
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "DEBIAN_ROOT", tmp_path / "debian")

    def no_network(url, timeout=None):
        raise AssertionError(f"test tried to open {url}")
    monkeypatch.setattr(datasets, "_urlopen", no_network)


def cli(capsys, *args):
    """(exit status, stdout, stderr) of ``scratchgan ARGS`` run in this process."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(result, *needles, code=2):
    status, out, err = result
    assert status == code, (status, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert 0 < len(err.strip().splitlines()) <= 3, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# --- fixtures: a real tiny run, synthetic data folders --------------------------------------

@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """Synthetic IDX data under mnist/ and fashion-mnist/ (1,100 train, 60 test: the evaluation holds out 1,000)."""
    root = tmp_path_factory.mktemp("data")
    for name, seed in (("mnist", 0), ("fashion-mnist", 5)):
        (root / name).mkdir()
        for split, n in (("train", 1100), ("t10k", 60)):
            images, labels = synthetic_digits(n, seed + (split == "t10k"))
            write_idx(root / name / f"{split}-images-idx3-ubyte.gz", images)
            write_idx(root / name / f"{split}-labels-idx1-ubyte.gz", labels)
    return root


def tiny_run(folder, dataset="mnist"):
    train_run("mlp", folder, digits(40), epochs=1, quiet=True, final_outputs=False, evaluate=False,
              batch_size=20, dataset=dataset)
    return folder / "checkpoint.npz"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="module")
def fashion_checkpoint(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("fashion") / "run", dataset="fashion-mnist")


def rewrite_checkpoint(source, dest, meta=None, raw_meta=None, **arrays):
    """A copy of checkpoint ``source`` with ``meta`` changed by a function (or replaced by ``raw_meta``)
    and arrays replaced."""
    with np.load(source) as data:
        content = {k: data[k] for k in data.files}
    if meta is not None:
        content["meta"] = np.array(json.dumps(meta(json.loads(str(content["meta"])))))
    if raw_meta is not None:
        content["meta"] = np.array(raw_meta)
    content.update(arrays)
    np.savez(dest, **content)
    return dest


def bad_checkpoints(folder, good):
    """name -> (path, what the error must say) for checkpoints no command may trust."""
    folder.mkdir(exist_ok=True)
    files = {}

    def add(name, content, needle):
        path = folder / name / "checkpoint.npz"
        path.parent.mkdir()
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
        files[name] = (path, needle)

    add("empty", b"", "is empty (0 bytes): not a scratchgan checkpoint")
    add("random", np.random.default_rng(0).bytes(4096), "is not a scratchgan checkpoint")
    add("truncated", good.read_bytes()[:len(good.read_bytes()) // 2], "truncated or corrupt")
    add("other_npz", lambda p: np.savez(p, x=np.zeros(3)), "is not a scratchgan checkpoint")
    add("pickled", lambda p: np.savez(p, meta=np.array([{"a": 1}, None], dtype=object)), "holds Python objects")
    add("meta_not_json", lambda p: rewrite_checkpoint(good, p, raw_meta="{oops"),
        "malformed metadata (not JSON")
    add("meta_a_list", lambda p: rewrite_checkpoint(good, p, meta=lambda m: [m]), "malformed metadata")
    add("meta_no_recipe", lambda p: rewrite_checkpoint(good, p, meta=lambda m: {k: v for k, v in m.items()
                                                                               if k != "recipe"}),
        "'recipe' is None")
    add("unknown_recipe", lambda p: rewrite_checkpoint(good, p, meta=lambda m: {**m, "recipe": "nosuch"}),
        "unknown recipe 'nosuch'")
    add("bad_option", lambda p: rewrite_checkpoint(good, p, meta=lambda m: {**m, "options": {**m["options"],
                                                                                               "z_dim": -3}}),
        "option z_dim must be")
    return files


BAD = ("empty", "random", "truncated", "other_npz", "pickled", "meta_not_json", "meta_a_list", "meta_no_recipe",
       "unknown_recipe", "bad_option")


@pytest.fixture(scope="module")
def bad(tmp_path_factory, checkpoint):
    return bad_checkpoints(tmp_path_factory.mktemp("bad"), checkpoint)


# --- checkpoints that are not what they claim ------------------------------------------------

@pytest.mark.parametrize("name", BAD)
def test_sample_refuses_a_bad_checkpoint(capsys, tmp_path, bad, name):
    path, needle = bad[name]
    err = assert_clean_error(cli(capsys, "sample", path, "-o", tmp_path / "s.npy"), needle)
    assert "allow_pickle" not in err and not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize("name", BAD)
def test_evaluate_refuses_a_bad_checkpoint(capsys, tmp_path, bad, name):
    path, needle = bad[name]
    err = assert_clean_error(cli(capsys, "evaluate", path, "--json", tmp_path / "e.json"), needle)
    assert "allow_pickle" not in err and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("name", ["empty", "random", "truncated", "pickled", "meta_a_list", "unknown_recipe"])
def test_resume_refuses_a_bad_checkpoint(capsys, bad, name):
    path, needle = bad[name]
    if name == "unknown_recipe":
        needle = "is a 'nosuch' run, not 'mlp'"
    before = path.read_bytes()
    err = assert_clean_error(cli(capsys, "train", "mlp", "--resume", "--out", path.parent, "--quiet"), needle)
    assert "allow_pickle" not in err and path.read_bytes() == before


def test_a_folder_given_as_checkpoint(capsys, tmp_path):
    assert_clean_error(cli(capsys, "sample", tmp_path, "-o", tmp_path / "s.npy"), "is a folder, not a checkpoint")


# --- sample ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -5])
@pytest.mark.parametrize("suffix", [".npy", ".png"])
def test_sample_needs_a_positive_count(capsys, tmp_path, checkpoint, n, suffix):
    output = tmp_path / f"s{suffix}"
    assert_clean_error(cli(capsys, "sample", checkpoint, "-n", n, "-o", output), "-n must be at least 1")
    assert not output.exists()


def test_sample_into_a_missing_folder_fails_before_sampling(capsys, tmp_path, checkpoint):
    assert_clean_error(cli(capsys, "sample", checkpoint, "-o", tmp_path / "missing" / "x.npy"),
                       "folder", "does not exist")
    assert_clean_error(cli(capsys, "sample", checkpoint, "-o", tmp_path / "x.txt"), ".npy or .png")


def test_sample_points_image_to_image_runs_to_their_own_command(capsys, tmp_path):
    """srresnet/srgan and cyclegan checkpoints draw no samples from noise: one line naming the command
    that takes their images (it was an AttributeError traceback)."""
    from test_cyclegan import tiny_run
    train_run("srresnet", tmp_path / "sr", digits(16), epochs=1, quiet=True, evaluate=False, n_blocks=0, width=2,
              batch_size=8)
    assert_clean_error(cli(capsys, "sample", tmp_path / "sr" / "checkpoint.npz", "-o", tmp_path / "s.png"),
                       "is a 'srresnet' run: it maps images to images", "scratchgan upscale")
    tiny_run(tmp_path, "cyc", 1, final_outputs=False)
    assert_clean_error(cli(capsys, "sample", tmp_path / "cyc" / "checkpoint.npz", "-o", tmp_path / "s.png"),
                       "is a 'cyclegan' run", "scratchgan translate")
    assert not (tmp_path / "s.png").exists()


def test_sample_refuses_a_generator_that_outputs_nan(capsys, tmp_path, checkpoint):
    with np.load(checkpoint) as data:
        weight = data["G/0.weight"].copy()
    weight[:] = np.nan
    nan_checkpoint = rewrite_checkpoint(checkpoint, tmp_path / "nan.npz", **{"G/0.weight": weight})
    for output in (tmp_path / "s.npy", tmp_path / "s.png"):
        assert_clean_error(cli(capsys, "sample", nan_checkpoint, "-o", output), "NaN or infinite", "diverged")
        assert not output.exists()


# --- evaluate ----------------------------------------------------------------------------------

@pytest.mark.parametrize("array, needle", [
    (np.zeros((20, 28, 28), np.int64), "int64 values"),
    (np.zeros((20, 28, 28), bool), "bool values"),
    (np.array(0.5), "shape (N, 28, 28) or (N, 1, 28, 28)"),
    (np.zeros(784, np.float32), "shape (N, 28, 28)"),
    (np.zeros((0, 28, 28), np.float32), "N > 0"),
    (np.array([{"x": 1}, None], dtype=object), "holds Python objects"),
    # checked before any real data are loaded (no data here: a lookup would try to download)
    (np.zeros((20, 3, 28, 28), np.float32), "got (20, 3, 28, 28)"),
    (np.full((20, 28, 28), 3.0, np.float32), "pixel values must lie in [0, 1]"),
    (np.full((20, 28, 28), np.nan, np.float32), "NaN"),
])
def test_evaluate_refuses_arrays_that_are_not_images(capsys, tmp_path, array, needle):
    np.save(tmp_path / "s.npy", array, allow_pickle=True)
    err = assert_clean_error(cli(capsys, "evaluate", tmp_path / "s.npy"), needle)
    assert "allow_pickle" not in err


@pytest.mark.parametrize("command", [["sample", "CKPT", "-o", "OUT/s.npy"], ["evaluate", "CKPT"],
                                     ["train-classifier", "--out", "OUT/c.npz"]])
def test_negative_seeds_are_named(capsys, tmp_path, checkpoint, command):
    args = [str(a).replace("CKPT", str(checkpoint)).replace("OUT", str(tmp_path)) for a in command]
    assert_clean_error(cli(capsys, *args, "--seed", -1), "--seed must be a non-negative integer, got -1")


def test_evaluate_needs_ten_samples(capsys, tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((5, 28, 28), np.float32))
    assert_clean_error(cli(capsys, "evaluate", tmp_path / "s.npy"), "s.npy: 5 samples; the evaluation needs at least 10")


def test_dataset_names_are_recorded_in_their_canonical_form(capsys, tmp_path, data_root):
    from argparse import Namespace
    from scratchgan.cli import _data_options
    code, out, err = cli(capsys, "train", "mlp", "--dataset", "MNIST", "--data-dir", data_root, "--out", tmp_path / "r",
                         "--epochs", 1, "--batch-size", 100, "--quiet", "--no-evaluate")
    assert code == 0, err
    checkpoint = Checkpoint(tmp_path / "r" / "checkpoint.npz")
    assert checkpoint.meta["dataset"] == "mnist"   # so evaluate and the run's own evaluation know it
    asked = Namespace(dataset="Mnist", image_size=None, channels=None)
    assert _data_options(asked, checkpoint) == ("mnist", 28, 1)   # the same dataset when resuming


def test_evaluate_refuses_files_that_are_not_npy(capsys, tmp_path):
    (tmp_path / "r.npy").write_bytes(np.random.default_rng(1).bytes(1000))
    assert_clean_error(cli(capsys, "evaluate", tmp_path / "r.npy"), "is not a NumPy .npy file")
    np.save(tmp_path / "t.npy", np.zeros((20, 28, 28), np.float32))
    (tmp_path / "t.npy").write_bytes((tmp_path / "t.npy").read_bytes()[:500])
    assert_clean_error(cli(capsys, "evaluate", tmp_path / "t.npy"), "cannot read samples")


def test_evaluate_checks_n_and_the_json_folder_before_any_work(capsys, tmp_path, checkpoint):
    assert_clean_error(cli(capsys, "evaluate", checkpoint, "--n", 5), "at least 10")
    assert_clean_error(cli(capsys, "evaluate", checkpoint, "--json", tmp_path / "no" / "e.json"), "does not exist")


def test_evaluate_matches_sizes_and_says_so(capsys, tmp_path, data_root):
    weights = tmp_path / "clf.npz"
    build_classifier().save(weights)
    np.save(tmp_path / "s.npy", np.random.default_rng(0).uniform(size=(30, 28, 28)).astype(np.float32))
    code, out, err = cli(capsys, "evaluate", tmp_path / "s.npy", "--classifier", weights, "--data-dir", data_root,
                         "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "30 samples against 30 reference (training) images: sizes matched" in out
    assert "scored as mnist samples (the default; pass --dataset" in out
    for row in json.loads((tmp_path / "e.json").read_text()):
        assert row["n"] == row["reference_n"] == 30 and row["n_requested"] == 10000


def test_evaluate_uses_the_checkpoints_dataset(capsys, tmp_path, fashion_checkpoint, data_root):
    # no Fashion-MNIST classifier ships: say so, and give commands that exist
    err = assert_clean_error(cli(capsys, "evaluate", fashion_checkpoint, "--data-dir", data_root),
                             "no classifier weights ship for 'fashion-mnist'")
    assert "scratchgan train-classifier --dataset fashion-mnist --out" in err and "--classifier" in err
    assert_clean_error(cli(capsys, "evaluate", fashion_checkpoint, "--dataset", "mnist"),
                       "is a fashion-mnist run: --dataset mnist would score it against the wrong data")
    # the suggested path, end to end
    code, out, err = cli(capsys, "train-classifier", "--dataset", "fashion-mnist", "--data-dir", data_root,
                         "--epochs", 1, "--limit", 200, "--out", tmp_path / "F.npz")
    assert code == 0, err
    code, out, err = cli(capsys, "evaluate", fashion_checkpoint, "--classifier", tmp_path / "F.npz",
                         "--data-dir", data_root, "--n", 20, "--json", tmp_path / "e.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "e.json").read_text())
    assert all(row["dataset"] == "fashion-mnist" for row in rows)
    assert rows[-1]["classifier_sha256"] == load_classifier(tmp_path / "F.npz").metadata["sha256"]
    # a classifier of another dataset is refused before sampling
    build_classifier().save(tmp_path / "M.npz")
    mnist_classifier = load_classifier(tmp_path / "M.npz")
    mnist_classifier.metadata["dataset"] = "mnist"
    mnist_classifier.save(tmp_path / "M.npz")
    assert_clean_error(cli(capsys, "evaluate", fashion_checkpoint, "--classifier", tmp_path / "M.npz"),
                       "was trained on mnist, not fashion-mnist")


def test_evaluate_refuses_a_classifier_file_that_is_not_one(capsys, tmp_path, checkpoint):
    (tmp_path / "c.npz").write_bytes(np.random.default_rng(2).bytes(2000))
    err = assert_clean_error(cli(capsys, "evaluate", checkpoint, "--classifier", tmp_path / "c.npz"),
                             "not a scratchgan classifier file")
    assert "allow_pickle" not in err
    np.savez(tmp_path / "d.npz", x=np.zeros(2))
    assert_clean_error(cli(capsys, "evaluate", checkpoint, "--classifier", tmp_path / "d.npz"),
                       "not a scratchgan classifier file (no metadata entry)")


# --- train-classifier -------------------------------------------------------------------------

def test_train_classifier_checks_out_and_options_before_training(capsys, tmp_path, data_root):
    code, out, err = cli(capsys, "train-classifier", "--data-dir", data_root, "--out", tmp_path / "no" / "c.npz")
    assert_clean_error((code, out, err), "does not exist")
    assert "epoch 1/" not in out
    for flag, value in (("--epochs", 0), ("--lr", -1), ("--batch-size", 0), ("--limit", 0)):
        code, out, err = cli(capsys, "train-classifier", "--data-dir", data_root, flag, value,
                             "--out", tmp_path / "c.npz")
        assert_clean_error((code, out, err), flag.lstrip("-").replace("-", "_"))
        assert "epoch 1/" not in out and not (tmp_path / "c.npz").exists()


def test_regenerating_the_shipped_classifier_keeps_evaluate_working(capsys, tmp_path, monkeypatch, data_root):
    """The documented regeneration (--out into the package's weights folder) records the new checksum."""
    weights = tmp_path / "weights"
    shutil.copytree(classifier_module.WEIGHTS_DIR, weights)
    monkeypatch.setattr(classifier_module, "WEIGHTS_DIR", weights)
    old = json.loads((weights / "checksums.json").read_text())["mnist"]["sha256"]
    (weights / ".mnist_classifier.npz.abcd1234.part").write_bytes(b"left by a killed save")
    code, out, err = cli(capsys, "train-classifier", "--dataset", "mnist", "--data-dir", data_root, "--epochs", 1,
                         "--limit", 200, "--out", weights / "mnist_classifier.npz")
    assert code == 0, err
    record = json.loads((weights / "checksums.json").read_text())["mnist"]
    assert record["sha256"] != old and f"sha256 {record['sha256']}" in out
    assert load_classifier().metadata["sha256"] == record["sha256"]   # the shipped lookup accepts it
    assert not (weights / ".mnist_classifier.npz.abcd1234.part").exists()
    np.save(tmp_path / "s.npy", np.random.default_rng(0).uniform(size=(20, 28, 28)).astype(np.float32))
    code, out, err = cli(capsys, "evaluate", tmp_path / "s.npy", "--data-dir", data_root, "--n", 20)
    assert code == 0, err


def test_a_replaced_shipped_classifier_says_how_to_regenerate_it(capsys, tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    shutil.copytree(classifier_module.WEIGHTS_DIR, weights)
    build_classifier().save(weights / "mnist_classifier.npz")   # replaced without recording its checksum
    monkeypatch.setattr(classifier_module, "WEIGHTS_DIR", weights)
    np.save(tmp_path / "s.npy", np.zeros((20, 28, 28), np.float32))
    assert_clean_error(cli(capsys, "evaluate", tmp_path / "s.npy"), "does not match the recorded",
                       "scratchgan train-classifier --dataset mnist --out")


# --- train ----------------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value, needle", [
    ("--epochs", 0, "option epochs must be an integer >= 1"), ("--epochs", -1, "option epochs"),
    ("--lr", -1, "option lr must be a finite number > 0"), ("--lr", 0, "option lr"),
    ("--lr", "nan", "option lr"), ("--z-dim", 0, "option z_dim"), ("--batch-size", 0, "option batch_size"),
    ("--k", 0, "option k"), ("--eval-samples", 0, "eval_samples (--eval-samples)"),
    ("--dropout", 1.5, "option dropout")])
def test_train_refuses_nonsense_options_before_any_work(capsys, tmp_path, flag, value, needle):
    out = tmp_path / "run"
    result = cli(capsys, "train", "mlp", "--data-dir", tmp_path / "no-data", "--out", out, "--quiet", flag, value)
    assert_clean_error(result, needle)   # not the missing data: options come first
    assert not out.exists() and "run written" not in result[1]


@pytest.mark.parametrize("recipe, size, needle", [("dcgan", 30, "dcgan supports images of size 28, 32, 64, not 30"),
                                                   ("mlp", 0, "image size must be a positive integer, got 0")])
def test_train_checks_the_image_size_before_loading_data(capsys, tmp_path, recipe, size, needle):
    assert_clean_error(cli(capsys, "train", recipe, "--image-size", size, "--data-dir", tmp_path / "no-data",
                           "--out", tmp_path / "run"), needle)
    assert not (tmp_path / "run").exists()                     # refused before --out is created


@pytest.mark.parametrize("recipe", ["progan", "lapgan"])
def test_an_image_folders_default_size_is_checked_before_out_is_created(capsys, tmp_path, recipe):
    """A folder's images default to 64 pixels, which progan and lapgan refuse before anything is created."""
    result = cli(capsys, "train", recipe, "--dataset", f"folder:{tmp_path / 'none'}", "--out", tmp_path / "run")
    assert_clean_error(result, f"{recipe} supports images of size 28, 32, not 64 (--image-size)")
    assert not (tmp_path / "run").exists()


def test_a_corrupt_checksum_record_says_to_reinstall(capsys, tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    shutil.copytree(classifier_module.WEIGHTS_DIR, weights)
    (weights / "checksums.json").write_text("{not json")
    monkeypatch.setattr(classifier_module, "WEIGHTS_DIR", weights)
    np.save(tmp_path / "s.npy", np.zeros((20, 28, 28), np.float32))
    assert_clean_error(cli(capsys, "evaluate", tmp_path / "s.npy"), "checksums.json is missing or corrupt: reinstall")


def test_train_checks_out_before_loading_data(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    assert_clean_error(cli(capsys, "train", "mlp", "--data-dir", tmp_path / "no-data", "--out",
                           tmp_path / "file" / "run"), "cannot write into")


def test_train_resume_cannot_undo_epochs_or_change_the_data(capsys, tmp_path, checkpoint, data_root):
    out = tmp_path / "run"
    shutil.copytree(checkpoint.parent, out)
    result = cli(capsys, "train", "mlp", "--resume", "--epochs", 0, "--out", out, "--data-dir", data_root)
    assert_clean_error(result, "--epochs 0 is fewer than the 1 epoch(s)")
    meta = Checkpoint(out / "checkpoint.npz").meta
    assert meta["epoch"] == 1
    result = cli(capsys, "train", "mlp", "--resume", "--dataset", "fashion-mnist", "--epochs", 2, "--out", out)
    assert_clean_error(result, "cannot change the data when resuming: --dataset fashion-mnist (the run has mnist)")
    # the run trained on 40 blob digits; the MNIST found now are other data
    result = cli(capsys, "train", "mlp", "--resume", "--epochs", 2, "--out", out, "--data-dir", data_root, "--quiet")
    assert_clean_error(result, "was trained on other data")
    assert Checkpoint(out / "checkpoint.npz").meta["epoch"] == 1 and "run written" not in result[1]


def test_resume_with_fewer_epochs_than_trained_is_an_error(capsys, tmp_path, checkpoint):
    out = tmp_path / "run"
    shutil.copytree(checkpoint.parent, out)
    rewrite_checkpoint(checkpoint, out / "checkpoint.npz", meta=lambda m: {**m, "epoch": 3})
    result = cli(capsys, "train", "mlp", "--resume", "--epochs", 2, "--out", out, "--data-dir", tmp_path / "none")
    assert_clean_error(result, "--epochs 2 is fewer than the 3 epoch(s)")


def test_a_diverging_run_says_truthfully_that_nothing_was_saved(capsys, tmp_path, monkeypatch, data_root):
    mlp = RECIPES["mlp"]
    build = mlp.build

    def poisoned(options, image_shape):
        setup = build(options, image_shape)
        setup.D[0].params["weight"][...] = np.nan
        return setup

    monkeypatch.setattr(mlp, "build", poisoned)
    out = tmp_path / "run"
    result = cli(capsys, "train", "mlp", "--data-dir", data_root, "--out", out, "--quiet", "--batch-size", 100)
    err = assert_clean_error(result, "training diverged", "No checkpoint was written", code=3)
    assert "intact" not in err and not (out / "checkpoint.npz").exists() and "run written" not in result[1]


@pytest.mark.slow
def test_ctrl_c_during_the_final_evaluation(capsys, tmp_path, monkeypatch, data_root):
    from scratchgan.gan.evaluate import RunEvaluator

    def final(self, trainer, setup, n):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("Ctrl-C should have stopped the evaluation")

    monkeypatch.setattr(RunEvaluator, "final", final)
    out = tmp_path / "run"
    result = cli(capsys, "train", "mlp", "--data-dir", data_root, "--out", out, "--quiet", "--epochs", 1,
                 "--batch-size", 100, "--eval-samples", 100)
    err = assert_clean_error(result, "Ctrl-C during the final outputs: training is complete and saved",
                             f"--resume --out {out}", code=130)
    assert "run written" not in result[1] and not (out / "evaluation.json").exists()
    assert Checkpoint(out / "checkpoint.npz").meta["epoch"] == 1 and "Traceback" not in err


@pytest.mark.filterwarnings("default::scratchgan.data.identity.DataWarning")
def test_data_warnings_are_one_line(capsys, tmp_path, data_root):
    # the data load and warn; then the batch size turns out larger than the 1,100 images
    code, out, err = cli(capsys, "train", "mlp", "--data-dir", data_root, "--out", tmp_path / "run", "--quiet",
                         "--epochs", 1, "--batch-size", 5000, "--no-evaluate")
    assert code == 2 and "Traceback" not in err
    warning, error = err.strip().splitlines()
    assert warning.startswith("warning: ") and "not the official mnist data" in warning
    assert error.startswith("scratchgan train: error: ") and "batch_size 5000 is larger than the 1100" in error


def test_the_other_entry_points_report_errors_the_same_way(capsys):
    assert_clean_error(cli(capsys, "bench", "--workload", "mlp", "--steps", 0), "steps")
    assert_clean_error(cli(capsys, "evaluate", "missing.npy"), "missing.npy")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_training_process_stopped_by_a_signal_saves_and_says_how_to_resume(tmp_path, data_root, signum):
    """What a scheduler (SIGTERM) or a user (Ctrl-C) sees: a checkpoint, the resume command, 128 + signal."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "scratchgan.cli", "train", "mlp", "--data-dir",
                                str(data_root), "--out", str(out), "--epochs", "1000", "--batch-size", "10",
                                "--no-evaluate", "--quiet"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err and f"--resume --out {out}" in err and "is intact" in err
    meta = Checkpoint(out / "checkpoint.npz").meta
    assert meta["trainer"]["d_steps"] > 0 and not list(out.glob(".*.part"))


@pytest.mark.parametrize("switch,value,expected", [
    ("SCRATCHGAN_FUSED", "on", "SCRATCHGAN_FUSED must be one of auto, off, got 'on'"),
    ("SCRATCHGAN_IM2COL", "fast", "SCRATCHGAN_IM2COL must be one of auto, loops, gather, got 'fast'"),
])
def test_a_misspelt_switch_stops_every_command_before_it_starts(capsys, monkeypatch, tmp_path, switch, value,
                                                                expected):
    """The speed switches (fastpath.py) are read deep inside a training step; the commands check them first,
    so a typo costs nothing and leaves no empty run folder behind."""
    monkeypatch.setenv(switch, value)
    assert_clean_error(cli(capsys, "train", "mlp", "--g-steps", 1, "--out", tmp_path / "run"), expected)
    assert not (tmp_path / "run").exists()
    assert_clean_error(cli(capsys, "bench", "--workload", "mlp", "--steps", 1, "--warmup", 0), expected)
    monkeypatch.setenv(switch, "auto")
    assert cli(capsys, "gradcheck", "--only", "Tanh")[0] == 0
