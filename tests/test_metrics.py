"""The evaluation formulas: Fréchet distance, KL, inception score and CLAP score.

Tolerances: all in float64. Full-rank, well-conditioned cases (6×6 covariances with 0.1·I
added, KL of 7 classes) are held to 1e-9 relative, ~10⁶ × machine epsilon, far above what any
BLAS or numpy version changes. Results that pass through square roots of (near-)null eigenvalues
(rank-deficient covariances, identical sets) are held to 1e-6, because each null direction may
contribute √(1e-16·λmax) ≈ 1e-8 and the rounding of those zeros differs between BLAS builds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maa.metrics import (
    clap_scores,
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    inception_score,
    kl_divergence,
)


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _sym_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def test_fd_of_identical_sets_is_zero():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16))
    mu, sigma = gaussian_stats(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    assert abs(frechet_distance_features(x, x)) < 1e-6
    few = x[:10]  # fewer rows than dimensions: the low-rank path
    assert abs(frechet_distance_features(few, few)) < 1e-6


def test_fd_matches_closed_form_for_known_gaussians():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # diagonal covariances commute: |Δμ|² + Σ (√a - √b)²
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)
    # general covariances: tr(Σ1Σ2)^½ = tr(Σ1^½ Σ2 Σ1^½)^½ (symmetric eigen form)
    rng = np.random.default_rng(1)
    s1, s2 = _random_cov(rng, 6), _random_cov(rng, 6)
    m1, m2 = rng.standard_normal(6), rng.standard_normal(6)
    r = _sym_sqrt(s1)
    closed = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2)
    closed -= 2 * np.trace(_sym_sqrt(r @ s2 @ r))
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(closed, rel=1e-9)
    # samples from those Gaussians estimate the same distance
    x1 = rng.multivariate_normal(m1, s1, size=40000)
    x2 = rng.multivariate_normal(m2, s2, size=40000)
    assert frechet_distance_features(x1, x2) == pytest.approx(closed, rel=0.03, abs=0.02)


def test_fd_low_rank_path_equals_covariance_form():
    """Fewer rows than dimensions: the nuclear-norm route equals the sqrtm route."""
    rng = np.random.default_rng(2)
    x1 = rng.standard_normal((12, 30))
    x2 = rng.standard_normal((9, 30)) * 1.5 + 0.3
    (m1, s1), (m2, s2) = gaussian_stats(x1), gaussian_stats(x2)
    r = _sym_sqrt(s1)
    closed = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2)
    closed -= 2 * np.trace(_sym_sqrt(r @ s2 @ r))
    # rel 1e-6, not float64's 1e-15: r @ s2 @ r has rank ≤ 9 in 30 dimensions, and the closed
    # form takes square roots of its ~21 null eigenvalues, which a BLAS leaves at ±1e-16·λmax;
    # each adds up to 1e-8·√λmax to the trace, and which values appear differs across numpy/BLAS
    # builds (a fresh install's newer numpy/scipy gave 1.08e-8 relative)
    assert frechet_distance_features(x1, x2) == pytest.approx(closed, rel=1e-6)
    notes: list[str] = []
    via_sqrtm = frechet_distance(m1, s1, m2, s2, notes=notes)
    assert via_sqrtm == pytest.approx(closed, rel=1e-4)


@pytest.mark.parametrize("rows", [(60, 70), (15, 12)])
def test_fd_methods_agree(rows):
    rng = np.random.default_rng(rows[0])
    x1 = rng.standard_normal((rows[0], 20)) @ rng.standard_normal((20, 20))
    x2 = rng.standard_normal((rows[1], 20)) * 2.0 + 0.5
    ref = frechet_distance_features(x1, x2, method="eigh")
    for method in ("sqrtm", "svd", "auto"):
        assert frechet_distance_features(x1, x2, method=method) == pytest.approx(ref, rel=1e-6)


def test_fd_needs_two_rows_and_matching_sizes():
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="differ"):
        frechet_distance_features(np.zeros((3, 4)), np.zeros((3, 5)))


def test_kl_of_identical_distributions_is_zero():
    logits = np.random.default_rng(3).standard_normal((5, 527)) * 3
    for kind in ("softmax", "sigmoid"):
        assert np.abs(kl_divergence(logits, logits, kind, eps=0.0)).max() < 1e-12
        # with the reference's 1e-6 inside the log the value is ~0 (at most C·1e-6 away)
        assert np.abs(kl_divergence(logits, logits, kind)).max() < 527e-6


def test_kl_matches_hand_computed_case():
    ref = np.array([[0.0, 0.0]])  # p = (1/2, 1/2)
    gen = np.array([[math.log(3.0), 0.0]])  # q = (3/4, 1/4)
    soft = kl_divergence(ref, gen, "softmax", eps=0.0)
    assert soft[0] == pytest.approx(0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
    # sigmoid variant: Σ_c σ(r_c) (log σ(r_c) - log σ(g_c)); σ(0)=1/2, σ(log 3)=3/4
    sig = kl_divergence(ref, gen, "sigmoid", eps=0.0)
    assert sig[0] == pytest.approx(0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.5))
    # direction is KL(reference ‖ generated), as torch's kl_div(log q, p) in the reference
    rng = np.random.default_rng(4)
    p_logits, q_logits = rng.standard_normal((4, 7)), rng.standard_normal((4, 7))
    expected = torch.nn.functional.kl_div(
        (torch.from_numpy(q_logits).softmax(1) + 1e-6).log(),
        torch.from_numpy(p_logits).softmax(1),
        reduction="sum",
    ) / len(p_logits)
    ours = kl_divergence(p_logits, q_logits, "softmax").mean()
    assert ours == pytest.approx(float(expected), rel=1e-9)


def test_inception_score_uniform_is_one_and_confident_is_class_count():
    mean, std, splits = inception_score(np.zeros((50, 527)))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    assert splits == 10
    # 100 confident predictions spread evenly over 10 classes, one split: IS = 10
    logits = np.eye(10)[np.arange(100) % 10] * 60.0
    assert inception_score(logits, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
    # fixed shuffle seed: deterministic; fewer rows than splits: splits shrink
    x = np.random.default_rng(5).standard_normal((37, 20)) * 4
    assert inception_score(x) == inception_score(x)
    assert inception_score(x[:4])[2] == 4


def test_clap_scores_are_row_cosines():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    t = np.array([[2.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(clap_scores(a, t), [1.0, 0.0, 1.0], atol=1e-12)
    with pytest.raises(ValueError):
        clap_scores(a, t[:2])
