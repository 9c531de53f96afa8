"""The gradient-check suite: every layer and loss in several configurations.

Shared by ``scratchgan gradcheck`` (a table for users) and the pytest suite.
Each case builds a float64 layer and an input away from kinks (ReLU at 0,
Maxout ties), with random gamma/beta for BatchNorm. ``reference_cases`` runs the
same configurations through the textbook functions of ``scratchgan.reference``
(``gradcheck --reference``); ``reference_of`` maps a fast layer to them.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import layers as L
from . import losses
from . import reference as R
from .backend import RNG
from .gradcheck import TOLERANCE, check_function, check_layer, check_loss


@dataclass
class Case:
    name: str
    config: str
    build: Callable  # () -> (layer, x, train); losses: (loss_fn, pred, target);
    #                  reference layers: (forward, backward, x, params) as check_function takes them
    is_loss: bool = False
    is_reference: bool = False


def _f64(layer):
    return layer.to(dtype=np.float64)


def _normal(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


def _off_kink(*shape, seed=1):
    """Normal values pushed at least 0.1 away from 0."""
    x = _normal(*shape, seed=seed)
    return np.sign(x) * (0.1 + np.abs(x))


def _dense(n, fan_in, fan_out, **kw):
    return lambda: (_f64(L.Dense(fan_in, fan_out, rng=RNG(0), **kw)), _normal(n, fan_in), True)


def _conv(x_shape, out, k, s=1, p=0, bias=True):
    return lambda: (_f64(L.Conv2d(x_shape[1], out, k, s, p, bias=bias, rng=RNG(0))), _normal(*x_shape), True)


def _convt(x_shape, out, k, s=1, p=0, op=0, bias=True):
    return lambda: (_f64(L.ConvTranspose2d(x_shape[1], out, k, s, p, op, bias=bias, rng=RNG(0))),
                    _normal(*x_shape), True)


def _batchnorm(x_shape, train=True):
    def build():
        layer = _f64(L.BatchNorm(x_shape[1]))
        c = x_shape[1]
        layer.params["weight"][...] = 1 + 0.5 * _normal(c, seed=2)
        layer.params["bias"][...] = _normal(c, seed=3)
        layer.buffers["running_mean"][...] = _normal(c, seed=4)
        layer.buffers["running_var"][...] = 0.5 + np.abs(_normal(c, seed=5))
        return layer, 3 * _normal(*x_shape) + 1, train
    return build


def _maxout(n, fan_in, fan_out, pieces):
    def build():
        layer = _f64(L.Maxout(fan_in, fan_out, pieces, init="he_normal", rng=RNG(0)))
        for seed in range(100):  # pick an input whose winning piece leads by a wide margin everywhere
            x = _normal(n, fan_in, seed=seed)
            z = np.sort((x @ layer.params["weight"].T + layer.params["bias"]).reshape(n, fan_out, pieces), axis=2)
            if np.min(z[..., -1] - z[..., -2]) > 0.05:
                return layer, x, True
        raise RuntimeError("no well-separated Maxout input found")
    return build


def _simple(make, x_maker, train=True):
    return lambda: (make(), x_maker(), train)


def _chain():
    rng = RNG(0)
    chain = L.Chain(L.Conv2d(2, 3, 3, stride=2, padding=1, bias=False, rng=rng), L.BatchNorm(3), L.LeakyReLU(0.2),
                    L.Flatten(), L.Dense(3 * 3 * 3, 4, "tanh", rng=rng), L.Dense(4, 1, "sigmoid", rng=rng))
    return lambda: (_f64(chain), _normal(3, 2, 5, 6), True)


def _loss(fn, pred, target):
    return lambda: (fn, pred, target)


def layer_cases():
    return [
        Case("Dense", "3->5, batch 4", _dense(4, 3, 5)),
        Case("Dense", "7->2, no bias, batch 1", _dense(1, 7, 2, bias=False)),
        Case("Dense", "6->4 tanh, batch 3", _dense(3, 6, 4, activation="tanh")),
        Case("Dense", "5->3 sigmoid, batch 2", _dense(2, 5, 3, activation=L.sigmoid)),
        Case("Maxout", "6->4 x 3 pieces, batch 5", _maxout(5, 6, 4, 3)),
        Case("Maxout", "5->2 x 5 pieces, batch 1", _maxout(1, 5, 2, 5)),
        Case("Conv2d", "k3 s1 p0, 2x3x7x6", _conv((2, 3, 7, 6), 4, 3)),
        Case("Conv2d", "k3 s2 p1, 2x2x8x9", _conv((2, 2, 8, 9), 3, 3, 2, 1)),
        Case("Conv2d", "k4 s2 p1 (DCGAN), 2x3x8x8", _conv((2, 3, 8, 8), 2, 4, 2, 1)),
        Case("Conv2d", "k(2,3) s(2,1) p(0,2), batch 1, 1x2x5x7", _conv((1, 2, 5, 7), 3, (2, 3), (2, 1), (0, 2))),
        Case("Conv2d", "k5 s1 p2, no bias, 3x1x9x7", _conv((3, 1, 9, 7), 2, 5, 1, 2, bias=False)),
        Case("Conv2d", "k3 s3 p2, 2x2x7x5", _conv((2, 2, 7, 5), 2, 3, 3, 2)),
        Case("Conv2d", "k7 on 7x7 (DCGAN's last D layer), no bias", _conv((3, 4, 7, 7), 1, 7, bias=False)),
        Case("Conv2d", "k(3,5) on 3x5, batch 1", _conv((1, 2, 3, 5), 3, (3, 5))),
        Case("ConvTranspose2d", "k3 s1 p0, 2x3x4x5", _convt((2, 3, 4, 5), 2, 3)),
        Case("ConvTranspose2d", "k4 s2 p1 (DCGAN), 2x3x4x4", _convt((2, 3, 4, 4), 2, 4, 2, 1)),
        Case("ConvTranspose2d", "k3 s2 p1 op1, 2x2x3x5", _convt((2, 2, 3, 5), 3, 3, 2, 1, 1)),
        Case("ConvTranspose2d", "k(3,2) s(2,3) p(1,0) op(1,2), batch 1", _convt((1, 2, 3, 4), 2, (3, 2), (2, 3), (1, 0), (1, 2))),
        Case("ConvTranspose2d", "k7 s1 p0 on 1x1 (DCGAN), no bias", _convt((3, 4, 1, 1), 2, 7, bias=False)),
        Case("ConvTranspose2d", "k(2,3) on 1x1, batch 1", _convt((1, 3, 1, 1), 2, (2, 3))),
        Case("ConvTranspose2d", "k5 s3 p2 op2, 2x1x3x2", _convt((2, 1, 3, 2), 2, 5, 3, 2, 2)),
        Case("BatchNorm", "(N, C) train, 6x4", _batchnorm((6, 4))),
        Case("BatchNorm", "(N, C, H, W) train, 3x4x3x5", _batchnorm((3, 4, 3, 5))),
        Case("BatchNorm", "(N, C, H, W) train, batch 1, 1x3x4x4", _batchnorm((1, 3, 4, 4))),
        Case("BatchNorm", "(N, C, H, W) eval, 2x3x4x3", _batchnorm((2, 3, 4, 3), train=False)),
        Case("BatchNorm", "(N, C) eval, 5x3", _batchnorm((5, 3), train=False)),
        Case("ReLU", "3x4x5 off kink", _simple(L.ReLU, lambda: _off_kink(3, 4, 5))),
        Case("LeakyReLU", "alpha 0.2, 2x3x4x4", _simple(L.LeakyReLU, lambda: _off_kink(2, 3, 4, 4))),
        Case("LeakyReLU", "alpha 0.01, 5x6", _simple(lambda: L.LeakyReLU(0.01), lambda: _off_kink(5, 6))),
        Case("Tanh", "4x7", _simple(L.Tanh, lambda: 2 * _normal(4, 7))),
        Case("Sigmoid", "4x7", _simple(L.Sigmoid, lambda: 3 * _normal(4, 7))),
        Case("Softmax", "axis 1, 4x6", _simple(L.Softmax, lambda: 3 * _normal(4, 6))),
        Case("Softmax", "axis 1, 2x5x3x2", _simple(L.Softmax, lambda: _normal(2, 5, 3, 2))),
        Case("Softmax", "axis -1, 3x4", _simple(lambda: L.Softmax(axis=-1), lambda: _normal(3, 4))),
        Case("Dropout", "p 0.3 train, 6x8", _simple(lambda: L.Dropout(0.3), lambda: _normal(6, 8))),
        Case("Dropout", "p 0.5 eval, 4x5", _simple(lambda: L.Dropout(0.5), lambda: _normal(4, 5), train=False)),
        Case("Reshape", "2x12 -> 2x3x2x2", _simple(lambda: L.Reshape(3, 2, 2), lambda: _normal(2, 12))),
        Case("Flatten", "2x3x4x5", _simple(L.Flatten, lambda: _normal(2, 3, 4, 5))),
        Case("Chain", "Conv-BN-LeakyReLU-Flatten-Dense(tanh)-Dense(sigmoid)", _chain()),
        *lab_layer_cases(),
    ]


def _softmax_rows(n):
    z = _normal(n, 2, seed=6)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def loss_cases():
    p = 0.05 + 0.9 * np.random.default_rng(1).random((4, 3))
    t = (np.random.default_rng(2).random((4, 3)) > 0.5).astype(float)
    z = 3 * _normal(4, 3)
    labels = np.array([0, 2, 1, 2])
    soft = np.random.default_rng(3).dirichlet(np.ones(3), size=4)
    return [
        Case("binary_cross_entropy", "probabilities 4x3, 0/1 targets", _loss(losses.binary_cross_entropy, p, t), True),
        Case("binary_cross_entropy", "smoothed target 0.9", _loss(losses.binary_cross_entropy, p, 0.9), True),
        Case("two_class_cross_entropy", "softmax outputs 5x2, 0/1 targets",
             _loss(losses.two_class_cross_entropy, _softmax_rows(5), (t.ravel()[:5])), True),
        Case("two_class_cross_entropy", "smoothed target 0.9, batch 1",
             _loss(losses.two_class_cross_entropy, _softmax_rows(1), 0.9), True),
        Case("bce_with_logits", "logits 4x3, 0/1 targets", _loss(losses.bce_with_logits, z, t), True),
        Case("bce_with_logits", "smoothed target 0.9, batch 1", _loss(losses.bce_with_logits, z[:1], 0.9), True),
        Case("softmax_cross_entropy", "4x3, class indices", _loss(losses.softmax_cross_entropy, z, labels), True),
        Case("softmax_cross_entropy", "4x3, soft targets", _loss(losses.softmax_cross_entropy, z, soft), True),
        Case("mse", "4x3", _loss(losses.mse, z, _normal(4, 3, seed=4)), True),
        Case("l1", "4x3, away from ties", _loss(losses.l1, z, z + _off_kink(4, 3, seed=5)), True),
    ]


def all_cases(reference=False):
    """Every layer and loss case; with ``reference``, the same configurations on scratchgan.reference."""
    return reference_cases() if reference else layer_cases() + loss_cases()


# -- the textbook functions in the same configurations ---------------------------------

def reference_cases():
    """The layer and loss cases, each with its fast layer or loss replaced by its reference."""
    return ([Case(c.name, c.config, _reference_layer_build(c.build), is_reference=True) for c in layer_cases()]
            + [Case(c.name, c.config, _reference_loss_build(c.build), is_loss=True, is_reference=True)
               for c in loss_cases()])


def _reference_layer_build(build):
    def reference_build():
        layer, x, train = build()
        forward, backward, params = reference_of(layer, train)
        return forward, backward, x, params
    return reference_build


def _reference_loss_build(build):
    def reference_build():
        loss_fn, pred, target = build()
        return getattr(R, loss_fn.__name__), pred, target
    return reference_build


def reference_of(layer, train=True, mask=None, seed=0):
    """The textbook counterpart of fast ``layer``, with copies of its parameters:
    (forward(x) -> (out, cache), backward(dout, cache) -> (dx, {param name: grad}), {param name: array}).

    Parameter names are the layer's ``named_parameters()`` names. BatchNorm's forward starts from
    a copy of the layer's running statistics at every call; Dropout in training uses ``mask``, or
    draws one (from ``seed``) on its first call and keeps it, so every call computes one function.
    """
    params = {key: value.copy() for key, value in layer.params.items()}
    if isinstance(layer, L.Chain):
        return _sequence([reference_of(child, train, seed=seed) for child in layer],
                         [f"{i}." for i in range(len(layer))])
    if isinstance(layer, L.Dense):
        affine = _bind(R.affine_forward, R.affine_backward, params)
        return affine if layer.activation is None else _sequence([affine, reference_of(layer.activation)], ["", ""])
    if isinstance(layer, L.Maxout):
        return _bind(R.maxout_forward, R.maxout_backward, params, pieces=layer.pieces)
    if isinstance(layer, L.Conv2d):
        return _bind(R.conv2d_forward, R.conv2d_backward, params, stride=layer.stride, padding=layer.padding)
    if isinstance(layer, L.ConvTranspose2d):
        return _bind(R.conv_transpose2d_forward, R.conv_transpose2d_backward, params, stride=layer.stride,
                     padding=layer.padding, output_padding=layer.output_padding)
    if isinstance(layer, L.BatchNorm):
        state = {key: value.copy() for key, value in layer.buffers.items()}

        def batchnorm(x, gamma, beta):
            return R.batchnorm_forward(x, gamma, beta, dict(state), train, layer.eps, layer.momentum)
        return _bind(batchnorm, R.batchnorm_backward, params)
    if isinstance(layer, L.Dropout):
        masks = [] if mask is None else [mask]

        def dropout(x):
            if train and not masks:
                masks.append(R.dropout_mask(x.shape, layer.p, np.random.default_rng(seed)))
            return R.dropout_forward(x, layer.p, masks[0] if train else None, train)
        return _bind(dropout, R.dropout_backward, {})
    options = {L.LeakyReLU: lambda: {"alpha": layer.alpha}, L.Softmax: lambda: {"axis": layer.axis},
               L.Reshape: lambda: {"shape": layer.shape}}
    pairs = {L.ReLU: (R.relu_forward, R.relu_backward), L.LeakyReLU: (R.leaky_relu_forward, R.leaky_relu_backward),
             L.Tanh: (R.tanh_forward, R.tanh_backward), L.Sigmoid: (R.sigmoid_forward, R.sigmoid_backward),
             L.Softmax: (R.softmax_forward, R.softmax_backward), L.Reshape: (R.reshape_forward, R.reshape_backward),
             L.Flatten: (R.flatten_forward, R.flatten_backward)}
    if type(layer) in LAB_REFERENCES:
        return LAB_REFERENCES[type(layer)](layer, train)
    if type(layer) not in pairs:
        raise TypeError(f"no reference function for {layer!r}")
    return _bind(*pairs[type(layer)], params, **options.get(type(layer), dict)())


def _bind(forward, backward, params, **options):
    """A CS231n pair with ``params`` (in the order ``forward`` takes them) and ``options`` bound:
    (forward(x), backward(dout, cache) -> (dx, {name: grad}), params)."""
    def bound_forward(x):
        return forward(x, *params.values(), **options)

    def bound_backward(dout, cache):
        result = backward(dout, cache)
        dx, *grads = result if isinstance(result, tuple) else (result,)   # no parameters: dx alone
        return dx, dict(zip(params, grads))
    return bound_forward, bound_backward, params


def _sequence(parts, prefixes):
    """Bound parts (as _bind returns) in order, through reference.chain_forward / chain_backward;
    part k's parameters are named prefixes[k] + name."""
    pairs = [(forward, backward) for forward, backward, _ in parts]
    params = {prefix + name: array for prefix, (_, _, p) in zip(prefixes, parts) for name, array in p.items()}

    def forward(x):
        return R.chain_forward(x, pairs)

    def backward(dout, cache):
        dx, per_layer = R.chain_backward(dout, cache)
        return dx, {prefix + name: grad for prefix, (grads,) in zip(prefixes, per_layer) for name, grad in grads.items()}
    return forward, backward, params


