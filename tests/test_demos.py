"""Every demo script runs end to end on a tiny synthetic MNIST and writes its figures."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchgan.data import write_idx
from test_run import digits

DEMOS = Path(__file__).resolve().parents[1] / "demos"


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    write_idx(folder / "train-images-idx3-ubyte.gz", digits(60)[:, 0])
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(60, np.uint8))
    return folder


def demo_env():
    """The environment for a demo: this checkout's scratchgan first, not whichever is installed."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(DEMOS.parent), os.environ.get("PYTHONPATH", "")])}


def run_demo(name, *args):
    result = subprocess.run([sys.executable, str(DEMOS / name), *map(str, args)], capture_output=True, text=True,
                            timeout=600, env=demo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def assert_images(folder, *names):
    for name in names:
        with Image.open(folder / name) as im:
            assert im.size[0] > 28, name


def test_mlp_tutorial(tiny_mnist, tmp_path):
    out = run_demo("mlp_tutorial.py", "--data-dir", tiny_mnist, "--epochs", 2, "--batch-size", 20, "--out", tmp_path)
    assert "discriminator accuracy" in out
    assert_images(tmp_path, "loss.png", "progress.png", "progress.gif", "accuracy.png", "spot_the_fake.png",
                  "spot_the_fake_answers.png")


def test_domination(tiny_mnist, tmp_path):
    run_demo("domination.py", "--recipe", "mlp", "--data-dir", tiny_mnist, "--batch-size", 20, "--epochs", 2,
             "--out", tmp_path)
    assert_images(tmp_path, "domination.png")
    summary = json.loads((tmp_path / "domination.json").read_text())
    assert set(summary) == {"balanced", "D wins, NS", "D wins, MM"}
    assert all(v["grad_norm G layer 0"] > 0 for v in summary.values())


def test_latent_study_and_arithmetic(tiny_mnist, tmp_path):
    run_demo("latent_study.py", "--data-dir", tiny_mnist, "--epochs", 1, "--z", 1, 4, "--width", 4,
             "--batch-size", 20, "--n", 200, "--out", tmp_path)
    assert_images(tmp_path, "samples_by_z.png", "losses_by_z.png")
    report = json.loads((tmp_path / "latent_study.json").read_text())
    assert set(report) == {"z=1", "z=4"} and report["z=1"]["pixel_pairwise_distance"] >= 0
    checkpoint = tmp_path / "z4" / "checkpoint.npz"
    result = subprocess.run([sys.executable, str(DEMOS / "latent_arithmetic.py"), str(checkpoint), "--out",
                             str(tmp_path / "arith")], capture_output=True, text=True, timeout=600, env=demo_env())
    assert_images(tmp_path / "arith", "interpolation.png")  # written before the arithmetic
    # a one-epoch generator may draw a single class: the demo must then say so clearly
    assert result.returncode == 0 or "needs samples of two classes" in result.stderr


def test_latent_arithmetic_groups_and_decoding(tiny_mnist, tmp_path):
    """A - B + C on real latents, with a stand-in classifier that always finds two classes."""
    import importlib.util
    from scratchgan.gan.run import train_run
    from scratchgan.gan.sampling import load_generator
    train_run("mlp", tmp_path / "run", digits(), epochs=1, quiet=True, final_outputs=False, batch_size=20)
    spec = importlib.util.spec_from_file_location("latent_arithmetic", DEMOS / "latent_arithmetic.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    G, setup = load_generator(tmp_path / "run" / "checkpoint.npz")

    def by_brightness(images):  # two "classes": the darker and the brighter half
        ink = images.reshape(len(images), -1).mean(axis=1)
        return (ink > np.median(ink)).astype(int)

    z, images, (a, b, c), classes = demo.arithmetic_groups(G, setup, np.random.default_rng(0), n=200,
                                                           per_group=5, classify=by_brightness)
    ink = images.reshape(200, -1).mean(axis=1)
    labels = by_brightness(images)
    assert len(a) == len(b) == len(c) == 5 and sorted(classes) == [0, 1]
    assert (labels[a] == classes[0]).all() and (labels[b] == classes[0]).all() and (labels[c] == classes[1]).all()
    assert ink[a].min() >= ink[b].max()  # A: the thickest of class a, B: the thinnest
    decoded = demo.decode(G, setup, z[a])
    np.testing.assert_allclose(decoded, images[a], atol=1e-6)
    assert np.allclose(demo.slerp(z[0], z[1], 0.0), z[0]) and np.allclose(demo.slerp(z[0], z[1], 1.0), z[1])
