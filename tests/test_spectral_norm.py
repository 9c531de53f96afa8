"""SpectralNorm: sigma by power iteration, the backward through sigma (u, v fixed), PyTorch's numbers, state."""
import numpy as np
import pytest

import scratchgan.layers as L
import scratchgan.reference as R
from scratchgan import backend
from scratchgan.backend import RNG
from scratchgan.gradcheck import check_layer, numeric_gradient, rel_error, upstream_gradient


def f64(layer):
    return layer.to(dtype=np.float64)


def sn64(make, **options):
    """SpectralNorm(make()) built in float64 throughout (its first power steps included)."""
    backend.set_default_dtype(np.float64)
    try:
        return L.SpectralNorm(make(), rng=RNG(1), **options)
    finally:
        backend.set_default_dtype(np.float32)


def conv(cin=3, cout=4, k=3, s=2, p=1, bias=True):
    return L.Conv2d(cin, cout, k, s, p, bias=bias, rng=RNG(0))


def test_power_iteration_finds_the_largest_singular_value():
    layer = sn64(conv, init_iterations=200)
    w = layer.layer.params["weight"]
    assert layer.sigma() == pytest.approx(np.linalg.norm(w.reshape(4, -1), 2), rel=1e-9)
    y = layer.forward(np.ones((1, 3, 5, 5)), train=False, keep_cache=False)
    assert np.linalg.norm((w / layer.sigma()).reshape(4, -1), 2) == pytest.approx(1.0, rel=1e-9)
    assert y.shape == (1, 4, 3, 3)


def test_conv_transpose_is_normalised_along_its_output_axis():
    layer = sn64(lambda: L.ConvTranspose2d(3, 2, 4, 2, 1, rng=RNG(0)), init_iterations=300)
    assert layer.dim == 1
    w = layer.layer.params["weight"]                      # (in, out, kh, kw)
    assert layer.sigma() == pytest.approx(np.linalg.norm(np.moveaxis(w, 1, 0).reshape(2, -1), 2), rel=1e-9)


def test_training_does_one_power_step_per_pass_and_eval_none():
    layer = f64(L.SpectralNorm(conv(), n_power_iterations=1, rng=RNG(1)))
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    u0, v0 = layer.buffers["u"].copy(), layer.buffers["v"].copy()
    layer.forward(x, train=False, keep_cache=False)
    assert np.array_equal(layer.buffers["u"], u0) and np.array_equal(layer.buffers["v"], v0)
    layer.forward(x, train=True, keep_cache=False)
    u1, v1 = R.power_iteration(layer.layer.params["weight"], u0, v0, 1)
    np.testing.assert_allclose(layer.buffers["u"], u1, rtol=1e-12)
    np.testing.assert_allclose(layer.buffers["v"], v1, rtol=1e-12)


def test_at_convergence_the_gradient_is_that_of_the_exact_spectral_norm():
    """With u, v the top singular vectors, d sigma / dW = u v^T exactly: the backward then equals the
    finite-difference gradient of the function that divides by the true sigma (numpy's 2-norm)."""
    layer = sn64(lambda: L.Dense(5, 3, rng=RNG(0)), init_iterations=500)
    x = np.random.default_rng(2).standard_normal((4, 5))
    y = layer.forward(x, train=False, keep_cache=True)
    dy = upstream_gradient(y.shape)
    layer.zero_grad()
    layer.backward(dy)
    w = layer.layer.params["weight"]
    b = layer.layer.params["bias"]
    exact = numeric_gradient(lambda: x @ (w / np.linalg.norm(w, 2)).T + b, w, dy)
    assert rel_error(layer.layer.grads["weight"], exact) < 1e-7


def test_fast_equals_reference_in_training_with_power_steps():
    layer = f64(L.SpectralNorm(conv(bias=False), n_power_iterations=2, rng=RNG(1)))
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    w, u, v = layer.layer.params["weight"].copy(), layer.buffers["u"].copy(), layer.buffers["v"].copy()
    y = layer.forward(x, train=True, keep_cache=True)
    dy = upstream_gradient(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)
    w_sn, cache = R.spectral_norm_forward(w, u, v, steps=2)
    y_ref, conv_cache = R.conv2d_forward(x, w_sn, None, (2, 2), (1, 1))
    dx_ref, dw_sn, _ = R.conv2d_backward(dy, conv_cache)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.layer.grads["weight"], R.spectral_norm_backward(dw_sn, cache),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.buffers["u"], cache[1], rtol=1e-12)


