"""scratchgan's layers, losses and optimizers against PyTorch in float64, an independent reference.

Each layer configuration copies scratchgan's float64 parameters (random values) into the
matching torch module, runs the same input forward and the same random upstream gradient
back, and requires the output, the input gradient, every parameter gradient and, for
BatchNorm, the running statistics to agree: max |ours - torch| / max |torch| <= 1e-9.
Losses compare value and gradient; optimizers compare parameters and state over several steps.

Skipped where torch is missing (CI). With a torch venv:
    PYTHONPATH=. python -m pytest -q -s tests/test_torch_reference.py    (-s prints a summary table)
"""
import pytest

torch = pytest.importorskip("torch")

import zlib  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import scratchgan.layers as L  # noqa: E402
from scratchgan import backend, losses  # noqa: E402
from scratchgan.optim import SGD, Adam  # noqa: E402

MAX_REL_ERROR = 1e-9
TINY = np.finfo(np.float64).tiny
WORST = defaultdict(dict)  # family -> {config: worst relative error over everything compared}


# -- comparison ---------------------------------------------------------------------------------

def to_numpy(value):
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def rel_error(ours, ref):
    """max |ours - ref| / max |ref| (ref all zeros: the absolute error over the tiniest float)."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(to_numpy(ref), dtype=np.float64)
    assert ours.shape == ref.shape, f"shape {ours.shape} but torch gives {ref.shape}"
    if ref.size == 0:
        return 0.0
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), TINY))


def assert_agree(family, config, quantities):
    """``quantities``: {name: (ours, torch's)}. Records the worst error, fails on any above the bound."""
    errors = {name: rel_error(ours, ref) for name, (ours, ref) in quantities.items()}
    assert errors, "nothing was compared"
    WORST[family][config] = max(errors.values())
    bad = {name: f"{err:.2e}" for name, err in errors.items() if not err <= MAX_REL_ERROR}
    assert not bad, f"{family} [{config}]: relative error above {MAX_REL_ERROR:g} against torch: {bad}"


def seeded_rng(*names):
    return np.random.default_rng(zlib.crc32("/".join(names).encode()))


@pytest.fixture(autouse=True)
def _float64_layers():
    backend.set_default_dtype(np.float64)
    yield


@pytest.fixture(scope="module", autouse=True)
def _print_summary():
    yield
    if WORST:
        print("\n\nworst relative error against torch (float64), per family:")
        print(f"  {'family':<24}{'configs':>8}  {'worst rel error':>16}")
        for family, configs in WORST.items():
            print(f"  {family:<24}{len(configs):>8}  {max(configs.values()):>16.2e}")


# -- pairing scratchgan layers with torch modules -------------------------------------------------------

def parameter_pairs(ours, module):
    """(name, scratchgan layer, key, torch parameter), matched in registration order, checked by shape."""
    mine, theirs = ours.named_parameters(), list(module.named_parameters())
    assert len(mine) == len(theirs), f"{len(mine)} scratchgan parameters but {len(theirs)} torch ones"
    for (name, layer, key), (torch_name, param) in zip(mine, theirs):
        assert tuple(layer.params[key].shape) == tuple(param.shape), (name, torch_name)
    return [(name, layer, key, param) for (name, layer, key), (_, param) in zip(mine, theirs)]


def buffer_pairs(ours, module):
    """(name, scratchgan layer, key, torch buffer) for BatchNorm's running statistics."""
    mine = [(f"{prefix}.{key}" if prefix else key, layer, key)
            for prefix, layer in ours.named_layers() for key in layer.buffers]
    theirs = list(module.named_buffers())
    assert len(mine) == len(theirs), f"{len(mine)} scratchgan buffers but {len(theirs)} torch ones"
    for (name, layer, key), (torch_name, buf) in zip(mine, theirs):
        assert key == torch_name.rsplit(".", 1)[-1], (name, torch_name)
    return [(name, layer, key, buf) for (name, layer, key), (_, buf) in zip(mine, theirs)]


def copy_random_parameters(ours, module, rng):
    for _, layer, key, param in parameter_pairs(ours, module):
        value = rng.standard_normal(param.shape) * 0.7
        layer.params[key] = value
        with torch.no_grad():
            param.copy_(torch.from_numpy(value.copy()))


def copy_random_running_stats(ours, module, rng):
    for _, layer, key, buf in buffer_pairs(ours, module):
        if key == "running_mean":
            value = rng.standard_normal(buf.shape)
        elif key == "running_var":
            value = rng.uniform(0.3, 2.5, buf.shape)
        else:
            continue
        layer.buffers[key] = value
        with torch.no_grad():
            buf.copy_(torch.from_numpy(value.copy()))


def with_zeros(x):
    """Every third entry set to exactly 0: checks the kink convention (gradient 0 at 0)."""
    x.reshape(-1)[::3] = 0.0
    return x


def compare_layer(family, config, ours, module, input_shapes, train=True, make_input=None):
    """One forward/backward per input shape on both sides; gradients accumulate across passes."""
    rng = seeded_rng(family, config)
    module = module.double().train(train)
    ours.train(train)
    copy_random_parameters(ours, module, rng)
    if not train:
        copy_random_running_stats(ours, module, rng)
    quantities = {}
    for step, shape in enumerate(input_shapes):
        x = 1.5 * rng.standard_normal(shape) + 0.3
        x = make_input(x) if make_input else x
        x_t = torch.from_numpy(x.copy()).requires_grad_()
        y_t = module(x_t)
        y = ours.forward(x, train=train, keep_cache=True)
        dy = rng.standard_normal(tuple(y_t.shape))
        dx = ours.backward(dy)
        y_t.backward(torch.from_numpy(dy.copy()))
        quantities[f"y[{step}]"] = (y, y_t)
        quantities[f"dx[{step}]"] = (dx, x_t.grad)
    for name, layer, key, param in parameter_pairs(ours, module):
        quantities[f"d{name}"] = (layer.grads[key], param.grad)
    for name, layer, key, buf in buffer_pairs(ours, module):
        if key == "num_batches_tracked":
            assert int(layer.buffers[key]) == int(buf), f"{name}: {int(layer.buffers[key])} vs torch {int(buf)}"
        else:
            quantities[name] = (layer.buffers[key], buf)
    assert_agree(family, config, quantities)


# -- layer configurations -------------------------------------------------------------------------

class TorchMaxout(tnn.Module):
    """Linear to out * pieces, viewed as (N, out, pieces) -- unit o's pieces are rows o*pieces ... --
    then the max over pieces: scratchgan's Maxout weight layout (out * pieces, in)."""

    def __init__(self, in_features, out_features, pieces):
        super().__init__()
        self.linear = tnn.Linear(in_features, out_features * pieces)
        self.out_features, self.pieces = out_features, pieces

    def forward(self, x):
        return self.linear(x).view(len(x), self.out_features, self.pieces).max(dim=2).values


class TorchReshape(tnn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(len(x), *self.shape)


ACTIVATIONS = {  # scratchgan Dense activation -> torch module
    "relu": (L.relu, tnn.ReLU), "leakyrelu": (L.leakyrelu, lambda: tnn.LeakyReLU(0.2)),
    "tanh": (L.tanh, tnn.Tanh), "sigmoid": (L.sigmoid, tnn.Sigmoid), "softmax": ("softmax", lambda: tnn.Softmax(1)),
}


def dense(fan_in, fan_out, n, activation=None, bias=True, passes=1):
    def build():
        act, torch_act = ACTIVATIONS[activation] if activation else (None, None)
        torch_layers = [tnn.Linear(fan_in, fan_out, bias=bias)] + ([torch_act()] if activation else [])
        return L.Dense(fan_in, fan_out, act, bias=bias), tnn.Sequential(*torch_layers), [(n, fan_in)] * passes
    return build


def maxout(fan_in, fan_out, pieces, n):
    return lambda: (L.Maxout(fan_in, fan_out, pieces), TorchMaxout(fan_in, fan_out, pieces), [(n, fan_in)])


def conv(x_shape, out, k, s=1, p=0, bias=True, passes=1):
    c = x_shape[1]
    return lambda: (L.Conv2d(c, out, k, s, p, bias=bias),
                    tnn.Conv2d(c, out, k, stride=s, padding=p, bias=bias), [x_shape] * passes)


def conv_t(x_shape, out, k, s=1, p=0, op=0, bias=True):
    c = x_shape[1]
    return lambda: (L.ConvTranspose2d(c, out, k, s, p, op, bias=bias),
                    tnn.ConvTranspose2d(c, out, k, stride=s, padding=p, output_padding=op, bias=bias), [x_shape])


def batchnorm(x_shape, momentum=0.1, eps=1e-5, passes=1):
    c = x_shape[1]
    torch_bn = tnn.BatchNorm1d if len(x_shape) == 2 else tnn.BatchNorm2d
    return lambda: (L.BatchNorm(c, eps=eps, momentum=momentum), torch_bn(c, eps=eps, momentum=momentum),
                    [x_shape] * passes)


def simple(make_ours, make_torch, x_shape):
    return lambda: (make_ours(), make_torch(), [x_shape])


def generator_chain():
    """DCGAN-style: no bias before a train-mode BatchNorm, whose exact gradient is 0 (both sides give
    rounding noise ~1e-17 there, which a relative error cannot compare)."""
    ours = L.Chain(L.Dense(6, 48, bias=False), L.BatchNorm(48), L.ReLU(), L.Reshape(3, 4, 4),
                   L.ConvTranspose2d(3, 4, 4, 2, 1, bias=False), L.BatchNorm(4), L.ReLU(),
                   L.ConvTranspose2d(4, 1, 3, 2, 1, 1), L.Tanh())
    ref = tnn.Sequential(tnn.Linear(6, 48, bias=False), tnn.BatchNorm1d(48), tnn.ReLU(), tnn.Unflatten(1, (3, 4, 4)),
                         tnn.ConvTranspose2d(3, 4, 4, 2, 1, bias=False), tnn.BatchNorm2d(4), tnn.ReLU(),
                         tnn.ConvTranspose2d(4, 1, 3, 2, 1, 1), tnn.Tanh())
    return ours, ref, [(5, 6)]


def discriminator_chain(dropout=False):
    def build():
        ours = L.Chain(L.Conv2d(1, 4, 4, 2, 1), L.LeakyReLU(0.2), L.Conv2d(4, 6, 3, 2, 1, bias=False),
                       L.BatchNorm(6), L.LeakyReLU(0.2), L.Flatten(), *([L.Dropout(0.5)] if dropout else []),
                       L.Maxout(6 * 4 * 4, 5, 3), L.Dense(5, 1, L.sigmoid))
        ref = tnn.Sequential(tnn.Conv2d(1, 4, 4, 2, 1), tnn.LeakyReLU(0.2), tnn.Conv2d(4, 6, 3, 2, 1, bias=False),
                             tnn.BatchNorm2d(6), tnn.LeakyReLU(0.2), tnn.Flatten(),
                             *([tnn.Dropout(0.5)] if dropout else []),
                             TorchMaxout(6 * 4 * 4, 5, 3), tnn.Linear(5, 1), tnn.Sigmoid())
        return ours, ref, [(4, 1, 16, 16)]
    return build


def mlp_chain():
    ours = L.Chain(L.Dense(12, 9, L.tanh), L.Dense(9, 7, L.leakyrelu), L.Maxout(7, 4, 2), L.Dense(4, 3), L.Softmax())
    ref = tnn.Sequential(tnn.Linear(12, 9), tnn.Tanh(), tnn.Linear(9, 7), tnn.LeakyReLU(0.2),
                         TorchMaxout(7, 4, 2), tnn.Linear(4, 3), tnn.Softmax(1))
    return ours, ref, [(8, 12)]


# (family, config, build, train, input transform); build() -> (scratchgan layer, torch module, input shapes)
LAYER_CASES = [
    ("Dense", "bias", dense(7, 5, 6), True, None),
    ("Dense", "no_bias", dense(7, 5, 6, bias=False), True, None),
    ("Dense", "relu", dense(9, 6, 5, "relu"), True, None),
    ("Dense", "leakyrelu", dense(9, 6, 5, "leakyrelu"), True, None),
    ("Dense", "tanh", dense(28, 11, 4, "tanh"), True, None),
    ("Dense", "sigmoid_no_bias", dense(6, 1, 8, "sigmoid", bias=False), True, None),
    ("Dense", "softmax", dense(5, 10, 3, "softmax"), True, None),
    ("Dense", "batch1_tanh", dense(8, 3, 1, "tanh"), True, None),
    ("Dense", "two_passes_accumulate", dense(7, 4, 3, "relu", passes=2), True, None),
    ("Maxout", "in7_out4_pieces3", maxout(7, 4, 3, 6), True, None),
    ("Maxout", "in10_out5_pieces2", maxout(10, 5, 2, 4), True, None),
    ("Maxout", "in5_out1_pieces5_batch1", maxout(5, 1, 5, 1), True, None),
    ("Conv2d", "k3_s1_p0", conv((2, 3, 7, 7), 4, 3), True, None),
    ("Conv2d", "k3_s2_p1_nonsquare_input", conv((2, 3, 9, 8), 5, 3, 2, 1), True, None),
    ("Conv2d", "k3x5_s1_p2", conv((2, 2, 6, 9), 3, (3, 5), 1, 2), True, None),
    ("Conv2d", "k2x3_s2x1_p1x0_no_bias", conv((3, 4, 7, 10), 2, (2, 3), (2, 1), (1, 0), bias=False), True, None),
    ("Conv2d", "k5_s2_p2_batch1", conv((1, 1, 11, 13), 6, 5, 2, 2), True, None),
    ("Conv2d", "k1_s1_p0", conv((2, 3, 5, 4), 3, 1), True, None),
    ("Conv2d", "k4_s2_p1_dcgan", conv((2, 3, 16, 16), 4, 4, 2, 1), True, None),
    ("Conv2d", "k2_s3_gaps", conv((2, 2, 8, 7), 3, 2, 3), True, None),
    ("Conv2d", "two_passes_accumulate", conv((2, 2, 6, 5), 3, 3, 1, 1, passes=2), True, None),
    ("ConvTranspose2d", "k3_s1_p0", conv_t((2, 4, 5, 5), 3, 3), True, None),
    ("ConvTranspose2d", "k4_s2_p1_dcgan", conv_t((2, 4, 4, 4), 3, 4, 2, 1), True, None),
    ("ConvTranspose2d", "k3_s2_p1_op1_nonsquare_input", conv_t((2, 3, 5, 6), 2, 3, 2, 1, 1), True, None),
    ("ConvTranspose2d", "k3x5_s2x1_p0x2_op1x0_no_bias",
     conv_t((2, 2, 4, 7), 3, (3, 5), (2, 1), (0, 2), (1, 0), bias=False), True, None),
    ("ConvTranspose2d", "k5_s2_p2_op1_batch1", conv_t((1, 5, 7, 7), 1, 5, 2, 2, 1), True, None),
    ("ConvTranspose2d", "k2_s3_op2_gaps", conv_t((2, 3, 3, 4), 2, 2, 3, 0, 2), True, None),
    ("ConvTranspose2d", "k1_s1_p0", conv_t((2, 6, 3, 5), 4, 1), True, None),
    ("Conv2d", "k7_on_7x7_single_window_no_bias", conv((3, 4, 7, 7), 1, 7, bias=False), True, None),
    ("Conv2d", "k3x5_on_3x5_single_window_batch1", conv((1, 2, 3, 5), 3, (3, 5)), True, None),
    ("ConvTranspose2d", "k7_from_1x1_no_bias", conv_t((3, 5, 1, 1), 4, 7, bias=False), True, None),
    ("ConvTranspose2d", "k4_s2_p1_one_input_channel", conv_t((2, 1, 5, 4), 3, 4, 2, 1), True, None),
    ("ConvTranspose2d", "k2x3_from_1x1_batch1", conv_t((1, 3, 1, 1), 2, (2, 3)), True, None),
    ("ConvTranspose2d", "k4_s2_p1_mnist_7to14", conv_t((2, 2, 7, 7), 3, 4, 2, 1), True, None),
    ("BatchNorm", "2d_train", batchnorm((8, 5)), True, None),
    ("BatchNorm", "2d_train_momentum0.3_eps1e-3", batchnorm((6, 4), momentum=0.3, eps=1e-3), True, None),
    ("BatchNorm", "2d_train_two_steps", batchnorm((7, 3), passes=2), True, None),
    ("BatchNorm", "4d_train", batchnorm((4, 3, 5, 6)), True, None),
    ("BatchNorm", "4d_train_batch1", batchnorm((1, 4, 3, 5)), True, None),
    ("BatchNorm", "4d_train_two_steps_momentum0.5", batchnorm((3, 2, 4, 4), momentum=0.5, passes=2), True, None),
    ("BatchNorm", "2d_eval", batchnorm((8, 5)), False, None),
    ("BatchNorm", "4d_eval_eps1e-3", batchnorm((3, 4, 5, 3), eps=1e-3), False, None),
    ("ReLU", "2d", simple(L.ReLU, tnn.ReLU, (7, 9)), True, None),
    ("ReLU", "4d_with_zeros", simple(L.ReLU, tnn.ReLU, (2, 3, 4, 5)), True, with_zeros),
    ("LeakyReLU", "2d", simple(lambda: L.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), (7, 9)), True, None),
    ("LeakyReLU", "4d_with_zeros", simple(lambda: L.LeakyReLU(0.2), lambda: tnn.LeakyReLU(0.2), (2, 3, 4, 5)),
     True, with_zeros),
    ("Tanh", "2d", simple(L.Tanh, tnn.Tanh, (7, 9)), True, None),
    ("Tanh", "4d_large_inputs", simple(L.Tanh, tnn.Tanh, (2, 3, 4, 5)), True, lambda x: 15 * x),
    ("Sigmoid", "2d", simple(L.Sigmoid, tnn.Sigmoid, (7, 9)), True, None),
    ("Sigmoid", "4d_large_inputs", simple(L.Sigmoid, tnn.Sigmoid, (2, 3, 4, 5)), True, lambda x: 15 * x),
    ("Softmax", "axis1_2d", simple(L.Softmax, lambda: tnn.Softmax(1), (6, 10)), True, None),
    ("Softmax", "axis1_4d", simple(L.Softmax, lambda: tnn.Softmax(1), (2, 5, 3, 4)), True, None),
    ("Softmax", "axis1_large_logits", simple(L.Softmax, lambda: tnn.Softmax(1), (4, 7)), True, lambda x: 300 * x),
    ("Dropout", "eval_2d", simple(lambda: L.Dropout(0.5), lambda: tnn.Dropout(0.5), (6, 8)), False, None),
    ("Dropout", "eval_4d", simple(lambda: L.Dropout(0.3), lambda: tnn.Dropout(0.3), (2, 3, 4, 4)), False, None),
    ("Flatten", "4d", simple(L.Flatten, tnn.Flatten, (3, 2, 4, 5)), True, None),
    ("Reshape", "flat_to_chw", simple(lambda: L.Reshape(3, 4, 5), lambda: TorchReshape(3, 4, 5), (2, 60)), True, None),
    ("Reshape", "chw_to_hw_c", simple(lambda: L.Reshape((20, 3)), lambda: TorchReshape(20, 3), (2, 3, 4, 5)),
     True, None),
    ("Chain", "dcgan_generator_train", generator_chain, True, None),
    ("Chain", "discriminator_train", discriminator_chain(), True, None),
    ("Chain", "discriminator_eval_with_dropout", discriminator_chain(dropout=True), False, None),
    ("Chain", "mlp_maxout_softmax", mlp_chain, True, None),
]


@pytest.mark.parametrize("family, config, build, train, make_input",
                         LAYER_CASES, ids=[f"{c[0]}[{c[1]}]" for c in LAYER_CASES])
def test_layer_matches_torch(family, config, build, train, make_input):
    ours, module, input_shapes = build()
    compare_layer(family, config, ours, module, input_shapes, train=train, make_input=make_input)


def test_every_layer_family_is_compared():
    families = {case[0] for case in LAYER_CASES}
    assert families == {"Dense", "Maxout", "Conv2d", "ConvTranspose2d", "BatchNorm", "ReLU", "LeakyReLU", "Tanh",
                        "Sigmoid", "Softmax", "Dropout", "Flatten", "Reshape", "Chain"}


def test_comparison_catches_a_wrong_gradient():
    """The harness must fail when scratchgan is off: a Dense whose weight gradient is 1e-8 too large."""

    class SlightlyWrongDense(L.Dense):
        def _backward(self, dy, cache):
            dx = super()._backward(dy, cache)
            self.grads["weight"] *= 1 + 1e-8
            return dx

    with pytest.raises(AssertionError, match="dweight"):
        compare_layer("wrong", "dense", SlightlyWrongDense(4, 3), tnn.Linear(4, 3), [(5, 4)])
    WORST.pop("wrong")


# -- losses -----------------------------------------------------------------------------------------

# Makers of predictions and targets take (rng, prediction); a prediction's maker gets None.

def _uniform(lo, hi, *shape):
    return lambda rng, pred: rng.uniform(lo, hi, shape)


def _binary(*shape):
    return lambda rng, pred: rng.integers(0, 2, shape).astype(np.float64)


def _normal(scale, *shape):
    return lambda rng, pred: scale * rng.standard_normal(shape)


def _const(value):
    return lambda rng, pred: value


def _extreme_probs(*shape):
    """Probabilities within 1e-9 .. 1e-3 of 0 or 1 (inside scratchgan's float64 clamp of 1e-12)."""
    def make(rng, pred):
        near = 10.0 ** rng.uniform(-9, -3, shape)
        return np.where(rng.random(shape) < 0.5, near, 1 - near)
    return make


def _class_indices(n, k):
    return lambda rng, pred: rng.integers(0, k, n)


def _class_probs(n, k, total=1.0):
    def make(rng, pred):
        e = np.exp(rng.standard_normal((n, k)))
        return total * e / e.sum(axis=1, keepdims=True)
    return make


def _target_tied_to_prediction():
    """A target equal to the prediction at every third entry (L1's kink: gradient 0 there)."""
    def make(rng, pred):
        target = pred + rng.standard_normal(pred.shape)
        target.reshape(-1)[::3] = pred.reshape(-1)[::3]
        return target
    return make


def torch_target(target, pred_t):
    if isinstance(target, float):
        return torch.full_like(pred_t, target)
    return torch.from_numpy(np.asarray(target).copy())


TORCH_LOSSES = {
    "binary_cross_entropy": lambda p, t: F.binary_cross_entropy(p, torch_target(t, p)),
    "bce_with_logits": lambda z, t: F.binary_cross_entropy_with_logits(z, torch_target(t, z)),
    "softmax_cross_entropy": lambda z, t: F.cross_entropy(z, torch_target(t, z)),
    "mse": lambda p, t: F.mse_loss(p, torch_target(t, p)),
    "l1": lambda p, t: F.l1_loss(p, torch_target(t, p)),
}

# (loss, config, prediction maker, target maker)
LOSS_CASES = [
    ("binary_cross_entropy", "hard_targets", _uniform(0.01, 0.99, 8, 1), _binary(8, 1)),
    ("binary_cross_entropy", "soft_targets_4d", _uniform(0.01, 0.99, 2, 3, 4, 4), _uniform(0, 1, 2, 3, 4, 4)),
    ("binary_cross_entropy", "scalar_target", _uniform(0.01, 0.99, 16, 1), _const(1.0)),
    ("binary_cross_entropy", "near_0_and_1", _extreme_probs(10, 3), _binary(10, 3)),
    ("bce_with_logits", "hard_targets", _normal(3, 8, 1), _binary(8, 1)),
    ("bce_with_logits", "soft_targets_4d", _normal(2, 2, 3, 4, 4), _uniform(0, 1, 2, 3, 4, 4)),
    ("bce_with_logits", "scalar_target", _normal(3, 16, 1), _const(0.0)),
    ("bce_with_logits", "large_logits", _normal(40, 12, 2), _binary(12, 2)),
    ("softmax_cross_entropy", "indices", _normal(2, 6, 10), _class_indices(6, 10)),
    ("softmax_cross_entropy", "indices_large_logits", _normal(200, 5, 4), _class_indices(5, 4)),
    ("softmax_cross_entropy", "probabilities", _normal(2, 6, 10), _class_probs(6, 10)),
    ("softmax_cross_entropy", "probabilities_summing_to_0.9", _normal(2, 4, 5), _class_probs(4, 5, 0.9)),
    ("mse", "2d", _normal(1, 8, 3), _normal(1, 8, 3)),
    ("mse", "4d", _normal(1, 2, 3, 4, 5), _normal(1, 2, 3, 4, 5)),
    ("mse", "scalar_target", _normal(1, 8, 3), _const(0.5)),
    ("l1", "2d", _normal(1, 8, 3), _normal(1, 8, 3)),
    ("l1", "4d_with_ties", _normal(1, 2, 3, 4, 5), _target_tied_to_prediction()),
]


@pytest.mark.parametrize("family, config, make_pred, make_target",
                         LOSS_CASES, ids=[f"{c[0]}[{c[1]}]" for c in LOSS_CASES])
def test_loss_matches_torch(family, config, make_pred, make_target):
    rng = seeded_rng(family, config)
    pred = make_pred(rng, None)
    target = make_target(rng, pred)
    value, grad = getattr(losses, family)(pred, target)
    pred_t = torch.from_numpy(pred.copy()).requires_grad_()
    ref = TORCH_LOSSES[family](pred_t, target)
    ref.backward()
    assert np.shape(value) == ()
    assert_agree(family, config, {"value": (value, ref), "grad": (grad, pred_t.grad)})


# -- optimizers -------------------------------------------------------------------------------------

OPTIMIZERS = {"SGD": (SGD, torch.optim.SGD), "Adam": (Adam, torch.optim.Adam)}
TORCH_STATE_NAMES = {"momentum": "momentum_buffer", "exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}

OPTIMIZER_CASES = [
    ("SGD", "plain", dict(lr=0.1)),
    ("SGD", "weight_decay", dict(lr=0.1, weight_decay=0.01)),
    ("SGD", "momentum", dict(lr=0.05, momentum=0.9)),
    ("SGD", "momentum_weight_decay", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("Adam", "defaults", dict(lr=1e-3)),
    ("Adam", "dcgan_betas_weight_decay", dict(lr=2e-4, betas=(0.5, 0.999), weight_decay=0.01)),
    ("Adam", "eps1e-6_weight_decay0.1", dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1)),
]


@pytest.mark.parametrize("family, config, settings", OPTIMIZER_CASES, ids=[f"{c[0]}[{c[1]}]" for c in OPTIMIZER_CASES])
def test_optimizer_matches_torch(family, config, settings, steps=6):
    rng = seeded_rng(family, config)
    model = L.Chain(L.Dense(6, 4), L.BatchNorm(4), L.Dense(4, 3, bias=False), L.Conv2d(1, 2, 3))
    named = model.named_parameters()
    torch_params = []
    for _, layer, key in named:
        layer.params[key] = rng.standard_normal(layer.params[key].shape)
        torch_params.append(torch.nn.Parameter(torch.from_numpy(layer.params[key].copy())))
    start = [layer.params[key].copy() for _, layer, key in named]
    ours_cls, torch_cls = OPTIMIZERS[family]
    ours, ref = ours_cls(model, **settings), torch_cls(torch_params, foreach=False, **settings)
    quantities = {}
    for step in range(steps):
        for (_, layer, key), param in zip(named, torch_params):
            grad = rng.standard_normal(param.shape) * 10.0 ** rng.uniform(-3, 1)
            layer.grads[key][...] = grad
            param.grad = torch.from_numpy(grad.copy())
        ours.step()
        ref.step()
        for (name, layer, key), param in zip(named, torch_params):
            quantities[f"{name} after step {step + 1}"] = (layer.params[key], param)
    for (name, layer, key), param, p0 in zip(named, torch_params, start):
        quantities[f"{name} total update"] = (layer.params[key] - p0, param.detach().numpy() - p0)
        for slot, value in ours.state.items():
            if slot.startswith(name + "."):
                torch_slot = TORCH_STATE_NAMES[slot[len(name) + 1:]]
                quantities[f"state {slot}"] = (value, ref.state[param][torch_slot])
    if family == "Adam" or settings.get("momentum"):
        assert any(name.startswith("state") for name in quantities), "optimizer state was not compared"
    assert_agree(family, config, quantities)


# -- the benchmark's PyTorch runner at a batch other than the SPEC's ---------------------------

@pytest.mark.slow
@pytest.mark.parametrize("workload,batch", [("mlp", 8), ("dcgan", 5)])
def test_torch_reference_runs_at_another_batch(workload, batch):
    """``scratchgan bench --compare-torch --batch N`` runs the reference's own models and step
    on batches of N (its real batch repeated, fresh noise); here in this torch interpreter."""
    import sys

    from scratchgan import bench
    reference = bench.find_torch_reference()   # the copy shipped in the package
    result = bench.run_torch_reference(sys.executable, reference, workload, "cpu", steps=2, batch=batch)
    assert result["batch"] == batch and result["median_ms"] > 0
    if workload == "mlp":   # and at the SPEC's batch, the reference exactly as it is
        spec = bench.run_torch_reference(sys.executable, reference, workload, "cpu", steps=1)
        assert spec["batch"] == bench.SPEC_BATCH[workload]
