"""Wasserstein GANs against PyTorch in float64 (skipped without torch): RMSprop, LayerNorm, every
layer's double backward against autograd's, and one whole WGAN-GP critic step against the
PyTorch reference script (demos/torch_reference/wgan_gp.py) from the same weights.

Agreement: max |ours - torch| / max |torch| <= 1e-9 (as tests/test_torch_reference.py).
"""
import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

import scratchgan.layers as L  # noqa: E402
from scratchgan import backend  # noqa: E402
from scratchgan.backend import RNG  # noqa: E402
from scratchgan.gan.recipes import get_recipe  # noqa: E402
from scratchgan.gan.trainer import GANTrainer  # noqa: E402
from scratchgan.gradcheck_cases import double_backward_cases, layernorm_cases  # noqa: E402
from scratchgan.optim import RMSprop  # noqa: E402

MAX_REL_ERROR = 1e-9
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _float64():
    backend.set_default_dtype(np.float64)
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def t(array):
    return torch.tensor(np.asarray(array), dtype=torch.float64)


def assert_agree(quantities):
    for name, (ours, theirs) in quantities.items():
        theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
        ours = np.asarray(ours, dtype=np.float64)
        assert ours.shape == theirs.shape, f"{name}: shape {ours.shape} but torch gives {theirs.shape}"
        err = np.abs(ours - theirs).max() / max(np.abs(theirs).max(), np.finfo(float).tiny)
        assert err <= MAX_REL_ERROR, f"{name}: relative error {err:.2e} against torch"


def copy_params(ours, module):
    """scratchgan's parameters into a torch module, in registration order (the layouts are PyTorch's)."""
    mine, theirs = ours.named_parameters(), list(module.parameters())
    assert len(mine) == len(theirs)
    with torch.no_grad():
        for (_, layer, key), param in zip(mine, theirs):
            assert tuple(param.shape) == layer.params[key].shape
            param.copy_(t(layer.params[key]))


# -- RMSprop ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"lr": 5e-5}, {"centered": True, "alpha": 0.9},
                                     {"momentum": 0.9, "eps": 1e-3}, {"weight_decay": 0.1, "centered": True,
                                                                      "momentum": 0.5}])
def test_rmsprop_equals_torch(options):
    layer = L.Dense(5, 3, rng=RNG(0))
    module = torch.nn.Linear(5, 3)
    copy_params(layer, module)
    ours, theirs = RMSprop(layer, **options), torch.optim.RMSprop(module.parameters(), **options)
    rng = np.random.default_rng(1)
    for _ in range(4):
        for (_, lyr, key), param in zip(layer.named_parameters(), module.parameters()):
            grad = rng.standard_normal(param.shape)
            lyr.grads[key][...] = grad
            param.grad = t(grad)
        ours.step()
        theirs.step()
    assert_agree({name: (lyr.params[key], param) for (name, lyr, key), param in
                  zip(layer.named_parameters(), module.parameters())})


# -- LayerNorm and the double backward against autograd ---------------------------------------------

@pytest.mark.parametrize("case", layernorm_cases(), ids=lambda c: c.config)
def test_layernorm_equals_torch(case):
    layer, x, _ = case.build()
    module = _torch_pair(layer)
    y = layer.forward(x, keep_cache=True)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)
    tx = t(x).requires_grad_(True)
    ty = module(tx)
    ty.backward(t(dy))
    quantities = {"forward": (y, ty), "dx": (dx, tx.grad)}
    for key, param in module.named_parameters():
        quantities[key] = (layer.grads[key], param.grad)
    assert_agree(quantities)


