"""The demos on missing data or a bad checkpoint: one clear line and exit status 2, never a traceback;
and latent_study.py hands its --data-dir on to the runs it trains (their final evaluation reads it)."""
import importlib.util
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchgan.data import write_idx

from test_classifier import synthetic_digits

DEMOS = Path(__file__).resolve().parents[1] / "demos"


def run_demo_here(monkeypatch, capsys, name, *args):
    """Run demos/NAME as a script in this process (this checkout's scratchgan); (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [name, *map(str, args)])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(DEMOS / name), run_name="__main__")
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize("name, args", [
    ("mlp_tutorial.py", ["--epochs", 1]), ("domination.py", ["--epochs", 1]), ("latent_study.py", ["--epochs", 1])])
def test_demos_say_in_one_line_that_the_data_are_missing(monkeypatch, capsys, tmp_path, name, args):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_demo_here(monkeypatch, capsys, name, "--data-dir", empty, "--out", tmp_path / "out", *args)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"{name}: error: ") and len(err.strip().splitlines()) == 1
    assert str(empty) in err and "missing train-images-idx3-ubyte.gz" in err


@pytest.mark.parametrize("content, needle", [(b"", "is empty (0 bytes)"), (b"\x00garbage" * 50, "is not a scratchgan")])
def test_latent_arithmetic_says_in_one_line_that_the_checkpoint_is_bad(monkeypatch, capsys, tmp_path, content,
                                                                         needle):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(content)
    code, out, err = run_demo_here(monkeypatch, capsys, "latent_arithmetic.py", bad, "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in err and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_latent_arithmetic_on_a_missing_checkpoint(monkeypatch, capsys, tmp_path):
    code, out, err = run_demo_here(monkeypatch, capsys, "latent_arithmetic.py", tmp_path / "nope.npz")
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def load_demo(name):
    spec = importlib.util.spec_from_file_location(name[:-3], DEMOS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_latent_study_passes_data_dir_on_to_its_runs(monkeypatch, tmp_path):
    demo = load_demo("latent_study.py")
    calls = []
    monkeypatch.setattr(demo, "train_run", lambda *args, **kwargs: calls.append(kwargs))
    identity = {"match": "official subset"}
    demo.train_or_resume(tmp_path, np.zeros((4, 1, 28, 28), np.uint8), 3, 1, "cpu", 0, data_dir="DIR",
                         identity=identity)
    assert calls[0]["data_dir"] == "DIR" and calls[0]["data_identity"] is identity


@pytest.mark.slow
def test_latent_study_evaluates_its_runs_on_the_given_data_dir(monkeypatch, capsys, tmp_path):
    """With --data-dir holding a test split, each run's final evaluation succeeds from it (nothing downloaded)."""
    data = tmp_path / "mnist"
    data.mkdir()
    for split, n, seed in (("train", 1100, 0), ("t10k", 60, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    monkeypatch.setenv("SCRATCHGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SCRATCHGAN_DATA", raising=False)
    code, out, err = run_demo_here(monkeypatch, capsys, "latent_study.py", "--data-dir", data, "--epochs", 1,
                                   "--z", 2, "--width", 4, "--batch-size", 100, "--n", 100, "--out", tmp_path / "out")
    assert code in (0, None), err
    evaluation = json.loads((tmp_path / "out" / "z2" / "evaluation.json").read_text())
    assert evaluation["n"] == evaluation["reference_n"] == 100 and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name, args", [("domination.py", ["--limit", "-5"]), ("domination.py", ["--epochs", "0"]),
                                        ("mlp_tutorial.py", ["--epochs", "0"]), ("mlp_tutorial.py", ["--batch-size", "0"]),
                                        ("latent_study.py", ["--z", "0"]), ("latent_study.py", ["--n", "5"])])
def test_demo_counts_must_make_sense(monkeypatch, capsys, tmp_path, name, args):
    """--limit -5 would silently drop the last five images; --epochs 0 would plot an untrained model."""
    code, out, err = run_demo_here(monkeypatch, capsys, name, *args, "--out", tmp_path / "out")
    assert code == 2 and "Traceback" not in err and "must be at least" in err
    assert not (tmp_path / "out").exists()


def test_latent_arithmetic_refuses_runs_its_digit_classifier_cannot_sort(monkeypatch, capsys, tmp_path):
    from scratchgan.gan.run import train_run
    from test_run import digits
    train_run("mlp", tmp_path / "run", digits(40), epochs=1, quiet=True, final_outputs=False, evaluate=False,
              batch_size=20, dataset="fashion-mnist")
    code, out, err = run_demo_here(monkeypatch, capsys, "latent_arithmetic.py", tmp_path / "run" / "checkpoint.npz",
                                   "--out", tmp_path / "out")
    assert code == 2 and "is a 'fashion-mnist' run" in err and "Traceback" not in err
    assert (tmp_path / "out" / "interpolation.png").exists() and not (tmp_path / "out" / "arithmetic.png").exists()
