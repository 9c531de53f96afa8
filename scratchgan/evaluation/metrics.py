"""Sample-quality metrics for generative models, in NumPy float64.

Every function takes host or device arrays (NumPy or CuPy), converts them to NumPy
float64 once at the top, and returns plain Python floats or NumPy arrays:

- ``frechet_distance``: the FID formula in classifier-feature space;
- ``classifier_score``: the Inception-Score analogue exp(E_x KL(p(y|x) || p(y)));
- ``mode_coverage``: predicted-class histogram, KL to uniform, classes holding >= 2%;
- ``parzen_log_likelihood`` and friends: the 2014 GAN paper's Parzen-window protocol;
- ``precision_recall``: Kynkäänniemi et al. (2019) k-NN manifold precision and recall;
- ``discriminator_accuracy``: a discriminator on held-out real data vs fresh fakes.
"""
import math

import numpy as np
from scipy.special import logsumexp, xlogy

from .. import backend
from ..gan.objectives import d_correct

PARZEN_SIGMAS = np.logspace(-1, 0, 10)  # 0.1 ... 1.0, the grid sigma is chosen from


def as_float64_matrix(x, what, dim=None):
    """``x`` as a NumPy float64 (N, D) array with finite values, or a clear error."""
    x = np.asarray(backend.asnumpy(x), dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{what}: expected a non-empty (N, D) array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what}: expected {dim} columns to match the other set, got {x.shape[1]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return x


# --- Fréchet distance ------------------------------------------------------------------

def feature_statistics(features):
    """Mean (D,) and covariance (D, D) of features (N, D), float64 (the unbiased covariance, as FID)."""
    x = as_float64_matrix(features, "features")
    if len(x) < 2:
        raise ValueError(f"features: need at least 2 rows for a covariance, got {len(x)}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def sqrt_psd(matrix):
    """The symmetric square root of a symmetric PSD matrix, via eigh (negative eigenvalues clipped)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1, sigma2):
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2.

    S1 S2 is not symmetric, but it is similar to the symmetric PSD matrix
    M = S1^(1/2) S2 S1^(1/2) (conjugate by S1^(1/2)), so both have the same eigenvalues
    lambda_i >= 0 and tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i). Two eigh calls, no
    general sqrtm and no complex round-off; tiny negative eigenvalues are clipped to 0.
    """
    root1 = sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)): the Fréchet distance of two Gaussians."""
    mu1, mu2 = (np.asarray(backend.asnumpy(m), dtype=np.float64) for m in (mu1, mu2))
    sigma1, sigma2 = (np.asarray(backend.asnumpy(s), dtype=np.float64) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: expected means (D,) and covariances (D, D), got "
                         f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2)
    return max(float(value), 0.0)  # round-off can leave -1e-12 for identical sets


def frechet_distance(features1, features2):
    """Fréchet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D) (FID's formula)."""
    x1 = as_float64_matrix(features1, "first features")
    x2 = as_float64_matrix(features2, "second features", dim=x1.shape[1])
    return frechet_distance_from_stats(*feature_statistics(x1), *feature_statistics(x2))


# --- classifier score and mode coverage -------------------------------------------------

def as_probabilities(probs, what="probabilities"):
    """(N, K) float64 rows that are probability distributions, or a clear error."""
    p = as_float64_matrix(probs, what)
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1, atol=1e-4):
        raise ValueError(f"{what}: each row must be a probability distribution (>= 0, summing to 1)")
    return p


def kl_rows_to_marginal(p):
    """KL(p(y|x) || p(y)) for every row x of p, with p(y) the mean row; 0 log 0 = 0."""
    marginal = p.mean(axis=0, keepdims=True)
    return (xlogy(p, p) - xlogy(p, marginal)).sum(axis=1)


