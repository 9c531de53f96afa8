"""Tests for scratchgan.evaluation.metrics against closed forms and independent formulas."""
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from scratchgan import Chain, Dense
from scratchgan.evaluation.metrics import (PARZEN_SIGMAS, classifier_score, discriminator_accuracy,
                                           feature_statistics, frechet_distance, frechet_distance_from_stats,
                                           mode_coverage, parzen_log_likelihoods, parzen_window_estimate,
                                           precision_recall, select_parzen_sigma, trace_sqrt_product)
from scratchgan.gan.objectives import LogitHead


def random_spd(rng, d, condition=10.0):
    """A random symmetric positive-definite matrix with eigenvalues in [1, condition]."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * rng.uniform(1, condition, size=d)) @ q.T


def manifold_samples(rng, basis, n, centers=None, labels=None):
    """Points on a low-dimensional linear manifold: Gaussian coordinates (around cluster centers) @ basis."""
    coords = rng.normal(size=(n, basis.shape[0]))
    if centers is not None:
        coords += centers[labels]
    return coords @ basis


def one_hot(labels, k):
    return np.eye(k)[labels]


# --- Fréchet distance ------------------------------------------------------------------

@pytest.mark.parametrize("d", [2, 16, 64])
def test_trace_sqrt_product_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9)
    assert trace_sqrt_product(s2, s1) == pytest.approx(expected, rel=1e-9)  # tr sqrt(AB) = tr sqrt(BA)


def test_trace_sqrt_product_of_singular_covariances_is_finite_and_right():
    rng = np.random.default_rng(1)
    b1, b2 = rng.normal(size=(20, 5)), rng.normal(size=(20, 8))
    s1, s2 = b1 @ b1.T, b2 @ b2.T   # ranks 5 and 8 in 20 dimensions
    eigenvalues = np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)
    assert trace_sqrt_product(s1, s2) == pytest.approx(np.sqrt(eigenvalues).sum(), rel=1e-6)


def test_frechet_distance_of_gaussians_matches_closed_form():
    # diagonal covariances commute: FD = ||m1 - m2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    rng = np.random.default_rng(2)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.5, 3, size=6), rng.uniform(0.5, 3, size=6)
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance_from_stats(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_real_vs_real_is_near_zero_and_detects_a_shift():
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(4, 64))
    real, other_real = manifold_samples(rng, basis, 3000), manifold_samples(rng, basis, 3000)
    total_variance = np.trace(feature_statistics(real)[1])
    assert frechet_distance(real, real) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(real, other_real) < 0.01 * total_variance
    shift = np.zeros(64)
    shift[0] = 3.0
    assert frechet_distance(real, other_real + shift) == pytest.approx(9.0, abs=0.01 * total_variance)


def test_frechet_distance_is_symmetric_and_accepts_float32():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(500, 8)).astype(np.float32), rng.normal(1, 2, size=(400, 8)).astype(np.float32)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)


def test_frechet_distance_rejects_mismatched_or_bad_features():
    with pytest.raises(ValueError, match="columns"):
        frechet_distance(np.zeros((10, 4)), np.zeros((10, 5)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full((10, 4), np.nan), np.zeros((10, 4)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        frechet_distance(np.zeros(10), np.zeros((10, 1)))


@pytest.mark.gpu
def test_frechet_distance_takes_cupy_features(cupy):
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(300, 8)).astype(np.float32)
    assert frechet_distance(cupy.asarray(x), cupy.asarray(y)) == pytest.approx(frechet_distance(x, y), rel=1e-12)


# --- classifier score and coverage --------------------------------------------------------

@pytest.mark.parametrize("k", [1, 3, 10])
def test_classifier_score_of_one_hot_predictions_is_the_number_of_equally_used_classes(k):
    labels = np.arange(10 * 20 * k) % k            # every split holds each of the k classes 20 times
    mean, std = classifier_score(one_hot(labels, 10), splits=10)
    assert mean == pytest.approx(k, rel=1e-12)
    assert std == pytest.approx(0, abs=1e-12)


def test_classifier_score_of_uninformative_predictions_is_one():
    assert classifier_score(np.full((100, 10), 0.1))[0] == pytest.approx(1.0, rel=1e-12)


def test_classifier_score_matches_its_definition_on_random_predictions():
    rng = np.random.default_rng(6)
    p = rng.dirichlet(np.full(10, 0.3), size=200)
    scores = []
    for chunk in np.split(p, 4):
        marginal = chunk.mean(axis=0)
        scores.append(math.exp(np.mean([scipy.stats.entropy(row, marginal) for row in chunk])))
    mean, std = classifier_score(p, splits=4)
    assert (mean, std) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)


def test_classifier_score_rejects_rows_that_are_not_distributions():
    with pytest.raises(ValueError, match="probability distribution"):
        classifier_score(np.ones((20, 10)))
    with pytest.raises(ValueError, match="splits"):
        classifier_score(np.full((5, 10), 0.1), splits=10)


def test_mode_coverage_of_all_and_half_of_the_classes():
    all_classes = mode_coverage(one_hot(np.arange(1000) % 10, 10))
    half = mode_coverage(one_hot(np.arange(1000) % 5, 10))
    assert all_classes["kl_to_uniform"] == pytest.approx(0, abs=1e-12)
    assert all_classes["classes_covered"] == 10
    assert half["kl_to_uniform"] == pytest.approx(math.log(2), rel=1e-12)
    assert half["classes_covered"] == 5
    np.testing.assert_allclose(half["histogram"], [0.2] * 5 + [0] * 5)


def test_mode_coverage_counts_classes_at_two_percent_or_more():
    labels = np.repeat(np.arange(4), [951, 20, 19, 10])
    coverage = mode_coverage(one_hot(labels, 10))
    assert coverage["classes_covered"] == 2      # 95.1% and exactly 2.0%; 1.9% and 1.0% fall short


# --- Parzen window ---------------------------------------------------------------------------

def gaussian_log_pdf(x, mean, sigma):
    return scipy.stats.multivariate_normal(mean, sigma ** 2 * np.eye(len(mean))).logpdf(x)


def test_parzen_matches_the_gaussian_mixture_closed_form():
    rng = np.random.default_rng(7)
    kernels, points, sigma = rng.uniform(size=(3, 5)), rng.uniform(size=(11, 5)), 0.4
    expected = np.log(np.mean([np.exp(gaussian_log_pdf(points, k, sigma)) for k in kernels], axis=0))
    np.testing.assert_allclose(parzen_log_likelihoods(kernels, points, sigma), expected, rtol=1e-12)
    np.testing.assert_allclose(parzen_log_likelihoods(kernels, points, sigma, batch_size=4), expected, rtol=1e-12)


def test_parzen_with_many_kernels_approaches_the_smoothed_density():
    # kernels ~ N(0, tau^2): the window's density tends to N(x; 0, tau^2 + sigma^2)
    rng = np.random.default_rng(8)
    tau, sigma = 1.0, 0.5
    kernels, points = rng.normal(0, tau, size=(100_000, 1)), np.linspace(-2, 2, 9)[:, None]
    expected = gaussian_log_pdf(points, [0.0], math.hypot(tau, sigma))
    np.testing.assert_allclose(parzen_log_likelihoods(kernels, points, sigma), expected, atol=0.02)


def test_parzen_sigma_selection_and_standard_error():
    # one kernel at 0, validation ~ N(0, 0.3^2 I): the mean log-likelihood
    # -d/2 log(2 pi s^2) - sum ||x||^2 / (2 n s^2) peaks at s^2 = mean ||x||^2 / d
    rng = np.random.default_rng(9)
    d, kernel = 20, np.zeros((1, 20))
    validation, test = rng.normal(0, 0.3, size=(400, d)), rng.normal(0, 0.3, size=(300, d))
    sq = (validation ** 2).sum(axis=1).mean()
    closed_form = -0.5 * d * np.log(2 * np.pi * PARZEN_SIGMAS ** 2) - sq / (2 * PARZEN_SIGMAS ** 2)
    sigma, means = select_parzen_sigma(kernel, validation)
    np.testing.assert_allclose(means, closed_form, rtol=1e-12)
    assert sigma == PARZEN_SIGMAS[np.argmax(closed_form)]
    assert sigma == pytest.approx(0.278, abs=0.001)   # the grid point nearest 0.3

    estimate = parzen_window_estimate(kernel, validation, test)
    ll = gaussian_log_pdf(test, np.zeros(d), sigma)
    assert estimate["sigma"] == sigma
    assert estimate["mean"] == pytest.approx(ll.mean(), rel=1e-12)
    assert estimate["std_error"] == pytest.approx(ll.std(ddof=1) / np.sqrt(len(ll)), rel=1e-9)


def test_parzen_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        parzen_log_likelihoods(np.zeros((2, 3)), np.zeros((2, 3)), 0.0)
    with pytest.raises(ValueError, match="columns"):
        parzen_log_likelihoods(np.zeros((2, 3)), np.zeros((2, 4)), 0.1)


# --- precision and recall --------------------------------------------------------------------

def test_precision_recall_of_real_vs_real_is_near_one():
    rng = np.random.default_rng(10)
    basis = rng.normal(size=(4, 64))
    real, other_real = manifold_samples(rng, basis, 2000), manifold_samples(rng, basis, 2000)
    assert precision_recall(real, real) == (1.0, 1.0)
    precision, recall = precision_recall(real, other_real)
    assert precision > 0.9 and recall > 0.9


def test_dropping_half_of_the_classes_lowers_recall_and_keeps_precision():
    rng = np.random.default_rng(11)
    basis, centers = rng.normal(size=(4, 64)), rng.normal(0, 10, size=(10, 4))
    labels = np.arange(2000) % 10
    real = manifold_samples(rng, basis, 2000, centers, labels)
    all_classes = manifold_samples(rng, basis, 2000, centers, labels)
    half = manifold_samples(rng, basis, 2000, centers, labels % 5)
    full_p, full_r = precision_recall(real, all_classes)
    half_p, half_r = precision_recall(real, half)
    assert full_p > 0.9 and full_r > 0.9
    assert half_p > 0.9
    assert half_r < 0.6 and half_r < full_r - 0.3


def test_precision_recall_brute_force_on_a_small_case():
    rng = np.random.default_rng(12)
    real, fake = rng.normal(size=(30, 3)), rng.normal(0.5, 1, size=(25, 3))

    def manifold_hits(manifold, queries, k=3):
        d_self = np.linalg.norm(manifold[:, None] - manifold[None], axis=2)
        radii = np.sort(d_self, axis=1)[:, k]
        d = np.linalg.norm(queries[:, None] - manifold[None], axis=2)
        return (d <= radii).any(axis=1).mean()

    expected = (manifold_hits(real, fake), manifold_hits(fake, real))
    assert precision_recall(real, fake, batch_size=7) == pytest.approx(expected, abs=1e-12)


def test_precision_recall_needs_more_samples_than_k():
    with pytest.raises(ValueError, match="more than k=3"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))


# --- discriminator accuracy --------------------------------------------------------------------

def test_discriminator_accuracy_counts_each_side():
    D = Chain(Dense(2, 1))
    D.layers[0].params["weight"][...] = [[1.0, 0.0]]   # logit = first coordinate
    D.layers[0].params["bias"][...] = 0.0
    real = np.array([[1, 0], [2, 5], [-1, 0], [3, 3]], dtype=np.float32)      # 3 of 4 above 0
    fake = np.array([[-1, 0], [-2, 1], [0.5, 0], [-3, 3], [-4, 0]], dtype=np.float32)  # 4 of 5 below 0
    expected = {"real": 0.75, "fake": 0.8, "overall": 7 / 9}
    assert discriminator_accuracy(D, LogitHead(), real, fake, batch_size=2) == pytest.approx(expected)
    plain = discriminator_accuracy(D, lambda out: 1 / (1 + np.exp(-out[:, 0])), real, fake)
    assert plain == pytest.approx(expected)
    assert D.training and D.layers[0]._cache is None   # eval-mode forward, no cache left behind


def test_discriminator_accuracy_rejects_bad_arguments():
    D = Chain(Dense(2, 1))
    with pytest.raises(TypeError, match="prob_real"):
        discriminator_accuracy(D, "logit", np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="at least one"):
        discriminator_accuracy(D, LogitHead(), np.zeros((0, 2), np.float32), np.zeros((2, 2), np.float32))
