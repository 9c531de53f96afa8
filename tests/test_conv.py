"""Conv2d and ConvTranspose2d against independent computations: scipy's correlate, a naive
scatter loop, the adjoint identity, and the output-size formulas."""
import numpy as np
import pytest
from scipy.signal import correlate

import scratchgan.layers as L
from scratchgan.backend import RNG
from scratchgan.layers.conv import col2im, conv_transpose_output_size, im2col

CONV_CONFIGS = [  # (x shape, out channels, kernel, stride, padding)
    ((2, 3, 7, 6), 4, 3, 1, 0),
    ((2, 2, 8, 9), 3, 3, 2, 1),
    ((1, 1, 28, 28), 5, 4, 2, 1),
    ((3, 2, 5, 7), 2, (2, 3), (2, 1), (0, 2)),
    ((2, 3, 7, 7), 1, 7, 1, 0),
    ((2, 2, 9, 6), 3, 5, 3, 2),
]

CONVT_CONFIGS = [  # (x shape, out channels, kernel, stride, padding, output_padding)
    ((2, 3, 4, 5), 2, 3, 1, 0, 0),
    ((2, 3, 7, 7), 2, 4, 2, 1, 0),
    ((2, 2, 3, 5), 3, 3, 2, 1, 1),
    ((1, 2, 3, 4), 2, (3, 2), (2, 3), (1, 0), (1, 2)),
    ((4, 5, 1, 1), 3, 7, 1, 0, 0),
    ((2, 1, 3, 2), 2, 5, 3, 2, 2),
]


def f64(layer):
    return layer.to(dtype=np.float64)