def classifier_score(probs, splits=10):
    """exp(E_x KL(p(y|x) || p(y))) on each of ``splits`` consecutive chunks; returns (mean, std).

    Ranges from 1 (every sample gets the same prediction) to K (confident predictions,
    all K classes used equally): the Inception Score with an MNIST classifier.
    """
    p = as_probabilities(probs)
    if not 1 <= splits <= len(p):
        raise ValueError(f"classifier_score: splits must be between 1 and the {len(p)} samples, got {splits}")
    scores = [math.exp(kl_rows_to_marginal(chunk).mean()) for chunk in np.array_split(p, splits)]
    return float(np.mean(scores)), float(np.std(scores))


def mode_coverage(probs, threshold=0.02):
    """Histogram of predicted classes, its KL to uniform (nats), and how many classes hold >= threshold.

    KL(h || u) = sum_k h_k log(K h_k) is 0 when all K classes are predicted equally
    often and log(K / m) when only m classes are, equally.
    """
    p = as_probabilities(probs)
    num_classes = p.shape[1]
    histogram = np.bincount(p.argmax(axis=1), minlength=num_classes) / len(p)
    return {"histogram": histogram,
            "kl_to_uniform": float(xlogy(histogram, histogram * num_classes).sum()),
            "classes_covered": int((histogram >= threshold).sum())}


# --- Parzen window ---------------------------------------------------------------------

def squared_distances(a, b, b_sq_norms=None):
    """||a_i - b_j||^2 for rows of a (M, D) and b (N, D), as ||a||^2 + ||b||^2 - 2 a b^T, clipped at 0."""
    if b_sq_norms is None:
        b_sq_norms = np.einsum("ij,ij->i", b, b)
    d2 = np.einsum("ij,ij->i", a, a)[:, None] + b_sq_norms[None, :] - 2 * (a @ b.T)
    return np.maximum(d2, 0, out=d2)


def _parzen_log_density(d2, sigma, num_kernels, dim):
    """log (1/N) sum_j N(x; s_j, sigma^2 I) from squared distances d2 (M, N)."""
    return (logsumexp(-d2 / (2 * sigma ** 2), axis=1) - math.log(num_kernels)
            - 0.5 * dim * math.log(2 * math.pi * sigma ** 2))


def parzen_log_likelihoods(kernels, points, sigmas, batch_size=250):
    """Log-likelihood (nats) of each point under a Parzen window of isotropic Gaussians on ``kernels``.

    kernels (N, D) and points (M, D) are flattened samples; ``sigmas`` a scalar or a
    sequence of bandwidths. Returns (M,) for a scalar, else (len(sigmas), M): the
    squared distances are computed once per batch of points and shared by all sigmas,
    and batching bounds memory at batch_size * N floats.
    """
    kernels = as_float64_matrix(kernels, "Parzen kernels (samples)")
    points = as_float64_matrix(points, "Parzen evaluation points", dim=kernels.shape[1])
    sigma_list = np.atleast_1d(np.asarray(sigmas, dtype=np.float64))
    if sigma_list.ndim != 1 or (sigma_list <= 0).any():
        raise ValueError(f"Parzen: sigmas must be positive, got {sigmas}")
    kernel_norms = np.einsum("ij,ij->i", kernels, kernels)
    result = np.empty((len(sigma_list), len(points)))
    for start in range(0, len(points), batch_size):
        d2 = squared_distances(points[start:start + batch_size], kernels, kernel_norms)
        for i, sigma in enumerate(sigma_list):
            result[i, start:start + batch_size] = _parzen_log_density(d2, sigma, *kernels.shape)
    return result[0] if np.ndim(sigmas) == 0 else result


def select_parzen_sigma(kernels, validation, sigmas=PARZEN_SIGMAS, batch_size=250):
    """The sigma of ``sigmas`` with the highest mean validation log-likelihood; returns (sigma, means)."""
    means = parzen_log_likelihoods(kernels, validation, list(sigmas), batch_size).mean(axis=1)
    return float(sigmas[int(np.argmax(means))]), means


