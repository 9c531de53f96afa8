"""The multi-scale layers (issue 14): AvgPool2d, PixelNorm, MinibatchStdDev, EqualizedConv2d/EqualizedDense,
FadeIn, ConcatChannels, and ProGAN's growing models, against independent computations (NumPy loops, and
PyTorch where installed), and their errors.

Covered elsewhere, on every configuration of scratchgan/gradcheck_cases.py: finite differences of the
first and second order (test_gradcheck.py, the CLI's `scratchgan gradcheck`), fast == reference in float64
(test_reference.py, test_wasserstein.py), and the double backward against torch's autograd
(test_wasserstein_torch.py). Here: what those cannot show -- that the gradient checks would catch a
minibatch layer without its cross-sample terms or an equalized layer without its scale, and that the
optimizer steps the unscaled weight.
"""
import math

import numpy as np
import pytest

import scratchgan.layers as L
from scratchgan.backend import RNG
from scratchgan.gan.progan_models import ProGANCritic, ProGANGenerator
from scratchgan.gradcheck import TOLERANCE, check_double_backward, check_layer, check_penalty, upstream_gradient
from scratchgan.gradcheck_cases import multiscale_cases
from scratchgan.optim import SGD
from scratchgan.penalties import GradientPenalty

from layer_helpers import f64, forward_backward

rng = np.random.default_rng(0)


def test_the_suite_checks_every_multiscale_family_in_several_configurations():
    names = [c.name for c in multiscale_cases()]
    for family in ("AvgPool2d", "PixelNorm", "MinibatchStdDev", "EqualizedConv2d", "EqualizedDense", "FadeIn"):
        assert names.count(family) >= 3, family
    assert any("batch 1" in c.config for c in multiscale_cases() if c.name == "MinibatchStdDev")


# -- AvgPool2d ------------------------------------------------------------------------------------

def naive_avg_pool(x, k, s, p):
    """Loops over output pixels, zero padding counted in the mean (PyTorch's count_include_pad)."""
    (kh, kw), (sh, sw), (ph, pw) = k, s, p
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.zeros(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            y[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].mean(axis=(2, 3))
    return y


@pytest.mark.parametrize("k, s, p, shape", [(2, None, 0, (2, 3, 6, 4)), (2, None, 0, (1, 2, 5, 7)),
                                            (3, 2, 1, (2, 2, 7, 6)), ((3, 2), (1, 2), (1, 0), (1, 2, 4, 5))])
def test_avg_pool_forward_is_the_window_mean_and_backward_its_transpose(k, s, p, shape):
    layer = L.AvgPool2d(k, s, p)
    x = rng.standard_normal(shape)
    y, dy, dx = forward_backward(layer, x)
    np.testing.assert_allclose(y, naive_avg_pool(x, layer.kernel_size, layer.stride, layer.padding), atol=1e-14)
    # <dy, A x> = <A^T dy, x> for the linear map A: the backward is the forward's transpose
    x2 = rng.standard_normal(shape)
    assert np.isclose((dy * layer.forward(x2, keep_cache=False)).sum(), (dx * x2).sum(), rtol=1e-12)


def test_avg_pool_equals_torch():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 7, 6))
    for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
        y, dy, dx = forward_backward(L.AvgPool2d(k, s, p), x)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.avg_pool2d(xt, k, s, p)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)


# -- PixelNorm ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 5, 2, 3), (4, 7)])
def test_pixelnorm_gives_each_pixel_unit_rms_over_the_channels(shape):
    x = rng.standard_normal(shape) * 3
    y = L.PixelNorm(eps=1e-8).forward(x, keep_cache=False)
    np.testing.assert_allclose(y, x / np.sqrt((x ** 2).mean(axis=1, keepdims=True) + 1e-8), rtol=1e-13)
    np.testing.assert_allclose((y ** 2).mean(axis=1), 1.0, rtol=1e-7)


# -- MinibatchStdDev: the cross-sample terms -------------------------------------------------------