# -- issue 15 (the dynamics lab's fixes): minibatch discrimination, virtual batch normalization --------------

def _minibatch(n, fan_in, kernels, kernel_dim):
    """A float64 MinibatchDiscrimination and an input whose projections differ by > 0.02 in every
    coordinate of every pair (the L1 distance has a kink where two of them tie)."""
    def build():
        layer = _f64(L.MinibatchDiscrimination(fan_in, kernels, kernel_dim, init="he_normal", rng=RNG(0)))
        for seed in range(200):
            x = _normal(n, fan_in, seed=seed)
            m = (x @ layer.params["weight"].T).reshape(n, kernels, kernel_dim)
            gaps = np.abs(m[:, None] - m[None])[~np.eye(n, dtype=bool)]
            if gaps.size == 0 or gaps.min() > 0.02:
                return layer, x, True
        raise RuntimeError("no well-separated MinibatchDiscrimination input found")
    return build


def _virtual_batchnorm(x_shape, reference_size):
    def build():
        layer = _f64(L.VirtualBatchNorm(x_shape[1], reference_size))
        layer.params["weight"][...] = 1 + 0.5 * _normal(x_shape[1], seed=2)
        layer.params["bias"][...] = _normal(x_shape[1], seed=3)
        return layer, 2 * _normal(*x_shape) + 1, True
    return build


