"""Every demo script runs end to end on a tiny synthetic MNIST and writes its figures.

The end-to-end runs are marked slow: ``python -m pytest -m slow`` runs them (CI does)."""
import importlib.util
import json
import re
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
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(DEMOS.parent), os.environ.get("PYTHONPATH")]))}


def run_demo(name, *args):
    """Run demos/NAME with this checkout's scratchgan (not whichever one is installed)."""
    result = subprocess.run([sys.executable, str(DEMOS / name), *map(str, args)], capture_output=True, text=True,
                            timeout=600, env=demo_env())
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def load_demo(name):
    """A demo script imported as a module, to call its functions."""
    spec = importlib.util.spec_from_file_location(Path(name).stem, DEMOS / name)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def assert_images(folder, *names):
    for name in names:
        with Image.open(folder / name) as im:
            assert im.size[0] > 28, name


@pytest.mark.slow
def test_mlp_tutorial(tiny_mnist, tmp_path):
    out = run_demo("mlp_tutorial.py", "--data-dir", tiny_mnist, "--epochs", 2, "--batch-size", 20, "--out", tmp_path)
    assert "discriminator accuracy" in out
    assert_images(tmp_path, "loss.png", "progress.png", "progress.gif", "accuracy.png", "spot_the_fake.png",
                  "spot_the_fake_answers.png")


@pytest.mark.slow
def test_dcgan_mnist(tiny_mnist, tmp_path):
    out = run_demo("dcgan_mnist.py", "--data-dir", tiny_mnist, "--epochs", 2, "--limit", 40, "--batch-size", 20,
                   "--out", tmp_path)
    assert "40 images, batches of 20, 2 epochs" in out and "epoch 2 done: D loss" in out
    grids = []
    for epoch in (1, 2):
        with Image.open(tmp_path / f"samples_epoch_{epoch:03d}.png") as im:
            grids.append(np.array(im))
    assert grids[0].shape == (2 * (8 * (28 + 2) + 2),) * 2   # 8 x 8 samples, padding 2, enlarged twice
    assert not np.array_equal(*grids)                        # G learned between the epochs
    assert_images(tmp_path, "loss.png")


@pytest.mark.slow
def test_dcgan_mnist_updates_are_the_trainers_dcgan_step(tmp_path):
    """The demo's written-out D and G updates are GANTrainer's step on the dcgan recipe, bit for bit."""
    from scratchgan import manual_seed
    from scratchgan.data import BatchLoader, to_tanh_range
    from scratchgan.gan import GANTrainer, get_recipe
    demo = load_demo("dcgan_mnist.py")
    images = digits(24)
    G, D, d_losses, g_losses = demo.train(to_tanh_range(images), demo.HyperParams(batch_size=8, epochs=1, n_samples=4),
                                          tmp_path)
    recipe = get_recipe("dcgan")
    manual_seed(0)
    setup = recipe.setup(recipe.options(batch_size=8, seed=0), (1, 28, 28))
    trainer = GANTrainer(setup.G, setup.D, setup.opt_g, setup.opt_d, setup.head, setup.config)
    for real in BatchLoader(setup.preprocess(images), 8, shuffle=True, seed=0):
        trainer.train_step(real)
    trainer.flush()
    assert d_losses == trainer.history["d_loss"] and g_losses == trainer.history["g_loss"] and len(d_losses) == 3
    for ours, theirs in ((G, setup.G), (D, setup.D)):
        assert repr(ours) == repr(theirs)
        for (name, layer, key), (_, other, _) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert np.array_equal(layer.params[key], other.params[key]), name
        for (name, layer), (_, other) in zip(ours.named_layers(), theirs.named_layers()):
            assert all(np.array_equal(layer.buffers[k], other.buffers[k]) for k in layer.buffers), name


@pytest.mark.slow
def test_domination(tiny_mnist, tmp_path):
    run_demo("domination.py", "--recipe", "mlp", "--data-dir", tiny_mnist, "--batch-size", 20, "--epochs", 2,
             "--out", tmp_path)
    assert_images(tmp_path, "domination.png")
    summary = json.loads((tmp_path / "domination.json").read_text())
    assert set(summary) == {"balanced", "D wins, NS", "D wins, MM", "WGAN-GP critic"}
    assert all(v["grad_norm G layer 0"] > 0 for v in summary.values())
    assert (tmp_path / "WGAN-GP_critic/checkpoint.npz").exists()   # the critic's run (wgan-gp recipe)