def _torch_pair(layer):
    """The torch module computing the same function as scratchgan ``layer``, its parameters copied."""
    multiscale = _multiscale_pair(layer)   # issue 14 (before Dense and Conv2d: the equalized layers subclass them)
    if multiscale is not None:
        return multiscale
    if isinstance(layer, L.Chain):
        module = torch.nn.Sequential(*[_torch_pair(child) for child in layer])
        return module
    if isinstance(layer, L.SpectralNorm):   # issue 18
        return _SpectralNormTwin(layer)
    if isinstance(layer, L.DiffAugment):    # issue 18
        return _DiffAugmentTwin(layer)
    if isinstance(layer, L.Dense):
        linear = torch.nn.Linear(layer.in_features, layer.out_features, bias="bias" in layer.params)
        _copy_leaf(layer, linear)
        return linear if layer.activation is None else torch.nn.Sequential(linear, _torch_pair(layer.activation))
    if isinstance(layer, L.Conv2d):
        conv = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                               layer.padding, bias="bias" in layer.params)
        _copy_leaf(layer, conv)
        return conv
    if isinstance(layer, L.Maxout):       # no torch layer: the affine map, then the max over each unit's pieces
        linear = torch.nn.Linear(layer.in_features, layer.out_features * layer.pieces)
        _copy_leaf(layer, linear)
        return torch.nn.Sequential(linear, torch.nn.Unflatten(1, (layer.out_features, layer.pieces)),
                                   _Lambda(lambda z: z.max(dim=2).values))
    if isinstance(layer, L.Dropout):      # the fast layer's own mask (its cache), or none in eval mode
        scaled_mask = layer._cache[0] if layer._cache is not None else None
        return _Lambda(lambda x: x if scaled_mask is None else x * t(scaled_mask))
    if isinstance(layer, L.LayerNorm):
        norm = torch.nn.LayerNorm(layer.normalized_shape, eps=layer.eps, elementwise_affine="weight" in layer.params)
        _copy_leaf(layer, norm)
        return norm
    simple = {L.ReLU: torch.nn.ReLU, L.Tanh: torch.nn.Tanh, L.Sigmoid: torch.nn.Sigmoid, L.Flatten: torch.nn.Flatten}
    if isinstance(layer, L.LeakyReLU):
        return torch.nn.LeakyReLU(layer.alpha)
    if isinstance(layer, L.Reshape):
        return torch.nn.Unflatten(1, layer.shape)
    return simple[type(layer)]()


