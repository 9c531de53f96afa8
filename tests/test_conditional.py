"""Conditional GANs end to end: the AC-GAN game, the CGAN schedule, the recipes, runs, sample and evaluate."""
import json

import numpy as np
import pytest
from PIL import Image

import scratchgan.layers as L
from scratchgan import SGD, backend
from scratchgan.backend import RNG
from scratchgan.cli import main
from scratchgan.gan import Checkpoint, GANConfig, GANTrainer, get_recipe
from scratchgan.gan.averaging import REESTIMATE_SEED, GeneratorEMA
from scratchgan.gan.conditional import (CLASS_NAMES, AuxiliaryClassifierGame, SGDSchedule, balanced_labels,
                                        class_names, conditional_dcgan_generator)
from scratchgan.gan.run import train_run
from scratchgan.gan.sampling import sample_classes, sample_with_labels
from scratchgan.gradcheck import numeric_gradient, rel_error

from realdata import FASHION_DIR, MNIST_DIR, needs_mnist

TINY = {"batch_size": 20, "seed": 3}
SMALL_DCGAN = {"ngf": 4, "ndf": 4, "batch_size": 20, "seed": 3}


def labelled_digits(n=60, seed=0):
    """Blob 'digits' whose class (0, 1, 2) is the row band the blob sits in."""
    rng = np.random.default_rng(seed)
    images, labels = np.zeros((n, 1, 28, 28), np.uint8), rng.integers(0, 3, n)
    for im, k in zip(images, labels):
        c = rng.integers(4, 16)
        im[0, 2 + 8 * k:8 + 8 * k, c:c + 6] = 230
    return images, labels


def conditional_run(tmp_path, recipe="cdcgan", name="run", epochs=2, **kw):
    images, labels = labelled_digits()
    options = {**(TINY if recipe == "cgan" else SMALL_DCGAN), "num_classes": 3, **kw}
    return train_run(recipe, tmp_path / name, images, labels=labels, epochs=epochs, quiet=True, evaluate=False,
                     **options)


# -- the AC-GAN game -----------------------------------------------------------------------------------

def tiny_acgan_D():
    return L.Chain(L.Select(0), L.Dense(5, 6, "tanh", rng=RNG(0)),
                   L.Fork(L.Dense(6, 1, rng=RNG(1)), L.Dense(6, 3, rng=RNG(2)))).to(dtype=np.float64)


@pytest.mark.parametrize("kind", ["non-saturating", "minimax"])
@pytest.mark.parametrize("fake_class_loss", [True, False])
def test_acgan_losses_have_the_gradients_of_their_values(kind, fake_class_loss):
    D, game = tiny_acgan_D(), AuxiliaryClassifierGame(kind, aux_weight=0.7, fake_class_loss=fake_class_loss)
    x, y = np.random.default_rng(0).standard_normal((4, 5)), np.array([0, 2, 2, 1])
    losses = {"g": lambda out: game.g_loss(out, y),
              "d real": lambda out: game.d_loss(out, True, y, None),
              "d fake": lambda out: game.d_loss(out, False, y, None)}
    for what, loss in losses.items():
        _, dout = loss(D.forward((x, y)))
        dx = D.backward(dout)[0]
        numeric = numeric_gradient(lambda: loss(D.forward((x, y), keep_cache=False))[0], x)
        assert rel_error(dx, numeric) < 1e-8, what


