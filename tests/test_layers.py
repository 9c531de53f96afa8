"""Layer behaviour beyond gradients: statistics, modes, dtypes, errors, state."""
import io

import numpy as np
import pytest

import scratchgan as sg
import scratchgan.layers as L
from scratchgan.backend import RNG


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# -- BatchNorm -----------------------------------------------------------------------------

def test_batchnorm_train_normalizes_per_channel_over_n_h_w():
    bn = L.BatchNorm(3).to(dtype=np.float64)
    x = rand(4, 3, 5, 6, dtype=np.float64) * np.array([1, 5, 0.1]).reshape(1, 3, 1, 1) + 7
    y = bn.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-3)  # eps = 1e-5 shrinks it a hair


def test_batchnorm_running_statistics_follow_pytorch():
    bn = L.BatchNorm(2, momentum=0.1).to(dtype=np.float64)
    x1, x2 = rand(5, 2, 3, 3, dtype=np.float64), rand(5, 2, 3, 3, seed=1, dtype=np.float64) * 2 + 1
    mean, var = np.zeros(2), np.ones(2)
    for x in (x1, x2):
        bn.forward(x, grad=False)
        m = x.size // 2
        mean = 0.9 * mean + 0.1 * x.mean(axis=(0, 2, 3))
        var = 0.9 * var + 0.1 * x.var(axis=(0, 2, 3)) * m / (m - 1)  # unbiased, as PyTorch keeps it
    np.testing.assert_allclose(bn.buffers["running_mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], var, rtol=1e-12)
    assert int(bn.buffers["num_batches_tracked"]) == 2


def test_batchnorm_eval_uses_running_statistics_and_does_not_update_them():
    bn = L.BatchNorm(3).to(dtype=np.float64)
    bn.params["weight"][...] = [1.0, 2.0, 0.5]
    bn.params["bias"][...] = [0.0, -1.0, 3.0]
    bn.buffers["running_mean"][...] = [0.5, -0.5, 2.0]
    bn.buffers["running_var"][...] = [4.0, 0.25, 1.0]
    x = rand(2, 3, dtype=np.float64)
    y = bn.forward(x, train=False)
    expected = (x - [0.5, -0.5, 2.0]) / np.sqrt(np.array([4.0, 0.25, 1.0]) + 1e-5) * [1, 2, 0.5] + [0, -1, 3]
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    np.testing.assert_array_equal(bn.buffers["running_mean"], [0.5, -0.5, 2.0])


def test_batchnorm_eval_output_is_independent_of_the_rest_of_the_batch():
    bn = L.BatchNorm(4)
    for seed in range(3):
        bn.forward(rand(8, 4, 3, 3, seed=seed), grad=False)
    batch = rand(6, 4, 3, 3, seed=9)
    alone = bn.forward(batch[:1], train=False)
    np.testing.assert_allclose(bn.forward(batch, train=False)[:1], alone, rtol=1e-6)


def test_batchnorm_training_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match="more than one value per channel"):
        L.BatchNorm(3).forward(rand(1, 3))


# -- Dropout --------------------------------------------------------------------------------

def test_dropout_statistics_and_scaling():
    layer = L.Dropout(0.3)
    x = np.ones((400, 500), np.float32)
    y = layer.forward(x, grad=False)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.01  # inverted dropout keeps the expectation


def test_dropout_is_identity_in_eval_and_backward_reuses_the_mask():
    layer = L.Dropout(0.5)
    x = rand(10, 20)
    assert layer.forward(x, train=False) is x
    y = layer.forward(x, train=True)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx != 0, y != 0)


def test_dropout_masks_are_seeded():
    sg.manual_seed(5)
    a = L.Dropout(0.5).forward(np.ones((4, 6), np.float32), grad=False)
    sg.manual_seed(5)
    b = L.Dropout(0.5).forward(np.ones((4, 6), np.float32), grad=False)
    np.testing.assert_array_equal(a, b)


# -- activations ---------------------------------------------------------------------------

def test_sigmoid_and_softmax_are_stable_for_extreme_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]], np.float32)
    s = L.Sigmoid().forward(x, grad=False)
    np.testing.assert_allclose(s, [[0, 0.5, 1]], atol=1e-7)
    p = L.Softmax().forward(x, grad=False)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1)


def test_relu_backward_does_not_modify_dy():
    layer = L.ReLU()
    layer.forward(rand(3, 4))
    dy = rand(3, 4, seed=1)
    keep = dy.copy()
    layer.backward(dy)
    np.testing.assert_array_equal(dy, keep)


