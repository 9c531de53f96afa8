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
from .backend import RNG, global_rng
from .gradcheck import TOLERANCE, check_function, check_layer, check_loss


@dataclass
class Case:
    name: str
    config: str
    build: Callable  # () -> (layer, x, train); losses: (loss_fn, pred, target);
    #                  reference layers: (forward, backward, x, params) as check_function takes them
    is_loss: bool = False
    is_reference: bool = False
    runner: Callable = None  # runs build()'s result itself (second-order cases); None: by kind above


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


# -- conditional models: tuple inputs and outputs, class labels (issue 19) -----------------------------
LABELS = np.array([2, 0, 2, 1, 2, 0])   # repeated labels: their gradients must add up in the same row


def _with_labels(make, x_shape):
    """A case reading (x, labels): ``make(rng)`` builds the layer from its own seeded generator."""
    return lambda: (_f64(make(RNG(0))), (_normal(*x_shape), LABELS[:x_shape[0]]), True)


def _concat_parts(*shapes, axis=1):
    return lambda: (L.Concat(axis), tuple(_normal(*shape, seed=k) for k, shape in enumerate(shapes)), True)


def _labels_only(make, n):
    return lambda: (_f64(make(RNG(0))), LABELS[:n], True)


def conditional_cases():
    three = (_normal(2, 3), _normal(2, 4, seed=2), _normal(2, 1, seed=3))
    return [
        Case("Identity", "3x4", _simple(L.Identity, lambda: _normal(3, 4))),
        Case("Concat", "features 3 + 4 + 2, batch 5", _concat_parts((5, 3), (5, 4), (5, 2))),
        Case("Concat", "channels 2 + 1 of 2x?x4x3", _concat_parts((2, 2, 4, 3), (2, 1, 4, 3))),
        Case("Concat", "last axis, batch 1", _concat_parts((1, 2, 3), (1, 2, 1), axis=-1)),
        Case("Select", "input 1 of 3", lambda: (L.Select(1), three, True)),
        Case("Embedding", "4 classes -> 3, repeated labels, batch 6", _labels_only(lambda rng: L.Embedding(4, 3, rng=rng), 6)),
        Case("Embedding", "3 classes -> 5, batch 1", _labels_only(lambda rng: L.Embedding(3, 5, rng=rng), 1)),
        Case("OneHot", "3 label planes joined to a 6x2x5x5 image, into Conv2d",
             _with_labels(lambda rng: L.Chain(L.Parallel(L.Identity(), L.OneHot(3, spatial=(5, 5))), L.Concat(),
                                              L.Conv2d(5, 2, 3, rng=rng)), (6, 2, 5, 5))),
        Case("Parallel", "Dense(tanh) | OneHot-Dense, then Concat, repeated labels",
             _with_labels(lambda rng: L.Chain(L.Parallel(L.Dense(3, 4, "tanh", rng=rng),
                                                         L.Chain(L.OneHot(3), L.Dense(3, 2, "tanh", rng=rng))),
                                              L.Concat(), L.Dense(6, 2, rng=rng)), (6, 3))),
        Case("Parallel", "identity | Embedding-Reshape into ConvTranspose2d, batch 1",
             _with_labels(lambda rng: L.Chain(L.Parallel(L.Identity(), L.Chain(L.Embedding(3, 2, rng=rng),
                                                                                 L.Reshape(2, 1, 1))),
                                              L.Concat(), L.ConvTranspose2d(5, 2, 3, rng=rng)), (1, 3, 1, 1))),
        Case("Fork", "a real/fake head and a class head on shared features (AC-GAN's D)",
             _with_labels(lambda rng: L.Chain(L.Select(0), L.Dense(4, 5, "tanh", rng=rng),
                                              L.Fork(L.Dense(5, 1, rng=rng), L.Dense(5, 3, rng=rng))), (6, 4))),
        Case("Fork", "three branches, batch 1",
             _simple(lambda: _f64(L.Fork(L.Dense(3, 2, rng=RNG(0)), L.Tanh(), L.Dense(3, 1, "sigmoid", rng=RNG(1)))),
                     lambda: _normal(1, 3))),
        Case("Projection", "5 features, 3 classes, repeated labels",
             _with_labels(lambda rng: L.Projection(5, 3, init="he_normal", class_init="he_normal", rng=rng), (6, 5))),
        Case("Projection", "no bias, after Conv2d features, batch 2",
             _with_labels(lambda rng: L.Chain(L.Parallel(L.Chain(L.Conv2d(2, 3, 3, rng=rng), L.Flatten()),
                                                         L.Identity()),
                                              L.Projection(12, 3, bias=False, init="he_normal", class_init="he_normal",
                                                           rng=rng)), (2, 2, 4, 4))),
    ]


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
        Case("Conv2d", "k5 s1 p2, 4->1 (through the transpose), 2x4x7x6", _conv((2, 4, 7, 6), 1, 5, 1, 2)),
        Case("Conv2d", "k(3,2) s1 p(2,0), 5->2 (through the transpose), batch 1, no bias",
             _conv((1, 5, 6, 5), 2, (3, 2), 1, (2, 0), bias=False)),
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
        *layernorm_cases(),   # Wasserstein GANs (issue 17)
        *image_to_image_cases(),
        *multiscale_cases(),   # LAPGAN and ProGAN (issue 14)
        *dcgan_plus_cases(),   # a better DCGAN-28 recipe (issue 18)
        *lab_layer_cases(),   # the dynamics lab's fixes (issue 15)
    ]


# -- a better DCGAN-28 recipe (issue 18): SpectralNorm, DiffAugment -------------------------------
def _spectral(make, x_shape, train=False, steps=1):
    """SpectralNorm around ``make()``. Checked with u and v fixed, as its backward assumes (Miyato et al.):
    in eval mode, or in training with no power-iteration step (each would move u and v with W)."""
    return lambda: (_f64(L.SpectralNorm(make(), n_power_iterations=steps, rng=RNG(5))), _normal(*x_shape), train)


def _augment(policy, x_shape, **options):
    return lambda: (_f64(L.DiffAugment(policy, seed=3, **options)), _normal(*x_shape), True)


def dcgan_plus_cases():
    return [
        Case("SpectralNorm", "Conv2d k4 s2 p1, eval (u, v fixed), 2x3x8x8",
             _spectral(lambda: L.Conv2d(3, 4, 4, 2, 1, rng=RNG(0)), (2, 3, 8, 8))),
        Case("SpectralNorm", "Conv2d k7 on 7x7, no bias, training without a power step, 3x4x7x7",
             _spectral(lambda: L.Conv2d(4, 1, 7, bias=False, rng=RNG(0)), (3, 4, 7, 7), train=True, steps=0)),
        Case("SpectralNorm", "ConvTranspose2d k4 s2 p1 (dim 1), eval, 2x3x4x4",
             _spectral(lambda: L.ConvTranspose2d(3, 2, 4, 2, 1, rng=RNG(0)), (2, 3, 4, 4))),
        Case("SpectralNorm", "Dense 5->3, batch 1, eval", _spectral(lambda: L.Dense(5, 3, rng=RNG(0)), (1, 5))),
        Case("DiffAugment", "translation 1/4, 3x2x8x7", _augment("translation", (3, 2, 8, 7), translation=0.25)),
        Case("DiffAugment", "cutout 1/2, fill -1, 4x1x6x6", _augment("cutout", (4, 1, 6, 6), fill=-1.0)),
        Case("DiffAugment", "translation 1/4 + cutout 1/2, batch 1, 1x3x9x5",
             _augment("translation,cutout", (1, 3, 9, 5), translation=0.25)),
    ]


def _sn_critic():
    """A DCGAN-shaped critic with DiffAugment in front and every convolution spectrally normalised
    (no power step: u and v fixed)."""
    rng = RNG(0)
    sn = lambda layer: L.SpectralNorm(layer, n_power_iterations=0, rng=rng)
    return L.Chain(L.DiffAugment("translation,cutout", translation=0.25, fill=0.7, seed=1),
                   sn(L.Conv2d(1, 2, 4, 2, 1, rng=rng)), L.LeakyReLU(0.2),
                   sn(L.Conv2d(2, 3, 4, 2, 1, rng=rng)), L.LeakyReLU(0.2),
                   sn(L.Conv2d(3, 1, 3, 1, 0, bias=False, rng=rng)))


