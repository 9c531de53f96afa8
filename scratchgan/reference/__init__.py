"""The textbook path: every layer and loss as a pair of pure functions, in the form of CS231n's ``layers.py``.

    out, cache = name_forward(x, *params, **options)     # the output, and what backward needs
    dx, *dparams = name_backward(dout, cache)            # gradients of sum(dout * out)

Layers without parameters return ``dx`` alone; losses return ``(value, grad)``. Each function is
written as directly as its maths allows -- loops over output pixels for the convolutions,
BatchNorm as its computational graph one node at a time, Maxout by argmax -- and its
docstring carries the forward formula and the backward derivation.

The fast layers in ``scratchgan.layers`` compute the same numbers by quicker routes (one
matrix product per layer, channel-major memory, reused buffers); ``tests/test_reference.py``
checks that they agree in float64, and ``scratchgan gradcheck --reference`` checks these
functions against finite differences. Parameter layouts are PyTorch's, as in the fast layers:
Dense/affine weight (out, in), Conv2d (out, in, kh, kw), ConvTranspose2d (in, out, kh, kw).
Nothing here imports the fast path; the functions run on NumPy (and CuPy) arrays.
"""
from .activations import (leaky_relu_backward, leaky_relu_forward, relu_backward, relu_forward,
                          sigmoid_backward, sigmoid_forward, softmax_backward, softmax_forward,
                          tanh_backward, tanh_forward)
from .chain import chain_backward, chain_forward
from .conv import conv2d_backward, conv2d_forward, conv_transpose2d_backward, conv_transpose2d_forward
from .dense import affine_backward, affine_forward, maxout_backward, maxout_forward
from .dropout import dropout_backward, dropout_forward, dropout_mask
from .losses import bce_with_logits, binary_cross_entropy, l1, mse, softmax_cross_entropy, two_class_cross_entropy
from .norm import batchnorm_backward, batchnorm_forward
from .optim import adam_step, sgd_step
from .shape import flatten_backward, flatten_forward, reshape_backward, reshape_forward

__all__ = [
    "affine_forward", "affine_backward", "maxout_forward", "maxout_backward",
    "conv2d_forward", "conv2d_backward", "conv_transpose2d_forward", "conv_transpose2d_backward",
    "batchnorm_forward", "batchnorm_backward",
    "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "tanh_forward", "tanh_backward", "sigmoid_forward", "sigmoid_backward",
    "softmax_forward", "softmax_backward",
    "dropout_mask", "dropout_forward", "dropout_backward",
    "reshape_forward", "reshape_backward", "flatten_forward", "flatten_backward",
    "chain_forward", "chain_backward",
    "binary_cross_entropy", "two_class_cross_entropy", "bce_with_logits", "softmax_cross_entropy",
    "mse", "l1",
    "sgd_step", "adam_step",
]
# -- issue 15 (the dynamics lab's fixes)
from .minibatch import minibatch_discrimination_backward, minibatch_discrimination_forward
from .vbn import virtual_batchnorm_backward, virtual_batchnorm_forward

__all__ += ["minibatch_discrimination_forward", "minibatch_discrimination_backward",
            "virtual_batchnorm_forward", "virtual_batchnorm_backward"]
