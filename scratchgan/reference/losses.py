"""Losses: each returns (value, grad), the mean over all elements and d value / d prediction.

The formulas as written, for predictions inside their domain: probabilities strictly between
0 and 1, any finite logits. (The fast losses in scratchgan.losses also clamp log(0) and floor
denominators, so that they stay finite at the edges.)
"""
from ..backend import get_xp


def _as_target(pred, target):
    """A scalar target broadcast to pred's shape, an array target unchanged."""
    return get_xp(pred).broadcast_to(get_xp(pred).asarray(target, dtype=pred.dtype), pred.shape)


def binary_cross_entropy(prob, target):
    """L = -(1/n) sum [t log p + (1 - t) log(1 - p)] over the n entries of p.

    dL/dp = -(1/n) [t / p - (1 - t) / (1 - p)] = (1/n) (p - t) / (p (1 - p))
    """
    xp, t, n = get_xp(prob), _as_target(prob, target), prob.size
    value = -(t * xp.log(prob) + (1 - t) * xp.log(1 - prob)).sum() / n
    grad = (prob - t) / (prob * (1 - prob)) / n
    return value, grad


def two_class_cross_entropy(probs, target):
    """Binary cross-entropy read from a two-unit softmax (N, 2), unit 0 the positive class:

        L = -(1/N) sum_n [t_n log p_n0 + (1 - t_n) log p_n1]

    dL/dp_n0 = -t_n / (N p_n0),   dL/dp_n1 = -(1 - t_n) / (N p_n1)
    """
    xp, n = get_xp(probs), len(probs)
    t = _as_target(probs[:, 0], target)
    value = -(t * xp.log(probs[:, 0]) + (1 - t) * xp.log(probs[:, 1])).sum() / n
    grad = xp.stack([-t / probs[:, 0], -(1 - t) / probs[:, 1]], axis=1) / n
    return value, grad


def _softplus(z):
    """log(1 + e^z), computed as max(z, 0) + log(1 + e^-|z|) so that e^z never overflows."""
    xp = get_xp(z)
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


def bce_with_logits(logits, target):
    """Binary cross-entropy of p = sigmoid(z), written in z:

        log p = -log(1 + e^-z) = -softplus(-z),   log(1 - p) = -log(1 + e^z) = -softplus(z)
        L = -(1/n) sum [t log p + (1 - t) log(1 - p)] = (1/n) sum [t softplus(-z) + (1 - t) softplus(z)]

    With d softplus(z)/dz = sigmoid(z) = p and d softplus(-z)/dz = -(1 - p):

        dL/dz = (1/n) [-t (1 - p) + (1 - t) p] = (1/n) (p - t)
    """
    xp, t, n = get_xp(logits), _as_target(logits, target), logits.size
    value = (t * _softplus(-logits) + (1 - t) * _softplus(logits)).sum() / n
    prob = 1 / (1 + xp.exp(-logits))
    grad = (prob - t) / n
    return value, grad


def softmax_cross_entropy(logits, target):
    """L = -(1/N) sum_n sum_k t_nk log q_nk,  q = softmax(z) row by row, for logits z (N, K);
    ``target``: class indices (N,) (one-hot t) or probabilities (N, K).

    log q_nk = z_nk - log sum_j e^(z_nj), so d log q_nk / dz_nj = [k = j] - q_nj and

        dL/dz_nj = -(1/N) sum_k t_nk ([k = j] - q_nj) = (1/N) (q_nj sum_k t_nk - t_nj)

    which is (q - t) / N when each row of t sums to 1.
    """
    xp, n = get_xp(logits), len(logits)
    target = xp.asarray(target)
    if target.ndim == 1:
        target = (xp.arange(logits.shape[1]) == target[:, None]).astype(logits.dtype)   # one-hot
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_q = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    value = -(target * log_q).sum() / n
    grad = (xp.exp(log_q) * target.sum(axis=1, keepdims=True) - target) / n
    return value, grad


def mse(pred, target):
    """L = (1/n) sum (p - t)^2,   dL/dp = 2 (p - t) / n"""
    t, n = _as_target(pred, target), pred.size
    value = ((pred - t) ** 2).sum() / n
    grad = 2 * (pred - t) / n
    return value, grad


def l1(pred, target):
    """L = (1/n) sum |p - t|,   dL/dp = sign(p - t) / n   (0 at p = t, where |.| has no derivative)"""
    xp, t, n = get_xp(pred), _as_target(pred, target), pred.size
    value = xp.abs(pred - t).sum() / n
    grad = xp.sign(pred - t) / n
    return value, grad
