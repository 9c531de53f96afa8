"""The layers of conditional models: tuples through the layer contract, labels, and each layer's maths.

Gradients: every configuration of ``gradcheck_cases.conditional_cases`` (tuple inputs and outputs,
repeated labels, batch 1) passes the float64 finite-difference check on the fast layers and on the
textbook functions (tests/test_gradcheck.py runs them with the whole suite), and here the two agree
with each other: forward, every input gradient and every parameter gradient.
"""
import numpy as np
import pytest

import scratchgan.layers as L
import scratchgan.reference as R
from scratchgan import backend
from scratchgan.backend import RNG
from scratchgan.gradcheck import check_layer, upstream_gradient
from scratchgan.gradcheck_cases import conditional_cases, reference_of, run_case

CASES = conditional_cases()


def ids(cases):
    return [f"{c.name}[{c.config}]" for c in cases]


def assert_same(fast, ref, what):
    if isinstance(fast, tuple) or isinstance(ref, tuple):
        assert isinstance(fast, tuple) and isinstance(ref, tuple) and len(fast) == len(ref), what
        for k, (a, b) in enumerate(zip(fast, ref)):
            assert_same(a, b, f"{what}[{k}]")
        return
    if fast is None or ref is None:
        assert fast is None and ref is None, f"{what}: {fast!r} vs {ref!r}"
        return
    np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), rtol=1e-10, atol=1e-12, err_msg=what)


def shape_of(y):
    return tuple(shape_of(p) for p in y) if isinstance(y, tuple) else tuple(y.shape)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_fast_layer_equals_reference(case):
    layer, x, train = case.build()
    y = layer.forward(x, train=train, keep_cache=True)
    forward, backward, params = reference_of(layer, train)
    dy = upstream_gradient(shape_of(y), seed=3)
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


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_gradients_match_finite_differences(case):
    errors = run_case(case)
    assert errors and max(errors.values()) < 1e-7, errors


# -- labels: repeated rows add up ------------------------------------------------------------------

def test_embedding_gradient_adds_every_sample_of_a_repeated_label():
    layer = L.Embedding(4, 3, rng=RNG(0)).to(dtype=np.float64)
    y = np.array([1, 3, 1, 1, 0])
    dy = np.random.default_rng(0).standard_normal((5, 3))
    out = layer.forward(y)
    assert np.array_equal(out, layer.params["weight"][y])
    assert layer.backward(dy) is None                      # labels have no gradient
    expected = np.zeros((4, 3))
    for n, k in enumerate(y):
        expected[k] += dy[n]
    np.testing.assert_allclose(layer.grads["weight"], expected, rtol=1e-14)
    naive = np.zeros((4, 3))
    naive[y] += dy                                         # fancy-index += keeps one of the three rows of label 1
    assert not np.allclose(naive, expected), "the test must tell a scatter-add from fancy-index assignment"
    _, cache = R.embedding_forward(y, layer.params["weight"])
    np.testing.assert_allclose(R.embedding_backward(dy, cache)[1], expected, rtol=1e-14)


def test_projection_class_gradient_adds_repeated_labels():
    layer = L.Projection(3, 2, rng=RNG(1)).to(dtype=np.float64)
    h, y = np.random.default_rng(2).standard_normal((4, 3)), np.array([1, 1, 0, 1])
    out = layer.forward((h, y))
    w, v, b = layer.params["weight"], layer.params["class_weight"], layer.params["bias"]
    np.testing.assert_allclose(out[:, 0], h @ w[0] + (h * v[y]).sum(1) + b[0], rtol=1e-13)
    g = np.random.default_rng(3).standard_normal((4, 1))
    dh, dlabels = layer.backward(g)
    assert dlabels is None
    np.testing.assert_allclose(dh, g * (w + v[y]), rtol=1e-13)
    np.testing.assert_allclose(layer.grads["class_weight"][1], (g[[0, 1, 3]] * h[[0, 1, 3]]).sum(0), rtol=1e-13)
    np.testing.assert_allclose(layer.grads["class_weight"][0], g[2, 0] * h[2], rtol=1e-13)


