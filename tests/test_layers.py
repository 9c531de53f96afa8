"""Layer behaviour beyond gradients: statistics, modes, dtypes, errors, state."""
import io

import numpy as np
import pytest

import scratchgan as sg
import scratchgan.layers as L
from scratchgan.backend import RNG
from scratchgan.fastpath import add_matmul_to_grad, matmul_into, matmul_tall, reuse_buffer, row_dots


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def f64(layer):
    return layer.to(dtype=np.float64)


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
        bn.forward(x, keep_cache=False)
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
        bn.forward(rand(8, 4, 3, 3, seed=seed), keep_cache=False)
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
    y = layer.forward(x, keep_cache=False)
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
    a = L.Dropout(0.5).forward(np.ones((4, 6), np.float32), keep_cache=False)
    sg.manual_seed(5)
    b = L.Dropout(0.5).forward(np.ones((4, 6), np.float32), keep_cache=False)
    np.testing.assert_array_equal(a, b)


# -- activations ---------------------------------------------------------------------------

def test_sigmoid_and_softmax_are_stable_for_extreme_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]], np.float32)
    s = L.Sigmoid().forward(x, keep_cache=False)
    np.testing.assert_allclose(s, [[0, 0.5, 1]], atol=1e-7)
    p = L.Softmax().forward(x, keep_cache=False)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0, 1.5])
def test_leakyrelu_matches_its_definition_for_any_slope(alpha):
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(L.leakyrelu(x, alpha), np.where(x > 0, x, alpha * x))
    layer = f64(L.LeakyReLU(alpha))
    layer.forward(x.reshape(1, -1))
    dy = np.arange(1.0, 6.0).reshape(1, -1)
    np.testing.assert_allclose(layer.backward(dy), np.where(x > 0, dy, alpha * dy))


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
    np.testing.assert_allclose(layer.forward(x, keep_cache=False), z.reshape(6, 3, 4).max(axis=2), rtol=1e-12)


@pytest.mark.parametrize("activation", [sg.tanh, "tanh", L.Tanh, L.Tanh()])
def test_dense_accepts_flux_style_activations(activation):
    layer = L.Dense(4, 3, activation, rng=RNG(0))
    x = rand(2, 4)
    expected = np.tanh(x @ layer.params["weight"].T + layer.params["bias"])
    np.testing.assert_allclose(layer.forward(x, keep_cache=False), expected, rtol=1e-6)


def test_dense_two_passes_accumulate_into_the_weight_gradient():
    layer = f64(L.Dense(5, 3, rng=RNG(0)))
    rng = np.random.default_rng(1)
    x1, x2, dy1, dy2 = (rng.standard_normal(s) for s in ((4, 5), (6, 5), (4, 3), (6, 3)))
    layer.forward(x1)
    layer.backward(dy1)
    layer.forward(x2)
    layer.backward(dy2)
    np.testing.assert_allclose(layer.grads["weight"], dy1.T @ x1 + dy2.T @ x2, rtol=1e-13)
    layer.zero_grad()
    layer.forward(x2)
    layer.backward(dy2)
    np.testing.assert_allclose(layer.grads["weight"], dy2.T @ x2, rtol=1e-13)


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
    layer.forward(rand(2, 2), keep_cache=False)
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