def dcgan_plus_double_cases():
    return [
        _double("SpectralNorm", "Conv2d k4 s2 p1, eval, 2x3x8x8",
                _spectral(lambda: L.Conv2d(3, 4, 4, 2, 1, rng=RNG(0)), (2, 3, 8, 8))),
        _double("SpectralNorm", "Dense 6->4 tanh, training without a power step, batch 3",
                _spectral(lambda: L.Dense(6, 4, "tanh", rng=RNG(0)), (3, 6), train=True, steps=0)),
        _double("DiffAugment", "translation + cutout, 3x2x8x7",
                _augment("translation,cutout", (3, 2, 8, 7), translation=0.25)),
        _double("Chain", "DiffAugment-SN(Conv)-LeakyReLU-SN(Conv)-LeakyReLU-SN(Conv)",
                _away_from_kinks(_sn_critic, (2, 1, 12, 12), margin=0.01)),
    ]


def _dcgan_plus_reference(layer, train, seed):
    """reference_of for SpectralNorm and DiffAugment (issue 18), None for any other layer."""
    if isinstance(layer, L.SpectralNorm):
        inner_forward, inner_backward, inner_params = reference_of(layer.layer, train, seed=seed)
        weight, u, v = inner_params["weight"], layer.buffers["u"].copy(), layer.buffers["v"].copy()
        steps = layer.n_power_iterations if train else 0

        def forward(x):
            inner_params["weight"], sn_cache = R.spectral_norm_forward(weight, u, v, steps, layer.dim, layer.eps)
            out, cache = inner_forward(x)
            return out, (cache, sn_cache)

        def backward(dout, cache):
            dx, grads = inner_backward(dout, cache[0])
            grads["weight"] = R.spectral_norm_backward(grads["weight"], cache[1])
            return dx, {f"layer.{name}": grad for name, grad in grads.items()}
        params = {f"layer.{name}": (weight if name == "weight" else array) for name, array in inner_params.items()}
        return forward, backward, params
    if isinstance(layer, L.DiffAugment):
        forward, backward, _ = _augment_functions(layer, train)
        return _bind(forward, backward, {})
    return None


def _augment_functions(layer, train):
    """DiffAugment as reference (forward, backward, double_backward), with the draws of the fast layer's
    latest training pass, or of its first if it has made none (drawn on the first call, then kept:
    one function)."""
    step, drawn = max(int(layer.buffers["step"]) - 1, 0), []

    def draws(shape):
        if not drawn:
            drawn.append(layer.draws(shape, step))
        return drawn[0]

    def forward(x, fill=None):
        if not train:
            return x, None
        d, fill = draws(x.shape), layer.fill if fill is None else fill
        caches = []
        if d["shift"] is not None:
            x, cache = R.translate_forward(x, d["shift"], fill)
            caches.append((R.translate_backward, cache))
        if d["mask"] is not None:
            x, cache = R.cutout_forward(x, d["mask"], fill)
            caches.append((R.cutout_backward, cache))
        return x, caches

    def backward(dout, caches):
        for backward_of, cache in reversed(caches or []):
            dout = backward_of(dout, cache)
        return dout

    def double_backward(ddx, caches, dout):   # linear in x: ddout = the linear part applied to ddx
        return forward(ddx, fill=0.0)[0], 0 * ddx
    return forward, backward, double_backward


def _dcgan_plus_second_order(layer, prefix, parts, params, train):
    """_flatten_reference for SpectralNorm(Conv2d or Dense) and DiffAugment: appends their parts
    (forward, backward, double_backward, gradient names); False for any other layer."""
    if isinstance(layer, L.DiffAugment):
        parts.append((*_augment_functions(layer, train), []))
        return True
    if not isinstance(layer, L.SpectralNorm):
        return False
    inner = layer.layer
    w, b = inner.params["weight"].copy(), (inner.params["bias"].copy() if "bias" in inner.params else None)
    names = [prefix + "layer.weight", prefix + "layer.bias" if b is not None else None]
    params.update({name: array for name, array in zip(names, (w, b)) if name is not None})
    u, v, steps = layer.buffers["u"].copy(), layer.buffers["v"].copy(), layer.n_power_iterations if train else 0
    if isinstance(inner, L.Conv2d):
        forward_of = lambda x, w_sn: R.conv2d_forward(x, w_sn, b, inner.stride, inner.padding)
        backward_of, double_of = R.conv2d_backward, R.conv2d_double_backward
    elif isinstance(inner, L.Dense):
        forward_of, backward_of, double_of = (lambda x, w_sn: R.affine_forward(x, w_sn, b), R.affine_backward,
                                              R.affine_double_backward)
    else:
        raise TypeError(f"no reference double backward for {layer!r}")

    def forward(x):
        w_sn, sn_cache = R.spectral_norm_forward(w, u, v, steps, layer.dim, layer.eps)
        out, cache = forward_of(x, w_sn)
        return out, (cache, sn_cache)

    def backward(dout, cache):
        dx, dw, *db = backward_of(dout, cache[0])
        return (dx, R.spectral_norm_backward(dw, cache[1]), *db)

    def double_backward(ddx, cache, dout):
        ddout, dx, dw, *db = double_of(ddx, cache[0], dout)
        return (ddout, dx, R.spectral_norm_backward(dw, cache[1]), *db)
    parts.append((forward, backward, double_backward, names))
    if isinstance(inner, L.Dense) and inner.activation is not None:
        _flatten_reference(inner.activation, prefix + "layer.activation.", parts, params, train)
    return True


# -- image-to-image layers (issue 20) ---------------------------------------------------------
def _instancenorm(x_shape, affine):
    def build():
        layer = _f64(L.InstanceNorm(x_shape[1], affine=affine))
        if affine:
            layer.params["weight"][...] = 1 + 0.5 * _normal(x_shape[1], seed=2)
            layer.params["bias"][...] = _normal(x_shape[1], seed=3)
        return layer, 3 * _normal(*x_shape) + 1, True
    return build


def _prelu(x_shape, num_parameters):
    def build():
        layer = _f64(L.PReLU(num_parameters))
        layer.params["weight"][...] = 0.25 + 0.2 * _normal(num_parameters, seed=2)
        return layer, _off_kink(*x_shape), True
    return build


def _residual(x_shape, cyclegan_block):
    c, rng = x_shape[1], RNG(0)
    # convolutions before a norm have no bias: the norm removes it, so its gradient is exactly 0
    if cyclegan_block:   # CycleGAN's: pad, conv, norm, ReLU, pad, conv, norm
        body = L.Chain(L.ReflectionPad2d(1), L.Conv2d(c, c, 3, bias=False, rng=rng), L.InstanceNorm(c), L.ReLU(),
                       L.ReflectionPad2d(1), L.Conv2d(c, c, 3, bias=False, rng=rng), L.InstanceNorm(c, affine=True))
    else:                # SRResNet's: conv, BN, PReLU, conv, BN (tanh in place of PReLU: no kink)
        body = L.Chain(L.Conv2d(c, c, 3, padding=1, bias=False, rng=rng), L.BatchNorm(c), L.Tanh(),
                       L.Conv2d(c, c, 3, padding=1, bias=False, rng=rng), L.BatchNorm(c))
    return lambda: (_f64(L.Residual(body)), _normal(*x_shape), True)


