"""Equalized learning rate (ProGAN): a convolution or affine map run with c w, c = gain / sqrt(fan_in)."""
import math

from .conv import conv2d_backward, conv2d_forward
from .dense import affine_backward, affine_forward
from .double_backward import affine_double_backward, conv2d_double_backward


def equalized_conv2d_forward(x, w, b=None, gain=math.sqrt(2), stride=1, padding=0):
    """out = conv2d(x, c w) + b, c = gain / sqrt(C_in kh kw): the stored weight w is unscaled (N(0, 1))."""
    c = gain / math.sqrt(w[0].size)
    out, conv_cache = conv2d_forward(x, c * w, b, stride, padding)
    return out, (conv_cache, c)


def equalized_conv2d_backward(dout, cache):
    """conv2d's backward for the effective weight W = c w, then dL/dw = c dL/dW (chain rule through the constant)."""
    conv_cache, c = cache
    dx, dW, db = conv2d_backward(dout, conv_cache)
    return dx, c * dW, db


def equalized_conv2d_double_backward(ddx, cache, dout):
    """conv2d's double backward at W = c w; its second-order weight term times c, as in the backward."""
    conv_cache, c = cache
    ddout, dx, dW, db = conv2d_double_backward(ddx, conv_cache, dout)
    return ddout, dx, c * dW, db


def equalized_affine_forward(x, w, b=None, gain=math.sqrt(2)):
    """out = x (c w)^T + b, c = gain / sqrt(in)."""
    c = gain / math.sqrt(w.shape[1])
    out, affine_cache = affine_forward(x, c * w, b)
    return out, (affine_cache, c)


def equalized_affine_backward(dout, cache):
    """affine's backward for W = c w, then dL/dw = c dL/dW."""
    affine_cache, c = cache
    dx, dW, db = affine_backward(dout, affine_cache)
    return dx, c * dW, db


def equalized_affine_double_backward(ddx, cache, dout):
    """affine's double backward at W = c w; its second-order weight term times c."""
    affine_cache, c = cache
    ddout, dx, dW, db = affine_double_backward(ddx, affine_cache, dout)
    return ddout, dx, c * dW, db
