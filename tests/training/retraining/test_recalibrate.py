"""Platt recalibration: the fit, and the carry-over check that leaves a calibrated target alone."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.retraining.recalibrate import _cv_gain, fit_platt


def folds(z: np.ndarray, y: np.ndarray, k: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(z[i::k], y[i::k]) for i in range(k)]


@given(st.floats(-2.0, 2.0), st.floats(0.5, 2.0), st.integers(0, 2**31 - 1))
@settings(max_examples=30, deadline=None)
def test_the_fit_recovers_a_shift_and_the_check_keeps_it(b: float, a: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.5, 1.2, 6000)
    y = (rng.random(6000) < 1 / (1 + np.exp(-(a * z + b)))).astype(float)
    fa, fb = fit_platt(z, y, min_labels=20)
    assert fa == pytest.approx(a, abs=0.25) and fb == pytest.approx(b, abs=0.35)
    if abs(b) > 1.0:  # a large shift: refitting clearly carries over to unseen users
        assert _cv_gain(folds(z, y), 20) > 0.05


def test_a_calibrated_target_gains_nothing_and_too_few_labels_keep_the_identity() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(-1.5, 1.2, 6000)
    y = (rng.random(6000) < 1 / (1 + np.exp(-z))).astype(float)  # already calibrated
    assert _cv_gain(folds(z, y), 20) < 0.01
    few = np.zeros(500)
    few[:3] = 1.0
    assert fit_platt(z[:500], few, min_labels=20) == (1.0, 0.0)
    assert fit_platt(-z, y, min_labels=20) == (1.0, 0.0)  # inverted ranking: no negative slope