def test_one_hot_codes_planes_and_dtype():
    y = np.array([2, 0, 2])
    codes = L.OneHot(3).forward(y)
    assert codes.dtype == np.float32 and np.array_equal(codes, np.eye(3, dtype=np.float32)[y])
    planes = L.OneHot(3, spatial=(4, 5)).to(dtype=np.float64).forward(y)
    assert planes.shape == (3, 3, 4, 5) and planes.dtype == np.float64
    assert np.array_equal(planes[:, :, 2, 3], np.eye(3)[y]) and np.array_equal(planes.sum(axis=1), np.ones((3, 4, 5)))
    inside = L.Chain(L.OneHot(3)).to(dtype=np.float64)   # .to reaches a OneHot inside a container
    assert inside.forward(y).dtype == np.float64
    ref, _ = R.one_hot_forward(y, 3, np.float64, spatial=(4, 5))
    assert np.array_equal(ref, planes)


# -- tuples through the layer contract --------------------------------------------------------------

def test_parallel_concat_chain_pass_tuples_and_split_the_gradient():
    rng = RNG(0)
    net = L.Chain(L.Parallel(L.Dense(3, 2, rng=rng), L.Identity()), L.Concat()).to(dtype=np.float64)
    a, b = np.random.default_rng(0).standard_normal((4, 3)), np.random.default_rng(1).standard_normal((4, 5))
    out = net.forward((a, b))
    assert out.shape == (4, 7) and np.array_equal(out[:, 2:], b)
    dy = np.random.default_rng(2).standard_normal((4, 7))
    da, db = net.backward(dy)
    np.testing.assert_allclose(da, dy[:, :2] @ net[0][0].params["weight"], rtol=1e-13)
    assert np.array_equal(db, dy[:, 2:])
    net.forward((a, b))
    assert net.backward(dy, input_grad=False) is None
    assert np.abs(net[0][0].grads["weight"]).max() > 0


def test_fork_sums_the_branches_gradients_and_outputs_a_tuple():
    fork = L.Fork(L.Identity(), L.Identity(), L.Tanh())
    x = np.random.default_rng(0).standard_normal((2, 3))
    out = fork.forward(x)
    assert isinstance(out, tuple) and len(out) == 3
    d = tuple(np.random.default_rng(k).standard_normal((2, 3)) for k in range(3))
    np.testing.assert_allclose(fork.backward(d), d[0] + d[1] + d[2] * (1 - np.tanh(x) ** 2), rtol=1e-6)


def test_tuple_gradients_are_checked_against_the_output():
    fork = L.Fork(L.Identity(), L.Identity())
    x = np.ones((2, 3), np.float32)
    fork.forward(x)
    with pytest.raises(TypeError, match=r"Fork of 2 branches backward: expected a tuple of 2 upstream gradients \(one "
                                        r"per branch\), got ndarray of shape \(2, 3\)"):
        fork.backward(np.ones((2, 3), np.float32))
    concat = L.Concat()
    concat.forward((x, x))
    with pytest.raises(ValueError, match=r"Concat\(axis=1\): upstream gradient has shape \(2, 5\) but the output had "
                                         r"shape \(2, 6\)"):
        concat.backward(np.ones((2, 5), np.float32))
    heads = L.Fork(L.Dense(3, 1), L.Dense(3, 2))
    heads.forward(x)
    with pytest.raises(TypeError, match="upstream gradient dtype float64 does not match parameter dtype float32"):
        heads.backward((np.ones((2, 1), np.float32), np.ones((2, 2))))


def test_one_cache_per_layer_holds_for_containers():
    net = L.Parallel(L.Dense(3, 2), L.OneHot(4))
    x = (np.ones((2, 3), np.float32), np.array([0, 3]))
    net.forward(x)
    with pytest.raises(RuntimeError, match="forward called again before backward"):
        net.forward(x)
    net.clear_cache()
    net.forward(x, keep_cache=False)


