"""Concatenation of images along the channel axis (a generator's noise plane with its conditioning image)."""
from ..backend import get_xp


def concat_channels_forward(inputs):
    """out[:, o_i : o_i + C_i] = x_i for inputs (x_1, x_2, ...) of shapes (N, C_i, H, W), o_i = C_1 + ... + C_{i-1}."""
    n, _, h, w = inputs[0].shape
    total = sum(x.shape[1] for x in inputs)
    out = get_xp(inputs[0]).zeros((n, total, h, w), dtype=inputs[0].dtype)
    start = 0
    for x in inputs:
        out[:, start:start + x.shape[1]] = x
        start += x.shape[1]
    cache = [x.shape[1] for x in inputs]
    return out, cache


def concat_channels_backward(dout, cache):
    """Each input entry is copied to one output entry, so it receives that entry's gradient:
    dx_i = dout[:, o_i : o_i + C_i]. Returns the list [dx_1, dx_2, ...] (one gradient per input)."""
    grads, start = [], 0
    for channels in cache:
        grads.append(dout[:, start:start + channels])
        start += channels
    return grads