def test_acgan_losses_are_the_papers():
    """D: BCE(s, 1) + CE(c, y) on reals, BCE(s, 0) + CE(c, y) on fakes; G: BCE(s, 1) + CE(c, y), or
    minimax -BCE(s, 0) + CE(c, y); the fake class term dropped from D's loss when asked."""
    s, c = np.array([[0.3], [-1.2]]), np.array([[2.0, 0.1, -1.0], [0.0, 0.5, 0.2]])
    y = np.array([0, 2])
    bce = lambda t: float(np.mean(np.log1p(np.exp(-s[:, 0])) * t + np.log1p(np.exp(s[:, 0])) * (1 - t)))
    ce = float(np.mean([np.log(np.exp(row).sum()) - row[k] for row, k in zip(c, y)]))
    game = AuxiliaryClassifierGame()
    assert np.isclose(game.d_loss((s, c), True, y, None)[0], bce(1) + ce)
    assert np.isclose(game.d_loss((s, c), False, y, None)[0], bce(0) + ce)
    assert np.isclose(game.g_loss((s, c), y)[0], bce(1) + ce)
    assert np.isclose(AuxiliaryClassifierGame("minimax").g_loss((s, c), y)[0], -bce(0) + ce)
    assert np.isclose(AuxiliaryClassifierGame(aux_weight=2.0).g_loss((s, c), y)[0], bce(1) + 2 * ce)
    real_only = AuxiliaryClassifierGame(fake_class_loss=False)
    value, (_, d_classes) = real_only.d_loss((s, c), False, y, None)
    assert np.isclose(value, bce(0)) and not d_classes.any()


def test_acgan_records_class_accuracy_on_real_and_fake():
    game = AuxiliaryClassifierGame()
    s, y = np.zeros((4, 1)), np.array([0, 1, 2, 1])
    classes = np.eye(3)[[0, 1, 0, 0]] * 5.0                  # right on samples 0 and 1 only
    game.d_loss((s, classes), True, y, None)
    game.d_loss((s, np.eye(3)[[0, 1, 2, 1]]), False, y, None)
    stats = dict(zip(game.stat_keys, game.stats(np.full(4, 0.7), np.full(4, 0.2))))
    assert stats["class_acc_real"] == 0.5 and stats["class_acc_fake"] == 1.0
    assert stats["d_real"] == pytest.approx(0.7) and stats["acc_fake"] == 1.0


def test_trainer_plays_the_acgan_game_and_records_its_keys():
    G = L.Chain(L.Parallel(L.Identity(), L.OneHot(3)), L.Concat(), L.Dense(7, 5, "tanh", rng=RNG(0)))
    G.to(dtype=np.float64)
    D = tiny_acgan_D()
    config = GANConfig(z_dim=4, batch_size=8, seed=5, n_progress=3, num_classes=3)
    trainer = GANTrainer(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), AuxiliaryClassifierGame(), config)
    assert trainer.joint_d_batch        # no BatchNorm: real and fake through D as one batch
    before = G.state_dict()
    trainer.train_step((np.random.default_rng(0).uniform(-1, 1, (8, 5)), np.array([0, 1, 2, 0, 1, 2, 0, 1])))
    assert any(not np.array_equal(before[k], v) for k, v in G.state_dict().items())
    assert trainer.history_keys[-2:] == ("class_acc_real", "class_acc_fake")
    assert all(0 <= trainer.history[k][0] <= 1 for k in ("class_acc_real", "class_acc_fake"))


def test_joint_and_separate_discriminator_passes_agree_for_two_headed_outputs():
    results = []
    for joint in (True, False):
        D = tiny_acgan_D()
        G = L.Chain(L.Select(0), L.Dense(4, 5, rng=RNG(3))).to(dtype=np.float64)
        config = GANConfig(z_dim=4, batch_size=6, seed=1, n_progress=3, num_classes=3)
        trainer = GANTrainer(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), AuxiliaryClassifierGame(), config)
        trainer.joint_d_batch = joint
        real, labels = np.random.default_rng(1).standard_normal((6, 5)), np.array([2, 2, 0, 1, 1, 0])
        fake = np.random.default_rng(2).standard_normal((6, 5))
        loss, *_ = trainer.discriminator_step(real, fake, labels, np.array([0, 0, 1, 2, 2, 1]))
        results.append((float(loss), D.state_dict()))
    assert np.isclose(results[0][0], results[1][0], rtol=1e-13)
    assert all(np.allclose(results[0][1][k], results[1][1][k], rtol=1e-12) for k in results[0][1])


# -- the CGAN schedule -------------------------------------------------------------------------------

