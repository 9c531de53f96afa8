"""Salimans et al.'s fixes: minibatch discrimination and virtual batch normalization (layers), feature
matching (objective + the trainer's feature hook), historical averaging (extension + G penalty hook),
and the options that switch them on in every recipe."""
import numpy as np
import pytest

import scratchgan.layers as L
import scratchgan.reference as R
from scratchgan import SGD, Adam
from scratchgan.backend import RNG
from scratchgan.gan import GANConfig, GANTrainer, get_head
from scratchgan.gan.fixes import FeatureMatching, HistoricalAveraging, improve
from scratchgan.gan.objectives import CrossEntropyGame
from scratchgan.gan.recipes import RECIPES, get_recipe
from scratchgan.gradcheck import check_layer, numeric_gradient, rel_error, upstream_gradient
from scratchgan.gradcheck_cases import lab_layer_cases, run_case


# -- minibatch discrimination ------------------------------------------------------------------------
def separated_minibatch(n=6, fan_in=5, kernels=3, kernel_dim=4):
    layer = L.MinibatchDiscrimination(fan_in, kernels, kernel_dim, init="he_normal", rng=RNG(0)).to(dtype=np.float64)
    for seed in range(200):
        x = np.random.default_rng(seed).standard_normal((n, fan_in))
        m = (x @ layer.params["weight"].T).reshape(n, kernels, kernel_dim)
        if np.abs(m[:, None] - m[None])[~np.eye(n, dtype=bool)].min() > 0.02:
            return layer, x
    raise RuntimeError("no separated input")


def test_minibatch_features_measure_closeness_within_the_batch():
    layer = L.MinibatchDiscrimination(4, 3, 2, rng=RNG(0)).to(dtype=np.float64)
    same = np.tile(np.random.default_rng(0).standard_normal((1, 4)), (5, 1))       # a collapsed batch
    y = layer.forward(same, train=False)
    assert y.shape == (5, 7)
    np.testing.assert_array_equal(y[:, :4], same)
    np.testing.assert_allclose(y[:, 4:], 4.0)        # every other sample at distance 0: exp(0) * 4
    spread = 1e4 * np.random.default_rng(1).standard_normal((5, 4))          # far apart in every kernel
    assert layer.forward(spread, train=False)[:, 4:].max() < 1e-3
    assert np.all(layer.forward(same[:1], train=False)[:, 4:] == 0)    # a batch of one: no other sample


def test_minibatch_backward_has_the_cross_sample_terms():
    """An upstream gradient on sample 0's closeness features only reaches every sample's input."""
    layer, x = separated_minibatch()
    layer.forward(x)
    dy = np.zeros((len(x), layer.out_features))
    dy[0, layer.in_features:] = upstream_gradient((layer.num_kernels,))
    dx = layer.backward(dy)
    numeric = numeric_gradient(lambda: layer.forward(x, keep_cache=False), x, dy)
    assert rel_error(dx, numeric) < 1e-8
    assert np.abs(dx[1:]).max() > 1e-3, "other samples must receive gradient from sample 0's features"


def test_minibatch_fast_layer_equals_reference_beyond_one_row_block():
    """A batch of 70 spans two of the fast layer's row blocks (64 rows each)."""
    layer = L.MinibatchDiscrimination(6, 4, 3, rng=RNG(0)).to(dtype=np.float64)
    x = np.random.default_rng(2).standard_normal((70, 6))
    y = layer.forward(x)
    dy = upstream_gradient(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)
    y_ref, cache = R.minibatch_discrimination_forward(x, layer.params["weight"], 4, 3)
    dx_ref, dw_ref = R.minibatch_discrimination_backward(dy, cache)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], dw_ref, rtol=1e-10, atol=1e-12)