def scipy_conv2d(x, weight, bias, stride, padding):
    """y[n, o] = b[o] + sum_c correlate(pad(x[n, c]), W[o, c], 'valid'), then subsampled by the stride."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, out = x.shape[0], weight.shape[0]
    y = np.stack([np.stack([sum(correlate(xp[i, c], weight[o, c], mode="valid") for c in range(x.shape[1]))
                            for o in range(out)]) for i in range(n)])
    return y[:, :, ::sh, ::sw] + bias.reshape(1, -1, 1, 1)


def naive_conv_transpose(x, weight, bias, stride, padding, output_padding):
    """Every input pixel scatters weight[c] * x[n, c, h, w] onto the output window at (h*s, w*s)."""
    (sh, sw), (ph, pw), (oph, opw) = stride, padding, output_padding
    n, cin, h, w = x.shape
    _, cout, kh, kw = weight.shape
    full = np.zeros((n, cout, (h - 1) * sh + kh + oph, (w - 1) * sw + kw + opw))
    for i in range(h):
        for j in range(w):
            full[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.einsum("nc,cokl->nokl", x[:, :, i, j], weight)
    return full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw] + bias.reshape(1, -1, 1, 1)


@pytest.mark.parametrize("shape,out,k,s,p", CONV_CONFIGS)
def test_conv2d_forward_matches_scipy_correlate(shape, out, k, s, p):
    layer = f64(L.Conv2d(shape[1], out, k, s, p, rng=RNG(0)))
    layer.params["bias"][...] = np.random.default_rng(2).standard_normal(out)
    x = np.random.default_rng(1).standard_normal(shape)
    y = layer.forward(x, train=False)
    expected = scipy_conv2d(x, layer.params["weight"], layer.params["bias"], layer.stride, layer.padding)
    assert y.shape == expected.shape == layer.output_shape(shape)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,out,k,s,p,op", CONVT_CONFIGS)
def test_conv_transpose_forward_matches_naive_scatter(shape, out, k, s, p, op):
    layer = f64(L.ConvTranspose2d(shape[1], out, k, s, p, op, rng=RNG(0)))
    layer.params["bias"][...] = np.random.default_rng(2).standard_normal(out)
    x = np.random.default_rng(1).standard_normal(shape)
    y = layer.forward(x, train=False)
    expected = naive_conv_transpose(x, layer.params["weight"], layer.params["bias"], layer.stride,
                                    layer.padding, layer.output_padding)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,out,k,s,p", CONV_CONFIGS)
def test_adjoint_identity_conv_and_conv_transpose_share_weights(shape, out, k, s, p):
    """<conv(x), y> = <x, convT(y)> when both use the same weight (and no bias)."""
    conv = f64(L.Conv2d(shape[1], out, k, s, p, bias=False, rng=RNG(0)))
    x = np.random.default_rng(1).standard_normal(shape)
    cx = conv.forward(x, train=False)
    h, w = shape[2:]
    # output_padding recovers the rows a strided conv dropped, so convT(y) has x's shape
    op = tuple(int(size + 2 * pad - kk) % st for size, pad, kk, st in zip((h, w), conv.padding, conv.kernel_size, conv.stride))
    convt = f64(L.ConvTranspose2d(out, shape[1], k, s, p, output_padding=op, bias=False, rng=RNG(0)))
    convt.params["weight"][...] = conv.params["weight"]
    y = np.random.default_rng(2).standard_normal(cx.shape)
    ty = convt.forward(y, train=False)
    assert ty.shape == x.shape
    assert np.sum(cx * y) == pytest.approx(np.sum(x * ty), rel=1e-12)


@pytest.mark.parametrize("shape,out,k,s,p", CONV_CONFIGS)
def test_conv2d_backward_equals_conv_transpose_forward(shape, out, k, s, p):
    conv = f64(L.Conv2d(shape[1], out, k, s, p, bias=False, rng=RNG(0)))
    x = np.random.default_rng(1).standard_normal(shape)
    dy = np.random.default_rng(2).standard_normal(conv.forward(x).shape)
    dx = conv.backward(dy)
    op = tuple(int(size + 2 * pad - kk) % st for size, pad, kk, st in
               zip(shape[2:], conv.padding, conv.kernel_size, conv.stride))
    convt = f64(L.ConvTranspose2d(out, shape[1], k, s, p, output_padding=op, bias=False))
    convt.params["weight"][...] = conv.params["weight"]
    np.testing.assert_allclose(dx, convt.forward(dy, train=False), rtol=1e-12, atol=1e-12)


def test_im2col_and_col2im_are_adjoint():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    kernel, stride = (3, 2), (2, 3)
    out = ((9 - 3) // 2 + 1, (8 - 2) // 3 + 1)
    cols = im2col(x, kernel, stride, out)
    c = rng.standard_normal(cols.shape)
    assert np.sum(cols * c) == pytest.approx(np.sum(x * col2im(c, x.shape, kernel, stride, out)), rel=1e-12)


@pytest.mark.parametrize("channel_major", [True, False])
def test_single_window_im2col_and_col2im_follow_the_definition(channel_major):
    """Kernel as large as the unpadded image (DCGAN's 7x7 layers): the reshape fast path gives
    row (c, i, j), column n = x[n, c, i, j], col2im is its adjoint, and neither aliases its input."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 2, 5))
    if channel_major:
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    kernel, stride, out = (2, 5), (1, 1), (1, 1)
    expected = np.array([[x[n, c, i, j] for n in range(4)] for c in range(3) for i in range(2) for j in range(5)])
    np.testing.assert_array_equal(im2col(x, kernel, stride, out), expected)
    dirty = np.full(expected.shape, np.nan)
    np.testing.assert_array_equal(im2col(x, kernel, stride, out, out=dirty), expected)
    np.testing.assert_array_equal(dirty, expected)
    cols = rng.standard_normal(expected.shape)
    image = col2im(cols, x.shape, kernel, stride, out)
    assert np.sum(expected * cols) == pytest.approx(np.sum(x * image), rel=1e-12)
    cols[...] = 0   # the image is a copy: a scratch column matrix may be reused afterwards
    assert np.abs(image).sum() > 0


def test_col2im_sums_overlapping_windows():
    """Stride 1, kernel 3 on a 1x1x3x3 output of ones: the centre pixel is covered 9 times."""
    counts = col2im(np.ones((9, 9)), (1, 1, 5, 5), (3, 3), (1, 1), (3, 3))
    assert counts[0, 0, 2, 2] == 9 and counts[0, 0, 0, 0] == 1 and counts[0, 0, 0, 2] == 3


@pytest.mark.parametrize("h,k,s,p,op", [(1, 7, 1, 0, 0), (7, 4, 2, 1, 0), (14, 4, 2, 1, 0), (5, 3, 2, 1, 1),
                                         (3, 5, 3, 2, 2), (4, 4, 2, 0, 0)])
def test_conv_transpose_output_size_formula(h, k, s, p, op):
    layer = L.ConvTranspose2d(2, 3, k, s, p, op)
    expected = (h - 1) * s - 2 * p + k + op
    assert conv_transpose_output_size(h, k, s, p, op) == expected
    assert layer.forward(np.zeros((1, 2, h, h), np.float32), train=False).shape == (1, 3, expected, expected)


@pytest.mark.parametrize("h,w,k,s,p", [(28, 28, 4, 2, 1), (14, 14, 4, 2, 1), (7, 7, 7, 1, 0), (9, 6, 3, 2, 0),
                                       (5, 8, (2, 3), (1, 2), (1, 0))])
def test_conv_output_size_formula(h, w, k, s, p):
    layer = L.Conv2d(2, 3, k, s, p)
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    expected = (1, 3, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    assert layer.forward(np.zeros((1, 2, h, w), np.float32), train=False).shape == expected


def test_dcgan_shapes():
    z = np.zeros((2, 100, 1, 1), np.float32)
    g = L.Chain(L.ConvTranspose2d(100, 256, 7, bias=False), L.BatchNorm(256), L.ReLU(),
                L.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), L.BatchNorm(128), L.ReLU(),
                L.ConvTranspose2d(128, 1, 4, 2, 1, bias=False), L.Tanh())
    assert g.forward(z).shape == (2, 1, 28, 28)
    d = L.Chain(L.Conv2d(1, 64, 4, 2, 1, bias=False), L.LeakyReLU(0.2), L.Conv2d(64, 128, 4, 2, 1, bias=False),
                L.BatchNorm(128), L.LeakyReLU(0.2), L.Conv2d(128, 1, 7, bias=False), L.Flatten())
    assert d.forward(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 1)


def test_output_padding_must_be_smaller_than_stride():
    with pytest.raises(ValueError, match="output_padding"):
        L.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)


def test_input_smaller_than_kernel_is_a_clear_error():
    with pytest.raises(ValueError, match="smaller than the"):
        L.Conv2d(1, 1, 5).forward(np.zeros((1, 1, 3, 3), np.float32))
