"""Losses: each returns ``(value, gradient)``, the mean over all elements and d value / d prediction.

Values are 0-d arrays on the prediction's device (``float(loss)`` reads one),
so computing a loss does not force a GPU synchronization (except softmax_cross_entropy's check
of class indices, which reads one boolean back).
"""
import numpy as np

from . import backend
from .gpu_kernels import BCE_WITH_LOGITS, TWO_CLASS_CROSS_ENTROPY, fused, uses_fused_kernels


def _prepare(name, pred, target):
    """Target as an array of pred's dtype and device; a scalar broadcasts, any other shape must match.
    A Python or NumPy scalar is filled in on the device (``full``), not copied from the host: a
    recorded CUDA graph cannot copy from the host (gan/cuda_graph.py)."""
    xp = backend.get_xp(pred)
    target = xp.full((), target, dtype=pred.dtype) if np.isscalar(target) else xp.asarray(target, dtype=pred.dtype)
    if target.ndim and target.shape != pred.shape:
        raise ValueError(f"{name}: prediction has shape {tuple(pred.shape)} but target has shape "
                         f"{tuple(target.shape)}")
    return xp, target


def _log_floor(dtype):
    """Smallest log value a loss reports: log(0) is -inf, so the value is clamped (PyTorch: -100)."""
    return dtype.type(-100)


def binary_cross_entropy(prob, target):
    """-mean[t log p + (1 - t) log(1 - p)] on probabilities, each log clamped at -100
    (in float32 the arguments' own limits bind first: about -87 for log p, -16.6 for log(1 - p)).

    Gradient: d/dp = (p - t) / (p (1 - p)) / n, its denominator floored at the dtype's
    smallest normal number. The gradient is *not* zeroed where the value is clamped:
    behind a saturated sigmoid, p (1 - p) in the next backward cancels this denominator,
    so D(G(z)) = 1e-20 still sends G the gradient p - t instead of nothing.
    Prefer ``bce_with_logits`` when the logits are at hand: it needs no floor at all.
    """
    xp, t = _prepare("binary_cross_entropy", prob, target)
    floor, tiny = _log_floor(prob.dtype), prob.dtype.type(xp.finfo(prob.dtype).tiny)
    below_one = prob.dtype.type(np.nextafter(prob.dtype.type(1), prob.dtype.type(0)))
    log_p = xp.maximum(xp.log(xp.maximum(prob, tiny)), floor)
    log_not_p = xp.maximum(xp.log1p(-xp.minimum(prob, below_one)), floor)
    value = -(t * log_p + (1 - t) * log_not_p).mean()
    grad = (prob - t) / xp.maximum(prob * (1 - prob), tiny) * prob.dtype.type(1 / prob.size)
    return value, grad


def two_class_cross_entropy(probs, target):
    """Binary cross-entropy for a two-unit softmax output (N, 2), unit 0 = the positive class:

        -mean[t log p0 + (1 - t) log p1]          (p1 = 1 - p0, read from its own unit)

    Gradient: d/dp0 = -t / p0 / n, d/dp1 = -(1 - t) / p1 / n (denominators floored at the
    smallest normal number). Through the softmax backward, dz = p * (dp - <dp, p>), this
    becomes dz0 = p0 - t, dz1 = t - p0 (over n): bounded however confident the softmax is.
    Using p1 instead of 1 - p0 matters in float32, where 1 - p0 rounds to 0 long before p1 does.
    (On the GPU the element-wise part is one kernel, gpu_kernels.TWO_CLASS_CROSS_ENTROPY.)
    """
    if probs.ndim != 2 or probs.shape[1] != 2:
        raise ValueError(f"two_class_cross_entropy: expected probabilities of shape (N, 2), "
                         f"got {tuple(probs.shape)}")
    xp, t = _prepare("two_class_cross_entropy", probs[:, 0], target)
    f = probs.dtype.type
    tiny, floor = f(xp.finfo(probs.dtype).tiny), _log_floor(probs.dtype)
    scale = f(-1 / len(probs))
    if uses_fused_kernels(xp):
        terms, grad = xp.empty(len(probs), probs.dtype), xp.empty(probs.shape, probs.dtype)
        fused(TWO_CLASS_CROSS_ENTROPY)(probs[:, 0], probs[:, 1], t, tiny, floor, scale,
                                       terms, grad[:, 0], grad[:, 1])
        return -terms.mean(), grad
    p_pos, p_neg = xp.maximum(probs[:, 0], tiny), xp.maximum(probs[:, 1], tiny)
    value = -(t * xp.maximum(xp.log(p_pos), floor) + (1 - t) * xp.maximum(xp.log(p_neg), floor)).mean()
    grad = xp.stack([t / p_pos * scale, (1 - t) / p_neg * scale], axis=1)
    return value, grad


