"""Pixel transforms for NumPy or CuPy arrays.

Only array methods and operators are used, so every function works on either backend
and returns an array of the same kind. Floats stay in the dtype asked for (float32 by
default): nothing is silently widened to float64.
"""
import math

import numpy as np


def to_float(images, dtype=np.float32):
    """uint8 pixels 0..255 -> floats in [0, 1]."""
    x = _as_float(images, dtype)
    x /= 255
    return x


def to_tanh_range(images, dtype=np.float32):
    """uint8 pixels 0..255 -> floats in [-1, 1] (x / 127.5 - 1), the range of a tanh generator."""
    x = _as_float(images, dtype)
    x /= 127.5
    x -= 1
    return x


def from_tanh_range(x):
    """Floats in [-1, 1] (e.g. generator samples) -> [0, 1], clipped, for saving as images."""
    return ((x + 1) / 2).clip(0, 1)


def binarize(x, threshold=0.5):
    """1 where x > threshold, else 0, in x's float dtype (the Flux tutorial's `x .> 0.5`)."""
    return (x > threshold).astype(x.dtype)


def flatten(x):
    """(N, ...) -> (N, features), e.g. (N, 28, 28) -> (N, 784) for a dense network."""
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


def _as_float(images, dtype):
    """A float copy of uint8 pixels; refuses floats, which are likely normalized already."""
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels (0..255), got {images.dtype}")
    return images.astype(dtype)