@pytest.mark.parametrize("layer, x, error, message", [
    (L.Concat(), (np.ones((2, 3), np.float32), np.ones((3, 3), np.float32)), ValueError, "agree on every axis but 1"),
    (L.Concat(), (np.ones((2, 3), np.float32), np.ones((2, 3))), TypeError, "input 1 is float64"),
    (L.Concat(), np.ones((2, 3), np.float32), TypeError, "expected a tuple"),
    (L.Concat(axis=2), (np.ones((2, 3), np.float32),), ValueError, "has no axis 2"),
    (L.Parallel(L.Identity(), L.Identity()), (np.ones(2),), ValueError,
     "Parallel of 2 branches: expected a tuple of 2 inputs, got 1"),
    (L.Select(2), (np.ones(2), np.ones(2)), ValueError, "at least 3 inputs"),
    (L.OneHot(3), np.array([0, 3]), ValueError, r"OneHot\(3\): label 3 is outside the 3 classes 0..2"),
    (L.OneHot(3), np.array([0.0, 1.0]), TypeError, "integer class labels"),
    (L.Embedding(3, 2), np.array([[0, 1]]), TypeError, r"integer class labels of shape \(N,\)"),
    (L.Embedding(3, 2), np.array([-1, 1]), ValueError, "label -1 is outside"),
    (L.Projection(4, 3), np.ones((2, 4), np.float32), TypeError, "expected a tuple"),
    (L.Projection(4, 3), (np.ones((2, 5), np.float32), np.array([0, 1])), ValueError, r"features of shape \(N, 4\)"),
    (L.Projection(4, 3), (np.ones((2, 4), np.float32), np.array([0])), ValueError, "2 feature rows but 1 labels"),
])
def test_bad_input_names_the_layer(layer, x, error, message):
    with pytest.raises(error, match=message):
        layer.forward(x)


@pytest.mark.parametrize("make, message", [
    (lambda: L.Concat(0), "axis 0 is the batch axis"), (lambda: L.Concat(1.0), "axis must be an integer"),
    (lambda: L.Parallel(), "at least one branch"), (lambda: L.Fork(L.Dense(2, 2), "tanh"), "expected layers"),
    (lambda: L.Select(-1), r"Select: index must be an integer >= 0"), (lambda: L.OneHot(0), "num_classes"),
    (lambda: L.OneHot(3, spatial=(4,)), r"spatial must be \(H, W\)"), (lambda: L.Embedding(3, 0), "dim"),
    (lambda: L.Projection(0, 3), "in_features"),
])
def test_bad_hyper_parameters_fail_at_construction(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_state_dict_names_follow_the_branches():
    net = L.Chain(L.Parallel(L.Identity(), L.Chain(L.Embedding(10, 4))), L.Concat(), L.Dense(8, 2))
    assert sorted(net.state_dict()) == ["0.1.0.weight", "2.bias", "2.weight"]
    assert net.num_params() == 10 * 4 + 8 * 2 + 2


def test_float32_stays_float32_through_a_conditional_model():
    net = L.Chain(L.Parallel(L.Identity(), L.OneHot(3, spatial=(4, 4))), L.Concat(), L.Conv2d(4, 2, 3), L.Flatten(),
                  L.Fork(L.Dense(8, 1), L.Dense(8, 3)))
    out = net.forward((np.ones((2, 1, 4, 4), np.float32), np.array([0, 2])))
    assert all(o.dtype == np.float32 for o in out)
    dx, dlabels = net.backward(tuple(np.ones_like(o) for o in out))
    assert dx.dtype == np.float32 and dlabels is None


def test_labels_on_the_wrong_device_are_named(cupy):
    layer = L.Embedding(3, 2)
    with pytest.raises(ValueError, match="labels are on gpu but the parameters are on cpu"):
        layer.forward(cupy.asarray([0, 1]))


def test_a_conditional_model_runs_on_the_gpu_as_on_the_cpu(cupy):
    backend.set_default_dtype(np.float64)
    net = L.Chain(L.Parallel(L.Dense(3, 2, rng=RNG(0)), L.Chain(L.Embedding(3, 2, rng=RNG(1)))), L.Concat(),
                  L.Fork(L.Dense(4, 1, rng=RNG(2)), L.Dense(4, 3, rng=RNG(3))))
    x = (np.random.default_rng(0).standard_normal((5, 3)), np.array([0, 2, 2, 1, 0]))
    cpu = net.forward(x)
    grads_cpu = net.backward(tuple(np.ones_like(o) for o in cpu))
    net.to("gpu")
    gpu = net.forward((cupy.asarray(x[0]), cupy.asarray(x[1])))
    grads_gpu = net.backward(tuple(cupy.ones_like(o) for o in gpu))
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(a, cupy.asnumpy(b), rtol=1e-12)
    np.testing.assert_allclose(grads_cpu[0], cupy.asnumpy(grads_gpu[0]), rtol=1e-12)
