"""Wasserstein GANs (issue 17): the double backward, LayerNorm, gradient penalties, the critic's game,
weight clipping, RMSprop, --g-steps and the wgan recipes.

The finite-difference checks of every double backward and penalty run in test_gradcheck.py (they are
cases of the gradcheck suite); here: the fast layers against the textbook functions, the checker
catching wrong second derivatives, the errors users meet, and the training machinery.
"""
import numpy as np
import pytest

import scratchgan.layers as L
import scratchgan.reference as R
from scratchgan import backend
from scratchgan.backend import RNG
from scratchgan.cli import main
from scratchgan.gan.recipes import RECIPES, get_recipe
from scratchgan.gan.run import RunError, train_run
from scratchgan.gan.trainer import GANTrainer
from scratchgan.gan.wasserstein import (GradientPenaltyExtension, R1Extension, WassersteinGame,
                                        WeightClipping)
from scratchgan.gradcheck import TOLERANCE, check_double_backward, check_penalty, upstream_gradient
from scratchgan.gradcheck_cases import (double_backward_cases, layernorm_cases, penalty_cases,
                                        reference_second_order, second_order_cases)
from scratchgan.optim import RMSprop
from scratchgan.penalties import GradientPenalty, R1Penalty

from realdata import MNIST_DIR, needs_mnist
from test_run import digits

DOUBLE, PENALTY = double_backward_cases(), penalty_cases()


def ids(cases):
    return [f"{c.name}[{c.config}]" for c in cases]


def same(a, b, what):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12, err_msg=what)


# -- the double backward: fast layers against the textbook functions ---------------------------------

@pytest.mark.parametrize("case", DOUBLE, ids=ids(DOUBLE))
def test_fast_double_backward_equals_reference(case):
    """ddy, dx and every second-order parameter gradient equal scratchgan.reference's, in float64."""
    layer, x, train = case.build()
    y = layer.forward(x, train=train, keep_cache=True)
    mask = (y != 0) if isinstance(layer, L.Dropout) and train else None     # Dropout: the fast layer's mask
    forward, backward, double_backward, params = reference_second_order(layer, train, mask)
    dy = upstream_gradient(y.shape, seed=5)
    layer.requires_grad_(False)
    g = layer.backward(dy, keep_cache=True)
    layer.requires_grad_(True)
    ddx = np.random.default_rng(7).standard_normal(g.shape)
    layer.zero_grad()
    ddy, dx = layer.double_backward(ddx)
    y_ref, cache = forward(x)
    g_ref, _ = backward(dy, cache)
    ddy_ref, dx_ref, grads_ref = double_backward(ddx, cache, dy)
    same(g, g_ref, "input gradient")
    same(ddy, ddy_ref, "ddy")
    same(np.zeros_like(x) if dx is None else dx, dx_ref, "dx")
    fast = {name: lyr.grads[key] for name, lyr, key in layer.named_parameters()}
    assert set(fast) == set(grads_ref)
    for name, grad in fast.items():
        same(grad, grads_ref[name], f"second-order gradient of {name}")


def test_the_suite_has_penalty_cases_for_an_mlp_and_a_strided_padded_conv_critic():
    configs = [c.config for c in second_order_cases() if "penalty" in c.name]
    assert any("MLP critic" in c for c in configs)
    assert any("s2 p1" in c for c in configs) and any("R1" in c.name for c in second_order_cases())
    assert len(second_order_cases(reference=True)) == len(second_order_cases())


def test_second_order_cases_run_through_the_cli(capsys):
    n = sum(c.name == "R1 penalty" for c in second_order_cases())   # 2 here, more from other issues' critics
    assert n >= 2
    assert main(["gradcheck", "--only", "R1 penalty"]) == 0
    out = capsys.readouterr().out
    assert f"{n} passed, 0 failed" in out and "| R1 penalty" in out
    assert main(["gradcheck", "--reference", "--only", "R1 penalty"]) == 0
    assert f"reference functions (scratchgan.reference): {n} passed, 0 failed" in capsys.readouterr().out


class _WrongTanh(L.Tanh):
    def _double_backward(self, ddx, y, dy):
        ddy, dx = super()._double_backward(ddx, y, dy)
        return ddy, 0.5 * dx           # half the x-cotangent: the check must fail