class _Lambda(torch.nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


# -- torch twins of the multi-scale layers (issue 14) -----------------------------------------------

class _Equalized(torch.nn.Module):
    """weight (stored unscaled, the parameter autograd differentiates) times c = gain / sqrt(fan_in) at run time."""

    def __init__(self, layer, function):
        super().__init__()
        self.weight = torch.nn.Parameter(t(layer.params["weight"]))
        self.bias = torch.nn.Parameter(t(layer.params["bias"])) if "bias" in layer.params else None
        self.scale, self.function = layer.scale, function

    def forward(self, x):
        return self.function(x, self.weight * self.scale, self.bias)


class _FadeIn(torch.nn.Module):
    def __init__(self, old, new, alpha):
        super().__init__()
        self.old, self.new, self.alpha = old, new, alpha

    def forward(self, x):
        return (1 - self.alpha) * self.old(x) + self.alpha * self.new(x)


class _Growing(torch.nn.Module):
    """Every block registered (in the model's order, so parameters zip with named_parameters), the path run."""

    def __init__(self, blocks, path):
        super().__init__()
        self.blocks = torch.nn.ModuleList(blocks)
        self.path = [path]          # a list: not registered twice

    def forward(self, x):
        return self.path[0](x)


def _minibatch_stddev(x, group_size, eps):
    n, c, h, w = x.shape
    g = min(group_size, n)
    groups = x.reshape(n // g, g, c, h, w)
    sigma = torch.sqrt(((groups - groups.mean(dim=1, keepdim=True)) ** 2).mean(dim=1) + eps)
    s = sigma.mean(dim=(1, 2, 3))                                     # one number per group
    return torch.cat([x, s.repeat_interleave(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


def _twin(layer, shared):
    pair = _multiscale_pair(layer, shared)
    return _torch_pair(layer) if pair is None else pair


def _multiscale_pair(layer, shared=None):
    """The torch twin of a multi-scale layer (or of a container of them), None for any other layer.
    ``shared``: id(scratchgan block) -> its twin, so a growing model's path reuses its blocks' twins."""
    from scratchgan.gan.progan_models import Growing
    import torch.nn.functional as F
    shared = {} if shared is None else shared
    if id(layer) in shared:
        return shared[id(layer)]
    if isinstance(layer, Growing):
        blocks = {id(block): _torch_pair(block) for block in layer.blocks.values()}
        return _Growing(list(blocks.values()), _multiscale_pair(layer.path, blocks))
    if shared and isinstance(layer, L.Chain):
        return torch.nn.Sequential(*[_twin(child, shared) for child in layer])
    if isinstance(layer, L.FadeIn):
        return _FadeIn(_twin(layer.old, shared), _twin(layer.new, shared), layer.alpha)
    if isinstance(layer, L.EqualizedConv2d):
        return _Equalized(layer, lambda x, w, b: F.conv2d(x, w, b, layer.stride, layer.padding))
    if isinstance(layer, L.EqualizedDense):
        affine = _Equalized(layer, F.linear)
        return affine if layer.activation is None else torch.nn.Sequential(affine, _torch_pair(layer.activation))
    if isinstance(layer, L.AvgPool2d):
        return torch.nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, count_include_pad=True)
    if isinstance(layer, L.PixelNorm):
        return _Lambda(lambda x: x * torch.rsqrt((x * x).mean(dim=1, keepdim=True) + layer.eps))
    if isinstance(layer, L.MinibatchStdDev):
        return _Lambda(lambda x: _minibatch_stddev(x, layer.group_size, layer.eps))
    return None
class _SpectralNormTwin(torch.nn.Module):
    """The wrapped layer's torch twin computing with W / (u^T W v), u and v the layer's buffers as its
    pass left them (constants, as in the backward of Miyato et al. and PyTorch), W the twin's parameter."""

    def __init__(self, layer):
        super().__init__()
        self.inner = _torch_pair(layer.layer)          # Conv2d, Linear, or Sequential(Linear, activation)
        self.weight_name = "0.weight" if isinstance(self.inner, torch.nn.Sequential) else "weight"
        self.u, self.v, self.dim = t(layer.buffers["u"]), t(layer.buffers["v"]), layer.dim

    def forward(self, x):
        params = dict(self.inner.named_parameters())
        w = params[self.weight_name]
        sigma = self.u @ torch.movedim(w, self.dim, 0).reshape(w.shape[self.dim], -1) @ self.v
        return torch.func.functional_call(self.inner, {**params, self.weight_name: w / sigma}, (x,))


class _DiffAugmentTwin(torch.nn.Module):
    """DiffAugment's transformation with the draws of the layer's latest training pass (identity without
    one), written with torch's pad, indexing and masking so that autograd differentiates it."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.step = layer, int(layer.buffers["step"]) - 1

    def forward(self, x):
        if self.step < 0:
            return x
        draws, fill = self.layer.draws(tuple(x.shape), self.step), self.layer.fill
        if draws["shift"] is not None:
            shift, (n, _, h, w) = draws["shift"], x.shape
            pad = int(np.abs(shift).max())
            padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=fill)
            rows = torch.as_tensor(np.arange(h)[None, :] - shift[:, :1] + pad)
            cols = torch.as_tensor(np.arange(w)[None, :] - shift[:, 1:] + pad)
            x = padded[torch.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if draws["mask"] is not None:
            mask = t(draws["mask"])
            x = x * mask + fill * (1 - mask)
        return x


def _copy_leaf(layer, module):
    with torch.no_grad():
        for key, param in module.named_parameters():
            param.copy_(t(layer.params[key]))


@pytest.mark.parametrize("case", double_backward_cases(), ids=lambda c: f"{c.name}[{c.config}]")
def test_double_backward_equals_autograd(case):
    """Forward, g = J^T dy, and the double backward (ddy, dx, every parameter) against torch's
    autograd.grad(..., create_graph=True) differentiated again."""
    layer, x, train = case.build()
    y = layer.forward(x, train=train, keep_cache=True)
    module = _torch_pair(layer)                   # after the forward pass: Dropout's torch twin takes its mask
    dy = np.random.default_rng(3).standard_normal(y.shape)
    layer.requires_grad_(False)
    g = layer.backward(dy, keep_cache=True)
    layer.requires_grad_(True)
    ddx = np.random.default_rng(4).standard_normal(g.shape)
    layer.zero_grad()
    ddy, dx = layer.double_backward(ddx)

    tx, tdy = t(x).requires_grad_(True), t(dy).requires_grad_(True)
    ty = module(tx)
    (tg,) = torch.autograd.grad(ty, tx, tdy, create_graph=True)
    params = list(module.parameters())
    grads = torch.autograd.grad(tg, [tx, tdy, *params], t(ddx), allow_unused=True)
    zero = lambda a, like: torch.zeros_like(like) if a is None else a
    quantities = {"forward": (y, ty), "input gradient": (g, tg), "ddy": (ddy, zero(grads[1], tdy)),
                  "dx": (np.zeros_like(x) if dx is None else dx, zero(grads[0], tx))}
    for (name, lyr, key), param, grad in zip(layer.named_parameters(), params, grads[2:]):
        quantities[name] = (lyr.grads[key], zero(grad, param))
    assert_agree(quantities)


# -- one WGAN-GP critic step against the reference script ----------------------------------------------

def _reference_script():
    spec = importlib.util.spec_from_file_location("torch_wgan_gp", ROOT / "demos/torch_reference/wgan_gp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("d_norm", ["none", "layernorm"])
def test_one_wgan_gp_critic_step_equals_the_pytorch_reference(d_norm):
    """Same weights in both, same real batch, noise and interpolation weights: the critic's loss, its
    Wasserstein estimate, the penalty, every gradient (loss + penalty) and the Adam update agree."""
    ref = _reference_script()
    recipe = get_recipe("wgan-gp-paper")
    options = recipe.options(ngf=4, ndf=4, batch_size=3, d_norm=d_norm, k=5)
    backend.manual_seed(0)
    setup = recipe.setup(options)
    trainer = GANTrainer.from_setup(setup)
    G, D = ref.generator(100, 4, "batchnorm"), ref.critic(4, d_norm)
    copy_params(setup.G, G)
    copy_params(setup.D, D)
    real = np.random.default_rng(0).uniform(-1, 1, (3, 1, 28, 28))
    noise = np.random.default_rng(1).standard_normal((3, 100, 1, 1))
    fake = setup.G.forward(noise, train=True, keep_cache=False)
    state = trainer.rng.state_dict()
    eps = trainer.extensions[0].points(trainer, {"real": np.ones_like(real), "fake": np.zeros_like(real)})[:, :1, :1, :1]
    trainer.rng.load_state_dict(state)

    step = setup.opt_d.step
    setup.opt_d.step = lambda: None
    d_loss, score_real, score_fake, (penalty,) = trainer.discriminator_step(real, fake)
    grads = {name: lyr.grads[key].copy() for name, lyr, key in setup.D.named_parameters()}
    step()

    tfake = G(t(noise))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.9))
    captured = {}
    original_step = opt_d.step

    def capture_then_step():
        captured.update({n: p.grad.clone() for n, p in D.named_parameters()})
        return original_step()
    opt_d.step = capture_then_step
    loss, estimate, t_penalty = ref.critic_step(D, opt_d, t(real), tfake.detach(), t(eps), 10.0)
    quantities = {"fake": (fake, tfake), "critic loss": (d_loss, loss), "penalty": (penalty, t_penalty),
                  "estimate": (score_real.mean() - score_fake.mean(), estimate)}
    names = [name for name, _, _ in setup.D.named_parameters()]
    for name, (tname, param) in zip(names, D.named_parameters()):
        quantities[f"grad {name}"] = (grads[name], captured[tname])
        quantities[f"after Adam {name}"] = (dict((n, lyr.params[k]) for n, lyr, k in setup.D.named_parameters())[name],
                                             param)
    assert_agree(quantities)
