"""normalise_gap: log1p of hours, negatives clamped, scalars and arrays."""

from __future__ import annotations

import doctest

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from scorer import timegap
from scorer.timegap import normalise_gap


def test_doctests() -> None:
    assert doctest.testmod(timegap, raise_on_error=False).failed == 0


def test_known_gaps() -> None:
    hours = np.array([0.0, 1.0, 24.0, 24.0 * 30])
    np.testing.assert_allclose(normalise_gap(hours * 3600.0), np.log1p(hours))
    assert normalise_gap(-1.0) == 0.0


def test_keeps_float32_and_shape() -> None:
    out = normalise_gap(np.full((2, 3), 7200.0, dtype=np.float32))
    assert out.dtype == np.float32 and out.shape == (2, 3)


@given(st.floats(-1e6, 1e9), st.floats(0.0, 1e9))
def test_monotone_and_bounded_for_our_range(a: float, b: float) -> None:
    assert normalise_gap(a) <= normalise_gap(a + b)
    assert 0.0 <= normalise_gap(a) < 13.0  # 1e9 s ≈ 32 years