class _WrongConv(L.Conv2d):
    def _double_backward(self, ddx, cache, dy):
        ddy, dx = super()._double_backward(ddx, cache, dy)
        self.grads["weight"] *= 1.001
        return ddy, dx


def test_checker_catches_wrong_second_derivatives():
    x = np.random.default_rng(0).standard_normal((3, 4))
    errors = check_double_backward(_WrongTanh(), x)
    assert errors["dy"] < TOLERANCE and errors["x"] > 1e-2
    conv = _WrongConv(2, 3, 3, 2, 1, rng=RNG(0)).to(dtype=np.float64)
    errors = check_double_backward(conv, np.random.default_rng(1).standard_normal((2, 2, 6, 5)))
    assert errors["dy"] < TOLERANCE and errors["weight"] > 1e-4
    critic = L.Chain(_WrongConv(1, 2, 3, 2, 1, rng=RNG(0)), L.Tanh(), L.Flatten(), L.Dense(8, 1, rng=RNG(1)))
    critic.to(dtype=np.float64)
    errors = check_penalty(GradientPenalty(10.0), critic, np.random.default_rng(2).standard_normal((2, 1, 4, 4)))
    assert errors["0.weight"] > 1e-4 and errors["3.weight"] < TOLERANCE


def test_double_backward_needs_the_first_backward_to_keep_its_cache():
    layer = L.Dense(3, 2).to(dtype=np.float64)
    x = np.ones((4, 3))
    with pytest.raises(RuntimeError, match="backward\\(dy, keep_cache=True\\) first"):
        layer.double_backward(np.ones((4, 3)))
    y = layer.forward(x)
    layer.backward(np.ones_like(y))                 # the cache is used up
    with pytest.raises(RuntimeError, match="keep_cache=True"):
        layer.double_backward(np.ones((4, 3)))
    layer.forward(x)
    layer.backward(np.ones_like(y), keep_cache=True)
    with pytest.raises(ValueError, match=r"Dense\(3 => 2\): ddx has shape \(4, 2\) but the input had shape \(4, 3\)"):
        layer.double_backward(np.ones((4, 2)))
    with pytest.raises(RuntimeError, match="forward called again"):
        layer.forward(x)                            # the kept cache still holds
    layer.double_backward(np.ones((4, 3)))
    layer.forward(x)                                # used up by the double backward


def test_a_layer_without_double_backward_is_named():
    bn = L.BatchNorm(3)
    assert not bn.has_double_backward and not L.Chain(L.Dense(2, 3), bn).has_double_backward
    assert L.Chain(L.Dense(2, 3, "tanh"), L.LayerNorm(3)).has_double_backward
    assert not L.Dense(2, 3, "softmax").has_double_backward
    y = bn.forward(np.ones((4, 3), np.float32) + np.arange(4, dtype=np.float32)[:, None])
    bn.backward(np.ones_like(y), keep_cache=True)
    with pytest.raises(NotImplementedError, match="BatchNorm.*has no double backward.*gradient penalty"):
        bn.double_backward(np.ones_like(y))


@pytest.mark.parametrize("penalty", [GradientPenalty(10.0), R1Penalty(10.0)], ids=["gp", "r1"])
def test_penalties_refuse_critics_they_cannot_differentiate(penalty):
    x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    with_bn = L.Chain(L.Conv2d(1, 2, 4, 2, 1), L.BatchNorm(2), L.LeakyReLU(), L.Flatten(), L.Dense(32, 1))
    with pytest.raises(ValueError, match="layer 1 BatchNorm.*mixes the samples.*LayerNorm"):
        penalty.value_and_grads(with_bn, x)
    with_softmax = L.Chain(L.Flatten(), L.Dense(64, 2), L.Softmax())
    with pytest.raises(ValueError, match="layer 2 Softmax.*has no double backward"):
        penalty.value_and_grads(with_softmax, x)


