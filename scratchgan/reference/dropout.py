"""Inverted dropout (Srivastava et al. 2014) with the mask as an explicit argument."""


def dropout_mask(shape, p, rng):
    """keep[i] ~ Bernoulli(1 - p), drawn as [u_i >= p] with u_i ~ U[0, 1) from ``rng``
    (a numpy.random.Generator)."""
    return rng.random(shape) >= p


def dropout_forward(x, p, mask=None, train=True):
    """Training: out = x * mask / (1 - p), ``mask`` the boolean keep-mask (see dropout_mask);
    eval: out = x (``mask`` unused).

    Scaling the kept units by 1 / (1 - p) keeps the expectation, E[out_i] = (1 - p) x_i / (1 - p) = x_i,
    so nothing changes at test time (the "inverted" part).
    """
    if not train:
        return x, None
    if mask is None:
        raise ValueError("dropout_forward: training needs a mask, e.g. dropout_mask(x.shape, p, rng)")
    scale = mask.astype(x.dtype) / (1 - p)
    out = x * scale
    return out, scale


def dropout_backward(dout, cache):
    """With the mask fixed, out_i = x_i mask_i / (1 - p) is linear in x_i alone, so

        dx = dout * mask / (1 - p)     (the same mask; dx = dout in eval mode)
    """
    scale = cache
    dx = dout if scale is None else dout * scale
    return dx