def test_minibatch_stddev_appends_each_groups_mean_standard_deviation():
    x = rng.standard_normal((6, 2, 3, 2))
    y = L.MinibatchStdDev(3, eps=1e-8).forward(x, keep_cache=False)
    assert y.shape == (6, 3, 3, 2)
    np.testing.assert_array_equal(y[:, :2], x)
    for group in (slice(0, 3), slice(3, 6)):
        expected = np.sqrt(x[group].var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(y[group, 2], expected, rtol=1e-13)


def test_minibatch_stddev_gradient_crosses_samples_within_a_group_only():
    """dy on the statistic channel of sample 0 reaches every sample of its group, none of the other group's."""
    layer = f64(L.MinibatchStdDev(3))
    x = rng.standard_normal((6, 2, 3, 2))
    y = layer.forward(x, keep_cache=True)
    dy = np.zeros_like(y)
    dy[0, 2] = 1.0
    dx = layer.backward(dy)
    assert all(np.abs(dx[n]).max() > 1e-3 for n in range(3))
    np.testing.assert_array_equal(dx[3:], 0)
    np.testing.assert_allclose(dx[:3].sum(axis=0), 0, atol=1e-14)   # sum_n z_n = 0: a shift of the group changes nothing


class _PerSampleStdDev(L.MinibatchStdDev):
    """Wrong: each sample's gradient from its own statistic map only (S_n instead of the group's S_g)."""

    def _group_totals(self, dy, z):
        m, g, c, h, w = z.shape
        own = dy[:, c].reshape(m, g, -1).sum(axis=2) / (c * h * w * g)
        return own.reshape(m, g, 1, 1, 1)


class _NoStatisticGradient(L.MinibatchStdDev):
    """Wrong: the appended channel treated as a constant (no gradient through the statistic)."""

    def _backward(self, dy, cache):
        return np.ascontiguousarray(dy[:, :-1])


@pytest.mark.parametrize("wrong", [_PerSampleStdDev, _NoStatisticGradient])
def test_the_gradient_check_catches_a_minibatch_stddev_without_its_cross_sample_terms(wrong):
    x = rng.standard_normal((6, 2, 3, 2))
    assert check_layer(f64(L.MinibatchStdDev(3)), x)["x"] < TOLERANCE
    assert check_layer(f64(wrong(3)), x)["x"] > 1e-3


def test_the_double_backward_check_catches_a_per_sample_minibatch_stddev():
    x = rng.standard_normal((6, 2, 3, 2))
    assert max(check_double_backward(f64(L.MinibatchStdDev(3)), x).values()) < TOLERANCE
    assert check_double_backward(f64(_PerSampleStdDev(3)), x)["x"] > 1e-3


def _spread_for_groups_of_two(body, shape, margin=0.05):
    """An input whose features, after ``body``, differ by more than 2 * margin within every pair (group of 2):
    there sigma = |x_1 - x_2| / 2 has a kink where the two are equal, which a finite difference must not straddle."""
    for seed in range(1000):
        x = np.random.default_rng(seed).standard_normal(shape)
        h = body.forward(x, train=False, keep_cache=False)
        if np.abs(h[0::2] - h[1::2]).min() > 2 * margin:
            return x
    raise RuntimeError("no input with well-separated pairs found")


def test_the_gradient_penalty_accepts_the_minibatch_layer_and_still_refuses_batchnorm():
    critic = f64(L.Chain(L.Conv2d(1, 2, 3, padding=1, rng=RNG(0)), L.Tanh(), L.MinibatchStdDev(2), L.Flatten(),
                         L.Dense(3 * 16, 1, rng=RNG(1))))
    penalty = GradientPenalty(10.0)
    penalty.check_model(critic)
    x = _spread_for_groups_of_two(critic[:2], (4, 1, 4, 4))
    assert max(check_penalty(penalty, critic, x).values()) < TOLERANCE
    with pytest.raises(ValueError, match="BatchNorm.*mixes the samples"):
        penalty.check_model(L.Chain(L.Conv2d(1, 2, 3), L.BatchNorm(2)))


# -- equalized learning rate --------------------------------------------------------------------

def _plain_twin(layer):
    """The Conv2d/Dense that computes the same function with the effective weight c w as its parameter."""
    if isinstance(layer, L.EqualizedConv2d):
        twin = L.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                        bias="bias" in layer.params)
    else:
        twin = L.Dense(layer.in_features, layer.out_features, layer.activation, bias="bias" in layer.params)
    twin.to(dtype=np.float64)
    twin.params["weight"][...] = layer.params["weight"] * layer.scale
    if "bias" in layer.params:
        twin.params["bias"][...] = layer.params["bias"]
    return twin