def image_to_image_cases():
    return [
        Case("InstanceNorm", "affine, 2x3x4x5", _instancenorm((2, 3, 4, 5), True)),
        Case("InstanceNorm", "no affine, batch 1, 1x2x3x3", _instancenorm((1, 2, 3, 3), False)),
        Case("InstanceNorm", "affine, odd sizes, 3x1x5x3", _instancenorm((3, 1, 5, 3), True)),
        Case("InstanceNorm", "no affine, 1x2 pixels, 2x4x1x2", _instancenorm((2, 4, 1, 2), False)),
        Case("Residual", "CycleGAN block (pad-conv-IN-ReLU-pad-conv-IN), 2x3x5x4", _residual((2, 3, 5, 4), True)),
        Case("Residual", "SRResNet block (conv-BN-tanh-conv-BN), batch 1, 1x2x3x5", _residual((1, 2, 3, 5), False)),
        Case("ReflectionPad2d", "1, 2x3x4x5", _simple(lambda: L.ReflectionPad2d(1), lambda: _normal(2, 3, 4, 5))),
        Case("ReflectionPad2d", "(1, 2, 3, 0), batch 1, 1x2x5x3",
             _simple(lambda: L.ReflectionPad2d((1, 2, 3, 0)), lambda: _normal(1, 2, 5, 3))),
        Case("ReflectionPad2d", "3 on 4x4 (widest allowed), 2x1x4x4",
             _simple(lambda: L.ReflectionPad2d(3), lambda: _normal(2, 1, 4, 4))),
        Case("Upsample", "nearest x2, 2x3x4x5", _simple(lambda: L.Upsample(2), lambda: _normal(2, 3, 4, 5))),
        Case("Upsample", "nearest x(3, 1), batch 1, 1x2x3x5",
             _simple(lambda: L.Upsample((3, 1)), lambda: _normal(1, 2, 3, 5))),
        Case("Upsample", "bilinear x2, 2x3x4x5", _simple(lambda: L.Upsample(2, "bilinear"), lambda: _normal(2, 3, 4, 5))),
        Case("Upsample", "bilinear x(3, 2), batch 1, 1x2x3x5",
             _simple(lambda: L.Upsample((3, 2), "bilinear"), lambda: _normal(1, 2, 3, 5))),
        Case("Upsample", "bilinear x4 align_corners, 2x1x3x2",
             _simple(lambda: L.Upsample(4, "bilinear", align_corners=True), lambda: _normal(2, 1, 3, 2))),
        Case("PixelShuffle", "r 2, 2x8x3x5", _simple(lambda: L.PixelShuffle(2), lambda: _normal(2, 8, 3, 5))),
        Case("PixelShuffle", "r 3, batch 1, 1x9x2x3", _simple(lambda: L.PixelShuffle(3), lambda: _normal(1, 9, 2, 3))),
        Case("PReLU", "one slope, 4x5", _prelu((4, 5), 1)),
        Case("PReLU", "a slope per channel, 2x3x4x4", _prelu((2, 3, 4, 4), 3)),
        Case("PReLU", "a slope per channel, batch 1, 1x5x3x1", _prelu((1, 5, 3, 1), 5)),
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
    if reference:
        return (_as_reference(layer_cases() + conditional_cases(), loss_cases()) + second_order_cases(reference)
                + multi_input_cases(reference))
    return (layer_cases() + conditional_cases() + loss_cases() + second_order_cases(reference)
            + multi_input_cases(reference))   # ConcatChannels' tuple input (issue 14)


# -- the textbook functions in the same configurations ---------------------------------

def reference_cases():
    """The layer and loss cases, each with its fast layer or loss replaced by its reference
    (``all_cases(reference=True)`` adds the conditional layers' cases)."""
    return _as_reference(layer_cases(), loss_cases())


def _as_reference(layer_cases, loss_cases):
    return ([Case(c.name, c.config, _reference_layer_build(c.build), is_reference=True) for c in layer_cases]
            + [Case(c.name, c.config, _reference_loss_build(c.build), is_loss=True, is_reference=True)
               for c in loss_cases])


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
    multiscale = _multiscale_reference(layer, params, train, seed)   # issue 14 (before Dense, Conv2d)
    if multiscale is not None:
        return multiscale
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
    if isinstance(layer, L.LayerNorm):
        if not params:   # no affine part: gamma = 1 and beta = 0 are constants, not parameters
            ones, zeros = np.ones(layer.normalized_shape), np.zeros(layer.normalized_shape)
            return _bind(lambda x: R.layernorm_forward(x, ones, zeros, layer.eps),
                         lambda dout, cache: R.layernorm_backward(dout, cache)[0], {})
        return _bind(R.layernorm_forward, R.layernorm_backward, params, eps=layer.eps)
    conditional = _conditional_reference(layer, params, train, seed)
    if conditional is not None:
        return conditional
    if isinstance(layer, L.Dropout):
        masks = [] if mask is None else [mask]

        def dropout(x):
            if train and not masks:
                masks.append(R.dropout_mask(x.shape, layer.p, np.random.default_rng(seed)))
            return R.dropout_forward(x, layer.p, masks[0] if train else None, train)
        return _bind(dropout, R.dropout_backward, {})
    image_to_image = _image_to_image_reference(layer, params, train, seed)
    if image_to_image is not None:
        return image_to_image
    dcgan_plus = _dcgan_plus_reference(layer, train, seed)   # issue 18
    if dcgan_plus is not None:
        return dcgan_plus
    if type(layer) in LAB_REFERENCES:   # issue 15
        return LAB_REFERENCES[type(layer)](layer, train)
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


def _image_to_image_reference(layer, params, train, seed):
    """reference_of for the image-to-image layers (issue 20), None for any other layer."""
    if isinstance(layer, L.Residual):
        forward, backward, body_params = reference_of(layer.body, train, seed=seed)

        def residual(x):
            return R.residual_forward(x, (forward, backward))

        def residual_backward(dout, cache):
            dx, grads = R.residual_backward(dout, cache)
            return dx, {f"body.{name}": grad for name, grad in grads.items()}
        return residual, residual_backward, {f"body.{name}": array for name, array in body_params.items()}
    if isinstance(layer, L.InstanceNorm):
        return _bind(R.instancenorm_forward, R.instancenorm_backward, params, eps=layer.eps)
    if isinstance(layer, L.PReLU):
        return _bind(R.prelu_forward, R.prelu_backward, params)
    if isinstance(layer, L.ReflectionPad2d):
        return _bind(R.reflection_pad_forward, R.reflection_pad_backward, params, padding=layer.padding)
    if isinstance(layer, L.PixelShuffle):
        return _bind(R.pixel_shuffle_forward, R.pixel_shuffle_backward, params, r=layer.upscale_factor)
    if isinstance(layer, L.Upsample) and layer.mode == "nearest":
        return _bind(R.upsample_nearest_forward, R.upsample_nearest_backward, params, scale=layer.scale_factor)
    if isinstance(layer, L.Upsample):
        return _bind(R.upsample_bilinear_forward, R.upsample_bilinear_backward, params, scale=layer.scale_factor,
                     align_corners=layer.align_corners)
    return None


def _conditional_reference(layer, params, train, seed):
    """reference_of for the layers of conditional models (issue 19), or None for any other layer."""
    if isinstance(layer, (L.Parallel, L.Fork)):
        parts = [reference_of(child, train, seed=seed) for child in layer]
        forward = R.parallel_forward if isinstance(layer, L.Parallel) else R.fork_forward
        backward = R.parallel_backward if isinstance(layer, L.Parallel) else R.fork_backward
        return _branches(forward, backward, parts, [f"{i}." for i in range(len(layer))])
    if isinstance(layer, L.Concat):
        return _bind(R.concat_forward, R.concat_backward, params, axis=layer.axis)
    if isinstance(layer, L.Select):
        return _bind(R.select_forward, R.select_backward, params, index=layer.index)
    if isinstance(layer, L.Identity):
        return _bind(R.identity_forward, R.identity_backward, params)
    if isinstance(layer, L.OneHot):
        return _bind(R.one_hot_forward, R.one_hot_backward, params, num_classes=layer.num_classes,
                     dtype=layer.output_dtype, spatial=layer.spatial)
    if isinstance(layer, L.Embedding):
        return _bind(R.embedding_forward, R.embedding_backward, params)

    if isinstance(layer, L.Projection):
        def forward(x):
            return R.projection_forward(x, params["weight"], params.get("bias"), params["class_weight"])

        def backward(dout, cache):
            dx, dw, db, dv = R.projection_backward(dout, cache)
            grads = {"weight": dw, "bias": db, "class_weight": dv}
            return dx, {name: grads[name] for name in params}
        return forward, backward, params
    return None


def _branches(forward, backward, parts, prefixes):
    """Bound parts through parallel_forward/fork_forward and their backward; part k's parameters are named
    prefixes[k] + name (zeros for a branch that received no gradient)."""
    pairs = [(f, b) for f, b, _ in parts]
    params = {prefix + name: array for prefix, (_, _, p) in zip(prefixes, parts) for name, array in p.items()}

    def bound_forward(x):
        return forward(x, pairs)

    def bound_backward(dout, cache):
        dx, per_branch = backward(dout, cache)
        grads = {}
        for prefix, (_, _, p), branch in zip(prefixes, parts, per_branch):   # branch: ({name: grad},) or None
            for name, array in p.items():
                grads[prefix + name] = np.zeros_like(array) if branch is None else branch[0][name]
        return dx, grads
    return bound_forward, bound_backward, params


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


# -- second order (Wasserstein GANs, issue 17): double backwards and gradient penalties -------------------

def _layernorm(x_shape, normalized_ndim, affine=True, seed=1):
    def build():
        layer = _f64(L.LayerNorm(x_shape[len(x_shape) - normalized_ndim:], elementwise_affine=affine))
        if affine:
            shape = layer.normalized_shape
            layer.params["weight"][...] = 1 + 0.5 * _normal(*shape, seed=2)
            layer.params["bias"][...] = _normal(*shape, seed=3)
        return layer, 2 * _normal(*x_shape, seed=seed) + 0.5, True
    return build


def layernorm_cases():
    return [
        Case("LayerNorm", "over (C, H, W), 2x3x4x5", _layernorm((2, 3, 4, 5), 3)),
        Case("LayerNorm", "over F, batch 1, 1x6", _layernorm((1, 6), 1)),
        Case("LayerNorm", "over (H, W), no affine, 2x3x4x5", _layernorm((2, 3, 4, 5), 2, affine=False)),
        Case("LayerNorm", "over F of (N, L, F), 2x3x5", _layernorm((2, 3, 5), 1)),
        Case("LayerNorm", "over (C, H, W) of a DCGAN critic's 7x7 maps, 2x8x7x7", _layernorm((2, 8, 7, 7), 3)),
    ]


def _kinks_far(layer, x, margin=0.05):
    """True if no ReLU/LeakyReLU (alone or in a Dense) in ``layer`` sees an input within ``margin`` of 0 at x."""
    layers = list(layer) if isinstance(layer, L.Chain) else [layer]
    for part in layers:
        kinked = isinstance(part, (L.ReLU, L.LeakyReLU))
        if isinstance(part, L.Dense) and isinstance(part.activation, (L.ReLU, L.LeakyReLU)):
            z = x @ part.params["weight"].T + part.params.get("bias", 0)
            if np.min(np.abs(z)) < margin:
                return False
        if isinstance(part, L.Maxout):   # a tie between the two best pieces is Maxout's kink
            z = np.sort((x @ part.params["weight"].T + part.params["bias"]).reshape(len(x), -1, part.pieces), axis=2)
            if np.min(z[..., -1] - z[..., -2]) < margin:
                return False
        if kinked and np.min(np.abs(x)) < margin:
            return False
        x = part.forward(x, train=True, keep_cache=False)
    return True


def _away_from_kinks(make_layer, x_shape, margin=0.05, train=True):
    """A build: the layer and the first seeded normal input that keeps every kink ``margin`` away
    (with the Dropout masks and augmentations the check will draw: the global generator and the
    layers' buffers are put back after looking)."""
    def build():
        from .gradcheck import _restorer
        layer = _f64(make_layer())
        for seed in range(1, 200):
            x = _normal(*x_shape, seed=seed)
            restore = _restorer(layer)
            far = _kinks_far(layer, x, margin)
            restore()
            if far:
                return layer, x, train
        raise RuntimeError(f"no input of shape {x_shape} keeps {layer!r} away from its kinks")
    return build


def _mlp_critic():
    return L.Chain(L.Dense(7, 6, "tanh", rng=RNG(0)), L.Dense(6, 5, L.LeakyReLU(0.2), rng=RNG(1)),
                   L.Dense(5, 1, rng=RNG(2)))


def _conv_critic(norm=True):
    rng = RNG(0)
    return L.Chain(L.Conv2d(1, 2, 3, 2, 1, rng=rng), L.LeakyReLU(0.2), L.Conv2d(2, 3, 3, 2, 1, rng=rng),
                   *([L.LayerNorm((3, 2, 2))] if norm else []), L.LeakyReLU(0.2), L.Flatten(),
                   L.Dense(12, 1, rng=rng))


def _maxout_critic():
    """goodfellow2014's discriminator in miniature: input dropout, Maxout, dropout, Maxout, one logit."""
    critic = L.Chain(L.Dropout(0.2), L.Maxout(6, 4, 3, init="he_normal", rng=RNG(0)), L.Dropout(0.5),
                     L.Maxout(4, 3, 2, init="he_normal", rng=RNG(1)), L.Dense(3, 1, rng=RNG(2)))
    for index, seed in ((1, 4), (3, 5)):   # random biases: a sample whose inputs are all dropped has no tie
        critic[index].params["bias"][...] = _normal(*critic[index].params["bias"].shape, seed=seed)
    return critic


def _dcgan_critic():
    rng = RNG(0)
    return L.Chain(L.Conv2d(1, 2, 4, 2, 1, bias=False, rng=rng), L.LeakyReLU(0.2),
                   L.Conv2d(2, 3, 4, 2, 1, bias=False, rng=rng), L.LeakyReLU(0.2),
                   L.Conv2d(3, 1, 3, 1, 0, bias=False, rng=rng))


def _double(name, config, build):
    return Case(name, f"double backward: {config}", build, runner=_run_double)


def double_backward_cases():
    """Each layer's double backward against finite differences of its backward."""
    off = lambda *shape: (lambda: _off_kink(*shape))
    return [
        _double("Dense", "3->5, batch 4", _dense(4, 3, 5)),
        _double("Dense", "7->2, no bias, batch 1", _dense(1, 7, 2, bias=False)),
        _double("Dense", "6->4 tanh, batch 3", _dense(3, 6, 4, activation="tanh")),
        _double("Dense", "5->3 sigmoid, batch 2", _dense(2, 5, 3, activation=L.sigmoid)),
        _double("Dense", "6->4 LeakyReLU(0.2), batch 3",
                _away_from_kinks(lambda: L.Dense(6, 4, L.LeakyReLU(0.2), rng=RNG(0)), (3, 6))),
        _double("Conv2d", "k3 s1 p0, 2x3x7x6", _conv((2, 3, 7, 6), 4, 3)),
        _double("Conv2d", "k3 s2 p1, 2x2x8x9", _conv((2, 2, 8, 9), 3, 3, 2, 1)),
        _double("Conv2d", "k4 s2 p1 (DCGAN), no bias, 2x3x8x8", _conv((2, 3, 8, 8), 2, 4, 2, 1, bias=False)),
        _double("Conv2d", "k(2,3) s(2,1) p(0,2), batch 1, 1x2x5x7", _conv((1, 2, 5, 7), 3, (2, 3), (2, 1), (0, 2))),
        _double("Conv2d", "k3 s3 p2, 2x2x7x5", _conv((2, 2, 7, 5), 2, 3, 3, 2)),
        _double("Conv2d", "k7 on 7x7 (DCGAN's last D layer), no bias", _conv((3, 4, 7, 7), 1, 7, bias=False)),
        _double("Conv2d", "k5 s1 p2, 4->1 (through the transpose), 2x4x7x6", _conv((2, 4, 7, 6), 1, 5, 1, 2)),
        _double("Maxout", "6->4 x 3 pieces, batch 5", _maxout(5, 6, 4, 3)),
        _double("Maxout", "5->2 x 5 pieces, batch 1", _maxout(1, 5, 2, 5)),
        _double("Dropout", "p 0.3 train, 6x8", _simple(lambda: L.Dropout(0.3), lambda: _normal(6, 8))),
        _double("Dropout", "p 0.5 eval, 4x5", _simple(lambda: L.Dropout(0.5), lambda: _normal(4, 5), train=False)),
        _double("LeakyReLU", "alpha 0.2, 2x3x4x4", _simple(L.LeakyReLU, off(2, 3, 4, 4))),
        _double("LeakyReLU", "alpha 0.01, batch 1, 1x6", _simple(lambda: L.LeakyReLU(0.01), off(1, 6))),
        _double("ReLU", "3x4x5 off kink", _simple(L.ReLU, off(3, 4, 5))),
        _double("Tanh", "4x7", _simple(L.Tanh, lambda: 2 * _normal(4, 7))),
        _double("Sigmoid", "4x7", _simple(L.Sigmoid, lambda: 3 * _normal(4, 7))),
        _double("Reshape", "2x12 -> 2x3x2x2", _simple(lambda: L.Reshape(3, 2, 2), lambda: _normal(2, 12))),
        _double("Flatten", "2x3x4x5", _simple(L.Flatten, lambda: _normal(2, 3, 4, 5))),
        _double("LayerNorm", "over (C, H, W), 2x3x4x5", _layernorm((2, 3, 4, 5), 3)),
        _double("LayerNorm", "over F, batch 1, 1x6", _layernorm((1, 6), 1)),
        _double("LayerNorm", "over (H, W), no affine, 2x3x4x5", _layernorm((2, 3, 4, 5), 2, affine=False)),
        _double("LayerNorm", "over F of (N, L, F), 2x3x5", _layernorm((2, 3, 5), 1)),
        _double("Chain", "Conv-LeakyReLU-Conv-LayerNorm-LeakyReLU-Flatten-Dense",
                _away_from_kinks(_conv_critic, (3, 1, 5, 6))),
        _double("Chain", "Dense(tanh)-Dense(LeakyReLU)-Dense", _away_from_kinks(_mlp_critic, (4, 7))),
        *multiscale_double_backward_cases(),   # issue 14
        *dcgan_plus_double_cases(),   # issue 18
    ]


def _penalty(name, config, penalty, make_critic, x_shape, margin=0.05):
    from .penalties import GradientPenalty, R1Penalty
    make_penalty = {"gradient penalty": lambda: GradientPenalty(penalty), "R1 penalty": lambda: R1Penalty(penalty)}
    build = _away_from_kinks(make_critic, x_shape, margin)
    return Case(name, config, lambda: (make_penalty[name](), *build()[:2]), runner=_run_penalty)


def penalty_cases():
    """Gradient penalties' gradients (every parameter and the input) against differences of the penalty."""
    return [
        _penalty("gradient penalty", "lambda 10, MLP critic Dense(tanh)-Dense(LeakyReLU)-Dense, batch 4", 10.0,
                 _mlp_critic, (4, 7)),
        _penalty("gradient penalty", "lambda 10, conv critic k3 s2 p1 x2, LayerNorm, Dense, batch 3, 1x5x6", 10.0,
                 _conv_critic, (3, 1, 5, 6)),
        _penalty("gradient penalty", "lambda 1, conv critic k3 s2 p1 x2, Dense, batch 1", 1.0,
                 lambda: _conv_critic(norm=False), (1, 1, 5, 6)),
        _penalty("gradient penalty", "lambda 10, DCGAN-shaped critic k4 s2 p1 x2, k3, 2x1x12x12", 10.0,
                 _dcgan_critic, (2, 1, 12, 12), margin=0.01),
        _penalty("gradient penalty", "lambda 10, Maxout critic with dropout (goodfellow2014's), batch 3", 10.0,
                 _maxout_critic, (3, 6), margin=0.02),
        _penalty("R1 penalty", "gamma 10, MLP critic, batch 4", 10.0, _mlp_critic, (4, 7)),
        _penalty("R1 penalty", "gamma 5, conv critic with LayerNorm, batch 3", 5.0, _conv_critic, (3, 1, 5, 6)),
        *multiscale_penalty_cases(),   # issue 14
        _penalty("R1 penalty", "gamma 10, DiffAugment + spectrally normalised DCGAN-shaped critic, 2x1x12x12",  # 18
                 10.0, _sn_critic, (2, 1, 12, 12), margin=0.01),
    ]


def second_order_cases(reference=False):
    """The double-backward and penalty cases, on the fast layers or (``reference``) the textbook functions."""
    cases = double_backward_cases() + penalty_cases()
    if not reference:
        return cases
    reference_runner = {_run_double: _run_reference_double, _run_progan_penalty: _run_reference_progan_penalty}
    return [Case(c.name, c.config, _reference_second_order_build(c.build), is_reference=True,
                 runner=reference_runner.get(c.runner, _run_reference_penalty))
            for c in cases]


def _run_double(layer, x, train):
    from .gradcheck import check_double_backward
    return check_double_backward(layer, x, train=train)


def _run_penalty(penalty, model, x):
    from .gradcheck import check_penalty
    return check_penalty(penalty, model, x)


def reference_second_order(layer, train=True, mask=None):
    """The textbook counterpart of fast ``layer`` for second-order checks, with copies of its parameters:
    (forward(x) -> (out, cache), backward(dout, cache) -> (dx, {name: grad}),
    double_backward(ddx, cache, dout) -> (ddout, dx, {name: grad}), {name: array}).

    The layer is flattened into plain reference layers (a Dense with an activation is the affine map
    followed by the activation) composed by chain_forward / chain_backward / chain_double_backward.
    """
    parts, params = [], {}
    _flatten_reference(layer, "", parts, params, train, mask)
    pairs, doubles = [(f, b) for f, b, _, _ in parts], [d for _, _, d, _ in parts]
    names = [n for _, _, _, n in parts]

    def named(per_layer):
        return {name: grad for layer_names, grads in zip(names, per_layer)
                for name, grad in zip(layer_names, grads) if name is not None}

    def forward(x):
        return R.chain_forward(x, pairs)

    def backward(dout, cache):
        dx, per_layer = R.chain_backward(dout, cache)
        return dx, named(per_layer)

    def double_backward(ddx, cache, dout):
        ddout, dx, per_layer = R.chain_double_backward(ddx, cache, dout, doubles)
        return ddout, dx, named(per_layer)
    return forward, backward, double_backward, params


def _flatten_reference(layer, prefix, parts, params, train=True, mask=None):
    """Append (forward, backward, double_backward, gradient names) of each plain reference layer of
    ``layer`` to ``parts``, its parameters (copies, bound into forward) to ``params``. Dropout uses
    ``mask`` (the fast layer's, for a lone Dropout), or one drawn per layer and kept."""
    if _dcgan_plus_second_order(layer, prefix, parts, params, train):   # issue 18
        return
    own = {prefix + key: value.copy() for key, value in layer.params.items()}
    params.update(own)
    arrays = list(own.values())
    names = [prefix + "weight", prefix + "bias" if "bias" in layer.params else None]   # results' order
    if _flatten_multiscale_reference(layer, prefix, parts, params, train, arrays, names):   # issue 14
        return
    if isinstance(layer, L.Chain):
        for i, child in enumerate(layer):
            _flatten_reference(child, f"{prefix}{i}.", parts, params, train)
    elif isinstance(layer, L.Dense):
        w, b = arrays[0], (arrays[1] if len(arrays) > 1 else None)
        parts.append((lambda x: R.affine_forward(x, w, b), R.affine_backward, R.affine_double_backward, names))
        if layer.activation is not None:
            _flatten_reference(layer.activation, prefix + "activation.", parts, params, train)
    elif isinstance(layer, L.Conv2d):
        w, b = arrays[0], (arrays[1] if len(arrays) > 1 else None)
        parts.append((lambda x: R.conv2d_forward(x, w, b, layer.stride, layer.padding), R.conv2d_backward,
                      R.conv2d_double_backward, names))
    elif isinstance(layer, L.Maxout):
        w, b = arrays
        parts.append((lambda x: R.maxout_forward(x, w, b, layer.pieces), R.maxout_backward, R.maxout_double_backward,
                      names))
    elif isinstance(layer, L.Dropout):
        masks = [] if mask is None else [mask]

        def dropout(x):   # one mask per layer, drawn on the first call (or the fast layer's) and kept
            if train and not masks:
                masks.append(R.dropout_mask(x.shape, layer.p, np.random.default_rng(len(parts))))
            return R.dropout_forward(x, layer.p, masks[0] if train else None, train)
        parts.append((dropout, R.dropout_backward, R.dropout_double_backward, []))
    elif isinstance(layer, L.LayerNorm):
        if not arrays:   # no affine part: gamma 1 and beta 0, not parameters
            shape = layer.normalized_shape
            gamma, beta = np.ones(shape), np.zeros(shape)
            parts.append((lambda x: R.layernorm_forward(x, gamma, beta, layer.eps), _drop_grads(R.layernorm_backward),
                          _drop_grads(R.layernorm_double_backward, keep=2), []))
        else:
            gamma, beta = arrays
            parts.append((lambda x: R.layernorm_forward(x, gamma, beta, layer.eps), R.layernorm_backward,
                          R.layernorm_double_backward, names))
    else:
        functions = {L.ReLU: (R.relu_forward, R.relu_backward, R.relu_double_backward),
                     L.LeakyReLU: (lambda x: R.leaky_relu_forward(x, layer.alpha), R.leaky_relu_backward,
                                   R.leaky_relu_double_backward),
                     L.Tanh: (R.tanh_forward, R.tanh_backward, R.tanh_double_backward),
                     L.Sigmoid: (R.sigmoid_forward, R.sigmoid_backward, R.sigmoid_double_backward),
                     L.Reshape: (lambda x: R.reshape_forward(x, layer.shape), R.reshape_backward,
                                 R.reshape_double_backward),
                     L.Flatten: (R.flatten_forward, R.flatten_backward, R.flatten_double_backward)}
        if type(layer) not in functions:
            raise TypeError(f"no reference double backward for {layer!r}")
        parts.append((*functions[type(layer)], []))


def _drop_grads(function, keep=1):
    """``function`` returning only its first ``keep`` results (LayerNorm without its affine parameters)."""
    def dropped(*args):
        result = function(*args)
        return result[0] if keep == 1 else result[:keep]
    return dropped


def _reference_second_order_build(build):
    def reference_build():
        built = build()
        penalty, layer, x, train = (*built, True) if not isinstance(built[-1], bool) else (None, *built)
        return penalty, reference_second_order(layer, train), x
    return reference_build


def _run_reference_double(penalty, functions, x):
    from .gradcheck import check_function_double_backward
    forward, backward, double_backward, params = functions
    return check_function_double_backward(forward, backward, double_backward, x, params)


def _run_reference_penalty(penalty, functions, x, input_directions=0):
    """The penalty through the textbook functions: forward, backward (dout = 1), the penalty's formula,
    chain_double_backward; against central differences of the penalty (dP/dx along ``input_directions``
    random directions if > 0, as check_penalty)."""
    from .gradcheck import directional_error, numeric_gradient, rel_error
    forward, backward, double_backward, params = functions
    formula = {"GradientPenalty": lambda g: R.gradient_penalty(g, penalty.weight),
               "R1Penalty": lambda g: R.r1_penalty(g, penalty.gamma)}[type(penalty).__name__]

    def value():
        out, cache = forward(x)
        return formula(backward(np.ones_like(out), cache)[0])[0]

    out, cache = forward(x)
    dout = np.ones_like(out)
    g, _ = backward(dout, cache)
    _, dg = formula(g)
    _, dx, grads = double_backward(dg, cache, dout)
    errors = {name: rel_error(analytic, numeric_gradient(value, target))
              for name, (analytic, target) in {k: (grads[k], params[k]) for k in params}.items()}
    errors["x"] = (directional_error(value, x, dx, n_directions=input_directions) if input_directions
                   else rel_error(dx, numeric_gradient(value, x)))
    return {"x": errors.pop("x"), **errors}
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
    if case.runner is not None:
        return case.runner(*case.build())
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
        rows.append((case, errors, all(error < tolerance for error in errors.values())))   # NaN fails
    return rows


def _is_input_part(name):
    """"x0", "x1", ...: the parts of a tuple input (see gradcheck.input_parts)."""
    return name[:1] == "x" and name[1:].isdigit()


def format_table(rows, tolerance=TOLERANCE):
    header = ("layer / loss", "configuration", "dx", "parameters", "result")
    lines = []
    for case, errors, passed in rows:
        inputs = [v for k, v in errors.items() if k in ("x", "pred") or _is_input_part(k)]
        params = ", ".join(f"{k} {v:.1e}" for k, v in errors.items()
                           if k not in ("x", "pred") and not _is_input_part(k)) or "-"
        dx = f"{max(inputs):.1e}" if inputs else "- (labels)"
        lines.append((case.name, case.config, dx, params, "pass" if passed else "FAIL"))
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]
    fmt = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"
    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in lines]
    failed = sum(not passed for *_, passed in rows)
    what = "reference functions (scratchgan.reference): " if rows and all(c.is_reference for c, *_ in rows) else ""
    out.append(f"\n{what}{len(rows) - failed} passed, {failed} failed (max relative error < {tolerance:g}, "
               "float64, fourth-order central differences, h = 1e-3 for layers, 1e-4 for losses)")
    return "\n".join(out)