def test_maxout_forward_is_the_max_over_pieces():
    layer = L.Maxout(5, 3, 4, rng=RNG(0)).to(dtype=np.float64)
    x = rand(6, 5, dtype=np.float64)
    z = x @ layer.params["weight"].T + layer.params["bias"]
    np.testing.assert_allclose(layer.forward(x, grad=False), z.reshape(6, 3, 4).max(axis=2), rtol=1e-12)


@pytest.mark.parametrize("activation", [sg.tanh, "tanh", L.Tanh, L.Tanh()])
def test_dense_accepts_flux_style_activations(activation):
    layer = L.Dense(4, 3, activation, rng=RNG(0))
    x = rand(2, 4)
    expected = np.tanh(x @ layer.params["weight"].T + layer.params["bias"])
    np.testing.assert_allclose(layer.forward(x, grad=False), expected, rtol=1e-6)


def test_unknown_activation_is_an_error():
    with pytest.raises(ValueError, match="unknown activation"):
        L.Dense(2, 2, "swish")


# -- dtypes, shapes, errors -------------------------------------------------------------------

def _float32_model():
    return L.Chain(L.Conv2d(1, 4, 3, 2, 1), L.BatchNorm(4), L.LeakyReLU(), L.Dropout(0.2), L.Flatten(),
                   L.Dense(4 * 4 * 4, 6, "tanh"), L.Maxout(6, 3, 2), L.Dense(3, 2), L.Softmax())


def test_float32_in_float32_out_and_float32_grads():
    model = _float32_model()
    x = rand(3, 1, 7, 7)
    y = model.forward(x)
    assert y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.dtype == np.float32
    for name, layer, key in model.named_parameters():
        assert layer.params[key].dtype == np.float32 and layer.grads[key].dtype == np.float32, name
    for layer in (L.ConvTranspose2d(2, 3, 4, 2, 1), L.Reshape(2, 2, 2), L.ReLU(), L.Sigmoid()):
        x = rand(2, 2, 2, 2) if not isinstance(layer, L.Reshape) else rand(2, 8)
        y = layer.forward(x)
        assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32


def test_to_float64_round_trip():
    model = _float32_model().to(dtype=np.float64)
    assert model.forward(rand(2, 1, 7, 7, dtype=np.float64)).dtype == np.float64
    assert model.layers[1].buffers["num_batches_tracked"].dtype == np.int64


def test_dtype_mismatch_is_an_error_not_an_upcast():
    with pytest.raises(TypeError, match="float64 does not match parameter dtype float32"):
        L.Dense(3, 2).forward(np.zeros((1, 3)))


@pytest.mark.parametrize("layer,x,shapes", [
    (L.Conv2d(3, 8, 3), np.zeros((2, 1, 8, 8), np.float32), ["(N, 3, H, W)", "(2, 1, 8, 8)"]),
    (L.Conv2d(3, 8, 3), np.zeros((3, 8, 8), np.float32), ["(N, 3, H, W)", "(3, 8, 8)"]),
    (L.ConvTranspose2d(4, 2, 3), np.zeros((2, 3, 5, 5), np.float32), ["(N, 4, H, W)", "(2, 3, 5, 5)"]),
    (L.Dense(784, 500), np.zeros((2, 28, 28), np.float32), ["(N, 784)", "(2, 28, 28)"]),
    (L.Dense(784, 500), np.zeros((2, 783), np.float32), ["(N, 784)", "(2, 783)"]),
    (L.Maxout(10, 4, 2), np.zeros((2, 9), np.float32), ["(N, 10)", "(2, 9)"]),
    (L.BatchNorm(16), np.zeros((2, 8, 3, 3), np.float32), ["(N, 16, H, W)", "(2, 8, 3, 3)"]),
    (L.Reshape(3, 3), np.zeros((2, 10), np.float32), ["Reshape", "(2, 10)"]),
])
def test_wrong_input_shapes_name_the_layer_and_both_shapes(layer, x, shapes):
    with pytest.raises(ValueError) as err:
        layer.forward(x)
    message = str(err.value)
    assert message.startswith(type(layer).__name__)
    for shape in shapes:
        assert shape in message


def test_mismatched_batch_in_backward_names_both_shapes():
    layer = L.Dense(4, 3)
    layer.forward(rand(5, 4))
    with pytest.raises(ValueError, match=r"Dense\(4 => 3\).*\(2, 3\).*\(5, 3\)"):
        layer.backward(rand(2, 3))


def test_calling_forward_twice_before_backward_is_an_error():
    model = L.Chain(L.Dense(4, 3), L.Tanh())
    model.forward(rand(2, 4))
    with pytest.raises(RuntimeError, match="forward called again before backward"):
        model.forward(rand(2, 4))
    model.backward(rand(2, 3))
    model.forward(rand(2, 4))  # fine after backward