def test_penalty_values_equal_their_formulas_on_the_input_gradient():
    """P computed from an input gradient found independently, by central differences of D."""
    backend.set_default_dtype(np.float64)
    critic = L.Chain(L.Dense(5, 4, "tanh", rng=RNG(0)), L.Dense(4, 1, rng=RNG(1)))
    x = np.random.default_rng(3).standard_normal((3, 5))
    h, g = 1e-6, np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        g[index] = (critic.forward(x + step, keep_cache=False) - critic.forward(x - step, keep_cache=False))[
            index[0], 0] / (2 * h)
    norms = np.linalg.norm(g, axis=1)
    np.testing.assert_allclose(GradientPenalty(10.0).value(critic, x), 10 * np.mean((norms - 1) ** 2), rtol=1e-8)
    np.testing.assert_allclose(R1Penalty(4.0).value(critic, x), 2 * np.mean(norms ** 2), rtol=1e-8)
    np.testing.assert_allclose(R.gradient_penalty(g, 10.0)[0], 10 * np.mean((norms - 1) ** 2), rtol=1e-12)


def test_penalty_leaves_the_critic_ready_and_adds_only_its_own_gradients():
    backend.set_default_dtype(np.float64)
    critic = L.Chain(L.Conv2d(1, 2, 3, 2, 1, rng=RNG(0)), L.LeakyReLU(0.2), L.Flatten(), L.Dense(18, 1, rng=RNG(1)))
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    critic.zero_grad()
    value, dx = GradientPenalty(10.0).value_and_grads(critic, x)
    first = {name: lyr.grads[key].copy() for name, lyr, key in critic.named_parameters()}
    assert dx is None and value > 0 and all(lyr._cache is None for _, lyr in critic.named_layers())
    GradientPenalty(10.0).value_and_grads(critic, x)     # gradients accumulate, caches were released
    for name, lyr, key in critic.named_parameters():
        same(lyr.grads[key], 2 * first[name], name)
    assert all(lyr.requires_grad for _, lyr in critic.named_layers())


# -- LayerNorm ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", layernorm_cases(), ids=ids(layernorm_cases()))
def test_layernorm_forward_is_the_textbook_formula(case):
    layer, x, _ = case.build()
    k = len(layer.normalized_shape)
    axes = tuple(range(x.ndim - k, x.ndim))
    expected = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + layer.eps)
    if "weight" in layer.params:
        expected = expected * layer.params["weight"] + layer.params["bias"]
    same(layer.forward(x, train=False), expected, "forward")
    same(layer.forward(x, train=True, keep_cache=False), expected, "train and eval agree")


def test_layernorm_checks_its_arguments_and_inputs():
    for bad in (0, (3, 0), (), -2):
        with pytest.raises(ValueError, match="LayerNorm"):
            L.LayerNorm(bad)
    with pytest.raises(TypeError, match="LayerNorm: normalized_shape must be an integer"):
        L.LayerNorm(2.5)
    with pytest.raises(ValueError, match="LayerNorm: eps must be > 0"):
        L.LayerNorm(3, eps=0)
    layer = L.LayerNorm((3, 4))
    assert layer.params["weight"].shape == (3, 4) and layer.params["weight"].dtype == np.float32
    with pytest.raises(ValueError, match=r"LayerNorm\(\(3, 4\).*expected input of shape \(N, 3, 4\).*got \(2, 4, 3\)"):
        layer.forward(np.zeros((2, 4, 3), np.float32))
    assert layer.forward(np.zeros((2, 5, 3, 4), np.float32)).dtype == np.float32   # float32 stays float32


# -- the critic's game and its constraints -------------------------------------------------------------

def test_wasserstein_game_losses_and_gradients():
    game = WassersteinGame()
    out = np.array([[1.0], [3.0]], np.float32)
    loss, grad = game.d_loss(out, True, None, None)
    assert loss == -2.0 and np.array_equal(grad, [[-0.5], [-0.5]]) and grad.dtype == np.float32
    loss, grad = game.d_loss(out, False, None, None)
    assert loss == 2.0 and np.array_equal(grad, [[0.5], [0.5]])
    loss, grad = game.g_loss(out.reshape(2, 1, 1, 1), None)
    assert loss == -2.0 and grad.shape == (2, 1, 1, 1)
    real, fake = game.score(np.array([[2.0], [4.0]])), game.score(out)
    assert [float(v) for v in game.stats(real, fake)] == [3.0, 2.0, 1.0]
    assert game.stat_keys == ("d_real", "d_fake", "wasserstein") and not game.score_is_probability


def _trainer(recipe="wgan-gp", **options):
    r = get_recipe(recipe)
    setup = r.setup(r.options(**{"arch": "mlp", "batch_size": 8, "k": 2, **options}))
    return GANTrainer.from_setup(setup), setup