# -- multi-scale GANs (issue 14): AvgPool2d, PixelNorm, MinibatchStdDev, equalized lr, FadeIn, ConcatChannels,
#    the ProGAN critic ---------------------------------------------------------------------------------------

def _eq_conv(x_shape, out, k, s=1, p=0, bias=True, gain=np.sqrt(2)):
    return lambda: (_f64(L.EqualizedConv2d(x_shape[1], out, k, s, p, bias=bias, gain=gain, rng=RNG(0))),
                    _normal(*x_shape), True)


def _eq_dense(n, fan_in, fan_out, **kw):
    return lambda: (_f64(L.EqualizedDense(fan_in, fan_out, rng=RNG(0), **kw)), _normal(n, fan_in), True)


def _fade(x_shape, alpha, smooth=True):
    """A fade-in of a coarse path (AvgPool2d -> 1x1 conv) and a new block (3x3 conv -> AvgPool2d), as ProGAN's
    critic grows; tanh after each conv (smooth), or LeakyReLU (ProGAN's own, checked away from its kink)."""
    c = x_shape[1]

    def make():
        act = L.Tanh if smooth else (lambda: L.LeakyReLU(0.2))
        return L.FadeIn(L.Chain(L.AvgPool2d(2), L.EqualizedConv2d(c, 3, 1, rng=RNG(0)), act()),
                        L.Chain(L.EqualizedConv2d(c, 3, 3, padding=1, rng=RNG(1)), act(), L.AvgPool2d(2)), alpha)
    if smooth:
        return lambda: (_f64(make()), _normal(*x_shape), True)
    return _away_from_kinks(make, x_shape, margin=0.02)