def test_minibatch_float32_and_errors():
    layer = L.MinibatchDiscrimination(5, 2, 3, rng=RNG(0))
    y = layer.forward(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32
    assert layer.grads["weight"].dtype == np.float32
    with pytest.raises(ValueError, match=r"MinibatchDiscrimination\(5 => 7.*\(N, 5\), got \(4, 6\)"):
        layer.forward(np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="MinibatchDiscrimination: num_kernels must be an integer >= 1"):
        L.MinibatchDiscrimination(5, 0, 3)
    assert L.MinibatchDiscrimination.mixes_batch


# -- virtual batch normalization -----------------------------------------------------------------------
def vbn(c=3, r=4, seed=0):
    layer = L.VirtualBatchNorm(c, r).to(dtype=np.float64)
    rng = np.random.default_rng(seed)
    layer.params["weight"][...] = 1 + 0.3 * rng.standard_normal(c)
    layer.params["bias"][...] = rng.standard_normal(c)
    return layer


@pytest.mark.parametrize("shape", [(9, 3), (7, 3, 2, 3)])
def test_vbn_live_outputs_depend_on_the_reference_and_themselves_only(shape):
    layer = vbn()
    x = 2 * np.random.default_rng(1).standard_normal(shape) + 1
    y = layer.forward(x, train=False)
    other = x.copy()
    other[5:] = 7 * np.random.default_rng(2).standard_normal(other[5:].shape)   # change every live row but 4
    np.testing.assert_allclose(layer.forward(other, train=False)[4], y[4], rtol=1e-13)
    shifted = x.copy()
    shifted[:4] += 1.0                                                           # change the reference batch
    assert not np.allclose(layer.forward(shifted, train=False)[4], y[4])


def test_vbn_statistics_are_the_reference_batch_plus_the_sample():
    layer = vbn()
    x = np.random.default_rng(3).standard_normal((6, 3))
    y = layer.forward(x)
    for i in (0, 4, 5):
        batch = x[:4] if i < 4 else np.concatenate([x[:4], x[i:i + 1]])
        mu, var = batch.mean(axis=0), batch.var(axis=0)
        expected = layer.params["weight"] * (x[i] - mu) / np.sqrt(var + layer.eps) + layer.params["bias"]
        np.testing.assert_allclose(y[i], expected, rtol=1e-10)


def test_vbn_gradient_reaches_the_reference_rows_through_their_statistics():
    """The wrapper's upstream gradient is zero on the reference rows; they still get gradient."""
    layer = vbn()
    x = np.random.default_rng(4).standard_normal((7, 3))
    layer.forward(x)
    dy = upstream_gradient((7, 3))
    dy[:4] = 0
    dx = layer.backward(dy)
    assert np.abs(dx[:4]).max() > 1e-2
    numeric = numeric_gradient(lambda: layer.forward(x, keep_cache=False), x, dy)
    assert rel_error(dx, numeric) < 1e-8


def test_virtual_batch_runs_the_reference_every_call_and_checkpoints_it(tmp_path):
    rng = RNG(0)
    model = L.Chain(L.Dense(3, 6, bias=False, rng=rng), L.VirtualBatchNorm(6, 5), L.Tanh(), L.Dense(6, 2, rng=rng))
    reference = np.random.default_rng(0).standard_normal((5, 3))
    G = L.VirtualBatch(model, reference)
    z = np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32)
    alone = np.concatenate([G.forward(z[i:i + 1], train=False) for i in range(8)])
    np.testing.assert_allclose(G.forward(z, train=False), alone, rtol=1e-5, atol=1e-6)  # batch-independent
    y = G.forward(z)
    dz = G.backward(np.ones_like(y))
    assert dz.shape == z.shape and y.shape == (8, 2)
    assert "reference" in G.state_dict() and "model.0.weight" in G.state_dict()
    assert G.to(dtype=np.float64).buffers["reference"].dtype == np.float64
    with pytest.raises(ValueError, match="reference batch has 5 rows but VirtualBatchNorm\\(6, reference_size=4"):
        L.VirtualBatch(L.Chain(L.Dense(3, 6), L.VirtualBatchNorm(6, 4)), reference)
    with pytest.raises(ValueError, match="no VirtualBatchNorm"):
        L.VirtualBatch(L.Chain(L.Dense(3, 6)), reference)
    with pytest.raises(ValueError, match="first 4 rows of the input are the reference batch, got only 2"):
        L.VirtualBatchNorm(3, 4).forward(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("case", lab_layer_cases(), ids=lambda c: f"{c.name}[{c.config}]")
def test_lab_layer_gradients(case):
    assert max(run_case(case).values()) < 1e-7


# -- feature matching ------------------------------------------------------------------------------------------
def fm_trainer(alone, weight=0.7):
    rng = RNG(3)
    G = L.Chain(L.Dense(4, 6, "tanh", rng=rng), L.Dense(6, 5, rng=rng)).to(dtype=np.float64)
    D = L.Chain(L.Dense(5, 7, "tanh", rng=rng), L.Dense(7, 3, "tanh", rng=rng), L.Dense(3, 1, rng=rng)).to(dtype=np.float64)
    objective = FeatureMatching(CrossEntropyGame(get_head("logit")), 2, weight, alone=alone)
    config = GANConfig(z_dim=4, batch_size=6, seed=1, n_progress=2)
    return GANTrainer(G, D, SGD(G, lr=0.1), SGD(D, lr=0.1), objective, config)


@pytest.mark.parametrize("alone", [True, False])
def test_feature_matching_gradient_is_that_of_its_loss(alone):
    """G's gradient from the trainer's feature hook equals finite differences of
    w ||mean f(real) - mean f(G(z))||^2 (+ the non-saturating loss), f = D's first two layers."""
    trainer = fm_trainer(alone)
    rng = np.random.default_rng(0)
    real, z = rng.standard_normal((6, 5)), rng.standard_normal((6, 4))
    body = trainer.D[:2]

    def loss():
        fake = trainer.G.forward(z, keep_cache=False)
        gap = body.forward(real, keep_cache=False).mean(axis=0) - body.forward(fake, keep_cache=False).mean(axis=0)
        value = 0.7 * np.sum(gap ** 2)
        if not alone:
            logits = trainer.D.forward(fake, keep_cache=False).ravel()
            value += np.mean(np.logaddexp(0, -logits))
        return value

    fake = trainer.G.forward(z, train=True)
    value, dfake = trainer.generator_loss(fake, None, real)
    trainer.G.zero_grad()
    trainer.G.backward(dfake)
    assert abs(float(value) - loss()) < 1e-12
    for name, layer, key in trainer.G.named_parameters():
        numeric = numeric_gradient(loss, layer.params[key])
        assert rel_error(layer.grads[key], numeric) < 1e-8, name


def test_feature_matching_needs_the_real_batch_and_keeps_d_loss():
    trainer = fm_trainer(alone=True)
    with pytest.raises(ValueError, match="needs the real batch"):
        trainer.generator_loss(np.zeros((6, 5)), None, None)
    assert trainer.objective.stat_keys == CrossEntropyGame(get_head("logit")).stat_keys
    trainer.train_step(np.random.default_rng(0).standard_normal((6, 5)))
    assert np.isfinite(trainer.history["g_loss"][-1])


# -- historical averaging ---------------------------------------------------------------------------------
def test_historical_averaging_penalises_distance_to_the_mean_of_past_parameters():
    trainer = fm_trainer(alone=False)
    trainer.objective = CrossEntropyGame(get_head("logit"))
    ext = HistoricalAveraging(0.3)
    trainer.extensions = [ext]
    trainer.history_keys += ext.history_keys
    trainer.history["hist_avg_d"] = []
    params = []
    rng = np.random.default_rng(0)
    for step in range(4):
        params.append({name: layer.params[key].copy() for name, layer, key in trainer.D.named_parameters()})
        trainer.train_step(rng.standard_normal((6, 5)))
    params.append({name: layer.params[key].copy() for name, layer, key in trainer.D.named_parameters()})
    mean = {name: np.mean([p[name] for p in params], axis=0) for name in params[0]}   # 5 values, the current included
    for name, layer, key in trainer.D.named_parameters():
        np.testing.assert_allclose(ext.means["D"][name], mean[name], rtol=1e-12)
    assert ext.counts == {"D": 5, "G": 5}
    # the penalty and its gradient at the current parameters
    trainer.D.zero_grad()
    value = ext.d_penalty(trainer, None)
    expected = 0.3 * sum(np.sum((layer.params[key] - mean[name]) ** 2) for name, layer, key in trainer.D.named_parameters())
    assert abs(float(value) - expected) < 1e-12
    for name, layer, key in trainer.D.named_parameters():
        np.testing.assert_allclose(layer.grads[key], 0.6 * (layer.params[key] - mean[name]), rtol=1e-12)
    assert np.all(np.array(trainer.history["hist_avg_d"]) >= 0) and trainer.history["hist_avg_d"][0] == 0


def test_historical_averaging_state_round_trips():
    trainer = fm_trainer(alone=False)
    ext = HistoricalAveraging(0.1)
    ext._update(trainer.D, "D")
    ext._update(trainer.G, "G")
    copy = HistoricalAveraging(0.1)
    copy.load_state_dict(ext.state_dict())
    assert copy.counts == ext.counts
    for player in ("D", "G"):
        for name, mean in ext.means[player].items():
            np.testing.assert_array_equal(copy.means[player][name], mean)


# -- the options, in every recipe ---------------------------------------------------------------------------------
FIX_OPTIONS = {"minibatch_kernels": 4, "feature_matching": 0.5, "historical_averaging": 0.01, "vbn": 6}


FIXABLE = sorted(name for name, recipe in RECIPES.items() if "vbn" in recipe.defaults)


def test_the_fixes_are_options_of_the_original_games_recipes():
    assert FIXABLE == ["dcgan", "dcgan-plus", "goodfellow2014", "mlp", "mlp-improved"]
    for name in ("cdcgan", "wgan-gp", "cyclegan", "progan"):   # other games and families refuse them up front
        with pytest.raises(ValueError, match=f"recipe '{name}' has no option"):
            get_recipe(name).options(minibatch_kernels=4)
    with pytest.raises(ValueError, match="options vbn and ema do not go together"):
        get_recipe("dcgan-plus").options(vbn=6)


@pytest.mark.parametrize("name", FIXABLE)
def test_every_recipe_of_the_original_game_takes_every_fix(name):
    recipe = get_recipe(name)
    extra = {"ngf": 4, "ndf": 4} if "ngf" in recipe.defaults else {}
    extra.update({"ema": 0.0} if "ema" in recipe.defaults else {})   # the weight average does not take --vbn
    setup = recipe.setup(recipe.options(**FIX_OPTIONS, **extra))
    layers = [type(layer) for _, layer in setup.D.named_layers()]
    assert L.MinibatchDiscrimination in layers
    assert isinstance(setup.G, L.VirtualBatch) and setup.opt_g.model is setup.G
    assert isinstance(setup.objective, FeatureMatching)
    assert any(isinstance(ext, HistoricalAveraging) for ext in setup.extensions)
    images = np.random.default_rng(0).integers(0, 256, (6, 1, 28, 28), dtype=np.uint8)
    trainer = GANTrainer.from_setup(setup)
    trainer.train_step(setup.preprocess(images))
    trainer.train_step(setup.preprocess(images))
    assert np.isfinite(trainer.history["g_loss"]).all()


def test_fix_options_are_checked():
    recipe = get_recipe("mlp")
    for name, bad in [("minibatch_kernels", -1), ("vbn", 1.5), ("feature_matching", -0.1),
                      ("historical_averaging", float("nan")), ("feature_matching_only", "yes")]:
        with pytest.raises(ValueError, match=f"option {name} must be"):
            recipe.options(**{name: bad})
    with pytest.raises(ValueError, match="feature_matching_only needs feature_matching > 0"):
        recipe.setup(recipe.options(feature_matching_only=True))


def test_fixes_are_off_by_default_and_leave_the_recipes_alone():
    setup = get_recipe("mlp").setup(get_recipe("mlp").options())
    assert setup.objective is None and setup.extensions == [] and isinstance(setup.G, L.Chain)
    assert [type(layer) for layer in setup.D] == [L.Dense, L.Dense, L.Softmax]


def test_minibatch_discrimination_on_dcgan_replaces_the_covering_conv():
    recipe = get_recipe("dcgan")
    setup = recipe.setup(recipe.options(minibatch_kernels=5, ngf=4, ndf=4))
    assert [type(layer) for layer in setup.D.layers[-3:]] == [L.Flatten, L.MinibatchDiscrimination, L.Dense]
    assert setup.D.layers[-1].in_features == 8 * 7 * 7 + 5
    out = setup.D.forward(np.zeros((3, 1, 28, 28), np.float32), train=False)
    assert out.shape == (3, 1)


@pytest.mark.slow
def test_mlp_improved_with_every_fix_trains_resumes_and_samples(tmp_path):
    """A run with every fix: historical averaging's running means are checkpointed and restored, the
    VBN generator (reference batch included) is rebuilt from the checkpoint alone for sampling."""
    from test_run import digits
    from scratchgan.gan.checkpoint import Checkpoint
    from scratchgan.gan.run import train_run
    from scratchgan.gan.sampling import sample_from_checkpoint
    out = tmp_path / "run"
    options = dict(batch_size=10, minibatch_kernels=6, vbn=8, feature_matching=0.5, historical_averaging=1e-3)
    train_run("mlp-improved", out, digits(40), epochs=2, quiet=True, evaluate=False, final_outputs=False, **options)
    ckpt = Checkpoint(out / "checkpoint.npz")
    assert int(ckpt.arrays["ext/HistoricalAveraging/D/count"]) == 9         # the initial values + 8 steps
    assert "G/reference" in ckpt.arrays and ckpt.arrays["G/reference"].shape == (8, 28)
    trainer = train_run(None, out, digits(40), epochs=3, resume=True, quiet=True, evaluate=False, final_outputs=False)
    ext = next(e for e in trainer.extensions if isinstance(e, HistoricalAveraging))
    assert ext.counts == {"D": 13, "G": 13}
    samples = sample_from_checkpoint(str(out / "checkpoint.npz"), 7)
    assert samples.shape == (7, 1, 28, 28) and np.isfinite(samples).all()
    np.testing.assert_array_equal(samples[:3], sample_from_checkpoint(str(out / "checkpoint.npz"), 3))


@pytest.mark.gpu
def test_fix_layers_on_cupy_equal_numpy(cupy):
    """The same float32 numbers on the GPU: one code path through xp."""
    rng = np.random.default_rng(0)
    for layer, x in [(L.MinibatchDiscrimination(6, 4, 3, rng=RNG(0)), rng.standard_normal((70, 6))),
                     (L.VirtualBatchNorm(3, 4), rng.standard_normal((9, 3, 2, 2))),
                     (L.VirtualBatch(L.Chain(L.Dense(5, 6, bias=False, rng=RNG(1)), L.VirtualBatchNorm(6, 4),
                                             L.Tanh()), rng.standard_normal((4, 5))), rng.standard_normal((3, 5)))]:
        x = x.astype(np.float32)
        y = layer.forward(x)
        dy = upstream_gradient(y.shape).astype(np.float32)
        layer.zero_grad()
        dx = layer.backward(dy)
        cpu = [y, dx] + [lyr.grads[k].copy() for _, lyr, k in layer.named_parameters()]
        layer.to("gpu")
        layer.zero_grad()
        y = layer.forward(cupy.asarray(x))
        dx = layer.backward(cupy.asarray(dy))
        gpu = [y, dx] + [lyr.grads[k] for _, lyr, k in layer.named_parameters()]
        for a, b in zip(cpu, gpu):
            assert isinstance(b, cupy.ndarray)
            np.testing.assert_allclose(cupy.asnumpy(b), a, rtol=2e-4, atol=2e-5)