def _virtual_batch_generator():
    """A small generator with VBN, inside VirtualBatch: checks the gradient path through the reference."""
    def build():
        rng = RNG(0)
        model = L.Chain(L.Dense(3, 5, bias=False, rng=rng), L.VirtualBatchNorm(5, 4), L.Tanh(),
                        L.Dense(5, 2, rng=rng))
        layer = _f64(L.VirtualBatch(model, _normal(4, 3, seed=7)))
        return layer, _normal(3, 3), True
    return build


def lab_layer_cases():
    return [
        Case("MinibatchDiscrimination", "6 -> 6+4 (4 kernels x 3), batch 5", _minibatch(5, 6, 4, 3)),
        Case("MinibatchDiscrimination", "3 -> 3+2 (2 kernels x 5), batch 2", _minibatch(2, 3, 2, 5)),
        Case("MinibatchDiscrimination", "4 -> 4+3 (3 kernels x 1), batch 7", _minibatch(7, 4, 3, 1)),
        Case("MinibatchDiscrimination", "5 -> 5+2, batch 1 (no other sample)", _minibatch(1, 5, 2, 2)),
        Case("VirtualBatchNorm", "(N, C), reference 3 + 4 live, C 4", _virtual_batchnorm((7, 4), 3)),
        Case("VirtualBatchNorm", "(N, C), reference 1 + 1 live", _virtual_batchnorm((2, 3), 1)),
        Case("VirtualBatchNorm", "(N, C, H, W), reference 2 + 3 live, 5x3x2x3", _virtual_batchnorm((5, 3, 2, 3), 2)),
        Case("VirtualBatchNorm", "(N, C, H, W), reference only, 2x2x3x1", _virtual_batchnorm((2, 2, 3, 1), 2)),
        Case("VirtualBatch", "Dense-VBN-Tanh-Dense, reference 4, batch 3", _virtual_batch_generator()),
    ]