def test_weight_clipping_clips_every_critic_parameter_after_each_critic_step():
    trainer, _ = _trainer("wgan", clip=0.003, lr=0.5)
    real = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    assert any(np.abs(layer.params[k]).max() > 0.003 for _, layer, k in trainer.D.named_parameters())
    trainer.train_step(real)
    for _, layer, key in trainer.D.named_parameters():
        assert np.abs(layer.params[key]).max() <= np.float32(0.003)
    assert any(np.abs(layer.params[k]).max() > 0.003 for _, layer, k in trainer.G.named_parameters())
    with pytest.raises(ValueError, match="WeightClipping: c must be"):
        WeightClipping(0)


def test_gradient_penalty_runs_on_interpolates_between_real_and_fake():
    trainer, _ = _trainer()
    ext = next(e for e in trainer.extensions if isinstance(e, GradientPenaltyExtension))
    real = np.zeros((8, 784), np.float32)
    fake = np.ones((8, 784), np.float32)
    points = ext.points(trainer, {"real": real, "fake": fake})
    eps = 1 - points[:, 0]
    assert np.all((0 <= eps) & (eps <= 1)) and np.ptp(eps) > 0
    assert np.all(points == points[:, :1])          # one eps per sample
    assert R1Extension(5.0).points(trainer, {"real": real, "fake": fake}) is real


def test_wgan_gp_step_records_the_estimate_and_penalty_and_counts_generator_steps():
    trainer, _ = _trainer(k=2)
    real = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    for _ in range(4):
        trainer.train_step(real)
    trainer.flush()
    h = trainer.history
    assert trainer.d_steps == 4 and trainer.g_steps == 2
    assert set(h) == {"d_loss", "g_loss", "d_real", "d_fake", "wasserstein", "gradient_penalty"}
    for step in range(4):   # critic loss = -estimate + penalty; the estimate is mean D(x) - mean D(G(z))
        np.testing.assert_allclose(h["d_loss"][step], -h["wasserstein"][step] + h["gradient_penalty"][step],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h["wasserstein"][step], h["d_real"][step] - h["d_fake"][step], atol=1e-6)
    assert np.isnan(h["g_loss"][0]) and np.isfinite(h["g_loss"][1])


def test_gradient_penalty_extension_adds_the_penalty_gradient_to_the_critic():
    """The critic step's gradient is the game's plus exactly what GradientPenalty computes at the same points."""
    backend.set_default_dtype(np.float64)
    trainer, setup = _trainer(k=1)
    D, ext = trainer.D, trainer.extensions[0]
    real, fake = np.random.default_rng(0).random((8, 784)), np.random.default_rng(1).random((8, 784))
    state = trainer.rng.state_dict()
    setup.opt_d.step = lambda: None                   # see the gradient the update would use
    trainer.discriminator_step(real, fake)
    total = {n: lyr.grads[k].copy() for n, lyr, k in D.named_parameters()}
    D.zero_grad()
    D.forward(np.concatenate([real, fake]))
    D.backward(np.concatenate([np.full((8, 1), -1 / 8), np.full((8, 1), 1 / 8)]), input_grad=False)
    game = {n: lyr.grads[k].copy() for n, lyr, k in D.named_parameters()}
    trainer.rng.load_state_dict(state)
    points = ext.points(trainer, {"real": real, "fake": fake})
    D.zero_grad()
    ext.penalty.value_and_grads(D, points)
    for n, lyr, k in D.named_parameters():
        same(total[n], game[n] + lyr.grads[k], n)
        assert k == "bias" or np.abs(lyr.grads[k]).max() > 0, f"the penalty reaches {n}"


def test_conditional_critics_are_refused_by_the_penalty():
    trainer, _ = _trainer()
    trainer.config.num_classes = 3
    with pytest.raises(ValueError, match="conditional critics are not supported"):
        trainer.extensions[0].d_penalty(trainer, {"real": None, "fake": None})


# -- RMSprop (PyTorch's definition; torch itself in test_wasserstein_torch.py) --------------------------

def _one_parameter(value, grad):
    layer = L.Dense(1, 1, bias=False)
    layer.to(dtype=np.float64)
    layer.params["weight"][...] = value
    layer.grads["weight"][...] = grad
    return layer


