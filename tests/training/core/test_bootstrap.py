"""The bootstrap's weighted figures against scikit-learn's, and its intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve

from training.core.bootstrap import paired_differences, weighted_metrics


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 60), st.booleans())
def test_weighted_figures_equal_scikit_learns(seed: int, n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(float)
    y[:2] = [0.0, 1.0]
    p = rng.integers(0, 4, n) / 4 if ties else rng.random(n)  # many equal scores, or none
    w = rng.integers(1, 4, n).astype(float)
    got = weighted_metrics(y, p, w)
    fpr, tpr, _ = roc_curve(y, p, sample_weight=w)
    assert got["auc"] == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-12)
    assert got["ks"] == pytest.approx(np.max(tpr - fpr), abs=1e-12)
    assert got["brier"] == pytest.approx(np.average((p - y) ** 2, weights=w), abs=1e-12)


def test_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="both classes"):
        weighted_metrics(np.zeros(5), np.linspace(0, 1, 5))


def test_users_not_rows_are_drawn() -> None:
    # Every user's ten rows are copies: drawn by user, the interval is that of 40 users, far
    # wider than the 400 independent rows the copies pretend to be.
    rng = np.random.default_rng(1)
    y1 = rng.integers(0, 2, 40).astype(float)
    a1, b1 = y1 * 0.3 + rng.random(40), rng.random(40)
    y, a, b = (np.repeat(v, 10) for v in (y1, a1, b1))
    users = np.repeat(np.arange(40), 10)
    by_user = paired_differences(y, a, b, users, draws=400)
    by_row = paired_differences(y, a, b, np.arange(400), draws=400)
    width = lambda d: d["auc"]["interval"][1] - d["auc"]["interval"][0]  # noqa: E731
    assert by_user["bootstrap"]["users"] == 40
    assert width(by_user) > 2 * width(by_row)
    assert by_user["auc"]["difference"] == pytest.approx(by_row["auc"]["difference"])
