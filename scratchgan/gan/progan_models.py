"""ProGAN's growing models (Karras, Aila, Laine & Lehtinen 2018): a generator and a critic whose layers in
use depend on the stage (resolution, alpha), 4x4 -> 8x8 -> 16x16 -> 32x32. The schedule, the game and the
recipe that train them: gan/progan.py.

Models (Table 2 of the paper, narrower; nf(r) = min(width, 8 width / r) channels at resolution r):

    G: z -> PixelNorm -> EqDense(z, 16 nf(4)) -> 4x4 -> LReLU -> PixelNorm -> EqConv3x3 -> LReLU -> PixelNorm
       block_r: Upsample x2 (nearest) -> [EqConv3x3 -> LReLU -> PixelNorm] x 2;   toRGB_r: EqConv1x1 (linear)
    D: fromRGB_r: EqConv1x1 -> LReLU;   block_r: [EqConv3x3 -> LReLU] x 2 -> AvgPool2d(2)
       block_4: MinibatchStdDev -> EqConv3x3 -> LReLU -> EqConv4x4 (valid) -> LReLU -> Flatten -> EqDense(1)

with equalized learning rate everywhere (``EqualizedConv2d``/``EqualizedDense``). While resolution r is
faded in (alpha < 1):

    G: image = (1 - alpha) upsample(toRGB_{r/2}(f_{r/2})) + alpha toRGB_r(block_r(f_{r/2}))
    D: h_{r/2} = (1 - alpha) fromRGB_{r/2}(avgpool(x)) + alpha block_r(fromRGB_r(x))
"""
import math

from .. import layers as L
from ..layers.base import Layer, resolve_keep_cache

SQRT2 = math.sqrt(2)


def resolutions_up_to(final):
    """4, 8, ..., final (a power of two >= 4)."""
    if final < 4 or final & (final - 1):
        raise ValueError(f"progan grows to a power of two >= 4, got {final}")
    return tuple(4 * 2 ** i for i in range(int(math.log2(final)) - 1))