def test_rmsprop_steps_by_hand():
    """Two steps of w = 1 with gradients 0.5 then -1, lr 0.1, alpha 0.9, eps 1e-8, worked out by hand:
    v1 = 0.1 * 0.25 = 0.025, w1 = 1 - 0.1 * 0.5 / (sqrt(0.025) + 1e-8);
    v2 = 0.9 * 0.025 + 0.1 * 1 = 0.1225, w2 = w1 + 0.1 / (0.35 + 1e-8)."""
    layer = _one_parameter(1.0, 0.5)
    opt = RMSprop(layer, lr=0.1, alpha=0.9)
    opt.step()
    w1 = 1 - 0.1 * 0.5 / (np.sqrt(0.025) + 1e-8)
    np.testing.assert_allclose(layer.params["weight"], w1, rtol=1e-14)
    layer.grads["weight"][...] = -1.0
    opt.step()
    np.testing.assert_allclose(layer.params["weight"], w1 + 0.1 / (0.35 + 1e-8), rtol=1e-14)
    np.testing.assert_allclose(opt.state["weight.square_avg"], 0.1225, rtol=1e-14)


def test_rmsprop_centered_momentum_and_eps_outside_the_root_by_hand():
    """centered: m = 0.1 * 0.5 = 0.05, v = 0.025, v - m^2 = 0.0225 (sqrt 0.15); momentum 0.5 over two
    equal-gradient steps; eps = 0.1 added after the root, not inside it."""
    layer = _one_parameter(0.0, 0.5)
    opt = RMSprop(layer, lr=1.0, alpha=0.9, eps=0.1, centered=True, momentum=0.5)
    opt.step()
    b1 = 0.5 / (0.15 + 0.1)
    np.testing.assert_allclose(layer.params["weight"], -b1, rtol=1e-14)
    opt.step()                                       # v = 0.0475, m = 0.095: v - m^2 = 0.038475
    b2 = 0.5 * b1 + 0.5 / (np.sqrt(0.0475 - 0.095 ** 2) + 0.1)
    np.testing.assert_allclose(layer.params["weight"], -b1 - b2, rtol=1e-14)


def test_rmsprop_equals_the_reference_rule_and_resumes_from_its_state():
    rng = np.random.default_rng(0)
    layer = L.Dense(4, 3).to(dtype=np.float64)
    opt = RMSprop(layer, lr=0.01, alpha=0.95, momentum=0.3, centered=True, weight_decay=0.01)
    configs = {name: dict(lr=0.01, alpha=0.95, momentum=0.3, centered=True, weight_decay=0.01)
               for name, _, _ in layer.named_parameters()}
    expected = {name: lyr.params[k].copy() for name, lyr, k in layer.named_parameters()}
    for step in range(3):
        for name, lyr, key in layer.named_parameters():
            lyr.grads[key][...] = rng.standard_normal(lyr.grads[key].shape)
            expected[name], configs[name] = R.rmsprop_step(expected[name], lyr.grads[key], configs[name])
        opt.step()
        for name, lyr, key in layer.named_parameters():
            np.testing.assert_allclose(lyr.params[key], expected[name], rtol=1e-12)
    copy = RMSprop(layer, lr=0.01, alpha=0.95, momentum=0.3, centered=True, weight_decay=0.01)
    copy.load_state_dict(opt.state_dict())
    assert copy.t == 3 and sorted(copy.state) == sorted(opt.state)
    with pytest.raises(ValueError, match="RMSprop: alpha"):
        RMSprop(layer, alpha=1.5)


# -- recipes and options --------------------------------------------------------------------------------