EQUALIZED = [(lambda: L.EqualizedConv2d(3, 4, 3, 2, 1, rng=RNG(0)), (2, 3, 7, 5), 3 * 9, math.sqrt(2)),
             (lambda: L.EqualizedConv2d(4, 3, 1, gain=1.0, bias=False, rng=RNG(1)), (1, 4, 3, 5), 4, 1.0),
             (lambda: L.EqualizedDense(6, 4, "tanh", rng=RNG(2)), (3, 6), 6, math.sqrt(2))]


@pytest.mark.parametrize("make, shape, fan_in, gain", EQUALIZED)
def test_equalized_layer_computes_with_the_scaled_weight_and_returns_the_unscaled_gradient(make, shape, fan_in,
                                                                                           gain):
    layer = f64(make())
    assert layer.scale == pytest.approx(gain / math.sqrt(fan_in))
    if "bias" in layer.params:
        layer.params["bias"][...] = rng.standard_normal(layer.params["bias"].shape)
    stored = layer.params["weight"]
    before = stored.copy()
    twin = _plain_twin(layer)
    x = rng.standard_normal(shape)
    y, dy, dx = forward_backward(layer, x)
    y_twin, _, dx_twin = forward_backward(twin, x)
    np.testing.assert_allclose(y, y_twin, rtol=1e-12)
    np.testing.assert_allclose(dx, dx_twin, rtol=1e-12)
    # the parameter is the stored, unscaled w (same array, unchanged); its gradient is c dL/dW
    assert layer.params["weight"] is stored
    np.testing.assert_array_equal(stored, before)
    np.testing.assert_allclose(layer.grads["weight"], layer.scale * twin.grads["weight"], rtol=1e-12)
    if "bias" in layer.params:
        np.testing.assert_allclose(layer.grads["bias"], twin.grads["bias"], rtol=1e-12)
    # gradients add up over backward calls, as every layer's do
    forward_backward(layer, x)
    np.testing.assert_allclose(layer.grads["weight"], 2 * layer.scale * twin.grads["weight"], rtol=1e-12)


def test_the_optimizer_steps_the_unscaled_weight():
    layer = f64(L.EqualizedConv2d(2, 3, 3, padding=1, rng=RNG(0)))
    w0 = layer.params["weight"].copy()
    x = rng.standard_normal((2, 2, 4, 4))
    forward_backward(layer, x)
    grad = layer.grads["weight"].copy()
    SGD(layer, lr=0.1).step()
    np.testing.assert_allclose(layer.params["weight"], w0 - 0.1 * grad, rtol=1e-14)
    # the effective weight moved by c times that step: the scale stays out of the parameter
    np.testing.assert_allclose(layer.params["weight"] * layer.scale - w0 * layer.scale, -0.1 * layer.scale * grad,
                               rtol=1e-12)


def test_equalized_weights_are_stored_standard_normal():
    layer = L.EqualizedConv2d(64, 64, 3, rng=RNG(0))
    w = layer.params["weight"]
    assert abs(w.std() - 1) < 0.02 and abs(w.mean()) < 0.02
    assert abs((w * layer.scale).std() - math.sqrt(2 / (64 * 9))) < 0.001   # He's init, applied at run time


class _UnscaledGradient(L.EqualizedConv2d):
    """Wrong: returns dL/dW (the effective weight's gradient) as the parameter's, forgetting the factor c."""

    def _backward(self, dy, cache):
        dx = super()._backward(dy, cache)
        self.grads["weight"] /= self.scale
        return dx


def test_the_gradient_check_runs_with_the_scale_in_place_and_catches_a_missing_factor():
    x = rng.standard_normal((2, 3, 5, 6))
    good = f64(L.EqualizedConv2d(3, 4, 3, padding=1, rng=RNG(0)))
    assert max(check_layer(good, x).values()) < TOLERANCE
    errors = check_layer(f64(_UnscaledGradient(3, 4, 3, padding=1, rng=RNG(0))), x)
    assert errors["x"] < TOLERANCE and errors["weight"] > 0.5


