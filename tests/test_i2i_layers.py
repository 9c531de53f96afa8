"""The image-to-image layers (issue 20): against PyTorch in float64 where torch is installed, against
independent NumPy computations otherwise, and their errors. (Finite-difference checks of every
configuration: the gradcheck suite; fast == reference: test_reference.py.)"""
import numpy as np
import pytest

import scratchgan.layers as L
import scratchgan.reference as R
from scratchgan.backend import RNG
from scratchgan.gradcheck import TOLERANCE, check_layer, check_loss, upstream_gradient
from scratchgan import losses

from layer_helpers import f64, forward_backward

rng = np.random.default_rng(0)


# -- against PyTorch ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_grads(torch, fn, x, dy, params=()):
    xt = torch.tensor(x, requires_grad=True)
    pt = [torch.tensor(p, requires_grad=True) for p in params]
    y = fn(xt, *pt)
    y.backward(torch.tensor(dy))
    return y.detach().numpy(), xt.grad.numpy(), [p.grad.numpy() for p in pt]


@pytest.mark.parametrize("scale", [2, (3, 2), (1, 4), 4])
@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_upsample_equals_torch(torch, scale, align_corners):
    """PyTorch's F.interpolate(mode="bilinear"), its default align_corners=False included, forward and backward."""
    x = rng.standard_normal((2, 3, 5, 4))
    y, dy, dx = forward_backward(L.Upsample(scale, "bilinear", align_corners=align_corners), x)
    factor = scale if isinstance(scale, int) else tuple(float(s) for s in scale)
    y_t, dx_t, _ = torch_grads(torch, lambda t: torch.nn.functional.interpolate(
        t, scale_factor=factor, mode="bilinear", align_corners=align_corners), x, dy)
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [2, (2, 3), (1, 1)])
def test_nearest_upsample_equals_torch(torch, scale):
    x = rng.standard_normal((2, 2, 3, 5))
    y, dy, dx = forward_backward(L.Upsample(scale), x)
    y_t, dx_t, _ = torch_grads(torch, lambda t: torch.nn.functional.interpolate(t, scale_factor=scale, mode="nearest"),
                               x, dy)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-13)


@pytest.mark.parametrize("r, shape", [(2, (2, 8, 3, 5)), (3, (1, 18, 2, 2))])
def test_pixel_shuffle_equals_torch(torch, r, shape):
    x = rng.standard_normal(shape)
    y, dy, dx = forward_backward(L.PixelShuffle(r), x)
    y_t, dx_t, _ = torch_grads(torch, lambda t: torch.nn.functional.pixel_shuffle(t, r), x, dy)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(dx, dx_t)


@pytest.mark.parametrize("padding", [1, (1, 2, 3, 0), (0, 4, 2, 2)])
def test_reflection_pad_equals_torch(torch, padding):
    x = rng.standard_normal((2, 3, 5, 6))
    y, dy, dx = forward_backward(L.ReflectionPad2d(padding), x)
    pad = (padding,) * 4 if isinstance(padding, int) else padding
    y_t, dx_t, _ = torch_grads(torch, lambda t: torch.nn.functional.pad(t, pad, mode="reflect"), x, dy)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-13)


