"""CycleGAN: the LSGAN objective, the history pool, unpaired batches, the schedule, the hand-written
generator step against finite differences, the evaluation's measures, runs, resume and translate."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scratchgan import backend
from scratchgan import layers as L
from scratchgan.cli import main
from scratchgan.gan import Checkpoint
from scratchgan.gan.cyclegan import (CycleGANTrainer, ImagePool, UnpairedLoader, cyclegan_generator, learning_rate,
                                     patch_discriminator, translation_grid)
from scratchgan.gan.cyclegan_eval import derangement, direction_scores, format_translation_table, l1_distances, top_k_rate
from scratchgan.gan.objectives import LeastSquaresGame
from scratchgan.gan.run import train_run
from scratchgan.gradcheck import TOLERANCE, check_loss, directional_error
from scratchgan.optim import Adam

rng = np.random.default_rng(0)


# -- the least-squares game --------------------------------------------------------------------
def test_least_squares_game_values_and_gradients():
    game = LeastSquaresGame()
    out = rng.standard_normal((3, 1, 4, 4))
    value, _ = game.d_loss(out, True)
    assert float(value) == pytest.approx(0.5 * ((out - 1) ** 2).mean())
    assert float(game.d_loss(out, False)[0]) == pytest.approx(0.5 * (out ** 2).mean())
    assert float(game.g_loss(out)[0]) == pytest.approx(((out - 1) ** 2).mean())
    for fn in (lambda p, t: game.d_loss(p, True), lambda p, t: game.d_loss(p, False), lambda p, t: game.g_loss(p)):
        assert check_loss(fn, out, None)["pred"] < TOLERANCE
    np.testing.assert_allclose(game.score(out), out.reshape(3, -1).mean(axis=1))
    assert [float(v) for v in game.stats(np.array([1.0, 0.5]), np.array([0.0]))] == [0.75, 0.0]


# -- the pool ------------------------------------------------------------------------------------
def test_pool_fills_then_swaps_about_half_and_round_trips():
    pool = ImagePool(4, seed=1)
    first = np.arange(4.0).reshape(4, 1)
    np.testing.assert_array_equal(pool.query(first), first)            # filling: returned as given
    swapped = sum(not np.array_equal(pool.query(np.full((1, 1), 10.0 + i)), [[10.0 + i]]) for i in range(400))
    assert 150 < swapped < 250
    state = pool.state_dict()
    twin = ImagePool(4, seed=99)
    twin.load_state_dict(state)
    batch = np.full((3, 1), -1.0)
    np.testing.assert_array_equal(pool.query(batch), twin.query(batch))
    assert ImagePool(0).query(batch) is batch


# -- unpaired batches and the schedule -----------------------------------------------------------
def test_unpaired_loader_draws_b_independently_and_resumes_mid_epoch():
    a, b = np.arange(20.0)[:, None], 100 + np.arange(13.0)[:, None]
    loader = UnpairedLoader(a, b, 4, seed=0)
    pairs = [(x[:, 0], y[:, 0] - 100) for x, y in loader]
    assert not all(np.array_equal(x, y) for x, y in pairs), "B is not drawn in A's order"
    reference = UnpairedLoader(a, b, 4, seed=0)
    straight = [batch for _ in range(3) for batch in reference]
    resumed = UnpairedLoader(a, b, 4, seed=0)
    it = iter(resumed)
    seen = [batch for batch in resumed]                                  # 1 epoch + 2 batches
    it = iter(resumed)
    seen += [next(it) for _ in range(2)]
    state = json.loads(json.dumps(resumed.state_dict()))                 # as run.py stores it
    again = UnpairedLoader(a, b, 4, seed=0)
    again.load_state_dict(state)
    rest = [batch for batch in again] + [batch for batch in again]
    for (x, y), (u, v) in zip(straight, seen + rest):
        np.testing.assert_array_equal(x, u)
        np.testing.assert_array_equal(y, v)
    assert len(loader) == 5
    with pytest.raises(ValueError, match="larger than the 13 B images"):
        UnpairedLoader(a, b, 14)


def test_learning_rate_is_constant_then_falls_linearly():
    o = {"lr": 1.0, "epochs": 10, "decay_epochs": None}
    assert [learning_rate(o, e) for e in range(10)] == pytest.approx(
        [1, 1, 1, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert learning_rate({**o, "decay_epochs": 0}, 9) == 1.0


# -- the models -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("decoder", ["transposed", "upsample"])
def test_model_shapes(size, decoder):
    x = rng.random((2, 3, size, size)).astype(np.float32) * 2 - 1
    y = cyclegan_generator(size, 4, 2, decoder).forward(x, keep_cache=False)
    assert y.shape == x.shape and np.abs(y).max() <= 1
    assert patch_discriminator(size, 4).forward(x, keep_cache=False).shape == (2, 1, 4, 4)


def smooth(net):
    """net with every ReLU / LeakyReLU (kinks) replaced by Tanh, in place: for finite differences."""
    for _, layer in list(net.named_layers()):
        if isinstance(layer, L.Chain):
            layer.layers = [L.Tanh() if isinstance(child, (L.ReLU, L.LeakyReLU)) else child for child in layer.layers]
    return net


def tiny_trainer(lambda_identity=0.5, smooth_nets=False):
    backend.manual_seed(0)
    nets = [cyclegan_generator(32, 3, 1).to(dtype=np.float64) for _ in range(2)] + \
           [patch_discriminator(32, 3).to(dtype=np.float64) for _ in range(2)]
    nets = [smooth(net) for net in nets] if smooth_nets else nets
    return CycleGANTrainer(*nets, *[Adam(n) for n in nets], lambda_cycle=10.0, lambda_identity=lambda_identity,
                           pool_size=2)


@pytest.mark.slow
def test_generator_step_gradients_match_finite_differences():
    """The hand-written step (two cycles through both generators and both critics, and the identity
    terms) gives the gradient of the generators' whole objective, checked along random directions.
    Away from kinks: Tanh in place of the (Leaky)ReLUs, and images of +-1, which no tanh output
    reaches, so no L1 term sits at its kink."""
    trainer = tiny_trainer(smooth_nets=True)
    a, b = (np.sign(np.random.default_rng(seed).standard_normal((2, 3, 32, 32))) for seed in (1, 2))
    _, _, parts = trainer.generator_step(a, b)

    def objective():
        G, F, game, lam = trainer.G, trainer.F, trainer.game, trainer.lambda_cycle
        run = lambda net, x: net.forward(x, train=True, keep_cache=False)
        fake_b, fake_a = run(G, a), run(F, b)
        value = (game.g_loss(run(trainer.D_B, fake_b))[0] + game.g_loss(run(trainer.D_A, fake_a))[0]
                 + lam * (np.abs(run(F, fake_b) - a).mean() + np.abs(run(G, fake_a) - b).mean())
                 + lam * trainer.lambda_identity * (np.abs(run(G, b) - b).mean() + np.abs(run(F, a) - a).mean()))
        return np.asarray(value)

    assert float(objective()) == pytest.approx(float(trainer.generator_objective(*parts)), rel=1e-12)
    for net_name in ("G", "F"):
        net = getattr(trainer, net_name)
        for name, layer, key in net.named_parameters()[::2]:
            error = directional_error(objective, layer.params[key], layer.grads[key], n_directions=2, h=1e-4)
            assert error < 1e-6, f"{net_name}.{name}: {error:.2e}"   # about 1e-8 measured; a wiring error is O(1)


def test_a_step_updates_all_four_networks_and_records_every_key():
    trainer = tiny_trainer(lambda_identity=0.0)
    before = {name: net.state_dict() for name, net in
              (("G", trainer.G), ("F", trainer.F), ("D_A", trainer.D_A), ("D_B", trainer.D_B))}
    a, b = (np.tanh(rng.standard_normal((2, 3, 32, 32))) for _ in range(2))
    trainer.train_step((a, b))
    for name, net in (("G", trainer.G), ("F", trainer.F), ("D_A", trainer.D_A), ("D_B", trainer.D_B)):
        after = net.state_dict()
        assert any(not np.array_equal(after[k], before[name][k]) for k in after), name
    assert trainer.d_steps == 1 and all(len(v) == 1 for v in trainer.history.values())
    assert trainer.history["identity"] == [0.0]


# -- the evaluation's measures -----------------------------------------------------------------
def test_retrieval_and_distances():
    target = rng.random((6, 3, 4, 4))
    d = l1_distances(target + 0.01, target)
    assert d.shape == (6, 6) and top_k_rate(d, k=1) == 1.0
    assert top_k_rate(np.eye(6), k=1) == 0.0 and top_k_rate(np.eye(6), k=6) == 1.0   # own counterpart farthest
    p = derangement(6, seed=3)
    assert sorted(p) == list(range(6)) and not (p == np.arange(6)).any()


def brightness_classifier(n_pixels):
    """A fixed 'style classifier': P(B) = sigmoid(40 (mean pixel - 1/2)), so dark images are A, bright ones B."""
    net = L.Chain(L.Flatten(), L.Dense(n_pixels, 2))
    net[1].params["weight"][...] = np.stack([np.zeros(n_pixels), np.full(n_pixels, 40 / n_pixels)])
    net[1].params["bias"][...] = [0, -20]
    return net


def test_direction_scores_of_a_perfect_translation():
    a = np.random.default_rng(4).random((30, 3, 8, 8)) * 0.5
    b = a + 0.5
    s = direction_scores(a, b, b, brightness_classifier(3 * 8 * 8), to_b=True)
    assert s["l1"] == 0 and s["top5"] == 1 and s["l1_identity"] == pytest.approx(0.5)
    assert s["l1_random"] == pytest.approx(np.abs(a - b[derangement(30)]).mean())
    assert s["style_target"] == 1.0 and s["style_target_untranslated"] == 0.0
    assert s["style_target_real"] == 1.0 and s["style_target_vs_real"] == 1.0
    assert s["top5_chance"] == pytest.approx(5 / 30)
    back = direction_scores(b, a, a, brightness_classifier(3 * 8 * 8), to_b=False, seed=1)
    assert back["style_target"] == 1.0 and back["style_target_untranslated"] == 0.0


def test_style_share_is_set_against_the_real_target_images():
    """Half the translations bright enough to be called B, where the classifier calls only 40 % of
    the real b's B: the share is 0.5 and 1.25 times the real images' (and NaN where no real b is B)."""
    a = np.full((10, 3, 8, 8), 0.2)
    b = np.concatenate([np.full((4, 3, 8, 8), 0.8), np.full((6, 3, 8, 8), 0.3)])   # 4 of 10 called B
    translated = np.concatenate([np.full((5, 3, 8, 8), 0.9), np.full((5, 3, 8, 8), 0.1)])
    s = direction_scores(a, b, translated, brightness_classifier(3 * 8 * 8), to_b=True)
    assert s["style_target"] == 0.5 and s["style_target_real"] == 0.4 and s["style_target_vs_real"] == pytest.approx(1.25)
    none = direction_scores(a, np.full((10, 3, 8, 8), 0.3), translated, brightness_classifier(3 * 8 * 8), to_b=True)
    assert none["style_target_real"] == 0.0 and np.isnan(none["style_target_vs_real"])
    row = {"n": 10, "style_classifier_accuracy": 0.7, "style_recall_a": 1.0, "style_recall_b": 0.4, "G": s, "F": s}
    assert "| 50.0% | 0.0% | 1.25x |" in format_translation_table(row)


def test_translation_grid_lays_out_the_six_columns():
    k = 2
    row = np.arange(6 * k, dtype=np.float32).reshape(6 * k, 1, 1, 1)
    grid = translation_grid(row, k).ravel().tolist()
    assert grid == [0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11]


# -- runs ------------------------------------------------------------------------------------------
def folders(tmp_path, n=24):
    """Two tiny domains sharing file names: red squares (A) and the same squares in blue (B)."""
    for domain, color in (("a", (220, 30, 30)), ("b", (30, 30, 220))):
        (tmp_path / domain).mkdir()
        r = np.random.default_rng(0)
        for i in range(n):
            image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
            x, y = r.integers(0, 24, size=2)
            image.paste(Image.new("RGBA", (16, 16), color + (255,)), (int(x), int(y)))
            image.save(tmp_path / domain / f"e{i:03d}.png")
    return f"folder:{tmp_path / 'a'}", f"folder:{tmp_path / 'b'}"


TINY = {"ngf": 2, "ndf": 2, "batch_size": 4, "pool_size": 3}


def tiny_run(tmp_path, name, epochs, **kw):
    from scratchgan.gan.cyclegan import CycleGANRun
    spec_a, spec_b = folders(tmp_path) if not (tmp_path / "a").exists() else \
        (f"folder:{tmp_path / 'a'}", f"folder:{tmp_path / 'b'}")
    options = {**TINY, "dataset_a": spec_a, "dataset_b": spec_b}
    images, identity, dataset = CycleGANRun.load_training_data(options, image_size=32, quiet=True)
    return train_run("cyclegan", tmp_path / name, images, epochs=epochs, quiet=True, dataset=dataset,
                     data_identity=identity, **options, **kw)


@pytest.mark.slow
def test_cyclegan_run_writes_its_figures_and_resumes_bit_identically(tmp_path):
    tiny_run(tmp_path, "straight", 2, final_outputs=False)
    out = tmp_path / "straight"
    for name in ("checkpoint.npz", "history.csv", "losses.png", "translations.png", "progress.png", "progress.gif",
                 "heldout.csv", "heldout.png"):
        assert (out / name).stat().st_size > 0, name
    with Image.open(out / "progress.gif") as gif:
        assert gif.n_frames == 3
    tiny_run(tmp_path, "resumed", 1, final_outputs=False)
    train_run(None, tmp_path / "resumed", _images(tmp_path), epochs=2, resume=True, quiet=True, final_outputs=False)
    a, b = Checkpoint(out / "checkpoint.npz"), Checkpoint(tmp_path / "resumed/checkpoint.npz")
    assert sorted(a.arrays) == sorted(b.arrays) and any(k.startswith("ext/pool_a/") for k in a.arrays)
    for key in a.arrays:
        assert np.array_equal(a.arrays[key], b.arrays[key]), key
    assert a.meta["loader"] == b.meta["loader"] and a.meta["trainer"] == b.meta["trainer"]


def _images(tmp_path):
    from scratchgan.gan.cyclegan import CycleGANRun
    options = {"dataset_a": f"folder:{tmp_path / 'a'}", "dataset_b": f"folder:{tmp_path / 'b'}"}
    return CycleGANRun.load_training_data(options, image_size=32, quiet=True)[0]


@pytest.mark.slow
def test_cli_train_translate_and_evaluate(tmp_path, capsys):
    spec_a, spec_b = folders(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "cyclegan", "--dataset-a", spec_a, "--dataset-b", spec_b, "--epochs", "1", "--ngf", "2",
                 "--ndf", "2", "--batch-size", "4", "--out", str(out), "--quiet"]) == 0
    assert (out / "evaluation.json").is_file()
    row = json.loads((out / "evaluation.json").read_text())
    assert row["G"]["l1_identity"] > 0 and 0 <= row["G"]["top5"] <= 1
    ckpt = str(out / "checkpoint.npz")
    assert main(["translate", ckpt, str(tmp_path / "a"), "-o", str(tmp_path / "pngs")]) == 0
    assert sorted(os.listdir(tmp_path / "pngs")) == sorted(os.listdir(tmp_path / "a"))
    x = rng.random((3, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["translate", ckpt, str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"), "--direction", "b2a"]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == x.shape and y.dtype == np.float32 and 0 <= y.min() and y.max() <= 1
    assert main(["translate", ckpt, str(tmp_path / "x.npy"), "-o", str(tmp_path / "grid.png")]) == 0
    capsys.readouterr()
    assert main(["evaluate", ckpt]) == 0
    assert "G: A -> B" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["x.npy", "-o", "y.txt"], "-o must end in .npy or .png or name a folder"),
    (["bad.npy", "-o", "y.npy"], r"must hold images \(N, 3, 32, 32\)"),
    (["range.npy", "-o", "y.npy"], r"pixels must lie in \[0, 1\]"),
    (["missing.npy", "-o", "y.npy"], "no such file")])
def test_translate_errors_are_one_line(tmp_path, capsys, args, message):
    from scratchgan.gan.checkpoint import FORMAT_VERSION
    meta = {"format": FORMAT_VERSION, "recipe": "cyclegan", "options": {**TINY, "n_blocks": 1},
            "image_shape": [3, 32, 32], "epoch": 1}
    backend.manual_seed(0)
    G = cyclegan_generator(32, 2, 1)
    np.savez(tmp_path / "c.npz", meta=np.array(json.dumps(meta)), **{f"G/{k}": v for k, v in G.state_dict().items()},
             **{f"F/{k}": v for k, v in G.state_dict().items()})
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 16, 16), np.float32))
    np.save(tmp_path / "range.npy", np.full((2, 3, 32, 32), 2.0, np.float32))
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 32, 32), np.float32))
    os.chdir(tmp_path)
    assert main(["translate", "c.npz", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] or __import__("re").search(message, err[0])