@pytest.mark.parametrize("make,shape", [
    (lambda: L.Dense(6, 5, "tanh", rng=RNG(1)), (4, 6)),
    (lambda: L.Conv2d(3, 4, 4, 2, 1, rng=RNG(1)), (2, 3, 8, 8)),
    (lambda: L.ConvTranspose2d(3, 2, 4, 2, 1, rng=RNG(1)), (2, 3, 5, 5)),
    (lambda: L.Chain(L.Conv2d(2, 3, 3, 1, 1, rng=RNG(1)), L.BatchNorm(3), L.LeakyReLU(0.2),
                     L.Conv2d(3, 1, 4, rng=RNG(2))), (3, 2, 4, 4)),
])
def test_backward_without_input_gradient_adds_the_same_parameter_gradients(make, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    full, params_only = f64(make()), f64(make())
    dy = rng.standard_normal(full.forward(x).shape)
    params_only.forward(x)
    dx = full.backward(dy)
    assert dx.shape == x.shape
    assert params_only.backward(dy, input_grad=False) is None
    for (name, a, k), (_, b, _) in zip(full.named_parameters(), params_only.named_parameters()):
        np.testing.assert_allclose(b.grads[k], a.grads[k], rtol=1e-12, atol=1e-14, err_msg=name)


def test_requires_grad_false_skips_parameter_gradients_but_not_dx():
    d = L.Chain(L.Dense(4, 3, "tanh"), L.Dense(3, 1))
    d.requires_grad_(False)
    d.forward(rand(2, 4))
    dx = d.backward(np.ones((2, 1), np.float32))
    assert np.abs(dx).sum() > 0
    assert all(not np.any(layer.grads[k]) for _, layer, k in d.named_parameters())


def test_frozen_passes_dx_without_parameter_gradients_and_restores_each_flag():
    d = L.Chain(L.Dense(4, 3, "tanh"), L.Dense(3, 1))
    d[1].requires_grad = False                                   # a layer frozen on purpose stays frozen
    before = [layer.requires_grad for _, layer in d.named_layers()]
    assert before.count(False) == 1
    with d.frozen():
        d.forward(rand(2, 4))
        dx = d.backward(np.ones((2, 1), np.float32))
    assert np.abs(dx).sum() > 0
    assert all(not np.any(layer.grads[k]) for _, layer, k in d.named_parameters())
    assert [layer.requires_grad for _, layer in d.named_layers()] == before
    with pytest.raises(KeyError):
        with d.frozen():
            raise KeyError("inside")
    assert [layer.requires_grad for _, layer in d.named_layers()] == before


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
    np.testing.assert_array_equal(model.forward(x, keep_cache=False), model.forward(x, keep_cache=False))  # no dropout
    model.train()
    assert all(layer.training for _, layer in model.named_layers())


def test_state_dict_round_trips_through_npz():
    model = _float32_model()
    model.forward(rand(4, 1, 7, 7), keep_cache=False)  # move BatchNorm's running statistics
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


# -- the fast path (scratchgan/fastpath.py) computes the plain maths ----------------------------

@pytest.mark.parametrize("a_shape,b_shape", [((3, 5), (5, 8)), ((8, 5), (5, 3)), ((4, 4), (4, 4))])
def test_matmul_tall_either_orientation_is_the_product(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    np.testing.assert_allclose(matmul_tall(a, b), a @ b, rtol=1e-13)


@pytest.mark.parametrize("a_shape,b_shape,grad_shape", [((3, 5), (5, 8), (3, 8)), ((8, 5), (5, 3), (8, 3)),
                                                       ((4, 6), (6, 12), (4, 3, 2, 2))])
def test_add_matmul_writes_into_a_zero_gradient_and_adds_to_any_other(a_shape, b_shape, grad_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    product = (a @ b).reshape(grad_shape)
    grad = np.zeros(grad_shape)
    add_matmul_to_grad(grad, a, b)                      # fresh after zero_grad: written straight in
    np.testing.assert_allclose(grad, product, rtol=1e-13)
    add_matmul_to_grad(grad, a, b)                      # second pass: accumulated
    np.testing.assert_allclose(grad, 2 * product, rtol=1e-13)
    grad = np.zeros(grad_shape)
    grad.flat[-1] = np.nan                      # not all zeros: NaN must survive, not be overwritten
    add_matmul_to_grad(grad, a, b)
    assert np.isnan(grad.flat[-1]) and np.allclose(grad.flat[:-1], product.flat[:-1], rtol=1e-13)
    strided = np.zeros((grad_shape[0], 2 * int(np.prod(grad_shape[1:]))))[:, ::2].reshape(grad_shape[0], -1)
    add_matmul_to_grad(strided, a, b.reshape(b_shape[0], -1))   # a non-contiguous gradient still gets the sum
    np.testing.assert_allclose(strided, product.reshape(strided.shape), rtol=1e-13)


@pytest.mark.parametrize("a_shape,b_shape", [((5, 1), (1, 7)), ((4, 3), (3, 6))])
def test_matmul_into_writes_the_product_outer_or_not(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    out = np.full((a_shape[0], b_shape[1]), np.nan)
    assert matmul_into(a, b, out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-13)


@pytest.mark.parametrize("shape", [(3, 7), (1, 5), (4, 1)])
def test_row_dots_is_each_rows_sum_of_products(shape):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape), rng.standard_normal(shape)
    np.testing.assert_allclose(row_dots(a, b), (a * b).sum(axis=1), rtol=1e-13)
    channel_major = np.asfortranarray(a)                  # any strides
    np.testing.assert_allclose(row_dots(channel_major, b), (a * b).sum(axis=1), rtol=1e-13)


@pytest.mark.gpu
def test_row_dots_on_the_gpu_is_cupys_einsum_without_its_python(cupy):
    rng = np.random.default_rng(0)
    for shape in [(3, 7), (128, 6272), (1, 5)]:
        a, b = (cupy.asarray(rng.standard_normal(shape).astype(np.float32)) for _ in range(2))
        got = row_dots(a, b)
        assert isinstance(got, cupy.ndarray) and got.shape == (shape[0],) and got.dtype == np.float32
        np.testing.assert_allclose(got.get(), cupy.einsum("rk,rk->r", a, b).get(), rtol=1e-6)   # the same sums
        np.testing.assert_allclose(got.get(), (a.get().astype(np.float64) * b.get()).sum(axis=1), rtol=1e-4)


def test_reuse_buffer_keeps_one_array_per_name_until_shape_dtype_or_device_change():
    store, like = {}, np.zeros(3, np.float32)
    first = reuse_buffer(store, "a", (2, 3), like)
    assert first.shape == (2, 3) and first.dtype == np.float32
    assert reuse_buffer(store, "a", [2, 3], like) is first           # the same array, not a new one
    assert reuse_buffer(store, "b", (2, 3), like) is not first         # one array per name
    assert reuse_buffer(store, "a", (3, 2), like).shape == (3, 2)      # new shape: a new array
    assert reuse_buffer(store, "a", (3, 2), np.zeros(1)).dtype == np.float64
    assert set(store) == {"a", "b"}


def test_conv_layers_reuse_their_buffers_across_steps_and_to_drops_them():
    layer = L.ConvTranspose2d(3, 2, 4, 2, 1)
    x = rand(2, 3, 5, 5)
    for _ in range(2):
        y = layer.forward(x)
        layer.backward(np.ones_like(y))
        if _ == 0:
            buffers = dict(layer._scratch)
    assert set(buffers) == {"Y_cols", "dY"} and all(layer._scratch[k] is v for k, v in buffers.items())
    layer.to(dtype=np.float64)
    assert layer._scratch == {}


# -- keep_cache (formerly grad) -----------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: L.Dense(4, 3), lambda: L.Chain(L.Dense(4, 3), L.Tanh())])
def test_keep_cache_says_whether_backward_can_follow(make):
    layer = make()
    layer.forward(rand(2, 4), keep_cache=False)
    with pytest.raises(RuntimeError, match="without a forward"):
        layer.backward(rand(2, 3))
    layer.forward(rand(2, 4), train=False, keep_cache=True)      # eval-mode forward, cache kept
    assert layer.backward(rand(2, 3)).shape == (2, 4)
    layer.forward(rand(2, 4))                                    # train mode keeps it by default
    assert layer.backward(rand(2, 3)).shape == (2, 4)


@pytest.mark.parametrize("make", [lambda: L.Dense(4, 3), lambda: L.Chain(L.Dense(4, 3), L.Tanh())])
def test_grad_still_works_with_a_deprecation_warning_pointing_at_the_caller(make):
    layer = make()
    with pytest.warns(DeprecationWarning, match="keep_cache") as record:
        layer.forward(rand(2, 4), grad=False)
    assert record[0].filename == __file__                         # the caller's line, not the library's
    with pytest.raises(RuntimeError, match="without a forward"):
        layer.backward(rand(2, 3))
    with pytest.warns(DeprecationWarning):
        layer.forward(rand(2, 4), train=False, grad=True)
    assert layer.backward(rand(2, 3)).shape == (2, 4)
    with pytest.raises(TypeError, match="both keep_cache and grad"):
        layer.forward(rand(2, 4), keep_cache=True, grad=True)


# -- hyper-parameters are checked when the layer is built ------------------------------------------

@pytest.mark.parametrize("make,error,message", [
    (lambda: L.Dense(0, 3), ValueError, r"^Dense: in_features must be an integer >= 1, got 0"),
    (lambda: L.Dense(4, -2), ValueError, r"^Dense: out_features must be an integer >= 1"),
    (lambda: L.Dense(4.0, 3), TypeError, r"^Dense: in_features must be an integer, got 4.0"),
    (lambda: L.Maxout(4, 3, 0), ValueError, r"^Maxout: pieces must be an integer >= 1, got 0"),
    (lambda: L.Maxout(0, 3, 2), ValueError, r"^Maxout: in_features"),
    (lambda: L.Maxout(4, 0, 2), ValueError, r"^Maxout: out_features"),
    (lambda: L.BatchNorm(0), ValueError, r"^BatchNorm: num_features must be an integer >= 1"),
    (lambda: L.BatchNorm(3, eps=0), ValueError, r"^BatchNorm: eps must be > 0"),
    (lambda: L.BatchNorm(3, eps=-1e-5), ValueError, r"^BatchNorm: eps must be > 0"),
    (lambda: L.BatchNorm(3, momentum=1.5), ValueError, r"^BatchNorm: momentum must be in \[0, 1\]"),
    (lambda: L.BatchNorm(3, momentum=-0.1), ValueError, r"^BatchNorm: momentum"),
    (lambda: L.LeakyReLU(-0.2), ValueError, r"^LeakyReLU: alpha must be >= 0, got -0.2"),
    (lambda: L.Dropout(1.0), ValueError, r"^Dropout: p must be in \[0, 1\)"),
    (lambda: L.Dropout(-0.1), ValueError, r"^Dropout: p must be in \[0, 1\)"),
    (lambda: L.Reshape(3, 0), ValueError, r"^Reshape: sizes must be >= 1"),
    (lambda: L.Reshape(-1, -1), ValueError, r"^Reshape: sizes must be >= 1 \(or -1 for one"),
    (lambda: L.Reshape(-2, 3), ValueError, r"^Reshape: each size must be an integer >= -1"),
    (lambda: L.Reshape(), ValueError, r"^Reshape: sizes"),
    (lambda: L.Reshape(2.5, 2), TypeError, r"^Reshape: each size must be an integer, got 2.5"),
    (lambda: L.Reshape("7x7"), TypeError, r"^Reshape: each size must be an integer"),
])
def test_bad_hyper_parameters_fail_at_construction_naming_the_layer(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_boundary_hyper_parameters_are_accepted():
    assert L.BatchNorm(1, eps=1e-12, momentum=0).momentum == 0 and L.BatchNorm(2, momentum=1).momentum == 1
    assert L.LeakyReLU(0).alpha == 0 and L.Maxout(1, 1, 1).pieces == 1 and L.Dense(1, 1).in_features == 1


@pytest.mark.parametrize("shape", [(np.int64(4),), ((np.int32(2), 2),), (np.array([2, 2]),), (2, np.int64(2)),
                                   ((2, -1),)])
def test_reshape_takes_integers_of_any_type(shape):
    layer = L.Reshape(*shape)
    assert all(type(size) is int for size in layer.shape)
    x = rand(3, 4)
    y = layer.forward(x)
    assert y.shape[0] == 3 and y.size == x.size
    np.testing.assert_array_equal(layer.backward(y), x)


def test_layer_sizes_of_numpy_integer_types_build_working_layers():
    n = np.int64
    model = L.Chain(L.Dense(n(4), n(6)), L.Maxout(n(6), n(2), n(3)), L.BatchNorm(n(2)))
    assert model.forward(rand(5, 4)).shape == (5, 2)
    assert repr(model.layers[0]) == "Dense(4 => 6)"