def test_cgan_schedule_decays_the_learning_rate_per_update_and_ramps_the_momentum_per_epoch():
    model = L.Dense(2, 1)
    opt_g, opt_d = SGD(model, lr=0.1, momentum=0.5), SGD(model, lr=0.1, momentum=0.5)
    schedule = SGDSchedule(opt_g, opt_d, decay=1.00004, min_lr=1e-6, final_momentum=0.7, saturate=250)
    opt_d.t = 1000
    schedule.after_d_step(None)
    assert opt_d.lr == pytest.approx(0.1 / 1.00004 ** 1000) and opt_g.lr == 0.1
    opt_d.t = 10 ** 6
    schedule.after_d_step(None)
    assert opt_d.lr == 1e-6                              # the floor
    for epoch, expected in ((1, 0.5), (125, 0.5 + 0.2 * 124 / 249), (250, 0.7), (400, 0.7)):
        schedule.after_epoch(None, epoch)
        assert opt_g.momentum == pytest.approx(expected)
    restored = SGDSchedule(SGD(model, lr=0.1, momentum=0.5), SGD(model, lr=0.1, momentum=0.5))
    restored.load_state_dict(schedule.state_dict())
    assert restored.optimizers[0].momentum == pytest.approx(0.7)


def test_uniform_noise_is_the_unit_hypercube():
    config = GANConfig(z_dim=100, noise="uniform")
    trainer = GANTrainer(L.Dense(100, 2), L.Dense(2, 1), SGD(L.Dense(1, 1)), SGD(L.Dense(1, 1)), get_head_logit(),
                         config)
    z = trainer.sample_noise(500)
    assert z.dtype == np.float32 and 0 <= z.min() and z.max() < 1 and abs(z.mean() - 0.5) < 0.01
    assert 0 <= trainer.fixed_noise.min() and trainer.fixed_noise.max() < 1
    with pytest.raises(ValueError, match="unknown noise 'gauss'"):
        GANTrainer(L.Dense(100, 2), L.Dense(2, 1), SGD(L.Dense(1, 1)), SGD(L.Dense(1, 1)), get_head_logit(),
                   GANConfig(noise="gauss"))


def get_head_logit():
    from scratchgan.gan import get_head
    return get_head("logit")


# -- recipes ---------------------------------------------------------------------------------------

def test_the_cgan_recipe_is_the_papers_model():
    setup = get_recipe("cgan").setup(get_recipe("cgan").options(), (1, 28, 28))
    dense = [layer for _, layer in setup.G.named_layers() if isinstance(layer, L.Dense)]
    assert [(d.in_features, d.out_features) for d in dense] == [(100, 200), (10, 1000), (1200, 1200), (1200, 784)]
    maxout = [layer for _, layer in setup.D.named_layers() if isinstance(layer, L.Maxout)]
    assert [(m.out_features, m.pieces) for m in maxout] == [(240, 5), (50, 5), (240, 4)]
    dropouts = [layer.p for _, layer in setup.G.named_layers() if isinstance(layer, L.Dropout)]
    assert dropouts == [0.5, 0.5]
    assert setup.config.noise == "uniform" and setup.config.z_dim == 100 and setup.config.batch_size == 100
    assert isinstance(setup.extensions[0], SGDSchedule) and setup.opt_g.momentum == 0.5 and setup.opt_g.lr == 0.1
    out = setup.D.forward((np.zeros((3, 784), np.float32), np.array([0, 9, 4])))
    assert out.shape == (3, 1)


@pytest.mark.parametrize("recipe, d_params", [("cdcgan", 148_864), ("acgan", 138_624 + 128 * 49 * 10),
                                              ("cdcgan-plus", 138_624 + 128 * 49 * 10), ("acgan-plus", 201_344)])
def test_dcgan_sized_conditional_recipes(recipe, d_params):
    """DCGAN-28's G with a 10-dim label embedding joined to z; D as documented (parameter counts)."""
    setup = get_recipe(recipe).setup(get_recipe(recipe).options(), (1, 28, 28))
    assert setup.G.num_params() == 1_907_044 and setup.D.num_params() == d_params
    z, y = np.zeros((2, 100, 1, 1), np.float32), np.array([3, 7])
    assert setup.G.forward((z, y), train=False).shape == (2, 1, 28, 28)
    out = setup.D.forward((np.zeros((2, 1, 28, 28), np.float32), y), train=False)
    shapes = [o.shape for o in out] if isinstance(out, tuple) else out.shape
    assert shapes == ([(2, 1), (2, 10)] if recipe.startswith("acgan") else (2, 1) if "plus" in recipe
                      else (2, 1, 1, 1))


