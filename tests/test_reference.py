"""The textbook functions of scratchgan.reference: equal to the fast layers and losses in float64,
equal to independent computations (scipy), and right by finite differences."""
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

import scratchgan.layers as L
import scratchgan.reference as R
from scratchgan import optim
from scratchgan.backend import RNG
from scratchgan.gradcheck import (TOLERANCE, check_function, rel_error,
                                  upstream_gradient)
from scratchgan.gradcheck_cases import layer_cases, loss_cases, reference_cases, reference_of, run_case

LAYER_CASES, LOSS_CASES, REFERENCE_CASES = layer_cases(), loss_cases(), reference_cases()
ROOT = Path(__file__).resolve().parents[1]


def ids(cases):
    return [f"{c.name}[{c.config}]" for c in cases]


def assert_same(fast, ref, what):
    np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), rtol=1e-10, atol=1e-12, err_msg=what)


# -- the fast layers equal their references -------------------------------------------

@pytest.mark.parametrize("case", LAYER_CASES, ids=ids(LAYER_CASES))
def test_fast_layer_equals_reference(case):
    """Forward, input gradient and every parameter gradient, on every gradcheck configuration."""
    layer, x, train = case.build()
    y = layer.forward(x, train=train, keep_cache=True)
    mask = (y != 0) if isinstance(layer, L.Dropout) and train else None     # Dropout: the fast layer's mask
    forward, backward, params = reference_of(layer, train, mask=mask)
    dy = upstream_gradient(y.shape, seed=3)
    layer.zero_grad()
    dx = layer.backward(dy)
    y_ref, cache = forward(x)
    dx_ref, grads_ref = backward(dy, cache)
    assert_same(y, y_ref, "forward")
    assert_same(dx, dx_ref, "input gradient")
    fast_grads = {name: lyr.grads[key] for name, lyr, key in layer.named_parameters()}
    assert set(fast_grads) == set(grads_ref)
    for name, grad in fast_grads.items():
        assert_same(grad, grads_ref[name], f"gradient of {name}")


def test_dropout_reference_uses_the_fast_layers_mask():
    layer = L.Dropout(0.4)
    x = np.random.default_rng(0).standard_normal((5, 7))
    y = layer.forward(x, train=True, keep_cache=True)
    keep = y != 0
    assert 0 < keep.mean() < 1, "a mask that drops nothing or everything tests nothing"
    y_ref, cache = R.dropout_forward(x, 0.4, keep)
    dy = upstream_gradient(y.shape)
    assert_same(y, y_ref, "forward")
    assert_same(layer.backward(dy), R.dropout_backward(dy, cache), "input gradient")
    assert R.dropout_forward(x, 0.4, train=False)[0] is x
    with pytest.raises(ValueError, match="mask"):
        R.dropout_forward(x, 0.4)


@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 4, 5), (1, 3, 2, 3)])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_running_statistics_equal_the_fast_layers(shape, train):
    """PyTorch semantics on both paths: biased variance to normalise, unbiased for running_var."""
    layer = L.BatchNorm(shape[1], momentum=0.3).to(dtype=np.float64)
    layer.buffers["running_mean"][...] = [0.5, -1.0, 2.0]
    layer.buffers["running_var"][...] = [1.5, 0.7, 3.0]
    state = {key: value.copy() for key, value in layer.buffers.items()}
    before = {key: value.copy() for key, value in state.items()}
    x = 2 * np.random.default_rng(1).standard_normal(shape) + 1
    y = layer.forward(x, train=train)
    y_ref, _ = R.batchnorm_forward(x, layer.params["weight"], layer.params["bias"], state, train, momentum=0.3)
    assert_same(y, y_ref, "forward")
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        assert_same(layer.buffers[key], state[key], key)
        assert np.array_equal(before[key], state[key]) != train, f"{key} must move in training only"
    if train:
        values = np.moveaxis(x, 1, -1).reshape(-1, shape[1])
        assert_same(state["running_var"], 0.7 * before["running_var"] + 0.3 * values.var(axis=0, ddof=1), "unbiased")
        var = values.var(axis=0)                               # biased: x_hat has variance var / (var + eps)
        assert_same(np.moveaxis(y_ref, 1, -1).reshape(-1, shape[1]).var(axis=0), var / (var + 1e-5), "biased")


def test_batchnorm_reference_refuses_one_value_per_channel():
    with pytest.raises(ValueError, match="more than one value"):
        R.batchnorm_forward(np.ones((1, 3)), np.ones(3), np.zeros(3), {"running_mean": np.zeros(3),
                                                                       "running_var": np.ones(3)})