def multiscale_cases():
    """First-order cases of the multi-scale layers (ConcatChannels, with its tuple input: multi_input_cases)."""
    return [
        Case("AvgPool2d", "2x2 (downsampling), 2x3x6x4", _simple(lambda: L.AvgPool2d(2), lambda: _normal(2, 3, 6, 4))),
        Case("AvgPool2d", "2 on odd 5x7 (last row/column dropped), batch 1",
             _simple(lambda: L.AvgPool2d(2), lambda: _normal(1, 2, 5, 7))),
        Case("AvgPool2d", "k3 s2 p1 (overlapping, padded), 2x2x7x6",
             _simple(lambda: L.AvgPool2d(3, 2, 1), lambda: _normal(2, 2, 7, 6))),
        Case("AvgPool2d", "k(3,2) s(1,2) p(1,0), 1x2x4x5",
             _simple(lambda: L.AvgPool2d((3, 2), (1, 2), (1, 0)), lambda: _normal(1, 2, 4, 5))),
        Case("PixelNorm", "(N, C, H, W), 3x5x2x3", _simple(L.PixelNorm, lambda: _normal(3, 5, 2, 3))),
        Case("PixelNorm", "(N, F) latent codes, batch 1, 1x7", _simple(L.PixelNorm, lambda: _normal(1, 7))),
        Case("PixelNorm", "two channels, odd 2x2x3x1", _simple(L.PixelNorm, lambda: _normal(2, 2, 3, 1))),
        Case("MinibatchStdDev", "groups of 3 in a batch of 6, 6x2x3x2",
             _simple(lambda: L.MinibatchStdDev(3), lambda: _normal(6, 2, 3, 2))),
        Case("MinibatchStdDev", "one group of 4, 4x3x2x2", _simple(L.MinibatchStdDev, lambda: _normal(4, 3, 2, 2))),
        Case("MinibatchStdDev", "groups of 2 in a batch of 8, odd 8x1x3x1",
             _simple(lambda: L.MinibatchStdDev(2), lambda: _normal(8, 1, 3, 1))),
        Case("MinibatchStdDev", "batch 1 (a group of one), 1x2x2x3",
             _simple(L.MinibatchStdDev, lambda: _normal(1, 2, 2, 3))),
        Case("EqualizedConv2d", "k3 s1 p1, 2x3x5x6", _eq_conv((2, 3, 5, 6), 4, 3, 1, 1)),
        Case("EqualizedConv2d", "k1 gain 1 (toRGB), batch 1, 1x4x3x5", _eq_conv((1, 4, 3, 5), 3, 1, gain=1.0)),
        Case("EqualizedConv2d", "k4 on 4x4 (ProGAN's last critic conv), no bias", _eq_conv((3, 2, 4, 4), 3, 4, bias=False)),
        Case("EqualizedConv2d", "k3 s2 p1, odd 2x2x7x5", _eq_conv((2, 2, 7, 5), 3, 3, 2, 1)),
        Case("EqualizedDense", "5->3, batch 4", _eq_dense(4, 5, 3)),
        Case("EqualizedDense", "7->2 gain 1, no bias, batch 1", _eq_dense(1, 7, 2, bias=False, gain=1.0)),
        Case("EqualizedDense", "6->4 tanh, batch 3", _eq_dense(3, 6, 4, activation="tanh")),
        Case("FadeIn", "alpha 0.3, AvgPool-conv old path, conv-AvgPool new path, 2x2x4x6", _fade((2, 2, 4, 6), 0.3)),
        Case("FadeIn", "alpha 0 (old path only), batch 1, 1x1x4x4", _fade((1, 1, 4, 4), 0.0)),
        Case("FadeIn", "alpha 1 (new path only), 3x2x2x4", _fade((3, 2, 2, 4), 1.0)),
    ]