# -- FadeIn and ConcatChannels ------------------------------------------------------------------

def test_fade_in_blends_the_two_paths():
    old, new = L.Chain(L.AvgPool2d(2)), L.Chain(L.Conv2d(2, 2, 2, 2, rng=RNG(0)))
    fade = f64(L.FadeIn(old, new, 0.25))
    x = rng.standard_normal((3, 2, 4, 4))
    a, b = old.forward(x, keep_cache=False), new.forward(x, keep_cache=False)
    np.testing.assert_allclose(fade.forward(x, keep_cache=False), 0.75 * a + 0.25 * b, rtol=1e-14)
    fade.alpha = 0.0
    np.testing.assert_array_equal(fade.forward(x, keep_cache=False), a)
    fade.alpha = 1.0
    np.testing.assert_array_equal(fade.forward(x, keep_cache=False), b)
    assert {name for name, _, _ in fade.named_parameters()} == {"new.0.weight", "new.0.bias"}


def test_concat_channels_splits_its_gradient_back():
    a, b = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((2, 3, 3, 3))
    layer = L.ConcatChannels()
    y, dy, (da, db) = forward_backward(layer, (a, b))
    np.testing.assert_array_equal(y, np.concatenate([a, b], axis=1))
    np.testing.assert_array_equal(da, dy[:, :1])
    np.testing.assert_array_equal(db, dy[:, 1:])


# -- ProGAN's growing models ---------------------------------------------------------------------

def test_progan_models_grow_through_every_stage():
    G = ProGANGenerator(8, 3, final=32, width=8, rng=RNG(0))
    D = ProGANCritic(3, final=32, width=8, group_size=2, rng=RNG(1))
    names = {model: {name for name, _, _ in model.named_parameters()} for model in (G, D)}
    z = rng.standard_normal((4, 8)).astype(np.float32)
    for r, alpha in [(4, 1.0), (8, 0.0), (8, 0.5), (8, 1.0), (16, 0.3), (32, 1.0)]:
        G.set_stage(r, alpha)
        D.set_stage(r, alpha)
        images = G.forward(z, keep_cache=True)
        assert images.shape == (4, 3, r, r) and images.dtype == np.float32
        scores = D.forward(images, keep_cache=True)
        assert scores.shape == (4, 1)
        G.zero_grad()
        D.zero_grad()
        G.backward(D.backward(np.ones_like(scores)))
        for model in (G, D):
            assert {name for name, _, _ in model.named_parameters()} == names[model]   # every block kept
            for name, lyr, key in model.named_parameters():
                block = int(name.split(".")[0].lstrip("brg"))          # b16.0.weight, rgb8.0.weight -> 16, 8
                if block > r:
                    assert not np.any(lyr.grads[key]), f"{name} above {r}x{r} got a gradient"
                elif name.startswith("b") and key == "weight" and alpha > 0:
                    assert np.any(lyr.grads[key]), f"{name} in use at {r}x{r} got no gradient"


def test_progan_fade_in_starts_as_the_upsampled_coarser_image():
    G = f64(ProGANGenerator(8, 1, final=8, width=4, rng=RNG(0)))
    z = rng.standard_normal((2, 8))
    coarse = G.set_stage(4).forward(z, keep_cache=False)
    faded = G.set_stage(8, 0.0).forward(z, keep_cache=False)
    np.testing.assert_allclose(faded, coarse.repeat(2, axis=2).repeat(2, axis=3), rtol=1e-12)


@pytest.mark.parametrize("stage, match", [((6, 1.0), "resolution must be one of"), ((4, 0.5), "alpha"),
                                          ((8, 1.5), "alpha")])
def test_progan_bad_stage_is_named(stage, match):
    with pytest.raises(ValueError, match=f"ProGANGenerator: {match}"):
        ProGANGenerator(8, 1, final=16, width=4, rng=RNG(0)).set_stage(*stage)


