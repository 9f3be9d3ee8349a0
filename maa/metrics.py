"""Evaluation metrics as pure functions over arrays (no I/O, no models).

Formulas follow audioldm_eval, the reference toolkit of the text-to-audio papers, so numbers are
comparable:

* **Fréchet distance** ``‖μ₁-μ₂‖² + tr Σ₁ + tr Σ₂ - 2·tr (Σ₁Σ₂)^½`` (FD on PANNs, FAD on VGGish).
* **KL** ``Σ_c p_c (log p_c - log(q_c + 1e-6))`` with ``p`` from the *reference* clip and ``q``
  from the generated clip of the same name (softmax over the 527 logits, or per-class sigmoid),
  averaged over pairs.
* **Inception score** ``exp E_x[KL(p(y|x) ‖ p(y))]`` over 10 splits of the shuffled set.
* **CLAP score**: cosine between each caption embedding and its clip's audio embedding.

Arrays are NumPy; every function computes in float64.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.special import log_softmax, softmax

KL_EPS = 1e-6  # audioldm_eval adds this to q before the log
FD_EPS = 1e-6  # diagonal offset when Σ₁Σ₂ is singular (the usual retry)
IS_SPLITS = 10
IS_SEED = 2020  # audioldm_eval's shuffle seed


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``features`` ``(N, D)``, N ≥ 2."""
    x = _as_2d(features, "features")
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 feature rows, got {x.shape[0]}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = FD_EPS,
    notes: list[str] | None = None,
) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) via ``scipy.linalg.sqrtm``.

    If the square root of ``Σ₁Σ₂`` is not finite, ``eps`` is added to both diagonals and it is
    retried (as pytorch-fid/audioldm_eval do). A small imaginary part from round-off is
    dropped; a large one (the product was too ill-conditioned for ``sqrtm``) switches to the
    symmetric form ``tr (Σ₁^½ Σ₂ Σ₁^½)^½``, which is the same quantity computed with
    eigen-decompositions of symmetric matrices. What happened is appended to ``notes``.
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}"
        )
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        _note(notes, f"Σ₁Σ₂ is singular; added {eps:g} to the covariance diagonals")
        offset = np.eye(s1.shape[0]) * eps
        s1, s2 = s1 + offset, s2 + offset
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    small_imag = np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
    if np.iscomplexobj(covmean) and not (small_imag and np.isfinite(covmean).all()):
        _note(notes, "sqrtm gave a large imaginary part; used the symmetric eigen form")
        tr_covmean = _trace_sqrt_product_sym(s1, s2)
    else:
        tr_covmean = float(np.trace(covmean.real))
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_features(
    x1: np.ndarray, x2: np.ndarray, notes: list[str] | None = None, method: str = "auto"
) -> float:
    """Fréchet distance between the Gaussians fitted to ``x1`` ``(N₁, D)`` and ``x2`` ``(N₂, D)``.

    ``method`` picks how ``tr (Σ₁Σ₂)^½`` is computed; all give the same quantity:

    * ``"sqrtm"`` — :func:`frechet_distance` on the covariances (the reference's way);
    * ``"svd"`` — with ``Aᵢ`` the centred rows / √(Nᵢ-1), ``Σᵢ = AᵢᵀAᵢ`` and the non-zero
      eigenvalues of Σ₁Σ₂ are the squared singular values of the N₂×N₁ matrix ``A₂A₁ᵀ``, so the
      trace is its nuclear norm: exact, no square root of a singular matrix, and under a second
      for 1 000 clips of 2048-d PANNs embeddings where ``sqrtm`` of the 2048² product takes a
      minute on a laptop CPU;
    * ``"eigh"`` — ``Σ √λ(Σ₁^½ Σ₂ Σ₁^½)`` with symmetric eigensolvers;
    * ``"auto"`` — ``svd`` when a set has fewer rows than dimensions, ``eigh`` for D > 512,
      else ``sqrtm``.
    """
    a, b = _as_2d(x1, "x1"), _as_2d(x2, "x2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    n1, n2, d = a.shape[0], b.shape[0], a.shape[1]
    if min(n1, n2) < 2:
        raise ValueError(f"each set needs at least 2 feature rows, got {n1} and {n2}")
    if method == "auto":
        method = "svd" if min(n1, n2) < d else ("eigh" if d > 512 else "sqrtm")
    if method == "sqrtm":
        return frechet_distance(*gaussian_stats(a), *gaussian_stats(b), notes=notes)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    c1 = (a - mu1) / np.sqrt(n1 - 1)
    c2 = (b - mu2) / np.sqrt(n2 - 1)
    if method == "svd":
        tr_covmean = float(np.linalg.svd(c2 @ c1.T, compute_uv=False).sum())
    elif method == "eigh":
        tr_covmean = _trace_sqrt_product_sym(c1.T @ c1, c2.T @ c2)
    else:
        raise ValueError(f"method must be auto, sqrtm, svd or eigh, got {method!r}")
    diff = mu1 - mu2
    tr1, tr2 = float(np.sum(c1 * c1)), float(np.sum(c2 * c2))
    return float(diff @ diff + tr1 + tr2 - 2.0 * tr_covmean)


def kl_divergence(
    reference_logits: np.ndarray,
    generated_logits: np.ndarray,
    kind: str = "softmax",
    eps: float = KL_EPS,
) -> np.ndarray:
    """Per-pair ``KL(reference ‖ generated)`` summed over classes, ``(N,)``.

    Row ``i`` of both arrays ``(N, C)`` belongs to the same file name. ``kind="softmax"``
    treats the logits as one categorical distribution; ``kind="sigmoid"`` uses the per-class
    probabilities ``σ(logit)`` in the same sum (audioldm_eval's multi-label variant, which
    sums ``p log p/q`` over the positive class only). Average the result for the metric.
    """
    p_logits = _as_2d(reference_logits, "reference_logits")
    q_logits = _as_2d(generated_logits, "generated_logits")
    if p_logits.shape != q_logits.shape:
        raise ValueError(f"paired logits differ in shape: {p_logits.shape} vs {q_logits.shape}")
    if kind == "softmax":
        p, q = softmax(p_logits, axis=1), softmax(q_logits, axis=1)
        log_p = log_softmax(p_logits, axis=1)
    elif kind == "sigmoid":
        log_p = -np.logaddexp(0.0, -p_logits)  # log σ(x), stable for large |x|
        p, q = np.exp(log_p), np.exp(-np.logaddexp(0.0, -q_logits))
    else:
        raise ValueError(f"kind must be 'softmax' or 'sigmoid', got {kind!r}")
    # p·log p is 0 where p is 0 (torch's kl_div convention)
    terms = np.where(p > 0, p * (log_p - np.log(q + eps)), 0.0)
    return terms.sum(axis=1)


def inception_score(
    logits: np.ndarray, splits: int = IS_SPLITS, seed: int | None = IS_SEED
) -> tuple[float, float, int]:
    """Inception score of ``logits`` ``(N, C)``: ``(mean, std, splits used)`` over the splits.

    Rows are shuffled with ``numpy.random.RandomState(seed)`` (``None``: no shuffle) and cut at
    ``i·N // splits``. With fewer rows than ``splits`` the number of splits drops to ``N``.
    """
    x = _as_2d(logits, "logits")
    n = x.shape[0]
    if n == 0:
        raise ValueError("the inception score needs at least one row")
    if seed is not None:
        x = x[np.random.RandomState(seed).permutation(n)]
    splits = max(1, min(int(splits), n))
    p, log_p = softmax(x, axis=1), log_softmax(x, axis=1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        marginal = p[lo:hi].mean(axis=0, keepdims=True)
        kl = (p[lo:hi] * (log_p[lo:hi] - np.log(marginal))).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores)), splits


def clap_scores(audio_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """Cosine between row ``i`` of ``audio`` ``(N, D)`` and row ``i`` of ``text``, ``(N,)``."""
    a = _unit(_as_2d(audio_embeddings, "audio_embeddings"))
    t = _unit(_as_2d(text_embeddings, "text_embeddings"))
    if a.shape != t.shape:
        raise ValueError(f"{a.shape[0]} audio but {t.shape[0]} text embeddings (or sizes differ)")
    return (a * t).sum(axis=1)


# -- helpers ---------------------------------------------------------------------------------
def _trace_sqrt_product_sym(s1: np.ndarray, s2: np.ndarray) -> float:
    """``tr (Σ₁Σ₂)^½`` as ``Σ √λ(Σ₁^½ Σ₂ Σ₁^½)`` with symmetric eigensolvers (PSD clipped)."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    lam = np.linalg.eigvalsh(root @ s2 @ root)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None and text not in notes:
        notes.append(text)
