"""Losses against their formulas and optimizers against hand-computed steps."""
import numpy as np
import pytest

import scratchgan.layers as L
from scratchgan import losses
from scratchgan.backend import RNG
from scratchgan.optim import SGD, Adam


def test_bce_on_probabilities_matches_formula_and_clamps():
    p, t = np.array([0.2, 0.7, 0.99]), np.array([0.0, 1.0, 1.0])
    value, _ = losses.binary_cross_entropy(p, t)
    assert float(value) == pytest.approx(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)), rel=1e-12)
    value, grad = losses.binary_cross_entropy(np.array([0.0, 1.0], np.float32), np.array([1.0, 0.0], np.float32))
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
    assert value.dtype == np.float32 and grad.dtype == np.float32


@pytest.mark.parametrize("logit", [-80.0, -50.0, -20.0, 5.0, 15.0])
def test_saturated_sigmoid_still_passes_the_bce_gradient_back(logit):
    """Behind Dense(..., sigmoid), d loss / d logit must stay p - t (here about -1 or +1), not 0.

    Rejected fakes (D(G(z)) -> 0, the G step's case) keep it down to sigmoid(-87) in float32.
    Towards 1, float32 cannot hold 1 - p below 6e-8 (|logit| > 17): use logits there."""
    layer = L.Sigmoid()
    z = np.full((1, 1), logit, np.float32)
    p = layer.forward(z)
    target = np.float32(1.0 if logit < 0 else 0.0)  # D is confidently wrong: the largest gradient
    _, dp = losses.binary_cross_entropy(p, target)
    dz = layer.backward(dp)
    assert np.isfinite(dz).all() and dz.dtype == np.float32
    assert float(dz[0, 0]) == pytest.approx(float(1 / (1 + np.exp(-np.float64(logit)))) - target, abs=1e-6)


@pytest.mark.parametrize("gap", [0.0, 5.0, 30.0, 80.0])
def test_two_unit_softmax_head_gradient_is_p_minus_t_however_confident(gap):
    """The tutorial's D head: CE on softmax unit 0 gives dz0 = p0 - t through the softmax, in float32."""
    softmax = L.Softmax()
    z = np.array([[-gap / 2, gap / 2], [gap / 2, -gap / 2]], np.float32)
    probs = softmax.forward(z)
    t = np.array([1.0, 0.0], np.float32)
    value, dprobs = losses.two_class_cross_entropy(probs, t)
    dz = softmax.backward(dprobs)
    p0 = 1 / (1 + np.exp(-(z[:, 0].astype(np.float64) - z[:, 1])))
    np.testing.assert_allclose(dz[:, 0], (p0 - t) / 2, atol=1e-6)
    np.testing.assert_allclose(dz[:, 1], -(p0 - t) / 2, atol=1e-6)
    gap64 = z[:, 0].astype(np.float64) - z[:, 1]  # -log p0 = softplus(-gap), -log(1 - p0) = softplus(gap)
    expected = np.mean(np.where(t == 1, np.logaddexp(0, -gap64), np.logaddexp(0, gap64)))
    assert float(value) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        losses.two_class_cross_entropy(np.ones((3, 3), np.float32), 1.0)


def test_bce_with_logits_is_stable_and_equals_bce_of_sigmoid():
    z = np.array([-3.0, 0.5, 4.0])
    t = np.array([0.0, 1.0, 0.9])
    p = 1 / (1 + np.exp(-z))
    assert float(losses.bce_with_logits(z, t)[0]) == pytest.approx(float(losses.binary_cross_entropy(p, t)[0]), rel=1e-12)
    value, grad = losses.bce_with_logits(np.array([1000.0, -1000.0], np.float32), np.array([0.0, 1.0], np.float32))
    assert float(value) == pytest.approx(1000.0)  # softplus form: no overflow, no log(0)
    np.testing.assert_allclose(grad, [0.5, -0.5])


def test_softmax_cross_entropy_with_indices_equals_one_hot_and_two_unit_head_equals_bce():
    z = np.random.default_rng(0).standard_normal((5, 2))
    labels = np.array([0, 1, 1, 0, 1])
    a, ga = losses.softmax_cross_entropy(z, labels)
    b, gb = losses.softmax_cross_entropy(z, np.eye(2)[labels])
    assert float(a) == pytest.approx(float(b)) and np.allclose(ga, gb)
    # the tutorial's head: unit 0 = P(real); -log softmax(z)_0 is BCE of p0 against target "real"
    p_real = np.exp(z[:, 0]) / np.exp(z).sum(axis=1)
    bce, _ = losses.binary_cross_entropy(p_real, (labels == 0).astype(float))
    assert float(a) == pytest.approx(float(bce), rel=1e-10)


@pytest.mark.parametrize("labels", [np.array([0, 3]), np.array([-1, 0]), np.array([0.0, 1.0])])
def test_softmax_cross_entropy_refuses_bad_class_indices(labels):
    with pytest.raises(ValueError, match="class indices"):
        losses.softmax_cross_entropy(np.zeros((2, 3)), labels)