@pytest.mark.parametrize("case", LOSS_CASES, ids=ids(LOSS_CASES))
def test_fast_loss_equals_reference(case):
    loss_fn, pred, target = case.build()
    value, grad = loss_fn(pred, target)
    value_ref, grad_ref = getattr(R, loss_fn.__name__)(pred, target)
    assert_same(value, value_ref, "value")
    assert_same(grad, grad_ref, "gradient")


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_step_equals_the_fast_optimizer(momentum):
    _compare_optimizer(optim.SGD, R.sgd_step, dict(lr=0.1, momentum=momentum, weight_decay=0.01))


def test_adam_step_equals_the_fast_optimizer():
    _compare_optimizer(optim.Adam, R.adam_step, dict(lr=0.01, betas=(0.5, 0.999), eps=1e-8, weight_decay=0.01))


def _compare_optimizer(fast_class, step, hyper):
    layer = L.Dense(4, 3, rng=RNG(0)).to(dtype=np.float64)
    optimizer = fast_class(layer, **hyper)
    weights = {key: value.copy() for key, value in layer.params.items()}
    configs = {key: dict(hyper) for key in weights}
    rng = np.random.default_rng(2)
    for _ in range(4):
        for key in weights:
            layer.grads[key][...] = rng.standard_normal(weights[key].shape)
            weights[key], configs[key] = step(weights[key], layer.grads[key], configs[key])
        optimizer.step()
        for key in weights:
            assert_same(layer.params[key], weights[key], key)


# -- the reference against independent computations ------------------------------------

CONV_CONFIGS = [  # x shape, out channels, kernel, stride, padding
    ((2, 3, 7, 6), 4, (3, 3), (1, 1), (0, 0)),
    ((2, 2, 8, 9), 3, (3, 3), (2, 2), (1, 1)),
    ((1, 2, 5, 7), 3, (2, 3), (2, 1), (0, 2)),
    ((3, 1, 6, 5), 2, (4, 4), (2, 2), (1, 1)),
    ((2, 2, 7, 5), 2, (3, 3), (3, 3), (2, 2)),
]


@pytest.mark.parametrize("x_shape, out, kernel, stride, padding", CONV_CONFIGS)
def test_reference_conv2d_equals_scipy_correlate(x_shape, out, kernel, stride, padding):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((out, x_shape[1], *kernel)), rng.standard_normal(out)
    y, _ = R.conv2d_forward(x, w, b, stride, padding)
    (sh, sw), (ph, pw) = stride, padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    expected = np.stack([np.stack([signal.correlate(x_pad[n], w[o], mode="valid")[0, ::sh, ::sw] + b[o]
                                   for o in range(out)]) for n in range(x_shape[0])])
    assert y.shape == expected.shape
    assert_same(y, expected, "forward")


@pytest.mark.parametrize("x_shape, out, kernel, stride, padding, output_padding", [
    ((2, 3, 4, 5), 2, (3, 3), (1, 1), (0, 0), (0, 0)),
    ((2, 3, 4, 4), 2, (4, 4), (2, 2), (1, 1), (0, 0)),
    ((1, 2, 3, 4), 2, (3, 2), (2, 3), (1, 0), (1, 2)),
    ((2, 1, 3, 2), 2, (5, 5), (3, 3), (2, 2), (2, 2)),
    ((3, 4, 1, 1), 2, (7, 7), (1, 1), (0, 0), (0, 0)),
])
def test_reference_conv_transpose2d_equals_scipy_convolve(x_shape, out, kernel, stride, padding, output_padding):
    """The scatter is a full convolution of the stride-dilated input, then cropped and extended."""
    rng = np.random.default_rng(0)
    n, c, h, w_ = x_shape
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((c, out, *kernel)), rng.standard_normal(out)
    y, _ = R.conv_transpose2d_forward(x, w, b, stride, padding, output_padding)
    (sh, sw), (ph, pw), (oph, opw) = stride, padding, output_padding
    dilated = np.zeros((n, c, (h - 1) * sh + 1, (w_ - 1) * sw + 1))
    dilated[:, :, ::sh, ::sw] = x
    full = np.stack([np.stack([sum(signal.convolve(dilated[i, ch], w[ch, o], mode="full") for ch in range(c))
                               for o in range(out)]) for i in range(n)])
    full = np.pad(full, ((0, 0), (0, 0), (0, oph), (0, opw)))
    expected = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw] + b.reshape(1, -1, 1, 1)
    assert y.shape == expected.shape == (n, out, (h - 1) * sh - 2 * ph + kernel[0] + oph,
                                         (w_ - 1) * sw - 2 * pw + kernel[1] + opw)
    assert_same(y, expected, "forward")