@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_equals_torch(torch, affine):
    layer = f64(L.InstanceNorm(3, affine=affine))
    if affine:
        layer.params["weight"][...] = [1.5, 0.5, -2.0]
        layer.params["bias"][...] = [0.1, -0.2, 0.3]
    x = 2 * rng.standard_normal((4, 3, 5, 3)) + 1
    y, dy, dx = forward_backward(layer, x)
    params = [layer.params["weight"], layer.params["bias"]] if affine else []
    y_t, dx_t, grads = torch_grads(torch, lambda t, *p: torch.nn.functional.instance_norm(
        t, weight=p[0] if p else None, bias=p[1] if p else None, eps=1e-5), x, dy, params)
    np.testing.assert_allclose(y, y_t, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-9, atol=1e-11)
    for name, grad in zip(("weight", "bias"), grads):
        np.testing.assert_allclose(layer.grads[name], grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("num_parameters, shape", [(1, (4, 5)), (3, (2, 3, 4, 2))])
def test_prelu_equals_torch(torch, num_parameters, shape):
    layer = f64(L.PReLU(num_parameters))
    layer.params["weight"][...] = np.linspace(0.1, 0.4, num_parameters)
    x = rng.standard_normal(shape)
    y, dy, dx = forward_backward(layer, x)
    y_t, dx_t, (da,) = torch_grads(torch, torch.nn.functional.prelu, x, dy, [layer.params["weight"]])
    np.testing.assert_allclose(y, y_t, rtol=1e-14)
    np.testing.assert_allclose(dx, dx_t, rtol=1e-14)
    np.testing.assert_allclose(layer.grads["weight"], da, rtol=1e-12)


# -- without torch: independent computations ------------------------------------------------
def test_bilinear_upsample_by_two_is_the_quarter_weights_pattern():
    """align_corners=False, x2: each output pixel is 3/4 of its nearest input and 1/4 of the next (edges copied)."""
    x = rng.standard_normal((1, 1, 1, 4))
    y = L.Upsample((1, 2), "bilinear").forward(x, keep_cache=False)[0, 0, 0]
    v = x[0, 0, 0]
    expected = [v[0], 0.75 * v[0] + 0.25 * v[1], 0.25 * v[0] + 0.75 * v[1], 0.75 * v[1] + 0.25 * v[2],
                0.25 * v[1] + 0.75 * v[2], 0.75 * v[2] + 0.25 * v[3], 0.25 * v[2] + 0.75 * v[3], v[3]]
    np.testing.assert_allclose(y, expected, rtol=1e-14)


def test_nearest_upsample_repeats_blocks_and_backward_sums_them():
    x = rng.standard_normal((2, 3, 4, 5))
    layer = L.Upsample((2, 3))
    y = layer.forward(x, keep_cache=True)
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 3, axis=3))
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(dy), dy.reshape(2, 3, 4, 2, 5, 3).sum(axis=(3, 5)))


def test_reflection_pad_equals_numpy_reflect():
    x = rng.standard_normal((1, 2, 4, 5))
    y = L.ReflectionPad2d((2, 1, 3, 0)).forward(x, keep_cache=False)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (0, 0), (3, 0), (2, 1)), mode="reflect"))


def test_instance_norm_normalizes_each_sample_and_channel_alone():
    x = 5 * rng.standard_normal((3, 4, 6, 7)) + 2
    y = L.InstanceNorm(4).to(dtype=np.float64).forward(x, keep_cache=False)
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(2, 3)), 1, rtol=1e-4)   # var / (var + eps)
    y0 = L.InstanceNorm(4).to(dtype=np.float64).forward(x[:1], keep_cache=False)
    np.testing.assert_allclose(y0, y[:1], rtol=1e-13)              # no statistic crosses samples
    assert not L.InstanceNorm(4).mixes_batch


def test_residual_adds_the_identity_path_to_the_body_gradient():
    body = f64(L.Chain(L.Conv2d(2, 2, 3, padding=1, rng=RNG(0)), L.Tanh()))
    block = L.Residual(body)
    x = rng.standard_normal((2, 2, 4, 4))
    y = block.forward(x, keep_cache=True)
    np.testing.assert_allclose(y, x + body.forward(x, keep_cache=False), rtol=1e-14)
    dy = rng.standard_normal(y.shape)
    dx = block.backward(dy)
    body.zero_grad()
    body.forward(x, keep_cache=True)
    np.testing.assert_allclose(dx, dy + body.backward(dy), rtol=1e-13)
    assert [name for name, _, _ in block.named_parameters()] == ["body.0.weight", "body.0.bias"]
    assert L.Residual(L.Chain(L.BatchNorm(2))).mixes_batch and not block.mixes_batch


def test_residual_input_grad_false_still_fills_the_body_gradients():
    block = f64(L.Residual(L.Chain(L.Conv2d(2, 2, 3, padding=1, rng=RNG(0)))))
    x = rng.standard_normal((1, 2, 3, 3))
    block.forward(x, keep_cache=True)
    assert block.backward(np.ones((1, 2, 3, 3)), input_grad=False) is None
    assert np.abs(block.body[0].grads["weight"]).sum() > 0