def test_wasserstein_recipes_build_their_models():
    for name in ("wgan", "wgan-gp", "wgan-gp-paper"):
        r = RECIPES[name]
        setup = r.setup(r.options())
        assert type(setup.objective) is WassersteinGame and setup.head is None
        assert not any(isinstance(layer, L.BatchNorm) for _, layer in setup.D.named_layers())
        assert any(isinstance(layer, L.BatchNorm) for _, layer in setup.G.named_layers())
        assert setup.config.k == 5 and setup.config.batch_size == 64
        x = np.zeros((2, 1, 28, 28), np.float32)
        assert setup.D.forward(x, train=False).shape == (2, 1, 1, 1)
    paper = RECIPES["wgan-gp-paper"].setup(RECIPES["wgan-gp-paper"].options())
    assert (paper.opt_d.lr, paper.opt_d.betas) == (1e-4, (0.0, 0.9))
    tuned = RECIPES["wgan-gp"].setup(RECIPES["wgan-gp"].options())
    assert (tuned.opt_d.lr, tuned.opt_d.betas, tuned.opt_g.lr) == (5e-4, (0.5, 0.9), 5e-4)
    assert [type(e) for e in paper.extensions] == [GradientPenaltyExtension]
    assert paper.extensions[0].penalty.weight == 10.0
    wgan = RECIPES["wgan"].setup(RECIPES["wgan"].options())
    assert type(wgan.opt_d) is RMSprop and wgan.opt_d.lr == 5e-5 and wgan.extensions[0].c == 0.01
    ln = RECIPES["wgan-gp"].setup(RECIPES["wgan-gp"].options(d_norm="layernorm", g_norm="none"))
    assert any(isinstance(layer, L.LayerNorm) for _, layer in ln.D.named_layers())
    assert not any(isinstance(layer, (L.BatchNorm, L.LayerNorm)) for _, layer in ln.G.named_layers())


def test_penalty_options_are_checked_up_front():
    with pytest.raises(ValueError, match="option d_norm must be one of layernorm, none, got 'batchnorm'"):
        RECIPES["wgan-gp"].options(d_norm="batchnorm")
    with pytest.raises(ValueError, match="option gp .*needs a discriminator without BatchNorm.*--d-norm layernorm"):
        RECIPES["dcgan"].options(gp=10.0)
    with pytest.raises(ValueError, match="option r1 .*without BatchNorm"):
        RECIPES["dcgan"].options(r1=1.0)
    with pytest.raises(ValueError, match="has no option.*gp"):
        RECIPES["mlp"].options(gp=10.0)
    with pytest.raises(ValueError, match="option clip must be a finite number > 0"):
        RECIPES["wgan"].options(clip=-1.0)
    setup = RECIPES["dcgan"].setup(RECIPES["dcgan"].options(gp=10.0, r1=2.0, d_norm="layernorm"))
    assert [type(e).__name__ for e in setup.extensions] == ["GradientPenaltyExtension", "R1Extension"]


def test_goodfellow2014_takes_a_gradient_penalty_on_its_maxout_dropout_discriminator():
    r = RECIPES["goodfellow2014"]
    setup = r.setup(r.options(gp=10.0, batch_size=4))
    trainer = GANTrainer.from_setup(setup)
    trainer.train_step(np.random.default_rng(0).random((4, 784), dtype=np.float32))
    trainer.flush()
    assert trainer.history["gradient_penalty"][0] > 0 and np.isfinite(trainer.history["d_loss"][0])


def test_dcgan_with_r1_trains_a_step():
    r = RECIPES["dcgan"]
    setup = r.setup(r.options(r1=5.0, d_norm="none", ngf=4, ndf=4, batch_size=4))
    trainer = GANTrainer.from_setup(setup)
    trainer.train_step(np.random.default_rng(0).uniform(-1, 1, (4, 1, 28, 28)).astype(np.float32))
    trainer.flush()
    assert trainer.history["r1_penalty"][0] > 0 and "acc_real" in trainer.history


# -- --g-steps: runs measured in generator updates ---------------------------------------------------

TINY = {"batch_size": 20, "seed": 3, "arch": "mlp", "k": 2}


@pytest.mark.slow
def test_g_steps_stops_at_exactly_n_generator_updates_mid_epoch(tmp_path):
    trainer = train_run("wgan-gp", tmp_path / "run", digits(), quiet=True, evaluate=False, g_steps=4,
                        final_outputs=False, **TINY)
    assert trainer.g_steps == 4 and trainer.d_steps == 8          # 3 batches per epoch: stops in epoch 3
    from scratchgan.gan import Checkpoint
    meta = Checkpoint(tmp_path / "run/checkpoint.npz").meta
    assert meta["epoch"] == 2 and meta["loader"]["batch"] == 2 and meta["options"]["g_steps"] == 4
    assert (tmp_path / "run/history.csv").exists()


