"""scratchgan: GANs with hand-written forward and backward passes, on NumPy or CuPy."""
from . import backend, init, losses, optim
from .backend import (get_xp, gpu_available, manual_seed, set_default_device, set_default_dtype,
                      to_device)
from .layers import (BatchNorm, Chain, Conv2d, ConvTranspose2d, Dense, Dropout, Flatten, Layer,
                     LeakyReLU, Maxout, ReLU, Reshape, Sequential, Sigmoid, Softmax, Tanh, leakyrelu,
                     relu, sigmoid, tanh)
from .layers import Concat, Embedding, Fork, Identity, OneHot, Parallel, Projection, Select  # conditional models
from .optim import SGD, Adam
# -- Wasserstein GANs (issue 17)
from .layers import LayerNorm
from .optim import RMSprop
from .layers import InstanceNorm, PixelShuffle, PReLU, ReflectionPad2d, Residual, Upsample  # image-to-image (issue 20)
from .layers import (AvgPool2d, ConcatChannels, EqualizedConv2d, EqualizedDense, FadeIn,  # multi-scale (issue 14)
                     MinibatchStdDev, PixelNorm)
from .layers import DiffAugment, SpectralNorm  # a better DCGAN-28 recipe (issue 18)

__version__ = "0.1.0"
# -- issue 15 (the dynamics lab's fixes)
from .layers import MinibatchDiscrimination, VirtualBatch, VirtualBatchNorm