def multiscale_double_backward_cases():
    off = lambda *shape: (lambda: _off_kink(*shape))
    return [
        _double("AvgPool2d", "2x2 (downsampling), 2x3x6x4", _simple(lambda: L.AvgPool2d(2), lambda: _normal(2, 3, 6, 4))),
        _double("AvgPool2d", "k3 s2 p1, batch 1, 1x2x7x6", _simple(lambda: L.AvgPool2d(3, 2, 1), lambda: _normal(1, 2, 7, 6))),
        _double("MinibatchStdDev", "groups of 3 in a batch of 6 (cross-sample terms), 6x2x3x2",
                _simple(lambda: L.MinibatchStdDev(3), lambda: _normal(6, 2, 3, 2))),
        _double("MinibatchStdDev", "one group of 4, 4x3x2x2", _simple(L.MinibatchStdDev, lambda: _normal(4, 3, 2, 2))),
        _double("MinibatchStdDev", "batch 1, 1x2x2x3", _simple(L.MinibatchStdDev, lambda: _normal(1, 2, 2, 3))),
        _double("EqualizedConv2d", "k3 s1 p1, 2x3x5x6", _eq_conv((2, 3, 5, 6), 4, 3, 1, 1)),
        _double("EqualizedConv2d", "k4 on 4x4, no bias, 3x2x4x4", _eq_conv((3, 2, 4, 4), 3, 4, bias=False)),
        _double("EqualizedDense", "5->3 gain 1, batch 4", _eq_dense(4, 5, 3, gain=1.0)),
        _double("EqualizedDense", "6->4 tanh, batch 1", _eq_dense(1, 6, 4, activation="tanh")),
        _double("FadeIn", "alpha 0.3, tanh paths, 2x2x4x6", _fade((2, 2, 4, 6), 0.3)),
        _double("FadeIn", "alpha 0.6, LeakyReLU paths, 3x1x4x4", _fade((3, 1, 4, 4), 0.6, smooth=False)),
        _double("LeakyReLU", "alpha 0.2 on a ProGAN map, 4x3x4x4", _simple(L.LeakyReLU, off(4, 3, 4, 4))),
        _double("ProGAN critic", "8x8 fading in (alpha 0.4): FadeIn, equalized convs, LeakyReLU, AvgPool2d, "
                                 "MinibatchStdDev (one group of 4), EqualizedDense; 4x1x8x8", _progan_critic(8, 0.4)),
    ]


