"""scratchgan: GANs with hand-written forward and backward passes, on NumPy or CuPy."""
from . import backend, init, losses, optim
from .backend import (get_xp, gpu_available, manual_seed, set_default_device, set_default_dtype,
                      to_device)
from .layers import (BatchNorm, Chain, Conv2d, ConvTranspose2d, Dense, Dropout, Flatten, Layer,
                     LeakyReLU, Maxout, ReLU, Reshape, Sequential, Sigmoid, Softmax, Tanh, leakyrelu,
                     relu, sigmoid, tanh)
from .optim import SGD, Adam

__version__ = "0.1.0"
# -- issue 15 (the dynamics lab's fixes)
from .layers import MinibatchDiscrimination, VirtualBatch, VirtualBatchNorm
