"""Weight initializers.

Each takes ``(shape, fan_in, fan_out, rng)`` and returns a float64 NumPy
array; the layer casts it to its dtype and moves it to its device, so a seed
gives the same initial weights on the CPU and on the GPU.
"""
import numpy as np


def glorot_uniform(shape, fan_in, fan_out, rng):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010; Flux's default)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.host.uniform(-limit, limit, size=shape)


def he_normal(shape, fan_in, fan_out, rng):
    """N(0, 2 / fan_in) (He et al. 2015), for ReLU networks."""
    return rng.host.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def dcgan_normal(shape, fan_in, fan_out, rng):
    """N(0, 0.02^2), the DCGAN paper's initialization for conv weights."""
    return rng.host.normal(0.0, 0.02, size=shape)


def dcgan_batchnorm(shape, fan_in, fan_out, rng):
    """N(1, 0.02^2), the DCGAN reference's initialization for BatchNorm scales."""
    return rng.host.normal(1.0, 0.02, size=shape)


def uniform(limit):
    """An initializer drawing U(-limit, limit), whatever the fan-in (Pylearn2's ``irange``)."""
    def init(shape, fan_in, fan_out, rng):
        return rng.host.uniform(-limit, limit, size=shape)
    init.__name__ = f"uniform_{limit}"
    return init


def zeros(shape, fan_in, fan_out, rng):
    return np.zeros(shape)


def ones(shape, fan_in, fan_out, rng):
    return np.ones(shape)


INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_normal": he_normal,
                "normal_0.02": dcgan_normal, "normal_1_0.02": dcgan_batchnorm, "zeros": zeros, "ones": ones}


def get_initializer(init):
    """Accept an initializer function or one of the names in INITIALIZERS."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        raise ValueError(f"unknown initializer {init!r}; expected one of {sorted(INITIALIZERS)}") from None