@pytest.mark.parametrize("recipe, option, value", [
    ("cdcgan", "d_conditioning", "concat"), ("acgan", "aux_weight", -1.0), ("acgan", "fake_class_loss", "no"),
    ("cgan", "noise", "gauss"), ("cgan", "final_momentum", 1.0), ("cgan", "lr_decay", 0.5),
    ("cdcgan", "num_classes", 1), ("cdcgan", "embed_dim", 0), ("cdcgan-plus", "ema", 1.0),
    ("acgan", "ema_bn", "mean")])
def test_conditional_options_are_checked(recipe, option, value):
    with pytest.raises(ValueError, match=f"option {option} must be"):
        get_recipe(recipe).options(**{option: value})


# -- runs -------------------------------------------------------------------------------------------

def test_conditional_run_writes_class_grids_and_records_its_classes(tmp_path):
    trainer = conditional_run(tmp_path, "acgan", epochs=2, keep_checkpoints=1, final_outputs=False)
    out = tmp_path / "run"
    meta = Checkpoint(out / "checkpoint.npz").meta
    assert meta["conditioning"] == {"num_classes": 3, "class_names": ["0", "1", "2"]}
    assert "labels_sha256" in meta["data"]
    with Image.open(out / "class_progress.gif") as gif:
        assert gif.n_frames == 3                             # untrained, epoch 1, epoch 2
    with Image.open(out / "class_grid.png") as grid:
        assert grid.height > 3 * 2 * 28                      # three rows of 28-pixel tiles, enlarged twice
    arrays = Checkpoint(out / "checkpoint.npz").arrays
    assert arrays["class_progress"].shape == (3, 3 * 10, 1, 28, 28)
    for epoch in (1, 2):
        copy = Checkpoint(out / f"checkpoint_e{epoch:03d}.npz")
        assert copy.meta["epoch"] == epoch
    assert "class_acc_fake" in trainer.history


def test_class_grid_holds_the_style_and_varies_the_class(tmp_path):
    conditional_run(tmp_path, "cdcgan", epochs=1)
    grids = Checkpoint(tmp_path / "run" / "checkpoint.npz").arrays["class_progress"]
    last = grids[-1].reshape(3, 10, 28, 28)
    assert not np.allclose(last[0], last[1])                 # other class, same noise: another image
    samples, labels = sample_with_labels(tmp_path / "run" / "checkpoint.npz", 6, labels=np.array([0, 0, 1, 1, 2, 2]))
    assert samples.shape == (6, 1, 28, 28) and labels.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("recipe", ["acgan", pytest.param("cgan", marks=pytest.mark.slow)])
def test_conditional_resume_is_bit_identical(tmp_path, recipe):
    """Class grids, the AC-GAN history, the CGAN schedule's momentum and learning rate: all restored."""
    conditional_run(tmp_path, recipe, "straight", epochs=2, final_outputs=False)
    conditional_run(tmp_path, recipe, "split", epochs=1, final_outputs=False)
    images, labels = labelled_digits()
    train_run(None, tmp_path / "split", images, labels=labels, epochs=2, resume=True, quiet=True, evaluate=False,
              final_outputs=False)
    a, b = Checkpoint(tmp_path / "straight" / "checkpoint.npz"), Checkpoint(tmp_path / "split" / "checkpoint.npz")
    assert sorted(a.arrays) == sorted(b.arrays)
    for key in a.arrays:
        assert np.array_equal(a.arrays[key], b.arrays[key], equal_nan=True), key