@pytest.mark.parametrize("x_shape, out, kernel, stride, padding", CONV_CONFIGS)
def test_reference_conv_transpose2d_is_conv2d_input_gradient(x_shape, out, kernel, stride, padding):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal((out, x_shape[1], *kernel))
    y, cache = R.conv2d_forward(x, w, None, stride, padding)
    g = rng.standard_normal(y.shape)
    dx, _, _ = R.conv2d_backward(g, cache)
    output_padding = tuple((s + 2 * p - k) % st for s, p, k, st in zip(x_shape[2:], padding, kernel, stride))
    up, _ = R.conv_transpose2d_forward(g, w, None, stride, padding, output_padding)
    assert_same(up, dx, "convT(g) = conv's dx")
    assert np.isclose(np.sum(y * g), np.sum(x * up))


def test_reference_softmax_backward_equals_the_closed_form():
    x, dy = np.random.default_rng(0).standard_normal((2, 4, 3)), np.random.default_rng(1).standard_normal((2, 4, 3))
    y, cache = R.softmax_forward(x, axis=1)
    assert_same(R.softmax_backward(dy, cache), y * (dy - (dy * y).sum(axis=1, keepdims=True)), "J^T dy")


# -- the reference by finite differences ------------------------------------------------

@pytest.mark.parametrize("case", REFERENCE_CASES, ids=ids(REFERENCE_CASES))
def test_reference_gradients_match_finite_differences(case):
    errors = run_case(case)
    assert errors
    for name, err in errors.items():
        assert err < TOLERANCE, f"reference {case.name} [{case.config}] d{name}: relative error {err:.2e}"


def test_reference_cases_mirror_the_fast_cases():
    assert [(c.name, c.config) for c in REFERENCE_CASES] == [(c.name, c.config) for c in LAYER_CASES + LOSS_CASES]
    chain = next(c for c in REFERENCE_CASES if c.name == "Chain")
    layer, _, _ = next(c for c in LAYER_CASES if c.name == "Chain").build()
    assert set(chain.build()[3]) == {name for name, _, _ in layer.named_parameters()}   # every parameter checked


def test_check_function_catches_a_batchnorm_backward_without_the_batch_statistics_paths():
    """The eval-mode formula dx = gamma dout / sigma, used in training, is wrong: the checker sees it."""
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((6, 3)), 1 + rng.random(3), rng.standard_normal(3)
    state = {"running_mean": np.zeros(3), "running_var": np.ones(3)}

    def forward(x):
        return R.batchnorm_forward(x, gamma, beta, dict(state), train=True)

    def backward(dout, cache, wrong):
        shape, gamma_, centred, std, inv_std, x_hat, _ = cache
        dx, dgamma, dbeta = R.batchnorm_backward(dout, (shape, gamma_, centred, std, inv_std, x_hat, not wrong))
        return dx, {"weight": dgamma, "bias": dbeta}

    right = check_function(forward, lambda d, c: backward(d, c, False), x, {"weight": gamma, "bias": beta})
    wrong = check_function(forward, lambda d, c: backward(d, c, True), x, {"weight": gamma, "bias": beta})
    assert max(right.values()) < TOLERANCE
    assert wrong["x"] > 1e-2 and wrong["weight"] < TOLERANCE