def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), exact and overflow-free."""
    xp = backend.get_xp(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def bce_with_logits(logits, target):
    """Binary cross-entropy on logits z, p = sigmoid(z):

        -[t log p + (1 - t) log(1 - p)] = softplus(z) - t z        (since log p = z - softplus(z))

    Gradient: d/dz = sigmoid(z) - t, divided by n for the mean. (On the GPU the element-wise
    part is one kernel, gpu_kernels.BCE_WITH_LOGITS.)
    """
    xp, t = _prepare("bce_with_logits", logits, target)
    half, inv_n = logits.dtype.type(0.5), logits.dtype.type(1 / logits.size)
    if uses_fused_kernels(xp):
        terms, grad = fused(BCE_WITH_LOGITS)(logits, t, half, inv_n)
        return terms.mean(), grad
    value = (softplus(logits) - t * logits).mean()
    prob = xp.tanh(logits * half) * half + half
    return value, (prob - t) * inv_n


def softmax_cross_entropy(logits, target):
    """-mean_n sum_k t_nk log softmax(z_n)_k for logits (N, K).

    ``target``: class indices (N,) or probabilities (N, K). With log softmax
    z_k - logsumexp(z), the gradient is (softmax(z) - t) / N. The indices' range is checked on NumPy
    arrays; on the GPU the check would wait for the device at every call (layers/embedding.py's rule:
    labels are checked where they enter).
    """
    xp = backend.get_xp(logits)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: expected logits of shape (N, K), got {tuple(logits.shape)}")
    target = xp.asarray(target)
    if target.ndim == 1:
        if target.shape[0] != logits.shape[0]:
            raise ValueError(f"softmax_cross_entropy: logits have shape {tuple(logits.shape)} but target "
                             f"has shape {tuple(target.shape)}")
        out_of_range = xp is np and bool(((target < 0) | (target >= logits.shape[1])).any())
        if target.dtype.kind not in "iu" or out_of_range:
            raise ValueError(f"softmax_cross_entropy: class indices must be integers in [0, {logits.shape[1]}), "
                             f"got {target.dtype} values from {target.min()} to {target.max()}")
        target = (xp.arange(logits.shape[1]) == target[:, None]).astype(logits.dtype)
    _, target = _prepare("softmax_cross_entropy", logits, target)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_prob = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    value = -(target * log_prob).sum(axis=1).mean()
    grad = (xp.exp(log_prob) * target.sum(axis=1, keepdims=True) - target) * logits.dtype.type(1 / len(logits))
    return value, grad


def mse(pred, target):
    """mean (p - t)^2; gradient 2 (p - t) / n."""
    _, t = _prepare("mse", pred, target)
    diff = pred - t
    return (diff * diff).mean(), diff * pred.dtype.type(2 / pred.size)


def l1(pred, target):
    """mean |p - t|; gradient sign(p - t) / n (0 at p == t)."""
    xp, t = _prepare("l1", pred, target)
    diff = pred - t
    return xp.abs(diff).mean(), xp.sign(diff) * pred.dtype.type(1 / pred.size)


LOSSES = {"binary_cross_entropy": binary_cross_entropy, "bce_with_logits": bce_with_logits,
          "two_class_cross_entropy": two_class_cross_entropy, "softmax_cross_entropy": softmax_cross_entropy, "mse": mse, "l1": l1}
