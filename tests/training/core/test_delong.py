"""DeLong's AUC variance (Sun & Xu's fast algorithm) against its O(m n) definition, against
scikit-learn's AUC, and against a bootstrap on synthetic independent rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.core.delong import delong_auc, delong_difference


def _naive(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) as written: psi(X, Y) = 1, 1/2, 0 over every positive-negative
    pair, V10 and V01 as its row and column means, covariance S10 / m + S01 / n."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    return psi.mean(axis=(1, 2)), np.cov(v10) / m + np.cov(v01) / n


def test_fast_algorithm_equals_the_definition_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.3).astype(int)
    a = np.round(rng.normal(size=300) + y, 1)  # rounded: many ties
    b = np.round(rng.normal(size=300) + 0.5 * y, 1)
    aucs, cov = _naive(y, np.vstack([a, b]))
    one = delong_auc(y, a)
    assert one.auc == pytest.approx(aucs[0], abs=1e-12)
    assert one.auc == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert one.se**2 == pytest.approx(cov[0, 0], rel=1e-9)
    diff = delong_difference(y, a, b)
    assert diff.difference == pytest.approx(aucs[1] - aucs[0], abs=1e-12)
    assert diff.se**2 == pytest.approx(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], rel=1e-9)


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney AUC of untied scores: the bootstrap's, cheaper than scikit-learn's."""
    ranks = np.empty(len(p))
    ranks[np.argsort(p)] = np.arange(1, len(p) + 1)
    m = int(y.sum())
    return (ranks[y == 1].sum() - m * (m + 1) / 2) / (m * (len(y) - m))


def test_standard_errors_match_a_bootstrap_on_independent_rows() -> None:
    rng = np.random.default_rng(7)
    n = 2000
    y = (rng.random(n) < 0.2).astype(int)
    z = rng.normal(size=n) + y
    a, b = z + rng.normal(size=n), z + 0.5 * rng.normal(size=n)
    draws_a, draws_d = [], []
    for _ in range(400):
        i = rng.integers(0, n, n)
        draws_a.append(_auc(y[i], a[i] + 1e-9 * np.arange(n)))  # copies made untied
        draws_d.append(_auc(y[i], b[i] + 1e-9 * np.arange(n)) - draws_a[-1])
    assert delong_auc(y, a).se == pytest.approx(np.std(draws_a), rel=0.15)
    d = delong_difference(y, a, b)
    assert d.se == pytest.approx(np.std(draws_d), rel=0.15)
    assert d.difference > 0 and d.p_value < 1e-3 and d.low > 0


def test_identical_models_have_no_difference() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.1, 0.9, 0.3, 0.6, 0.2, 0.4])
    d = delong_difference(y, p, p)
    assert (d.difference, d.se, d.p_value) == (0.0, 0.0, 1.0)


def test_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="both classes"):
        delong_auc(np.zeros(4), np.arange(4.0))