def test_a_conditional_recipe_needs_labels_within_its_classes(tmp_path):
    images, labels = labelled_digits()
    with pytest.raises(ValueError, match="cdcgan is a conditional recipe: it trains on images with class labels"):
        train_run("cdcgan", tmp_path / "a", images, epochs=1, quiet=True, evaluate=False)
    with pytest.raises(ValueError, match="labels run from 0 to 2, outside the 2 classes 0..1"):
        train_run("cdcgan", tmp_path / "b", images, labels=labels, epochs=1, quiet=True, num_classes=2)
    with pytest.raises(ValueError, match=r"one integer class label per image \(60\)"):
        train_run("cdcgan", tmp_path / "c", images, labels=labels[:10], epochs=1, quiet=True)
    with pytest.raises(ValueError, match="keep_checkpoints"):
        train_run("cdcgan", tmp_path / "d", images, labels=labels, epochs=1, quiet=True, keep_checkpoints=0)
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_class_names_and_balanced_labels():
    assert class_names("fashion-mnist", 10)[7] == "Sneaker" and class_names("mnist", 10) == CLASS_NAMES["mnist"]
    assert class_names("folder:x", 3) == ["0", "1", "2"]
    assert balanced_labels(7, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]


# -- the weight average of a conditional G ------------------------------------------------------------

def test_conditional_average_reestimates_batchnorm_with_every_class_in_turn():
    G = conditional_dcgan_generator(3, 3, 2, 1, 28, 4)
    ema = GeneratorEMA(G, beta=0.5, noise_dims=(3, 1, 1), num_classes=3, bn_batches=3, bn_batch_size=7)
    sampler = ema.averaged_generator(G)
    first = next(i for i, layer in enumerate(sampler.layers) if isinstance(layer, L.BatchNorm))
    before_norm = L.Chain(*sampler.layers[:first])
    rng, means, variances = RNG(REESTIMATE_SEED), [], []
    for _ in range(3):     # by hand: each batch holds the classes 0, 1, 2, 0, ... with its own noise
        z = rng.normal((7, 3, 1, 1), dtype=np.float32)
        h = before_norm.forward((z, np.arange(7) % 3), train=False, keep_cache=False)
        values = h.transpose(1, 0, 2, 3).reshape(h.shape[1], -1).astype(np.float64)
        means.append(values.mean(axis=1))
        variances.append(values.var(axis=1, ddof=1))
    norm = sampler.layers[first]
    np.testing.assert_allclose(norm.buffers["running_mean"], np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.buffers["running_var"], np.mean(variances, axis=0), rtol=1e-5)


@pytest.mark.parametrize("recipe", ["cdcgan-plus", "acgan-plus"])
def test_a_conditional_run_keeps_a_weight_average_without_changing_training(tmp_path, recipe):
    conditional_run(tmp_path, recipe, "plain", final_outputs=False, ema=0.0)
    conditional_run(tmp_path, recipe, "ema", final_outputs=False, ema=0.9)
    plain, ema = Checkpoint(tmp_path / "plain/checkpoint.npz"), Checkpoint(tmp_path / "ema/checkpoint.npz")
    assert {k for k in ema.arrays if not k.startswith("ext/")} == set(plain.arrays)
    for key, value in plain.arrays.items():
        if "progress" not in key:       # the progress images and class grids come from the average
            assert np.array_equal(value, ema.arrays[key], equal_nan=True), key
    assert int(ema.arrays["ext/GeneratorEMA/updates"]) == 2 * 3
    path = tmp_path / "ema/checkpoint.npz"
    averaged, labels = sample_with_labels(path, 6, generator="average")
    raw, _ = sample_with_labels(path, 6, generator="raw")
    assert labels.tolist() == [0, 1, 2, 0, 1, 2] and not np.array_equal(averaged, raw)
    assert np.array_equal(sample_with_labels(path, 6)[0], averaged)       # what the run samples from


# -- sample and evaluate ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def conditional_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conditional")
    conditional_run(folder, "cdcgan", epochs=1)
    return folder / "run" / "checkpoint.npz"


def test_sample_all_classes_and_one_class_by_index_or_name(conditional_checkpoint):
    samples, labels, names = sample_classes(conditional_checkpoint, 4)
    assert samples.shape == (12, 1, 28, 28) and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert names == ["0", "1", "2"]
    for label in ("2", 2):
        samples, labels, _ = sample_classes(conditional_checkpoint, 5, label)
        assert samples.shape == (5, 1, 28, 28) and set(labels.tolist()) == {2}
    a, *_ = sample_classes(conditional_checkpoint, 5, "1", seed=4)
    b, *_ = sample_classes(conditional_checkpoint, 5, "1", seed=4)
    assert np.array_equal(a, b)


