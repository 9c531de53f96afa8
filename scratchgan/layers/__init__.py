"""Layers with hand-written forward and backward passes, one family per file."""
from .activations import (LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, leakyrelu, relu, sigmoid, tanh)
from .base import Layer
from .chain import Chain, Sequential
from .conv import Conv2d, ConvTranspose2d, col2im, im2col
from .dense import Dense, Maxout
from .dropout import Dropout
from .norm import BatchNorm
from .shape import Flatten, Reshape

__all__ = ["Layer", "Dense", "Maxout", "Conv2d", "ConvTranspose2d", "BatchNorm", "ReLU", "LeakyReLU",
           "Tanh", "Sigmoid", "Softmax", "Dropout", "Reshape", "Flatten", "Chain", "Sequential",
           "relu", "leakyrelu", "tanh", "sigmoid", "im2col", "col2im"]
# -- issue 15 (the dynamics lab's fixes): minibatch discrimination, virtual batch normalization
from .minibatch import MinibatchDiscrimination
from .vbn import VirtualBatch, VirtualBatchNorm

__all__ += ["MinibatchDiscrimination", "VirtualBatchNorm", "VirtualBatch"]
