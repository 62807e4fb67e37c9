"""Score bands, calibration in the large, PSI and McNemar's test on hand-checked inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import chi2

from training.core.bands import calibration_in_the_large, score_bands
from training.core.mcnemar import mcnemar
from training.core.stability import FLOOR, psi


def test_deciles_add_up_riskiest_first_and_keep_ties_together() -> None:
    rng = np.random.default_rng(3)
    p = np.round(rng.random(1000), 2)  # ties across the cuts
    y = (rng.random(1000) < p).astype(int)
    bands = score_bands(y, p)
    assert sum(b.n for b in bands) == 1000 and sum(b.bads for b in bands) == y.sum()
    assert [b.band for b in bands] == list(range(1, len(bands) + 1))
    for riskier, safer in itertools.pairwise(bands):
        assert riskier.p_low > safer.p_high  # a tied score never spans two bands
    assert bands[-1].captured == pytest.approx(1.0) and bands[-1].population == 1.0
    assert all(b.n == pytest.approx(100, abs=20) for b in bands)
    assert bands[0].bad_rate > bands[-1].bad_rate  # p is the true probability here
    for b in bands:
        inside = (p >= b.p_low) & (p <= b.p_high)
        assert (b.n, b.bads) == (inside.sum(), y[inside].sum())
        assert b.mean_predicted == pytest.approx(p[inside].mean())


def test_few_distinct_scores_give_fewer_bands() -> None:
    bands = score_bands(np.array([0, 1, 0, 1]), np.array([0.2, 0.2, 0.7, 0.7]))
    assert [(b.n, b.bads) for b in bands] == [(2, 1), (2, 1)]


def test_calibration_in_the_large() -> None:
    c = calibration_in_the_large(np.array([0, 0, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5]))
    assert (c.mean_predicted, c.observed_rate, c.difference, c.ratio) == (0.5, 0.25, 0.25, 2.0)


def test_psi_by_hand() -> None:
    reference = np.arange(10.0)  # deciles: one value per bin
    assert psi(reference, reference) == 0.0
    later = np.array([0.0] * 5 + [9.0] * 5)  # half in the first bin, half in the last
    e, a = 0.1, np.array([0.5] + [FLOOR] * 8 + [0.5])
    expected = float(np.sum((a - e) * np.log(a / e)))
    assert psi(reference, later) == pytest.approx(expected)


def test_mcnemar_by_hand() -> None:
    y = np.array([1] * 30 + [0] * 30)
    a = np.r_[np.full(20, 0.9), np.full(10, 0.1), np.full(30, 0.1)]  # 50 right
    b = np.r_[np.full(28, 0.9), np.full(2, 0.1), np.full(26, 0.1), np.full(4, 0.9)]  # 54 right
    r = mcnemar(y, a, b)
    # b is right where a is not on 8 bads; a right where b is not on 4 goods.
    assert (r.only_a_right, r.only_b_right) == (4, 8)
    assert r.statistic == pytest.approx((abs(4 - 8) - 1) ** 2 / 12)
    assert r.p_value == pytest.approx(float(chi2.sf(9 / 12, 1)))
    assert (r.accuracy_a, r.accuracy_b) == (50 / 60, 54 / 60)
    same = mcnemar(y, a, a)
    assert (same.statistic, same.p_value) == (0.0, 1.0)
    assert math.isclose(mcnemar(y, a, b, cutoff=0.95).statistic, 0.0)