def test_cli_sample_label(conditional_checkpoint, tmp_path, capsys):
    assert main(["sample", str(conditional_checkpoint), "-n", "3", "-o", str(tmp_path / "all.npy")]) == 0
    assert np.load(tmp_path / "all.labels.npy").tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert np.load(tmp_path / "all.npy").shape == (9, 28, 28)
    assert main(["sample", str(conditional_checkpoint), "-n", "4", "--label", "all", "-o", str(tmp_path / "g.png")]) == 0
    with Image.open(tmp_path / "g.png") as grid:
        rows = grid.height
    assert main(["sample", str(conditional_checkpoint), "-n", "4", "--label", "1", "-o", str(tmp_path / "1.png")]) == 0
    with Image.open(tmp_path / "1.png") as one:
        assert one.height < rows                             # one class: a square-ish grid, not three rows
    capsys.readouterr()
    for label, message in (("3", "--label 3 is outside the 3 classes"), ("cat", "--label 'cat' is not a class"),
                           ("-1", "--label -1 is outside")):
        assert main(["sample", str(conditional_checkpoint), "--label", label, "-o", str(tmp_path / "x.npy")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.npy").exists()


def test_cli_sample_refuses_a_label_for_an_unconditional_model(tmp_path, capsys):
    from test_run import digits
    train_run("mlp", tmp_path / "mlp", digits(), epochs=1, quiet=True, evaluate=False, final_outputs=False, **TINY)
    code = main(["sample", str(tmp_path / "mlp" / "checkpoint.npz"), "--label", "3", "-o", str(tmp_path / "s.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "is an unconditional model: it has no classes to choose from; leave out --label" in err


@pytest.mark.slow
@needs_mnist
def test_evaluate_adds_conditional_metrics_for_labelled_samples(conditional_checkpoint, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert main(["sample", str(conditional_checkpoint), "-n", "20", "-o", str(out)]) == 0
    labels = np.load(tmp_path / "s.labels.npy")
    assert main(["evaluate", str(out), "--labels", str(tmp_path / "s.labels.npy"), "--data-dir", str(MNIST_DIR),
                 "--n", "40", "--json", str(tmp_path / "e.json")]) == 0
    text = capsys.readouterr().out
    assert "conditional accuracy" in text and "per-class Frechet, mean" in text
    reference, model = json.loads((tmp_path / "e.json").read_text())
    assert reference["conditional_accuracy"] > 0.8           # real test digits, their true labels
    assert len(model["per_class_frechet"]) == 10 and model["per_class_frechet"][5] is None   # no class 5 drawn
    assert model["mean_per_class_frechet"] is None and len(labels) == 60
    np.save(tmp_path / "short.npy", labels[:7])
    assert main(["evaluate", str(out), "--labels", str(tmp_path / "short.npy"), "--data-dir", str(MNIST_DIR)]) == 2
    assert "7 labels for 60 samples; give one label per sample" in capsys.readouterr().err
    np.save(tmp_path / "big.npy", np.full(60, 10))
    assert main(["evaluate", str(out), "--labels", str(tmp_path / "big.npy"), "--data-dir", str(MNIST_DIR)]) == 2
    assert "outside the 10 classes 0..9" in capsys.readouterr().err
    assert main(["evaluate", str(conditional_checkpoint), "--labels", str(tmp_path / "short.npy")]) == 2
    assert "--labels goes with .npy samples" in capsys.readouterr().err


# -- real data: every recipe trains on MNIST and Fashion-MNIST --------------------------------------

@pytest.fixture(scope="module")
def real_subsets(tmp_path_factory):
    """The first 1,000 training images and labels of each real dataset found (an official subset)."""
    from scratchgan.data import read_idx, write_idx
    folders = {}
    for name, source in (("mnist", MNIST_DIR), ("fashion-mnist", FASHION_DIR)):
        if source is None:
            continue
        folder = tmp_path_factory.mktemp(name) / name
        folder.mkdir()
        for kind in ("images-idx3", "labels-idx1"):
            found = next(p for p in (source / f"train-{kind}-ubyte.gz", source / f"train-{kind}-ubyte") if p.is_file())
            write_idx(folder / f"train-{kind}-ubyte.gz", read_idx(found)[:1000])
        folders[name] = folder
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("recipe", ["cgan", "cdcgan", "acgan", "cdcgan-plus", "acgan-plus"])
def test_every_conditional_recipe_trains_on_the_labelled_datasets(tmp_path, real_subsets, dataset, recipe, capsys):
    """One epoch on the first 1,000 real images (the DCGAN-sized recipes at width 8); the classes' names are recorded."""
    if dataset not in real_subsets:
        pytest.skip(f"needs the real {dataset} files")
    narrow = [] if recipe == "cgan" else ["--ngf", "8", "--ndf", "8"]
    code = main(["train", recipe, "--dataset", dataset, "--data-dir", str(real_subsets[dataset]), "--epochs", "1",
                 "--batch-size", "250", "--out", str(tmp_path / "run"), "--quiet", "--no-evaluate", "--no-report",
                 *narrow])
    assert code == 0, capsys.readouterr().err
    meta = Checkpoint(tmp_path / "run" / "checkpoint.npz").meta
    assert meta["conditioning"]["class_names"] == CLASS_NAMES[dataset]
    assert meta["data"]["match"] == "official subset"
    samples, labels, names = sample_classes(tmp_path / "run" / "checkpoint.npz", 2, "all")
    assert samples.shape == (20, 1, 28, 28) and np.isfinite(samples).all() and names == CLASS_NAMES[dataset]


@pytest.mark.slow
@needs_mnist
def test_a_conditional_run_with_an_average_evaluates_both_generators(tmp_path, capsys):
    """Per epoch: G's and the average's metrics, conditional accuracy included; at the end: the average."""
    from scratchgan.plots import read_history_csv
    code = main(["train", "cdcgan-plus", "--data-dir", str(MNIST_DIR), "--epochs", "2", "--ema", "0.9",
                 "--batch-size", "1000", "--ngf", "8", "--ndf", "8", "--eval-samples", "200",
                 "--out", str(tmp_path / "run"), "--quiet", "--no-report"])
    assert code == 0, capsys.readouterr().err
    metrics = read_history_csv(tmp_path / "run/metrics.csv")
    for key in ("frechet_distance", "conditional_accuracy"):
        assert len(metrics[f"ema_{key}"]) == 2 and np.isfinite(metrics[f"ema_{key}"]).all()
    assert not np.array_equal(metrics["frechet_distance"], metrics["ema_frechet_distance"])
    evaluation = json.loads((tmp_path / "run/evaluation.json").read_text())
    assert evaluation["generator"] == "average" and "conditional_accuracy" in evaluation


def test_a_run_recorded_before_the_average_existed_samples_and_resumes_as_it_ran(tmp_path):
    """cdcgan-plus gained --ema 0.999 as a default: a checkpoint without the option is rebuilt without an average."""
    conditional_run(tmp_path, "cdcgan-plus", "old", epochs=1, final_outputs=False, ema=0.0)
    path = tmp_path / "old/checkpoint.npz"
    with np.load(path) as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays["meta"]))
    del meta["options"]["ema"], meta["options"]["ema_bn"]            # as written before the option existed
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    assert "ema" not in Checkpoint(path).meta["options"]
    auto, labels = sample_with_labels(path, 6)                          # no average: G itself
    assert np.array_equal(auto, sample_with_labels(path, 6, generator="raw")[0]) and labels.tolist() == [0, 1, 2] * 2
    images, labels = labelled_digits()
    train_run(None, tmp_path / "old", images, labels=labels, epochs=2, resume=True, quiet=True, evaluate=False,
              final_outputs=False)
    resumed = Checkpoint(path)
    assert resumed.meta["options"]["ema"] == 0.0 and not any(k.startswith("ext/") for k in resumed.arrays)