def test_check_function_catches_a_conv_backward_that_drops_overlaps():
    """Overwriting instead of adding where windows overlap (stride < kernel) loses gradient."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((2, 2, 3, 3))

    def wrong_backward(dout, cache):
        x_pad, w_, _, _, _ = cache
        dx = np.zeros_like(x_pad)
        for row in range(dout.shape[2]):
            for col in range(dout.shape[3]):
                dx[:, :, row:row + 3, col:col + 3] = np.einsum("no,ocij->ncij", dout[:, :, row, col], w_)
        return dx, {"weight": R.conv2d_backward(dout, cache)[1]}

    errors = check_function(lambda x: R.conv2d_forward(x, w), wrong_backward, x, {"weight": w})
    assert errors["x"] > 1e-2 and errors["weight"] < TOLERANCE


def test_check_function_requires_float64_and_every_gradient():
    forward = lambda x: R.affine_forward(x, np.ones((2, 3)))
    with pytest.raises(ValueError, match="float64"):
        check_function(forward, None, np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="expected"):
        check_function(forward, lambda d, c: (R.affine_backward(d, c)[0], {}), np.ones((1, 3)), {"weight": np.ones((2, 3))})


# -- the reference keeps dtypes, and runs on the GPU ----------------------------------------

def _every_function(x4, x2, xp=np):
    """(name, output, gradient) of each reference pair on a float array pair (x4 NCHW, x2 (N, F))."""
    f = x4.dtype.type
    w_conv = xp.ones((3, x4.shape[1], 2, 2), dtype=x4.dtype) * f(0.1)
    w_convt = xp.ones((x4.shape[1], 2, 3, 3), dtype=x4.dtype) * f(0.1)
    w_dense, b_dense = xp.ones((4, x2.shape[1]), dtype=x2.dtype) * f(0.1), xp.zeros(4, dtype=x2.dtype)
    c = x4.shape[1]
    state = {"running_mean": xp.zeros(c, dtype=x4.dtype), "running_var": xp.ones(c, dtype=x4.dtype)}
    calls = {
        "affine": (lambda: R.affine_forward(x2, w_dense, b_dense), R.affine_backward),
        "maxout": (lambda: R.maxout_forward(x2, w_dense, b_dense, 2), R.maxout_backward),
        "conv2d": (lambda: R.conv2d_forward(x4, w_conv, None, 2, 1), R.conv2d_backward),
        "conv_transpose2d": (lambda: R.conv_transpose2d_forward(x4, w_convt, None, 2, 1, 1), R.conv_transpose2d_backward),
        "batchnorm": (lambda: R.batchnorm_forward(x4, xp.ones(c, dtype=x4.dtype), xp.zeros(c, dtype=x4.dtype),
                                                  dict(state)), R.batchnorm_backward),
        "relu": (lambda: R.relu_forward(x4), R.relu_backward),
        "leaky_relu": (lambda: R.leaky_relu_forward(x4), R.leaky_relu_backward),
        "tanh": (lambda: R.tanh_forward(x4), R.tanh_backward),
        "sigmoid": (lambda: R.sigmoid_forward(x4), R.sigmoid_backward),
        "softmax": (lambda: R.softmax_forward(x2), R.softmax_backward),
        "dropout": (lambda: R.dropout_forward(x4, 0.5, x4 > 0), R.dropout_backward),
        "flatten": (lambda: R.flatten_forward(x4), R.flatten_backward),
    }
    results = []
    for name, (forward, backward) in calls.items():
        out, cache = forward()
        # a varying upstream gradient: for ones, BatchNorm's and softmax's input gradients are zero, and their
        # computed values only rounding noise, which no relative comparison can hold
        upstream = xp.cos(xp.arange(out.size, dtype=out.dtype)).reshape(out.shape)
        grads = backward(upstream, cache)
        results.append((name, out, grads[0] if isinstance(grads, tuple) else grads))
    return results


def test_reference_keeps_float32():
    rng = np.random.default_rng(0)
    x4, x2 = rng.standard_normal((2, 3, 5, 5)).astype(np.float32), rng.standard_normal((4, 6)).astype(np.float32)
    for name, out, dx in _every_function(x4, x2):
        assert out.dtype == dx.dtype == np.float32, name
    for loss in (R.mse, R.l1, R.bce_with_logits):
        value, grad = loss(x2, 0.5)
        assert value.dtype == grad.dtype == np.float32, loss.__name__


@pytest.mark.gpu
def test_reference_runs_on_cupy(cupy):
    rng = np.random.default_rng(0)
    x4, x2 = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 6))
    on_cpu = _every_function(x4, x2)
    on_gpu = _every_function(cupy.asarray(x4), cupy.asarray(x2), xp=cupy)
    for (name, out, dx), (_, out_gpu, dx_gpu) in zip(on_cpu, on_gpu):
        assert isinstance(out_gpu, cupy.ndarray), name
        assert rel_error(out, out_gpu) < 1e-12 and rel_error(dx, dx_gpu) < 1e-12, name


# -- the docs quote the reference verbatim -----------------------------------------------

QUOTE = re.compile(r"<!-- quote: (scratchgan/reference/\w+\.py) -->\n```python\n(.*?)```", re.S)
LAYER_PAGES = sorted((ROOT / "docs" / "layers").glob("*.md"))


@pytest.mark.parametrize("page", LAYER_PAGES, ids=[p.name for p in LAYER_PAGES])
def test_layer_docs_quote_the_reference_verbatim(page):
    text = page.read_text()
    quotes = QUOTE.findall(text)
    assert quotes, f"{page.name} quotes no reference code"
    assert text.count("<!-- quote:") == len(quotes), f"{page.name}: a quote marker without a python block"
    for source, block in quotes:
        assert block in (ROOT / source).read_text(), f"{page.name}: block not verbatim in {source}:\n{block}"
    assert "## The fast path" in text
    assert text.index("<!-- quote:") < text.index("## The fast path"), "the reference comes first"