@pytest.mark.slow
def test_latent_study_and_arithmetic(tiny_mnist, tmp_path):
    run_demo("latent_study.py", "--data-dir", tiny_mnist, "--epochs", 1, "--z", 1, 4, "--width", 4,
             "--batch-size", 20, "--n", 200, "--out", tmp_path)
    assert_images(tmp_path, "samples_by_z.png", "losses_by_z.png")
    report = json.loads((tmp_path / "latent_study.json").read_text())
    assert set(report) == {"z=1", "z=4"} and report["z=1"]["pixel_pairwise_distance"] >= 0
    # the shipped digit classifier may put every sample of a 3-step generator of blobs in one class,
    # so the arithmetic groups the samples by k-means clusters of their pixels instead
    out = run_demo("latent_arithmetic.py", tmp_path / "z4" / "checkpoint.npz", "--out", tmp_path / "arith",
                   "--groups", "kmeans", "--n", 500)
    assert "interpolation.png and arithmetic.png" in out and "C = cluster" in out
    tile = 2 * (28 + 2)  # 28x28 samples, padding 2, enlarged twice
    with Image.open(tmp_path / "arith" / "interpolation.png") as im:
        assert im.size[1] == 8 * tile + 4 and im.size[0] > 10 * tile  # 8 strips of 10, labels on the left
    with Image.open(tmp_path / "arith" / "arithmetic.png") as im:
        assert im.size[1] == 4 * tile + 4 and im.size[0] > 12 * tile  # rows A, B, C, A - B + C of 12


def test_kmeans_groups_separate_two_kinds_of_images():
    demo = load_demo("latent_arithmetic.py")
    rng = np.random.default_rng(0)
    images = np.zeros((60, 1, 8, 8), np.float32)
    images[:25, :, :4] = 1.0       # ink on top ...
    images[25:, :, 4:] = 1.0       # ... or at the bottom
    images += rng.uniform(0, 0.1, images.shape).astype(np.float32)
    labels = demo.kmeans_clusters(images, k=2)
    assert len(set(labels[:25])) == 1 and len(set(labels[25:])) == 1 and labels[0] != labels[-1]
    assert len(set(demo.kmeans_clusters(images, k=10))) == 10
    assert set(demo.kmeans_clusters(np.zeros((20, 8, 8), np.float32), k=10)) == {0}  # collapsed: one cluster


@pytest.mark.slow
def test_latent_arithmetic_groups_and_decoding(tiny_mnist, tmp_path):
    """A - B + C on real latents, with a stand-in classifier that always finds two classes."""
    from scratchgan.gan.run import train_run
    from scratchgan.gan.sampling import load_generator
    train_run("mlp", tmp_path / "run", digits(), epochs=1, quiet=True, final_outputs=False, batch_size=20)
    demo = load_demo("latent_arithmetic.py")
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


# -- demos/conditional.py (issue 19) --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_labelled_mnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled")
    write_idx(folder / "train-images-idx3-ubyte.gz", digits(60)[:, 0])
    write_idx(folder / "train-labels-idx1-ubyte.gz", (np.arange(60) % 10).astype(np.uint8))
    return folder


@pytest.mark.slow
def test_conditional_demo_trains_and_draws_both_pictures(tiny_labelled_mnist, tmp_path):
    out = run_demo("conditional.py", "--train", "cdcgan", "--epochs", 1, "--batch-size", 20, "--data-dir",
                   tiny_labelled_mnist, "--out", tmp_path)
    assert "10 classes" in out
    assert_images(tmp_path, "class_style.png", "label_interpolation.png")
    run_demo("conditional.py", tmp_path / "run" / "checkpoint.npz", "--out", tmp_path / "again", "--columns", 3)
    assert_images(tmp_path / "again", "class_style.png", "label_interpolation.png")


def test_label_interpolation_starts_and_ends_at_the_two_classes():
    from scratchgan.gan import get_recipe
    demo = load_demo("conditional.py")
    for recipe in ("cdcgan", "cgan"):
        options = {"ngf": 4, "ndf": 4} if recipe == "cdcgan" else {}
        setup = get_recipe(recipe).setup(get_recipe(recipe).options(**options), (1, 28, 28))
        G = setup.G.eval()
        rows, z = demo.class_style_grid(G, setup, 10, 2, seed=0)
        walk = demo.label_interpolation(G, setup, z[1], 3, 8, steps=5)
        assert walk.shape == (5, 1, 28, 28)
        np.testing.assert_allclose(walk[0], rows[3][1], atol=1e-6)
        np.testing.assert_allclose(walk[-1], rows[8][1], atol=1e-6)
        assert not np.allclose(walk[2], walk[0])


# -- demos/step_time.py --------------------------------------------------------------------------------------
def test_step_time_times_each_recipes_training_step():
    out = run_demo("step_time.py", "srresnet", "cyclegan", "mlp", "--steps", "1")
    times = re.findall(r"^(\w+): ([0-9.]+) ms CPU per step \(median of 1; scratchgan from (.*)\)$", out, re.M)
    assert [name for name, _, _ in times] == ["srresnet", "cyclegan", "mlp"], out
    assert all(float(ms) > 0 for _, ms, _ in times)
    assert all(Path(path).parent.parent == DEMOS.parent for _, _, path in times)   # this checkout's code