@pytest.mark.slow
def test_g_steps_works_for_every_noise_to_image_recipe(tmp_path):
    images = digits()
    labels = np.arange(len(images)) % 10
    for name, recipe in RECIPES.items():
        if recipe.family is not None and name not in ("progan", "lapgan"):   # image-to-image families count epochs
            assert "g_steps" not in recipe.defaults, name
            continue
        options = {"batch_size": 20, "g_steps": 2, "seed": 1}
        options.update({key: 4 for key in ("ngf", "ndf", "width") if key in recipe.defaults})
        trainer = train_run(name, tmp_path / name, images, quiet=True, evaluate=False, final_outputs=False,
                            labels=labels if "num_classes" in recipe.defaults else None, **options)
        assert trainer.g_steps == 2, name


@pytest.mark.slow
def test_g_steps_resumes_bit_identically_and_may_only_grow(tmp_path):
    from test_run import assert_same_checkpoints
    train_run("wgan-gp", tmp_path / "straight", digits(), quiet=True, evaluate=False, final_outputs=False,
              g_steps=7, **TINY)
    train_run("wgan-gp", tmp_path / "resumed", digits(), quiet=True, evaluate=False, final_outputs=False,
              g_steps=4, **TINY)
    with pytest.raises(RunError, match="--g-steps 3 is fewer than the 4 generator updates"):
        train_run(None, tmp_path / "resumed", digits(), resume=True, quiet=True, evaluate=False, g_steps=3)
    with pytest.raises(RunError, match="was started with --g-steps 4, which it has reached"):
        train_run(None, tmp_path / "resumed", digits(), resume=True, quiet=True, evaluate=False, epochs=9)
    trainer = train_run(None, tmp_path / "resumed", digits(), resume=True, quiet=True, evaluate=False,
                        final_outputs=False, g_steps=7)
    assert trainer.g_steps == 7
    assert_same_checkpoints(tmp_path / "straight/checkpoint.npz", tmp_path / "resumed/checkpoint.npz")


@pytest.mark.slow
def test_cli_trains_wgan_for_g_steps(tmp_path, capsys):
    from scratchgan.data import write_idx
    data = tmp_path / "data"
    data.mkdir()
    write_idx(data / "train-images-idx3-ubyte.gz", digits()[:, 0])
    write_idx(data / "train-labels-idx1-ubyte.gz", np.zeros(60, np.uint8))
    out = tmp_path / "run"
    assert main(["train", "wgan", "--arch", "mlp", "--g-steps", "3", "--k", "2", "--batch-size", "20",
                 "--data-dir", str(data), "--out", str(out), "--quiet", "--no-report", "--no-evaluate"]) == 0
    from scratchgan.gan import Checkpoint
    assert Checkpoint(out / "checkpoint.npz").meta["trainer"]["g_steps"] == 3
    assert (out / "samples.png").exists() and not (out / "accuracy.png").exists()   # a critic has no accuracy
    assert main(["train", "wgan-gp", "--d-norm", "batchnorm", "--out", str(tmp_path / "x"),
                 "--data-dir", str(data)]) == 2
    assert "option d_norm must be one of layernorm, none" in capsys.readouterr().err


def test_report_reads_a_g_steps_run(tmp_path):
    from scratchgan.report.rundir import read_run
    train_run("wgan", tmp_path / "run", digits(), quiet=True, evaluate=False, g_steps=2, final_outputs=False,
              **TINY)
    run = read_run(tmp_path / "run")
    assert not run.finished and "0 of 2 generator updates" not in " ".join(run.notes)
    assert any("2 of 2 generator updates done (--g-steps" in note for note in run.notes)   # no final outputs yet


def test_loss_vs_frechet_plots_the_estimate_beside_the_frechet_distance(tmp_path):
    from PIL import Image
    from scratchgan import plots
    steps = 40
    history = {"d_loss": np.linspace(1, 0, steps), "wasserstein": np.linspace(3, 1, steps),
               "epoch": np.arange(1, steps + 1) / 10}
    metrics = [{"epoch": e, "frechet_distance": 100.0 / e} for e in (1, 2, 3, 4)]
    assert plots.tracked_loss(history)[0] == "wasserstein"
    assert plots.tracked_loss({"d_loss": [1.0]})[0] == "d_loss"
    np.testing.assert_allclose(plots.loss_per_epoch(history, "wasserstein", 10),
                               [history["wasserstein"][i:i + 10].mean() for i in range(0, 40, 10)])
    with Image.open(plots.save_loss_vs_frechet(tmp_path / "f.png", history, metrics)) as im:
        assert im.size == (800, 450)
    with pytest.raises(ValueError, match="no Fréchet distance"):
        plots.save_loss_vs_frechet(tmp_path / "g.png", history, [])