def test_progan_models_grow_to_a_power_of_two_only():
    with pytest.raises(ValueError, match="power of two >= 4, got 24"):
        ProGANCritic(1, final=24)


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: L.AvgPool2d(0), "AvgPool2d: kernel_size must be >= 1"),
    (lambda: L.AvgPool2d(2, stride=0), "AvgPool2d: stride must be >= 1"),
    (lambda: L.AvgPool2d(2, padding=2), r"AvgPool2d: padding \(2, 2\) must be at most half"),
    (lambda: L.AvgPool2d(2.5), "AvgPool2d: kernel_size must be an int"),
    (lambda: L.PixelNorm(eps=0), "PixelNorm: eps must be > 0"),
    (lambda: L.MinibatchStdDev(0), "MinibatchStdDev: group_size must be an integer >= 1"),
    (lambda: L.MinibatchStdDev(2.0), "MinibatchStdDev: group_size must be an integer"),
    (lambda: L.MinibatchStdDev(eps=-1), "MinibatchStdDev: eps must be > 0"),
    (lambda: L.EqualizedConv2d(2, 3, 3, gain=0), "EqualizedConv2d: gain must be a finite number > 0"),
    (lambda: L.EqualizedDense(2, 3, gain=float("inf")), "EqualizedDense: gain must be a finite number > 0"),
    (lambda: L.FadeIn(L.Tanh(), lambda x: x), "FadeIn: new must be a layer"),
    (lambda: L.FadeIn(L.Tanh(), L.Tanh(), alpha=1.5), r"FadeIn: alpha must be in \[0, 1\]")])
def test_bad_hyperparameters_name_the_layer(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("layer, x, match", [
    (L.AvgPool2d(2), np.zeros((2, 3, 4), np.float32), r"AvgPool2d.*\(N, C, H, W\).*\(2, 3, 4\)"),
    (L.AvgPool2d(3), np.zeros((1, 1, 2, 5), np.float32), r"AvgPool2d.*input \(1, 1, 2, 5\) is smaller than"),
    (L.PixelNorm(), np.zeros(5, np.float32), r"PixelNorm.*features on axis 1, got \(5,\)"),
    (L.MinibatchStdDev(4), np.zeros((6, 2, 3, 3), np.float32), r"MinibatchStdDev.*a batch of 6 .*groups of 4"),
    (L.MinibatchStdDev(4), np.zeros((4, 2, 3), np.float32), r"MinibatchStdDev.*\(N, C, H, W\).*\(4, 2, 3\)"),
    (L.EqualizedConv2d(3, 2, 3), np.zeros((1, 2, 5, 5), np.float32), r"EqualizedConv2d.*\(1, 2, 5, 5\)"),
    (L.EqualizedDense(3, 2), np.zeros((4, 5), np.float32), r"EqualizedDense.*\(4, 5\)"),
    (L.FadeIn(L.AvgPool2d(2), L.Tanh()), np.zeros((1, 1, 4, 4), np.float32),
     r"FadeIn.*old path gives \(1, 1, 2, 2\) and the new one \(1, 1, 4, 4\)"),
    (L.ConcatChannels(), (np.zeros((2, 1, 3, 3), np.float32), np.zeros((2, 1, 4, 3), np.float32)),
     r"ConcatChannels.*same N, H and W.*\(2, 1, 3, 3\), \(2, 1, 4, 3\)"),
    (L.ConcatChannels(), np.zeros((2, 1, 3, 3), np.float32), "ConcatChannels.*tuple of at least two")])
def test_bad_inputs_name_the_layer_and_the_shapes(layer, x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        layer.forward(x)


def test_float32_in_float32_out():
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    layers = [L.AvgPool2d(2), L.AvgPool2d(3, 2, 1), L.PixelNorm(), L.MinibatchStdDev(2),
              L.EqualizedConv2d(3, 2, 3, padding=1), L.FadeIn(L.Chain(L.AvgPool2d(2), L.Upsample(2)), L.Tanh(), 0.5)]
    for layer in layers:
        y = layer.forward(x, keep_cache=True)
        assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32, layer
    dense = L.EqualizedDense(3, 2)
    y = dense.forward(x[:, :, 0, 0].copy(), keep_cache=True)
    assert y.dtype == np.float32 and dense.backward(np.ones_like(y)).dtype == np.float32