def test_gradients_add_into_what_is_there_and_respect_requires_grad():
    layer = f64(L.SpectralNorm(conv(), rng=RNG(1)))
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    y = layer.forward(x, train=False, keep_cache=True)
    dy = upstream_gradient(y.shape)
    layer.zero_grad()
    layer.backward(dy)
    once = layer.layer.grads["weight"].copy()
    layer.forward(x, train=False, keep_cache=True)
    layer.backward(dy)
    np.testing.assert_allclose(layer.layer.grads["weight"], 2 * once, rtol=1e-12)
    layer.requires_grad_(False)
    layer.forward(x, train=False, keep_cache=True)
    dx = layer.backward(dy)
    np.testing.assert_allclose(layer.layer.grads["weight"], 2 * once, rtol=1e-12)
    assert dx.shape == x.shape
    assert np.array_equal(layer.layer.params["weight"], layer.layer.params["weight"])   # W itself restored


def test_the_wrapped_layer_keeps_its_own_weight_between_passes():
    inner = conv()
    w = inner.params["weight"].copy()
    layer = L.SpectralNorm(inner, rng=RNG(1))
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    layer.backward(np.ones_like(layer.forward(x, train=True, keep_cache=True)))
    assert np.array_equal(inner.params["weight"], w)
    assert inner.grads["weight"].dtype == np.float32 and layer.buffers["u"].dtype == np.float32


def test_state_dict_holds_u_v_and_the_raw_weight_and_restores_the_same_function():
    a = L.Chain(L.SpectralNorm(conv(), rng=RNG(1)), L.LeakyReLU(0.2))
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    a.forward(x, train=True, keep_cache=False)                          # moves u and v
    state = a.state_dict()
    assert set(state) == {"0.u", "0.v", "0.layer.weight", "0.layer.bias"}
    b = L.Chain(L.SpectralNorm(conv(), rng=RNG(9)), L.LeakyReLU(0.2)).load_state_dict(state)
    assert np.array_equal(a.forward(x, train=True, keep_cache=False), b.forward(x, train=True, keep_cache=False))


def test_forward_twice_before_backward_fails_loudly():
    layer = L.SpectralNorm(conv(), rng=RNG(1))
    x = np.zeros((1, 3, 6, 6), np.float32)
    layer.forward(x, train=True, keep_cache=True)
    with pytest.raises(RuntimeError, match="before backward"):
        layer.forward(x, train=True, keep_cache=True)


def test_bad_arguments_name_the_layer():
    with pytest.raises(TypeError, match="SpectralNorm: expected a layer with a weight"):
        L.SpectralNorm(L.ReLU())
    with pytest.raises(ValueError, match="SpectralNorm: dim 4"):
        L.SpectralNorm(conv(), dim=4)
    with pytest.raises(ValueError, match="SpectralNorm: n_power_iterations"):
        L.SpectralNorm(conv(), n_power_iterations=-1)
    with pytest.raises(ValueError, match="Conv2d"):
        L.SpectralNorm(conv()).forward(np.zeros((1, 2, 6, 6), np.float32))


def test_spectrally_normalised_chain_is_checked_whole():
    """A small D with every convolution wrapped, eval mode (u, v fixed): input and every parameter
    (tanh between them: no kink for the differences to cross)."""
    D = f64(L.Chain(L.SpectralNorm(conv(1, 2, 4, 2, 1), rng=RNG(1)), L.Tanh(),
                    L.SpectralNorm(conv(2, 1, 3, 1, 0, bias=False), rng=RNG(2))))
    errors = check_layer(D, np.random.default_rng(4).standard_normal((2, 1, 8, 8)), train=False)
    assert max(errors.values()) < 1e-7, errors


torch = pytest.importorskip("torch")


def test_equals_torch_spectral_norm_in_training():
    """One training pass of torch.nn.utils.spectral_norm from the same weight, u and v: the output, the
    updated u and v, and the gradients of the input, the raw weight (weight_orig) and the bias."""
    torch.set_default_dtype(torch.float64)
    try:
        ours = f64(L.SpectralNorm(conv(), rng=RNG(1)))
        ref = torch.nn.Conv2d(3, 4, 3, 2, 1)
        with torch.no_grad():
            ref.weight.copy_(torch.tensor(ours.layer.params["weight"]))
            ref.bias.copy_(torch.tensor(ours.layer.params["bias"]))
        ref = torch.nn.utils.spectral_norm(ref)
        with torch.no_grad():
            ref.weight_u.copy_(torch.tensor(ours.buffers["u"]))
            ref.weight_v.copy_(torch.tensor(ours.buffers["v"]))
        x = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
        xt = torch.tensor(x, requires_grad=True)
        y = ours.forward(x, train=True, keep_cache=True)
        yt = ref(xt)
        dy = upstream_gradient(y.shape)
        ours.zero_grad()
        dx = ours.backward(dy)
        yt.backward(torch.tensor(dy))
        for a, b in ((y, yt), (dx, xt.grad), (ours.layer.grads["weight"], ref.weight_orig.grad),
                     (ours.layer.grads["bias"], ref.bias.grad), (ours.buffers["u"], ref.weight_u),
                     (ours.buffers["v"], ref.weight_v)):
            b = b.detach().numpy()
            assert np.abs(a - b).max() <= 1e-9 * np.abs(b).max()
    finally:
        torch.set_default_dtype(torch.float32)