@pytest.mark.slow
@needs_mnist
def test_a_wgan_gp_run_on_mnist_records_the_estimate_and_the_per_epoch_frechet_distance(tmp_path):
    from scratchgan.data import load_images
    images = load_images("mnist", data_dir=MNIST_DIR)[:256]
    train_run("wgan-gp", tmp_path / "run", images, quiet=True, dataset="mnist", data_dir=MNIST_DIR, g_steps=10,
              batch_size=64, k=2, ngf=8, ndf=8, eval_samples=100)
    from scratchgan.plots import read_history_csv
    metrics = read_history_csv(tmp_path / "run/metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3, 4, 5] and list(metrics["g_steps"]) == [2, 4, 6, 8, 10]
    history = read_history_csv(tmp_path / "run/history.csv")
    assert np.isfinite(history["wasserstein"]).all() and len(history["wasserstein"]) == 20
    assert (tmp_path / "run/loss_vs_frechet.png").stat().st_size > 0
    assert (tmp_path / "run/evaluation.json").exists()


@pytest.mark.slow
def test_tracking_demo_plots_runs_side_by_side(tmp_path):
    """demos/wasserstein_tracking.py on two synthetic run folders: a critic whose estimate falls with the
    Fréchet distance (rank correlation +1) and a GAN whose D loss rises as it falls (-1)."""
    import json
    from scratchgan.plots import write_history_csv
    from test_demos import run_demo
    steps = np.arange(40)
    runs = {"wgan": {"d_loss": -5.0 + 0.1 * steps, "wasserstein": 5.0 - 0.1 * steps},   # falls with the FD
            "gan": {"d_loss": 0.5 + 0.01 * steps}}                                      # rises as the FD falls
    for name, history in runs.items():
        folder = tmp_path / name
        folder.mkdir()
        history["g_loss"] = np.where(steps % 2 == 1, 1.0, np.nan)
        write_history_csv(folder / "history.csv", history)
        write_history_csv(folder / "metrics.csv", {"epoch": [1, 2, 3, 4], "g_steps": [5, 10, 15, 20],
                                                   "frechet_distance": [40.0, 30.0, 20.0, 10.0]})
    run_demo("wasserstein_tracking.py", tmp_path / "wgan", tmp_path / "gan", "--labels", "critic", "GAN",
             "--out", tmp_path / "t.png")
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["critic"]["tracked"] == "wasserstein" and summary["critic"]["spearman_vs_frechet"] == 1.0
    assert summary["GAN"]["tracked"] == "d_loss" and summary["GAN"]["spearman_vs_frechet"] == -1.0
    assert (tmp_path / "t.png").stat().st_size > 0


@pytest.mark.gpu
def test_penalty_and_rmsprop_on_the_gpu_equal_the_cpu(cupy):
    """One code path: the gradient penalty through a LayerNorm conv critic, and an RMSprop step, on CuPy."""
    backend.set_default_dtype(np.float64)
    results = []
    for device in ("cpu", "gpu"):
        critic = L.Chain(L.Conv2d(1, 3, 3, 2, 1, rng=RNG(0)), L.LeakyReLU(0.2), L.Conv2d(3, 4, 3, 2, 1, rng=RNG(1)),
                         L.LayerNorm((4, 2, 2)), L.Tanh(), L.Flatten(), L.Dense(16, 1, rng=RNG(2))).to(device)
        x = backend.to_device(np.random.default_rng(0).standard_normal((3, 1, 6, 6)), device)
        critic.zero_grad()
        value, dx = GradientPenalty(10.0).value_and_grads(critic, x, input_grad=True)
        RMSprop(critic, lr=0.01, centered=True).step()
        results.append([backend.asnumpy(value), backend.asnumpy(dx)]
                       + [backend.asnumpy(lyr.params[k]) for _, lyr, k in critic.named_parameters()])
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-9, atol=1e-12)
