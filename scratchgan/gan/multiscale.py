"""What the multi-scale families (ProGAN, LAPGAN) share: image pyramids and the evaluation of a sampler.

A growing generator's samples are not one fixed-size "G(z)" that ``GANRun``'s evaluation could call:
the family gives a *sampler*, a function ``(n, seed) -> images in [0, 1]`` (ProGAN: the current stage's
samples enlarged to 32x32 and cropped to 28x28), and the evaluation scores them. (LAPGAN's cascade is
itself one generator of fixed-size images, ``LaplacianCascade``, so its runs use the plain evaluation.)
"""
import numpy as np

from .. import backend
from .evaluate import RunEvaluator


def downscale(x, factor=2):
    """The mean of each factor x factor block (AvgPool2d(factor) without a layer): (N, C, H, W) -> (N, C, H/f, W/f)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def upscale_nearest(x, factor=2):
    """Each pixel as a factor x factor block (nearest Upsample without a layer)."""
    return x.repeat(factor, axis=2).repeat(factor, axis=3)


def crop_center(x, size):
    """The central size x size of (N, C, H, W) images."""
    top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
    return x[:, :, top:top + size, left:left + size]


class SamplerEvaluator(RunEvaluator):
    """``RunEvaluator`` (per-epoch and final classifier metrics) on the images of ``sampler(n, seed)``,
    float32 (n, 1, 28, 28) in [0, 1], instead of one generator's forward pass."""

    sampler = None

    def samples(self, trainer, setup, n, seed, generator=None):
        """(images, no labels): progan keeps no weight average, so ``generator`` has no other choice."""
        return np.asarray(backend.asnumpy(self.sampler(n, seed)), np.float32), None
