"""Losses: each returns ``(value, gradient)``, the mean over all elements and d value / d prediction.

Values are 0-d arrays on the prediction's device (``float(loss)`` reads one),
so computing a loss never forces a GPU synchronization.
"""
from . import backend


def _prepare(name, pred, target):
    """Target as an array of pred's dtype and device; a scalar broadcasts, any other shape must match."""
    xp = backend.get_xp(pred)
    target = xp.asarray(target, dtype=pred.dtype)
    if target.ndim and target.shape != pred.shape:
        raise ValueError(f"{name}: prediction has shape {tuple(pred.shape)} but target has shape "
                         f"{tuple(target.shape)}")
    return xp, target


def _clamp_eps(dtype):
    return dtype.type(1e-7 if dtype.itemsize <= 4 else 1e-12)


def binary_cross_entropy(prob, target):
    """-mean[t log p + (1 - t) log(1 - p)] on probabilities, p clamped to [eps, 1 - eps].

    Gradient: d/dp = (p - t) / (p (1 - p)) / n (zero where the clamp is active).
    Prefer ``bce_with_logits`` when the logits are at hand: it never clamps.
    """
    xp, t = _prepare("binary_cross_entropy", prob, target)
    eps = _clamp_eps(prob.dtype)
    p = xp.clip(prob, eps, 1 - eps)
    value = -(t * xp.log(p) + (1 - t) * xp.log1p(-p)).mean()
    inside = (prob > eps) & (prob < 1 - eps)
    grad = (p - t) / (p * (1 - p)) * inside * prob.dtype.type(1 / prob.size)
    return value, grad


def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), exact and overflow-free."""
    xp = backend.get_xp(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def bce_with_logits(logits, target):
    """Binary cross-entropy on logits z, p = sigmoid(z):

        -[t log p + (1 - t) log(1 - p)] = softplus(z) - t z        (since log p = z - softplus(z))

    Gradient: d/dz = sigmoid(z) - t, divided by n for the mean.
    """
    xp, t = _prepare("bce_with_logits", logits, target)
    value = (softplus(logits) - t * logits).mean()
    half = logits.dtype.type(0.5)
    prob = xp.tanh(logits * half) * half + half
    return value, (prob - t) * logits.dtype.type(1 / logits.size)


def softmax_cross_entropy(logits, target):
    """-mean_n sum_k t_nk log softmax(z_n)_k for logits (N, K).

    ``target``: class indices (N,) or probabilities (N, K). With log softmax
    z_k - logsumexp(z), the gradient is (softmax(z) - t) / N.
    """
    xp = backend.get_xp(logits)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: expected logits of shape (N, K), got {tuple(logits.shape)}")
    target = xp.asarray(target)
    if target.ndim == 1:
        if target.shape[0] != logits.shape[0]:
            raise ValueError(f"softmax_cross_entropy: logits have shape {tuple(logits.shape)} but target "
                             f"has shape {tuple(target.shape)}")
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
          "softmax_cross_entropy": softmax_cross_entropy, "mse": mse, "l1": l1}