def parzen_window_estimate(kernels, validation, test, sigmas=PARZEN_SIGMAS, batch_size=250):
    """Goodfellow et al. (2014): choose sigma on validation data, report the mean test log-likelihood.

    Returns {"mean", "std_error", "sigma"}, in nats; std_error = std / sqrt(M) over the M test points.
    """
    sigma, _ = select_parzen_sigma(kernels, validation, sigmas, batch_size)
    ll = parzen_log_likelihoods(kernels, test, sigma, batch_size)
    return {"mean": float(ll.mean()), "std_error": float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1
            else float("nan"), "sigma": sigma}


# --- precision and recall ----------------------------------------------------------------

def _knn_radii(features, k, batch_size):
    """Distance from each row to its k-th nearest other row (the row itself is at distance 0)."""
    if len(features) <= k:
        raise ValueError(f"precision_recall: need more than k={k} samples per set, got {len(features)}")
    norms = np.einsum("ij,ij->i", features, features)
    radii = np.empty(len(features))
    for start in range(0, len(features), batch_size):
        d2 = squared_distances(features[start:start + batch_size], features, norms)
        radii[start:start + batch_size] = np.partition(d2, k, axis=1)[:, k]  # index 0 is the row itself
    return np.sqrt(radii)


def _inside_manifold(manifold, radii, queries, batch_size):
    """For each query, whether it lies within radius_j of some manifold point j."""
    norms = np.einsum("ij,ij->i", manifold, manifold)
    inside = np.empty(len(queries), dtype=bool)
    for start in range(0, len(queries), batch_size):
        d2 = squared_distances(queries[start:start + batch_size], manifold, norms)
        inside[start:start + batch_size] = (d2 <= radii[None, :] ** 2).any(axis=1)
    return inside


def precision_recall(real_features, fake_features, k=3, batch_size=1000):
    """Improved precision and recall (Kynkäänniemi et al. 2019); returns (precision, recall).

    Each set's manifold is the union of balls around its points, each reaching the point's
    k-th nearest neighbour in the same set. Precision: the fraction of fakes inside the
    real manifold; recall: the fraction of reals inside the fake manifold.
    """
    real = as_float64_matrix(real_features, "real features")
    fake = as_float64_matrix(fake_features, "fake features", dim=real.shape[1])
    precision = _inside_manifold(real, _knn_radii(real, k, batch_size), fake, batch_size).mean()
    recall = _inside_manifold(fake, _knn_radii(fake, k, batch_size), real, batch_size).mean()
    return float(precision), float(recall)


# --- discriminator accuracy ------------------------------------------------------------

def discriminator_accuracy(D, prob_real, real, fake, batch_size=500):
    """Accuracy of discriminator D on held-out real data and fresh fakes, in eval mode.

    prob_real: maps D's output to P(real), e.g. a head's ``prob_real`` (a head object
    works too). ``real`` and ``fake`` are arrays in D's input layout; they are moved to
    D's device batch by batch. D's verdict follows ``gan.objectives.d_correct``: a real
    counts as right when P(real) > 0.5, a fake when P(real) <= 0.5 (a tie is "fake").
    Returns {"real", "fake", "overall"}.
    """
    prob_real = getattr(prob_real, "prob_real", prob_real)
    if not callable(prob_real):
        raise TypeError("discriminator_accuracy: prob_real must be a function of D's output or a head")
    if len(real) == 0 or len(fake) == 0:
        raise ValueError("discriminator_accuracy: real and fake must each hold at least one sample")
    params = D.named_parameters()
    device = backend.device_of(params[0][1].params[params[0][2]]) if params else "cpu"
    right_real = _count_right(D, prob_real, real, batch_size, device, want_real=True)
    right_fake = _count_right(D, prob_real, fake, batch_size, device, want_real=False)
    return {"real": right_real / len(real), "fake": right_fake / len(fake),
            "overall": (right_real + right_fake) / (len(real) + len(fake))}


def _count_right(D, prob_real, x, batch_size, device, want_real):
    right = 0
    for start in range(0, len(x), batch_size):
        batch = backend.to_device(x[start:start + batch_size], device)
        p = prob_real(D.forward(batch, train=False, keep_cache=False))
        right += int(d_correct(p, real=want_real).sum())
    return right