def multiscale_penalty_cases():
    """WGAN-GP's penalty through a whole ProGAN critic (every layer, the fade-in and the minibatch layer's
    cross-sample terms) against differences of the penalty."""
    return [
        _progan_penalty("8x8 fading in (alpha 0.4), one group of 4, 4x1x8x8", _progan_critic(8, 0.4)),
        _progan_penalty("8x8 stable (alpha 1), 4x1x8x8", _progan_critic(8, 1.0)),
        _progan_penalty("4x4, RGB, two groups of 4, 8x3x4x4", _progan_critic(4, 1.0, channels=3, batch=8)),
    ]


def _progan_critic(resolution, alpha, channels=1, batch=4, width=1):
    """A tiny ProGAN critic grown to 8x8 (one channel per block) at stage (resolution, alpha), and an input
    that keeps every LeakyReLU input at least 0.02 from its kink and every group standard deviation of the
    minibatch layer at least 0.03 (its sqrt(var + eps) bends sharply near 0). Large biases (|b| >= 1.5,
    random signs) push most pre-activations away from 0; the layers feeding the minibatch layer (fromRGB,
    each block's last conv) keep theirs at 0, so their LeakyReLUs see both signs: a channel on one side
    only shifts every sample alike, the group statistics ignore that, and its bias's exact second-order
    gradient is 0 -- a value the differences can only return as rounding noise. The first (weight seed,
    input seed) pair that fits is used."""
    def build():
        from .gan.progan_models import ProGANCritic
        for weight_seed in range(40):
            critic = _f64(ProGANCritic(channels, final=8, width=width, group_size=4, rng=RNG(weight_seed)))
            rng = np.random.default_rng(weight_seed)
            for name, layer, key in critic.named_parameters():
                if key == "bias" and not name.startswith("rgb") and not name.endswith(".2.bias"):
                    bias = layer.params[key]
                    bias[...] = 3 * rng.choice([-1, 1], bias.shape) * (0.5 + np.abs(rng.standard_normal(bias.shape)))
            critic.set_stage(resolution, alpha)
            for seed in range(1, 100):
                x = _normal(batch, channels, resolution, resolution, seed=seed)
                kink, sigma = _smoothness_margins(critic, x)
                if kink > 0.02 and sigma > 0.03:
                    return critic, x, True
        raise RuntimeError("no ProGAN critic input keeps clear of the kinks")
    return build


def _smoothness_margins(model, x):
    """(smallest |input| of any ReLU/LeakyReLU, smallest group standard deviation of any MinibatchStdDev)
    in ``model`` (any container) at x: how far the forward pass is from the points where it bends."""
    kinks, sigmas = [np.inf], [np.inf]
    watched = [layer for _, layer in model.named_layers() if isinstance(layer, (L.ReLU, L.LeakyReLU, L.MinibatchStdDev))]

    def watch(layer):
        forward = layer._forward

        def recorded(z, train):
            y, cache = forward(z, train)
            if isinstance(layer, L.MinibatchStdDev):
                sigmas.append(float(cache[1].min()))
            else:
                kinks.append(float(np.abs(z).min()))
            return y, cache
        layer._forward = recorded

    for layer in watched:
        watch(layer)
    try:
        model.forward(x, train=True, keep_cache=False)
    finally:
        for layer in watched:
            del layer._forward
    return min(kinks), min(sigmas)


def _progan_penalty(config, build):
    from .penalties import GradientPenalty
    return Case("gradient penalty", f"lambda 10, ProGAN critic {config}; dx along 6 random directions",
                lambda: (GradientPenalty(10.0), *build()[:2]), runner=_run_progan_penalty)


PENALTY_INPUT_DIRECTIONS = 6


def _run_progan_penalty(penalty, model, x):
    """check_penalty, every parameter entry by entry and dP/dx along random directions: in a critic that is
    piecewise linear but for the minibatch layer, dP/dx comes only from that layer's curvature, and its
    entries span four orders of magnitude, the smallest (~1e-8 of a penalty ~10) below the differences'
    rounding floor (2e-16 x 10 / h); a projection on a random direction is not. (The critic's double
    backward case checks its dx entry by entry, for a random cotangent.)"""
    from .gradcheck import check_penalty
    return check_penalty(penalty, model, x, input_directions=PENALTY_INPUT_DIRECTIONS)


def _run_reference_progan_penalty(penalty, functions, x):
    return _run_reference_penalty(penalty, functions, x, input_directions=PENALTY_INPUT_DIRECTIONS)


def _concat(shapes):
    return lambda: (L.ConcatChannels(), tuple(_normal(*shape, seed=i + 1) for i, shape in enumerate(shapes)), True)