def _lab_minibatch_reference(layer, train):
    params = {"weight": layer.params["weight"].copy()}
    return _bind(R.minibatch_discrimination_forward, R.minibatch_discrimination_backward, params,
                 num_kernels=layer.num_kernels, kernel_dim=layer.kernel_dim)


def _lab_virtual_batchnorm_reference(layer, train):
    params = {key: value.copy() for key, value in layer.params.items()}
    return _bind(R.virtual_batchnorm_forward, R.virtual_batchnorm_backward, params,
                 reference_size=layer.reference_size, eps=layer.eps)


def _lab_virtual_batch_reference(layer, train):
    """The model's reference on [reference; x], the reference rows' outputs dropped (and given zero gradient)."""
    inner_forward, inner_backward, inner_params = reference_of(layer.model, train)
    reference, r = layer.buffers["reference"].copy(), layer.reference_size

    def forward(x):
        out, cache = inner_forward(np.concatenate([reference, x]))
        return out[r:], (cache, out.shape)

    def backward(dout, cache):
        inner_cache, shape = cache
        dx, grads = inner_backward(np.concatenate([np.zeros((r, *shape[1:])), dout]), inner_cache)
        return dx[r:], {f"model.{name}": grad for name, grad in grads.items()}
    return forward, backward, {f"model.{name}": array for name, array in inner_params.items()}


