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