def test_mse_and_l1_values():
    p, t = np.array([1.0, -2.0, 3.0]), np.array([0.0, 0.0, 1.0])
    assert float(losses.mse(p, t)[0]) == pytest.approx(3.0)
    assert float(losses.l1(p, t)[0]) == pytest.approx(5 / 3)


def test_loss_shape_mismatch_names_loss_and_shapes():
    with pytest.raises(ValueError, match=r"bce_with_logits.*\(4, 1\).*\(4,\)"):
        losses.bce_with_logits(np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="softmax_cross_entropy"):
        losses.softmax_cross_entropy(np.zeros((4, 2)), np.zeros(3, int))


def _one_param_model(value, grad):
    layer = L.Dense(1, 2, bias=False).to(dtype=np.float64)
    layer.params["weight"][...] = np.array(value).reshape(2, 1)
    layer.grads["weight"][...] = np.array(grad).reshape(2, 1)
    return layer


def test_adam_matches_hand_computed_steps():
    w0, g1, g2 = np.array([0.5, -1.0]), np.array([0.1, -0.3]), np.array([-0.2, 0.4])
    model = _one_param_model(w0, g1)
    opt = Adam(model, lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    opt.step()
    m = 0.1 * g1
    v = 0.001 * g1 ** 2
    w1 = w0 - 0.01 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    np.testing.assert_allclose(model.params["weight"].ravel(), w1, rtol=1e-12)
    np.testing.assert_allclose(w1, w0 - 0.01 * np.sign(g1), rtol=1e-6)  # first step is lr * sign(g)
    model.grads["weight"][...] = g2.reshape(2, 1)
    opt.step()
    m = 0.9 * m + 0.1 * g2
    v = 0.999 * v + 0.001 * g2 ** 2
    w2 = w1 - 0.01 * (m / (1 - 0.9 ** 2)) / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)
    np.testing.assert_allclose(model.params["weight"].ravel(), w2, rtol=1e-12)


def test_adam_in_place_update_matches_the_formula_and_saves_only_its_moments():
    layer = L.Dense(3, 2, rng=RNG(0)).to(dtype=np.float64)
    opt = Adam(layer, lr=0.01, betas=(0.5, 0.9), eps=1e-8)
    w = layer.params["weight"].copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    rng = np.random.default_rng(0)
    for t in (1, 2, 3):
        g = rng.standard_normal(w.shape)
        layer.grads["weight"][...] = g
        layer.grads["bias"][...] = 0
        opt.step()
        m, v = 0.5 * m + 0.5 * g, 0.9 * v + 0.1 * g * g
        w = w - 0.01 * (m / (1 - 0.5 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-8)
        np.testing.assert_allclose(layer.params["weight"], w, rtol=1e-13)
    assert sorted(opt.state_dict()) == ["state.bias.exp_avg", "state.bias.exp_avg_sq",
                                        "state.weight.exp_avg", "state.weight.exp_avg_sq", "t"]


def test_sgd_momentum_and_weight_decay():
    w0, g = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    model = _one_param_model(w0, g)
    opt = SGD(model, lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step()
    v1 = g + 0.01 * w0
    w1 = w0 - 0.1 * v1
    opt.step()
    v2 = 0.9 * v1 + g + 0.01 * w1
    np.testing.assert_allclose(model.params["weight"].ravel(), w1 - 0.1 * v2, rtol=1e-12)


def test_optimizer_state_dict_resumes_identically():
    def run(steps, resume_after=None):
        model = L.Dense(3, 2, rng=RNG(0))
        opt = Adam(model, lr=0.01)
        rng = np.random.default_rng(0)
        for i in range(steps):
            if i == resume_after:
                state, opt_state = model.state_dict(), opt.state_dict()
                model = L.Dense(3, 2, rng=RNG(99)).load_state_dict(state)
                opt = Adam(model, lr=0.01).load_state_dict(opt_state)
            model.zero_grad()
            model.forward(rng.standard_normal((4, 3)).astype(np.float32))
            model.backward(rng.standard_normal((4, 2)).astype(np.float32))
            opt.step()
        return model.params["weight"]

    np.testing.assert_array_equal(run(6), run(6, resume_after=3))


def test_adam_keeps_float32():
    model = L.Dense(3, 2)
    model.forward(np.ones((2, 3), np.float32))
    model.backward(np.ones((2, 2), np.float32))
    opt = Adam(model)
    opt.step()
    assert all(v.dtype == np.float32 for v in opt.state.values())
    assert model.params["weight"].dtype == np.float32


def test_max_norm_clips_each_units_incoming_weights():
    layer = L.Dense(3, 2, rng=RNG(0)).to(dtype=np.float64)
    layer.params["weight"][...] = [[3.0, 4.0, 0.0], [0.1, 0.2, 0.2]]   # row norms 5 and 0.3
    layer.grads["weight"][...] = 0
    SGD(layer, lr=0.1, max_norm=2.0).step()
    np.testing.assert_allclose(layer.params["weight"], [[1.2, 1.6, 0.0], [0.1, 0.2, 0.2]])
    assert layer.params["bias"].shape == (2,)  # vectors are not constrained