LAB_REFERENCES = {L.MinibatchDiscrimination: _lab_minibatch_reference,
                  L.VirtualBatchNorm: _lab_virtual_batchnorm_reference,
                  L.VirtualBatch: _lab_virtual_batch_reference}


# -- running and reporting ------------------------------------------------------------------

def case_names(cases):
    """The distinct case names, in suite order."""
    return list(dict.fromkeys(case.name for case in cases))


def run_case(case):
    """{gradient name: relative error} for one case."""
    if case.is_loss:
        return check_loss(*case.build())
    if case.is_reference:
        forward, backward, x, params = case.build()
        return check_function(forward, backward, x, params)
    layer, x, train = case.build()
    return check_layer(layer, x, train=train)


def run_suite(cases=None, tolerance=TOLERANCE):
    """Rows (case, errors, passed) for every case."""
    rows = []
    for case in cases or all_cases():
        errors = run_case(case)
        rows.append((case, errors, max(errors.values()) < tolerance))
    return rows


def format_table(rows, tolerance=TOLERANCE):
    header = ("layer / loss", "configuration", "dx", "parameters", "result")
    lines = []
    for case, errors, passed in rows:
        dx = errors.get("x", errors.get("pred"))
        params = ", ".join(f"{k} {v:.1e}" for k, v in errors.items() if k not in ("x", "pred")) or "-"
        lines.append((case.name, case.config, f"{dx:.1e}", params, "pass" if passed else "FAIL"))
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"
    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in lines]
    failed = sum(not passed for *_, passed in rows)
    what = "reference functions (scratchgan.reference): " if rows and all(c.is_reference for c, *_ in rows) else ""
    out.append(f"\n{what}{len(rows) - failed} passed, {failed} failed (max relative error < {tolerance:g}, "
               "float64, fourth-order central differences, h = 1e-3 for layers, 1e-4 for losses)")
    return "\n".join(out)