def multi_input_cases(reference=False):
    """ConcatChannels, whose input is a tuple: each input's gradient against finite differences."""
    cases = [
        Case("ConcatChannels", "noise plane + coarse image, 2x(1+1)x4x4", _concat([(2, 1, 4, 4), (2, 1, 4, 4)])),
        Case("ConcatChannels", "image + RGB condition, batch 1, 1x(3+3)x3x5", _concat([(1, 3, 3, 5), (1, 3, 3, 5)])),
        Case("ConcatChannels", "three inputs, 3x(2+1+4)x2x3", _concat([(3, 2, 2, 3), (3, 1, 2, 3), (3, 4, 2, 3)])),
    ]
    runner = _run_multi_input_reference if reference else _run_multi_input
    return [Case(c.name, c.config, c.build, is_reference=reference, runner=runner) for c in cases]


def _run_multi_input(layer, inputs, train):
    """{"x": worst error, "x[i]": error of input i}: the fast layer's backward, or (for a reference case)
    concat_channels_backward, against central differences of the forward pass."""
    from .gradcheck import numeric_gradient, rel_error, upstream_gradient
    out = layer.forward(inputs, train=train, keep_cache=True)
    dy = upstream_gradient(out.shape)
    grads = layer.backward(dy)
    errors = {f"x[{i}]": rel_error(g, numeric_gradient(lambda: layer.forward(inputs, keep_cache=False), x, dy))
              for i, (g, x) in enumerate(zip(grads, inputs))}
    return {"x": max(errors.values()), **errors}


def _run_multi_input_reference(layer, inputs, train):
    """As _run_multi_input, for the textbook concat_channels_forward / concat_channels_backward."""
    from .gradcheck import numeric_gradient, rel_error, upstream_gradient
    out, cache = R.concat_channels_forward(inputs)
    dy = upstream_gradient(out.shape)
    grads = R.concat_channels_backward(dy, cache)
    errors = {f"x[{i}]": rel_error(g, numeric_gradient(lambda: R.concat_channels_forward(inputs)[0], x, dy))
              for i, (g, x) in enumerate(zip(grads, inputs))}
    return {"x": max(errors.values()), **errors}


def _multiscale_reference(layer, params, train, seed):
    """reference_of for the multi-scale layers (issue 14), None for any other layer. Checked before the
    Dense and Conv2d branches: the equalized layers are subclasses of those."""
    if isinstance(layer, L.EqualizedConv2d):
        return _bind(R.equalized_conv2d_forward, R.equalized_conv2d_backward, params, gain=layer.gain,
                     stride=layer.stride, padding=layer.padding)
    if isinstance(layer, L.EqualizedDense):
        affine = _bind(R.equalized_affine_forward, R.equalized_affine_backward, params, gain=layer.gain)
        return affine if layer.activation is None else _sequence([affine, reference_of(layer.activation)], ["", ""])
    if isinstance(layer, L.AvgPool2d):
        return _bind(R.avg_pool_forward, R.avg_pool_backward, params, kernel=layer.kernel_size, stride=layer.stride,
                     padding=layer.padding)
    if isinstance(layer, L.PixelNorm):
        return _bind(R.pixelnorm_forward, R.pixelnorm_backward, params, eps=layer.eps)
    if isinstance(layer, L.MinibatchStdDev):
        return _bind(R.minibatch_stddev_forward, R.minibatch_stddev_backward, params, group_size=layer.group_size,
                     eps=layer.eps)
    if isinstance(layer, L.FadeIn):
        old_forward, old_backward, old_params = reference_of(layer.old, train, seed=seed)
        new_forward, new_backward, new_params = reference_of(layer.new, train, seed=seed)

        def forward(x):
            return R.fade_in_forward(x, old_forward, new_forward, layer.alpha)

        def backward(dout, cache):
            dx, grads_old, grads_new = R.fade_in_backward(dout, cache, old_backward, new_backward)
            return dx, {**{f"old.{k}": g for k, g in grads_old.items()}, **{f"new.{k}": g for k, g in grads_new.items()}}
        return forward, backward, {**{f"old.{k}": a for k, a in old_params.items()},
                                   **{f"new.{k}": a for k, a in new_params.items()}}
    return None


def _flatten_multiscale_reference(layer, prefix, parts, params, train, arrays, names):
    """_flatten_reference for the multi-scale layers (issue 14); False for any other layer. A FadeIn, or a
    growing ProGAN model, becomes one part whose paths are flattened reference chains, parameters named
    as the fast model names them."""
    from .gan.progan_models import Growing
    if isinstance(layer, Growing):
        lookup = {id(sub): f"{prefix}{name}." for name, sub in layer.named_layers() if name}
        _flatten_named(layer.path, prefix, lookup, parts, params, train)
        return True
    if isinstance(layer, L.FadeIn):
        lookup = {id(sub): f"{prefix}{name}." for name, sub in layer.named_layers() if name}
        _flatten_named(layer, prefix, lookup, parts, params, train)
        return True
    if isinstance(layer, L.EqualizedConv2d):
        w, b = arrays[0], (arrays[1] if len(arrays) > 1 else None)
        parts.append((lambda x: R.equalized_conv2d_forward(x, w, b, layer.gain, layer.stride, layer.padding),
                      R.equalized_conv2d_backward, R.equalized_conv2d_double_backward, names))
        return True
    if isinstance(layer, L.EqualizedDense):
        w, b = arrays[0], (arrays[1] if len(arrays) > 1 else None)
        parts.append((lambda x: R.equalized_affine_forward(x, w, b, layer.gain), R.equalized_affine_backward,
                      R.equalized_affine_double_backward, names))
        if layer.activation is not None:
            _flatten_reference(layer.activation, prefix + "activation.", parts, params, train)
        return True
    if isinstance(layer, L.AvgPool2d):
        parts.append((lambda x: R.avg_pool_forward(x, layer.kernel_size, layer.stride, layer.padding),
                      R.avg_pool_backward, R.avg_pool_double_backward, []))
        return True
    if isinstance(layer, L.MinibatchStdDev):
        parts.append((lambda x: R.minibatch_stddev_forward(x, layer.group_size, layer.eps), R.minibatch_stddev_backward,
                      R.minibatch_stddev_double_backward, []))
        return True
    return False


def _flatten_named(layer, fallback, lookup, parts, params, train):
    """Flatten ``layer`` (a Chain, a FadeIn or a plain layer) with each sub-layer's parameters named by
    ``lookup`` (id -> "name.") where it is registered, else by its position."""
    prefix = lookup.get(id(layer), fallback)
    if isinstance(layer, L.Chain):
        for i, child in enumerate(layer):
            _flatten_named(child, f"{prefix}{i}.", lookup, parts, params, train)
    elif isinstance(layer, L.FadeIn):
        parts.append(_fade_part(layer, prefix, lookup, params, train))
    else:
        _flatten_reference(layer, prefix, parts, params, train)


def _fade_part(fade, prefix, lookup, params, train):
    """(forward, backward, double_backward, names) of a FadeIn over its two flattened paths."""
    paths = []
    for name, path in (("old", fade.old), ("new", fade.new)):
        path_parts = []
        _flatten_named(path, f"{prefix}{name}.", lookup, path_parts, params, train)
        paths.append(([(f, b) for f, b, _, _ in path_parts], [d for _, _, d, _ in path_parts],
                      [n for _, _, _, n in path_parts]))
    (old_pairs, old_doubles, old_names), (new_pairs, new_doubles, new_names) = paths
    names = [n for layer_names in old_names + new_names for n in layer_names]

    def flat(per_layer):
        return tuple(g for grads in per_layer for g in grads)

    def forward(x):
        return R.fade_in_forward(x, lambda v: R.chain_forward(v, old_pairs), lambda v: R.chain_forward(v, new_pairs),
                                 fade.alpha)

    def backward(dout, cache):
        dx, old, new = R.fade_in_backward(dout, cache, R.chain_backward, R.chain_backward)
        return (dx, *flat(old), *flat(new))

    def double_backward(ddx, cache, dout):
        def old_double(u, c, d):
            return R.chain_double_backward(u, c, d, old_doubles)

        def new_double(u, c, d):
            return R.chain_double_backward(u, c, d, new_doubles)
        ddout, dx, old, new = R.fade_in_double_backward(ddx, cache, dout, old_double, new_double)
        return (ddout, dx, *flat(old), *flat(new))
    return forward, backward, double_backward, names