def test_backward_without_forward_is_an_error():
    with pytest.raises(RuntimeError, match="without a forward"):
        L.Tanh().backward(rand(2, 2))
    layer = L.Tanh()
    layer.forward(rand(2, 2), grad=False)
    with pytest.raises(RuntimeError, match="without a forward"):
        layer.backward(rand(2, 2))


def test_real_then_fake_accumulates_gradients_like_one_concatenated_pass():
    """The D step pattern: forward/backward on real, then on fake, gradients add up."""
    d = L.Chain(L.Dense(4, 3, "tanh", rng=RNG(0)), L.Dense(3, 1, rng=RNG(1))).to(dtype=np.float64)
    real, fake = rand(3, 4, dtype=np.float64), rand(3, 4, seed=1, dtype=np.float64)
    g_real, g_fake = rand(3, 1, seed=2, dtype=np.float64), rand(3, 1, seed=3, dtype=np.float64)
    d.zero_grad()
    d.forward(real); d.backward(g_real)
    d.forward(fake); d.backward(g_fake)
    separate = {k: d.layers[0].grads[k].copy() for k in ("weight", "bias")}
    d.zero_grad()
    d.forward(np.concatenate([real, fake])); d.backward(np.concatenate([g_real, g_fake]))
    for k, v in separate.items():
        np.testing.assert_allclose(d.layers[0].grads[k], v, rtol=1e-12)


def test_requires_grad_false_skips_parameter_gradients_but_not_dx():
    d = L.Chain(L.Dense(4, 3, "tanh"), L.Dense(3, 1))
    d.requires_grad_(False)
    d.forward(rand(2, 4))
    dx = d.backward(np.ones((2, 1), np.float32))
    assert np.abs(dx).sum() > 0
    assert all(not np.any(layer.grads[k]) for _, layer, k in d.named_parameters())


# -- Chain, state ---------------------------------------------------------------------------

def test_chain_parameters_zero_grad_and_train_eval():
    model = _float32_model()
    names = [n for n, _, _ in model.named_parameters()]
    assert names[:4] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert model.num_params() == sum(layer.params[k].size for _, layer, k in model.named_parameters())
    model.forward(rand(2, 1, 7, 7))
    model.backward(np.ones((2, 2), np.float32))
    model.zero_grad()
    assert all(not np.any(layer.grads[k]) for _, layer, k in model.named_parameters())
    model.eval()
    assert all(not layer.training for _, layer in model.named_layers())
    x = rand(2, 1, 7, 7)
    np.testing.assert_array_equal(model.forward(x, grad=False), model.forward(x, grad=False))  # no dropout
    model.train()
    assert all(layer.training for _, layer in model.named_layers())


def test_state_dict_round_trips_through_npz():
    model = _float32_model()
    model.forward(rand(4, 1, 7, 7), grad=False)  # move BatchNorm's running statistics
    buffer = io.BytesIO()
    np.savez(buffer, **model.state_dict())
    buffer.seek(0)
    sg.manual_seed(123)
    other = _float32_model()
    other.load_state_dict(dict(np.load(buffer)))
    x = rand(3, 1, 7, 7, seed=4)
    np.testing.assert_array_equal(model.forward(x, train=False), other.forward(x, train=False))
    assert set(model.state_dict()) == set(other.state_dict())
    assert "1.running_var" in model.state_dict()


def test_load_state_dict_reports_missing_and_mismatched_keys():
    model = L.Chain(L.Dense(3, 2))
    with pytest.raises(ValueError, match="missing keys"):
        model.load_state_dict({"0.weight": np.zeros((2, 3))})
    with pytest.raises(ValueError, match=r"0.weight has shape \(3, 2\), expected \(2, 3\)"):
        model.load_state_dict({"0.weight": np.zeros((3, 2)), "0.bias": np.zeros(2)})


def test_same_seed_same_initial_weights():
    sg.manual_seed(7)
    a = _float32_model().state_dict()
    sg.manual_seed(7)
    b = _float32_model().state_dict()
    sg.manual_seed(8)
    c = _float32_model().state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_initializers_have_the_documented_scale():
    from scratchgan import init
    rng = RNG(0)
    w = init.glorot_uniform((400, 300), 300, 400, rng)
    assert np.abs(w).max() <= np.sqrt(6 / 700) and w.std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)
    assert init.he_normal((400, 300), 300, 400, rng).std() == pytest.approx(np.sqrt(2 / 300), rel=0.02)
    assert init.dcgan_normal((400, 300), 300, 400, rng).std() == pytest.approx(0.02, rel=0.02)
    layer = L.Conv2d(3, 8, 4, init="normal_0.02", rng=rng)
    assert layer.params["weight"].std() == pytest.approx(0.02, rel=0.2)
