"""Layers with hand-written forward and backward passes, one family per file."""
from .activations import (LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, leakyrelu, relu, sigmoid, tanh)
from .base import Layer
from .chain import Chain, Sequential
from .conv import Conv2d, ConvTranspose2d, col2im, im2col
from .dense import Dense, Maxout
from .dropout import Dropout
from .norm import BatchNorm
from .shape import Flatten, Reshape
# conditional models: several inputs and outputs, class labels (issue 19)
from .combine import Concat, Fork, Identity, Parallel, Select
from .embedding import Embedding, OneHot, Projection

# -- Wasserstein GANs (issue 17): LayerNorm, a normalisation a gradient-penalty critic may use
from .layernorm import LayerNorm
# image-to-image layers (issue 20)
from .activations import PReLU
from .instancenorm import InstanceNorm
from .padding import ReflectionPad2d
from .residual import Residual
from .resize import PixelShuffle, Upsample
# a better DCGAN-28 recipe (issue 18): spectral normalisation, differentiable augmentation
from .augment import DiffAugment
from .spectral_norm import SpectralNorm

__all__ = ["Layer", "Dense", "Maxout", "Conv2d", "ConvTranspose2d", "BatchNorm", "ReLU", "LeakyReLU",
           "Tanh", "Sigmoid", "Softmax", "Dropout", "Reshape", "Flatten", "Chain", "Sequential",
           "relu", "leakyrelu", "tanh", "sigmoid", "im2col", "col2im"]
__all__ += ["LayerNorm"]   # Wasserstein GANs (issue 17)
__all__ += ["PReLU", "InstanceNorm", "ReflectionPad2d", "Residual", "PixelShuffle", "Upsample"]  # issue 20
__all__ += ["Identity", "Parallel", "Fork", "Concat", "Select", "OneHot", "Embedding", "Projection"]  # issue 19

# -- multi-scale GANs (issue 14): LAPGAN and ProGAN
from .concat import ConcatChannels
from .equalized import EqualizedConv2d, EqualizedDense
from .fade import FadeIn
from .minibatch_stddev import MinibatchStdDev
from .pixelnorm import PixelNorm
from .pooling import AvgPool2d

__all__ += ["AvgPool2d", "ConcatChannels", "EqualizedConv2d", "EqualizedDense", "FadeIn", "MinibatchStdDev",
            "PixelNorm"]  # issue 14
__all__ += ["SpectralNorm", "DiffAugment"]   # issue 18
# -- issue 15 (the dynamics lab's fixes): minibatch discrimination, virtual batch normalization
from .minibatch import MinibatchDiscrimination
from .vbn import VirtualBatch, VirtualBatchNorm

__all__ += ["MinibatchDiscrimination", "VirtualBatchNorm", "VirtualBatch"]