# -- demos/op_count.py ---------------------------------------------------------------------------------------
def test_op_count_counts_what_the_gpu_would_launch():
    """The counter's rules on known operations: each ufunc call, slice assignment, fill, copy and
    initialized new array is one; views and uninitialized arrays are none."""
    op_count = load_demo("op_count.py")
    a = op_count.counted(np.ones((4, 6), np.float32))
    b = op_count.counted(np.ones((4, 6), np.float32))
    op_count.COUNTS.clear()
    op_count._counting[0] = True
    try:
        with op_count.counted_creation():
            c = a * b                      # 1
            c += 1                         # 1
            view = c.T.reshape(4, 6)[1:]   # views: 0 (but this reshape of a transpose copies: 1)
            view[...] = 0                  # 1
            c.fill(2)                      # 1
            np.einsum("ij,ij->i", a, b)    # 1
            np.empty((3, 3))               # 0
            np.zeros((3, 3))               # 1
            np.asarray(a)                  # 0: no copy
            a.sum(axis=1)                  # 1 (add.reduce)
    finally:
        op_count._counting[0] = False
    ops = [operation for (_, operation), n in op_count.COUNTS.items() for _ in range(n)]
    assert sorted(ops) == sorted(["multiply", "add", "reshape (a copy)", "setitem", "fill", "einsum", "zeros",
                                  "add.reduce"])
    assert isinstance(c, op_count.CountedArray) and np.all(c == 2)
    transposed = op_count.counted(np.ones((3, 4), np.float32)).T
    assert not (transposed * 2).flags.c_contiguous                      # NumPy keeps the layout (order K)
    op_count._cupy_layouts[0] = True
    try:
        assert (transposed * 2).flags.c_contiguous                      # CuPy's rule, on the GPU paths
    finally:
        op_count._cupy_layouts[0] = False


@pytest.mark.parametrize("workload", ["dcgan", "mlp"])
def test_op_count_of_a_training_step(workload):
    op_count = load_demo("op_count.py")
    gpu = op_count.operations_per_step(workload, batch=4)
    unfused = op_count.operations_per_step(workload, batch=4, path="gpu-unfused")
    cpu = op_count.operations_per_step(workload, batch=4, path="cpu")
    assert op_count.operations_per_step(workload, batch=9) == gpu          # the batch does not matter
    from scratchgan import bench
    trainer = bench.build_trainer(workload)
    n_params = sum(1 for net in (trainer.G, trainer.D) for _ in net.named_parameters())
    assert sum(n for (_, op), n in gpu.items() if op == "scratchgan_adam") == n_params   # one launch each
    for passes in (cpu, unfused):
        assert not any(op.startswith("scratchgan_") for _, op in passes)
        assert sum(n for (place, _), n in passes.items() if place == "optim.py:_adam_in_place") == 12 * n_params
    if workload == "dcgan":        # the CPU's im2col/col2im loops issue far more than the GPU's gathers
        assert sum(n for (place, _), n in cpu.items() if place.startswith("layers/conv.py:im2col")) > 10 * sum(
            n for (place, _), n in gpu.items() if place.startswith("fastpath.py:im2col_by_gather"))
    assert sum(gpu.values()) < min(sum(unfused.values()), sum(cpu.values()))
    assert sum(n for (_, op), n in gpu.items() if op == "ascontiguousarray") <= 1   # layouts kept on the GPU
    if workload == "dcgan":        # G's two BatchNorms, D's one: a forward and a backward each (D's three times)
        assert sum(n for (_, op), n in gpu.items() if op == "scratchgan_batchnorm_input_grad") == 2 + 3


def test_op_count_prints_a_breakdown():
    out = run_demo("op_count.py", "mlp", "--by", "operation", "--top", "3", "--batch", "2")
    assert re.match(r"mlp: \d+ array operations per training step \(gpu path\)\n(  +\d+  \S+\n){3}$", out), out


@pytest.mark.parametrize("workload", ["dcgan", "mlp"])
def test_op_count_stand_ins_compute_what_the_passes_do(workload):
    """On the counted GPU path each fused kernel's body runs as NumPy passes (op_count.run_body): a training
    step there must leave the models as the CPU's own step does. In float64: Adam's first step moves each
    weight by about lr sign(g), so in float32 a gradient within rounding of 0 (the two paths sum in other
    orders) could move either way."""
    from scratchgan import backend, bench
    op_count = load_demo("op_count.py")
    states = []
    backend.set_default_dtype(np.float64)
    try:
        for gpu_path in (True, False):
            trainer = bench.build_trainer(workload)
            real = bench.real_batch(workload, 4).astype(np.float64)
            with op_count.the_gpus_choices() if gpu_path else op_count._nothing():
                trainer.train_step(real)
            states.append({**trainer.G.state_dict(), **{f"D.{k}": v for k, v in trainer.D.state_dict().items()}})
    finally:
        backend.set_default_dtype(np.float32)
    for key, value in states[1].items():
        assert states[0][key].dtype == value.dtype and (value.dtype.kind != "f" or value.dtype == np.float64), key
        np.testing.assert_allclose(states[0][key], value, rtol=1e-9, atol=1e-12, err_msg=key)