def test_prelu_is_leaky_relu_with_its_slope():
    x = rng.standard_normal((3, 4))
    y = L.PReLU(init=0.1).to(dtype=np.float64).forward(x, keep_cache=False)
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.1 * x))


@pytest.mark.parametrize("loss, pred, target", [
    (losses.mse, rng.standard_normal((1, 3, 5, 4)), rng.standard_normal((1, 3, 5, 4))),
    (losses.l1, rng.standard_normal((2, 3, 3, 5)), None)])
def test_l1_and_mse_on_image_batches(loss, pred, target):
    """The losses CycleGAN and SRResNet use, on (N, C, H, W) batches (batch 1 included): value and gradient."""
    if target is None:   # L1 away from its kink at pred == target
        target = pred + np.sign(rng.standard_normal(pred.shape)) * (0.1 + rng.random(pred.shape))
    assert check_loss(loss, pred, target)["pred"] < TOLERANCE
    value, _ = loss(pred, target)
    expected = np.abs(pred - target).mean() if loss is losses.l1 else ((pred - target) ** 2).mean()
    assert float(value) == pytest.approx(expected, rel=1e-14)
    ref_value, ref_grad = getattr(R, loss.__name__)(pred, target)
    np.testing.assert_allclose(loss(pred, target)[1], ref_grad, rtol=1e-14)


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: L.Upsample(0), "Upsample: scale_factor"), (lambda: L.Upsample(2.5), "Upsample: scale_factor"),
    (lambda: L.Upsample(2, "bicubic"), "Upsample: mode"),
    (lambda: L.Upsample(2, align_corners=True), "align_corners"),
    (lambda: L.PixelShuffle(0), "PixelShuffle: upscale_factor"),
    (lambda: L.ReflectionPad2d(-1), "ReflectionPad2d: padding"), (lambda: L.ReflectionPad2d((1, 2)), "ReflectionPad2d"),
    (lambda: L.InstanceNorm(0), "InstanceNorm: num_features"), (lambda: L.InstanceNorm(3, affine=1), "affine"),
    (lambda: L.InstanceNorm(3, eps=0), "eps"), (lambda: L.PReLU(0), "PReLU: num_parameters"),
    (lambda: L.Residual(lambda x: x), "Residual: body")])
def test_bad_hyperparameters_name_the_layer(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("layer, shape, match", [
    (L.PixelShuffle(2), (1, 6, 3, 3), r"multiple of 4.*\(1, 6, 3, 3\)"),
    (L.ReflectionPad2d(3), (1, 1, 3, 5), r"smaller than the input's sides.*\(1, 1, 3, 5\)"),
    (L.InstanceNorm(3), (2, 4, 5, 5), r"InstanceNorm.*\(N, 3, H, W\).*\(2, 4, 5, 5\)"),
    (L.InstanceNorm(3), (2, 3, 1, 1), "more than one pixel"),
    (L.PReLU(3), (2, 4, 5), r"3 channels.*\(2, 4, 5\)"),
    (L.Upsample(2), (2, 3, 4), r"Upsample.*\(N, C, H, W\).*\(2, 3, 4\)"),
    (L.Residual(L.Chain(L.Conv2d(2, 3, 1))), (1, 2, 4, 4), r"maps input \(1, 2, 4, 4\) to \(1, 3, 4, 4\)")])
def test_bad_input_shapes_name_the_layer_and_the_shapes(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer.forward(np.zeros(shape, np.float32))


def test_float32_in_float32_out():
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    for layer in (L.Upsample(2), L.Upsample(2, "bilinear"), L.PixelShuffle(2), L.ReflectionPad2d(1),
                  L.InstanceNorm(4, affine=True), L.PReLU(4), L.Residual(L.Chain(L.Conv2d(4, 4, 3, padding=1)))):
        y = layer.forward(x, keep_cache=True)
        assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32, layer
