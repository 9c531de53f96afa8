"""Conv2d and ConvTranspose2d against independent computations: scipy's correlate, a naive
scatter loop, the adjoint identity, and the output-size formulas; im2col/col2im's padding and
the channel-major layout against their plain definitions; hyper-parameter checks."""
import numpy as np
import pytest
from scipy.signal import correlate

import scratchgan.layers as L
from scratchgan.backend import RNG
from scratchgan.layers.conv import as_matrix, col2im, conv_output_size, conv_transpose_output_size, im2col

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


THROUGH_TRANSPOSE_CONFIGS = [  # stride 1, padding below the kernel: (x shape, out channels, kernel, padding)
    ((2, 4, 7, 6), 1, 5, 2),             # "same" padding, one output channel (an image-producing last layer)
    ((1, 5, 6, 5), 2, (3, 2), (2, 0)),   # batch 1, uneven kernel and padding
    ((3, 3, 5, 5), 3, 3, 0),             # valid: the output is smaller than the input
    ((2, 6, 4, 7), 2, 4, 3),             # padding k - 1: the transpose's own padding is 0
    ((2, 3, 6, 6), 5, 1, 0),             # 1x1 kernel, more output than input channels (forced)
]


def _both_ways(shape, out, k, p, bias=True):
    """The same float64 Conv2d computed through im2col and through the transpose, on one input."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    layers = []
    for through in (False, True):
        layer = f64(L.Conv2d(shape[1], out, k, 1, p, bias=bias, rng=RNG(0)))
        if bias:
            layer.params["bias"][...] = np.random.default_rng(2).standard_normal(out)
        layer.through_transpose = through
        layers.append(layer)
    return layers, x


@pytest.mark.parametrize("shape,out,k,p", THROUGH_TRANSPOSE_CONFIGS)
def test_conv2d_through_the_transpose_matches_im2col_and_scipy(shape, out, k, p):
    (plain, flipped), x = _both_ways(shape, out, k, p)
    y_plain, y_flipped = plain.forward(x), flipped.forward(x)
    assert flipped._cache[0][2] and not plain._cache[0][2]    # each took the path it was given
    expected = scipy_conv2d(x, plain.params["weight"], plain.params["bias"], (1, 1), plain.padding)
    np.testing.assert_allclose(y_flipped, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_flipped, y_plain, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(4).standard_normal(y_plain.shape)
    np.testing.assert_allclose(flipped.backward(dy), plain.backward(dy), rtol=1e-12, atol=1e-12)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(flipped.grads[name], plain.grads[name], rtol=1e-12, atol=1e-12)


def test_conv2d_through_the_transpose_parameter_only_backward_and_repeated_calls():
    """input_grad=False (D's first layer) and a second forward/backward adding into the same gradient."""
    (plain, flipped), x = _both_ways((2, 4, 7, 6), 1, 5, 2)
    for layer in (plain, flipped):
        for seed in (5, 6):
            y = layer.forward(x * seed)
            assert layer.backward(np.random.default_rng(seed).standard_normal(y.shape), input_grad=False) is None
    for name in ("weight", "bias"):
        np.testing.assert_allclose(flipped.grads[name], plain.grads[name], rtol=1e-12, atol=1e-12)


def test_conv2d_picks_the_smaller_column_matrix():
    """Through the transpose when O*H*W < C*Ho*Wo at stride 1 (SRResNet's and CycleGAN's last
    layers); im2col otherwise (DCGAN's strided layers, equal channels, a kernel as large as the image)."""
    cases = [
        (L.Conv2d(64, 1, 9, padding=4), (2, 64, 28, 28), True),     # SRResNet's last layer
        (L.Conv2d(64, 3, 7), (2, 64, 38, 38), True),                 # CycleGAN's last, after reflection padding
        (L.Conv2d(64, 64, 3, padding=1), (2, 64, 7, 7), False),     # equal channels: equal matrices
        (L.Conv2d(64, 128, 4, 2, 1), (2, 64, 14, 14), False),       # stride 2
        (L.Conv2d(128, 1, 7), (2, 128, 7, 7), False),               # DCGAN's last D layer: a reshape already
        (L.Conv2d(8, 2, 3, padding=3), (2, 8, 5, 5), False),        # padding k: no transpose padding
    ]
    for layer, shape, expected in cases:
        layer.forward(np.zeros(shape, np.float32))
        assert layer._cache[0][2] is expected, layer


def test_forcing_an_impossible_transpose_names_the_layer():
    layer = L.Conv2d(4, 1, 3, stride=2, padding=1)
    layer.through_transpose = True
    with pytest.raises(ValueError, match=r"Conv2d\(4, 1.*stride-1"):
        layer.forward(np.zeros((1, 4, 6, 6), np.float32))


GATHER_CONFIGS = [  # (x shape, kernel, stride, padding): the conv configurations, and a transposed one's dy
    *[(shape, k, s, p) for shape, _, k, s, p in CONV_CONFIGS],
    ((2, 2, 6, 10), (3, 2), (2, 3), (1, 0)),
    ((1, 3, 14, 14), 4, 2, 1),
]


@pytest.mark.parametrize("shape,k,s,p", GATHER_CONFIGS)
@pytest.mark.parametrize("channel_major", [False, True])
def test_im2col_and_col2im_by_gather_equal_the_loops(monkeypatch, shape, k, s, p, channel_major):
    """The GPU's way (fastpath.im2col_by_gather / col2im_by_gather) against the strided loops, forced
    on the CPU: im2col bit for bit (also into a dirty buffer), col2im to rounding (another order)."""
    kernel, stride, padding = ((v, v) if isinstance(v, int) else v for v in (k, s, p))
    out_size = tuple(conv_output_size(*a) for a in zip(shape[2:], kernel, stride, padding))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    if channel_major:
        x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    results = {}
    for method in ("loops", "gather"):
        monkeypatch.setenv("SCRATCHGAN_IM2COL", method)
        cols = im2col(x, kernel, stride, out_size, padding)
        dirty = np.full(cols.shape, np.nan)
        into = im2col(x, kernel, stride, out_size, padding, out=dirty)
        image = col2im(np.random.default_rng(1).standard_normal(cols.shape), x.shape, kernel, stride, out_size, padding)
        results[method] = cols, into, image
    (cols, into, image), (g_cols, g_into, g_image) = results["loops"], results["gather"]
    assert np.array_equal(g_cols, cols) and np.array_equal(g_into, cols) and np.array_equal(into, cols)
    assert g_image.shape == image.shape == x.shape
    np.testing.assert_allclose(g_image, image, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("build,channels", [
    (lambda: L.Conv2d(3, 4, 4, 2, 1), 3),
    (lambda: L.Conv2d(5, 2, 3, padding=1), 5),                 # through the transpose
    (lambda: L.ConvTranspose2d(3, 2, 4, 2, 1), 3),
    (lambda: L.Conv2d(3, 2, (3, 2), (1, 2), (2, 0)), 3),
])
def test_layers_by_gather_equal_the_loops(monkeypatch, build, channels):
    """Whole forward and backward passes (input and parameter gradients) with im2col and col2im
    gathering, as on the GPU, against the loops, in float64 on the CPU."""
    x = np.random.default_rng(0).standard_normal((2, channels, 7, 6))
    plain = f64(build())
    nets = {"loops": plain, "gather": f64(build().load_state_dict(plain.state_dict()))}
    outs = {}
    for method, net in nets.items():
        monkeypatch.setenv("SCRATCHGAN_IM2COL", method)
        y = net.forward(x)
        dx = net.backward(np.random.default_rng(1).standard_normal(y.shape))
        outs[method] = y, dx, {k: v.copy() for k, v in net.grads.items()}
    (y, dx, grads), (gy, gdx, ggrads) = outs["loops"], outs["gather"]
    np.testing.assert_allclose(gy, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gdx, dx, rtol=1e-12, atol=1e-12)
    for name in grads:
        np.testing.assert_allclose(ggrads[name], grads[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_im2col_method_is_checked_and_the_cpu_default_is_the_loops(monkeypatch):
    from scratchgan.fastpath import uses_gather
    monkeypatch.delenv("SCRATCHGAN_IM2COL", raising=False)
    assert not uses_gather(np)
    monkeypatch.setenv("SCRATCHGAN_IM2COL", "fast")
    with pytest.raises(ValueError, match="SCRATCHGAN_IM2COL must be one of auto, loops, gather, got 'fast'"):
        im2col(np.zeros((1, 1, 4, 4)), (2, 2), (2, 2), (2, 2))


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


@pytest.mark.parametrize("size,k,s,p", [((14, 14), (4, 4), (2, 2), (1, 1)), ((7, 9), (3, 2), (2, 3), (1, 0)),
                                      ((5, 5), (2, 2), (3, 3), (0, 0)), ((6, 6), (3, 3), (1, 1), (1, 1)),
                                      ((5, 6), (1, 1), (2, 2), (0, 0)), ((4, 4), (3, 3), (1, 1), (2, 2))])
def test_col2im_equals_a_scatter_add(monkeypatch, size, k, s, p):
    """col2im against np.add.at of every window's every pixel onto zeros. Stride > kernel leaves pixels
    no window reaches; padding 2 with kernel 3, positions that see only padding."""
    out_size = tuple(conv_output_size(*a) for a in zip(size, k, s, p))
    n, c = 2, 3
    cols = np.random.default_rng(0).standard_normal((c * k[0] * k[1], out_size[0] * out_size[1] * n))
    expected = np.zeros((n, c) + size)
    blocks = cols.reshape(c, k[0], k[1], out_size[0], out_size[1], n)
    for i, j, oh, ow in np.ndindex(k[0], k[1], *out_size):
        y, x = oh * s[0] + i - p[0], ow * s[1] + j - p[1]
        if 0 <= y < size[0] and 0 <= x < size[1]:
            np.add.at(expected, (slice(None), slice(None), y, x), blocks[:, i, j, oh, ow].T)
    monkeypatch.setenv("SCRATCHGAN_IM2COL", "loops")
    np.testing.assert_allclose(col2im(cols, (n, c) + size, k, s, out_size, p), expected, rtol=1e-13, atol=1e-13)


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


# -- the fast path computes the plain maths ------------------------------------------------

def test_conv_outputs_are_channel_major_views_the_next_layer_reads_without_copying():
    conv = L.Conv2d(2, 3, 4, 2, 1)
    y = conv.forward(np.random.default_rng(0).standard_normal((5, 2, 8, 8)).astype(np.float32))
    assert y.shape == (5, 3, 4, 4) and not y.flags.c_contiguous
    assert np.shares_memory(as_matrix(y), y)           # (C, H*W*N) is a view: no transpose copy
    bn = L.BatchNorm(3)
    z = bn.forward(y)
    assert np.shares_memory(as_matrix(z), z)


def test_layers_accept_any_input_layout():
    """The same values as a C-contiguous NCHW array and as a channel-major view give the same outputs."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 6, 6))
    x_channel_major = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    for make in (lambda: L.Conv2d(3, 2, 3, 2, 1, rng=RNG(0)), lambda: L.ConvTranspose2d(3, 2, 4, 2, 1, rng=RNG(0)),
                 lambda: L.BatchNorm(3), lambda: L.LeakyReLU(0.2)):
        a, b = f64(make()), f64(make())
        ya, yb = a.forward(x), b.forward(x_channel_major)
        np.testing.assert_allclose(ya, yb, rtol=1e-13, atol=1e-13)
        dy = rng.standard_normal(ya.shape)
        np.testing.assert_allclose(a.backward(dy), b.backward(np.ascontiguousarray(dy)), rtol=1e-12, atol=1e-13)


def test_im2col_padding_equals_im2col_of_the_padded_input():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    kernel, stride, padding, out = (4, 3), (2, 2), (1, 2), (3, 4)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)))
    np.testing.assert_array_equal(im2col(x, kernel, stride, out, padding), im2col(padded, kernel, stride, out))
    cols = rng.standard_normal((3 * 4 * 3, 3 * 4 * 2))
    full = col2im(cols, padded.shape, kernel, stride, out)
    np.testing.assert_allclose(col2im(cols, x.shape, kernel, stride, out, padding), full[:, :, 1:-1, 2:-2],
                               rtol=1e-14)


@pytest.mark.parametrize("size,kernel,stride,padding", [
    ((7, 6), (4, 3), (2, 2), (1, 2)),    # padding on both sides, stride 2
    ((14, 14), (4, 4), (2, 2), (1, 1)),  # DCGAN's Conv(64->128) geometry
    ((1, 2), (3, 3), (1, 1), (2, 2)),    # kernel positions that only ever see padding
    ((5, 5), (3, 3), (1, 1), (0, 0)),    # no padding: every window inside
])
def test_im2col_into_a_dirty_buffer_zeroes_exactly_the_padding(size, kernel, stride, padding):
    """im2col writes every element of ``out``: the copied pixels, and zeros where a window lies in
    the padding (it zeroes only those, so stale values elsewhere must all be overwritten)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, *size))
    out_size = tuple(conv_output_size(s, k, st, p) for s, k, st, p in zip(size, kernel, stride, padding))
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    expected = im2col(padded, kernel, stride, out_size)
    dirty = np.full(expected.shape, np.nan)
    np.testing.assert_array_equal(im2col(x, kernel, stride, out_size, padding, out=dirty), expected)
    np.testing.assert_array_equal(dirty, expected)


# -- hyper-parameters are checked when the layer is built ----------------------------------------

@pytest.mark.parametrize("layer", [L.Conv2d, L.ConvTranspose2d])
@pytest.mark.parametrize("kwargs,error,message", [
    ({"stride": 0}, ValueError, r"stride must be >= 1, got 0"),
    ({"stride": (1, 0)}, ValueError, r"stride must be >= 1, got \(1, 0\)"),
    ({"padding": -1}, ValueError, r"padding must be >= 0, got -1"),
    ({"padding": (0, -2)}, ValueError, r"padding must be >= 0"),
    ({"kernel_size": 0}, ValueError, r"kernel_size must be >= 1, got 0"),
    ({"kernel_size": (3, 0)}, ValueError, r"kernel_size must be >= 1"),
    ({"kernel_size": 2.5}, TypeError, r"kernel_size must be an int or a pair of ints, got 2.5"),
    ({"kernel_size": (3, 3, 3)}, TypeError, r"kernel_size must be an int or a pair of ints"),
    ({"stride": "2"}, TypeError, r"stride must be an int or a pair of ints"),
    ({"in_channels": 0}, ValueError, r"in_channels must be an integer >= 1, got 0"),
    ({"out_channels": 0}, ValueError, r"out_channels must be an integer >= 1, got 0"),
    ({"out_channels": 2.0}, TypeError, r"out_channels must be an integer, got 2.0"),
])
def test_bad_geometry_fails_at_construction_naming_the_layer(layer, kwargs, error, message):
    args = {"in_channels": 2, "out_channels": 3, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=f"^{layer.__name__}: {message}"):
        layer(**args)


def test_conv_transpose_output_padding_is_checked():
    with pytest.raises(ValueError, match=r"^ConvTranspose2d: output_padding must be >= 0"):
        L.ConvTranspose2d(2, 2, 3, stride=2, output_padding=-1)
    with pytest.raises(ValueError, match=r"^ConvTranspose2d: output_padding \(2, 2\) must be smaller than stride"):
        L.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)


def test_numpy_integer_geometry_builds_the_same_layer():
    n = np.int64
    a, b = L.Conv2d(n(2), n(3), n(4), n(2), n(1), rng=RNG(0)), L.Conv2d(2, 3, 4, 2, 1, rng=RNG(0))
    assert repr(a) == repr(b) and a.kernel_size == (4, 4) and type(a.stride[0]) is int
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


@pytest.mark.gpu
@pytest.mark.parametrize("build,channels", [
    (lambda: L.Conv2d(3, 4, 4, 2, 1), 3),
    (lambda: L.Conv2d(5, 2, 3, padding=1), 5),
    (lambda: L.ConvTranspose2d(3, 2, 4, 2, 1), 3),
    (lambda: L.Conv2d(3, 2, (3, 2), (1, 2), (2, 0)), 3),
])
def test_gpu_layers_gather_and_match_the_cpu_loops(cupy, monkeypatch, build, channels):
    """On the GPU im2col and col2im gather by default; forward and backward match the CPU's loops."""
    from scratchgan.fastpath import uses_gather
    monkeypatch.delenv("SCRATCHGAN_IM2COL", raising=False)
    assert uses_gather(cupy) and not uses_gather(np)
    cpu = f64(build())
    gpu = f64(build().load_state_dict(cpu.state_dict())).to("gpu")
    x = np.random.default_rng(0).standard_normal((2, channels, 7, 6))
    dy = np.random.default_rng(1).standard_normal(cpu.forward(x).shape)
    np.testing.assert_allclose(cupy.asnumpy(gpu.forward(cupy.asarray(x))), cpu.forward(x, keep_cache=False),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cupy.asnumpy(gpu.backward(cupy.asarray(dy))), cpu.backward(dy), rtol=1e-12, atol=1e-12)
    for name in cpu.grads:
        np.testing.assert_allclose(cupy.asnumpy(gpu.grads[name]), cpu.grads[name], rtol=1e-12, atol=1e-12)
