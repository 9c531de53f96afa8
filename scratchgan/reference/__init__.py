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
# -- Wasserstein GANs (issue 17): LayerNorm, and the double backward behind gradient penalties
from .double_backward import (affine_double_backward, chain_double_backward, conv2d_double_backward,
                              dropout_double_backward, flatten_double_backward, gradient_penalty,
                              leaky_relu_double_backward, maxout_double_backward, r1_penalty,
                              relu_double_backward, reshape_double_backward, sigmoid_double_backward,
                              tanh_double_backward)
from .layernorm import layernorm_backward, layernorm_double_backward, layernorm_forward
from .optim import rmsprop_step
# image-to-image layers (issue 20)
from .activations import prelu_backward, prelu_forward
from .instancenorm import instancenorm_backward, instancenorm_forward
from .padding import reflection_pad_backward, reflection_pad_forward
from .residual import residual_backward, residual_forward
from .resize import (pixel_shuffle_backward, pixel_shuffle_forward, upsample_bilinear_backward,
                     upsample_bilinear_forward, upsample_nearest_backward, upsample_nearest_forward)
# conditional models (issue 19): several inputs and outputs, class labels
from .combine import (concat_backward, concat_forward, fork_backward, fork_forward, identity_backward,
                      identity_forward, parallel_backward, parallel_forward, select_backward, select_forward)
from .embedding import (embedding_backward, embedding_forward, one_hot_backward, one_hot_forward,
                        projection_backward, projection_forward)
# a better DCGAN-28 recipe (issue 18)
from .augment import cutout_backward, cutout_forward, translate_backward, translate_forward
from .spectral_norm import power_iteration, spectral_norm_backward, spectral_norm_forward

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
    "identity_forward", "identity_backward", "concat_forward", "concat_backward", "select_forward", "select_backward", "parallel_forward",
    "parallel_backward", "fork_forward", "fork_backward", "one_hot_forward", "one_hot_backward",
    "embedding_forward", "embedding_backward", "projection_forward", "projection_backward",
]
__all__ += [   # Wasserstein GANs (issue 17)
    "layernorm_forward", "layernorm_backward", "layernorm_double_backward",
    "affine_double_backward", "maxout_double_backward", "dropout_double_backward", "relu_double_backward", "leaky_relu_double_backward", "tanh_double_backward",
    "sigmoid_double_backward", "reshape_double_backward", "flatten_double_backward", "conv2d_double_backward",
    "chain_double_backward", "gradient_penalty", "r1_penalty", "rmsprop_step",
]
__all__ += ["prelu_forward", "prelu_backward", "instancenorm_forward", "instancenorm_backward",  # issue 20
            "reflection_pad_forward", "reflection_pad_backward", "residual_forward", "residual_backward",
            "upsample_nearest_forward", "upsample_nearest_backward", "upsample_bilinear_forward",
            "upsample_bilinear_backward", "pixel_shuffle_forward", "pixel_shuffle_backward"]
# multi-scale GANs (issue 14): LAPGAN and ProGAN
from .concat import concat_channels_backward, concat_channels_forward
from .equalized import (equalized_affine_backward, equalized_affine_double_backward, equalized_affine_forward,
                        equalized_conv2d_backward, equalized_conv2d_double_backward, equalized_conv2d_forward)
from .fade import fade_in_backward, fade_in_double_backward, fade_in_forward
from .minibatch_stddev import minibatch_stddev_backward, minibatch_stddev_double_backward, minibatch_stddev_forward
from .pixelnorm import pixelnorm_backward, pixelnorm_forward
from .pooling import avg_pool_backward, avg_pool_double_backward, avg_pool_forward

__all__ += ["avg_pool_forward", "avg_pool_backward", "avg_pool_double_backward",  # issue 14
            "pixelnorm_forward", "pixelnorm_backward", "concat_channels_forward", "concat_channels_backward",
            "minibatch_stddev_forward", "minibatch_stddev_backward", "minibatch_stddev_double_backward",
            "equalized_conv2d_forward", "equalized_conv2d_backward", "equalized_conv2d_double_backward",
            "equalized_affine_forward", "equalized_affine_backward", "equalized_affine_double_backward",
            "fade_in_forward", "fade_in_backward", "fade_in_double_backward"]
__all__ += ["power_iteration", "spectral_norm_forward", "spectral_norm_backward",  # issue 18
            "translate_forward", "translate_backward", "cutout_forward", "cutout_backward"]
# -- issue 15 (the dynamics lab's fixes)
from .minibatch import minibatch_discrimination_backward, minibatch_discrimination_forward
from .vbn import virtual_batchnorm_backward, virtual_batchnorm_forward

__all__ += ["minibatch_discrimination_forward", "minibatch_discrimination_backward",
            "virtual_batchnorm_forward", "virtual_batchnorm_backward"]