def channels_at(resolution, width):
    """nf(r) = min(width, 8 width / r): ``width`` channels at 4x4 and 8x8, halved at each doubling after."""
    return max(1, min(width, width * 8 // resolution))


# -- growing models -------------------------------------------------------------------------------
class Growing(Layer):
    """A model whose layers in use depend on its stage (resolution, alpha): ``set_stage`` builds
    ``path``, the Chain that forward, backward and double_backward run. Every block is a child
    (saved, moved and optimised) whether the current stage uses it or not; unused blocks get zero
    gradients. ``layers`` (the path's) lets penalties treat the model as the Chain it is now."""

    def __init__(self, final):
        super().__init__()
        self.resolutions = resolutions_up_to(final)
        self.resolution, self.alpha, self.path, self.fade = None, 1.0, None, None

    def set_stage(self, resolution, alpha=1.0):
        """Use the blocks up to ``resolution``; with alpha < 1 (resolution > 4), fade its block in."""
        if resolution not in self.resolutions:
            raise ValueError(f"{type(self).__name__}: resolution must be one of {self.resolutions}, got {resolution}")
        if not 0 <= alpha <= 1 or (alpha < 1 and resolution == self.resolutions[0]):
            raise ValueError(f"{type(self).__name__}: alpha must be in [0, 1] (1 at {self.resolutions[0]}x"
                             f"{self.resolutions[0]}), got {alpha}")
        fading = alpha < 1
        if self.path is None or resolution != self.resolution or fading != (self.fade is not None):
            self.path, self.fade = self._build_path(resolution, fading)
        if self.fade is not None:
            self.fade.alpha = alpha
        self.resolution, self.alpha = resolution, float(alpha)
        return self

    def _build_path(self, resolution, fading):
        """(Chain, its FadeIn or None) for this stage."""
        raise NotImplementedError

    @property
    def layers(self):
        return self.path.layers

    @property
    def has_double_backward(self):
        return self.path.has_double_backward

    def forward(self, x, train=None, keep_cache=None, *, grad=None):
        train = self.training if train is None else train
        return self.path.forward(x, train=train, keep_cache=resolve_keep_cache(keep_cache, grad, train))

    __call__ = forward

    def backward(self, dy, input_grad=True, keep_cache=False):
        return self.path.backward(dy, input_grad=input_grad, keep_cache=keep_cache)

    def double_backward(self, ddx, keep_cache=False, input_grad=True):
        return self.path.double_backward(ddx, keep_cache=keep_cache, input_grad=input_grad)

    def children(self):
        return list(self.blocks.items())

    def __repr__(self):
        return f"{type(self).__name__}(stage {self.resolution}x{self.resolution}, alpha {self.alpha:.3f})"


class ProGANGenerator(Growing):
    """z (N, z_dim) -> images (N, channels, r, r), r the stage's resolution (linear output, about [-1, 1])."""

    def __init__(self, z_dim, channels, final=32, width=64, rng=None):
        super().__init__(final)
        nf = {r: channels_at(r, width) for r in self.resolutions}
        self.blocks = {"b4": L.Chain(
            L.PixelNorm(), L.EqualizedDense(z_dim, 16 * nf[4], gain=SQRT2 / 4, rng=rng), L.Reshape(nf[4], 4, 4),
            L.LeakyReLU(0.2), L.PixelNorm(),
            L.EqualizedConv2d(nf[4], nf[4], 3, padding=1, rng=rng), L.LeakyReLU(0.2), L.PixelNorm())}
        for low, r in zip(self.resolutions, self.resolutions[1:]):
            self.blocks[f"b{r}"] = L.Chain(
                L.Upsample(2), L.EqualizedConv2d(nf[low], nf[r], 3, padding=1, rng=rng), L.LeakyReLU(0.2), L.PixelNorm(),
                L.EqualizedConv2d(nf[r], nf[r], 3, padding=1, rng=rng), L.LeakyReLU(0.2), L.PixelNorm())
        for r in self.resolutions:
            self.blocks[f"rgb{r}"] = L.EqualizedConv2d(nf[r], channels, 1, gain=1.0, rng=rng)
        self.z_dim, self.channels = z_dim, channels
        self.set_stage(self.resolutions[0])

    def _build_path(self, resolution, fading):
        below = [r for r in self.resolutions if r < resolution]
        b = self.blocks
        if not fading:
            return L.Chain(*[b[f"b{r}"] for r in below], b[f"b{resolution}"], b[f"rgb{resolution}"]), None
        fade = L.FadeIn(old=L.Chain(b[f"rgb{below[-1]}"], L.Upsample(2)),
                        new=L.Chain(b[f"b{resolution}"], b[f"rgb{resolution}"]))
        return L.Chain(*[b[f"b{r}"] for r in below], fade), fade


class ProGANCritic(Growing):
    """images (N, channels, r, r) at the stage's resolution -> (N, 1) critic scores."""

    def __init__(self, channels, final=32, width=64, group_size=4, rng=None):
        super().__init__(final)
        nf = {r: channels_at(r, width) for r in self.resolutions}
        self.blocks = {}
        for r in self.resolutions:
            self.blocks[f"rgb{r}"] = L.Chain(L.EqualizedConv2d(channels, nf[r], 1, rng=rng), L.LeakyReLU(0.2))
        for low, r in zip(self.resolutions, self.resolutions[1:]):
            self.blocks[f"b{r}"] = L.Chain(
                L.EqualizedConv2d(nf[r], nf[r], 3, padding=1, rng=rng), L.LeakyReLU(0.2),
                L.EqualizedConv2d(nf[r], nf[low], 3, padding=1, rng=rng), L.LeakyReLU(0.2), L.AvgPool2d(2))
        self.blocks["b4"] = L.Chain(
            L.MinibatchStdDev(group_size), L.EqualizedConv2d(nf[4] + 1, nf[4], 3, padding=1, rng=rng), L.LeakyReLU(0.2),
            L.EqualizedConv2d(nf[4], nf[4], 4, rng=rng), L.LeakyReLU(0.2), L.Flatten(),
            L.EqualizedDense(nf[4], 1, gain=1.0, rng=rng))
        self.channels = channels
        self.set_stage(self.resolutions[0])

    def _build_path(self, resolution, fading):
        below = [r for r in self.resolutions if r < resolution][::-1]   # coarser blocks, finest first
        b = self.blocks
        if not fading:
            return L.Chain(b[f"rgb{resolution}"], *[b[f"b{r}"] for r in [resolution] + below]), None
        fade = L.FadeIn(old=L.Chain(L.AvgPool2d(2), b[f"rgb{below[0]}"]),
                        new=L.Chain(b[f"rgb{resolution}"], b[f"b{resolution}"]))
        return L.Chain(fade, *[b[f"b{r}"] for r in below]), fade
