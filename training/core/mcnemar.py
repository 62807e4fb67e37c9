"""McNemar's test of two classifiers on the same rows at one cut-off, as paper 004 (its eq. 11)
uses it: chi-square with one degree of freedom and the continuity correction,
(|b - c| - 1)^2 / (b + c), b and c the rows only one of the two classifies right. (The
paper prints b - c in the denominator; McNemar's statistic, and the chi-square it is compared
with, has b + c.)

>>> import numpy as np
>>> y = np.array([1, 1, 0, 0, 1, 0])
>>> a = np.array([0.9, 0.2, 0.1, 0.6, 0.7, 0.3])
>>> r = mcnemar(y, a, np.array([0.9, 0.8, 0.1, 0.1, 0.7, 0.3]))
>>> r.only_a_right, r.only_b_right, r.statistic
(0, 2, 0.5)
"""

from __future__ import annotations

import msgspec
import numpy as np
from scipy.stats import chi2

__all__ = ["McNemar", "mcnemar"]


class McNemar(msgspec.Struct, frozen=True):
    """Counts of rows only a (only b) classifies right at ``cutoff``, the corrected statistic
    and its p-value (1.0 when the two never disagree), and each one's accuracy."""

    cutoff: float
    only_a_right: int
    only_b_right: int
    statistic: float
    p_value: float
    accuracy_a: float
    accuracy_b: float


def mcnemar(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, cutoff: float = 0.5) -> McNemar:
    """McNemar's test of a against b on labels ``y`` (N,) 0/1, each predicting class 1 where
    its probability (N,) is at or above ``cutoff``."""
    y = np.asarray(y).astype(bool)
    right_a = (np.asarray(p_a) >= cutoff) == y
    right_b = (np.asarray(p_b) >= cutoff) == y
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    if b + c == 0:
        stat, p_value = 0.0, 1.0
    else:
        stat = (abs(b - c) - 1) ** 2 / (b + c)
        p_value = float(chi2.sf(stat, df=1))
    return McNemar(cutoff, b, c, float(stat), p_value, float(right_a.mean()),
                   float(right_b.mean()))  # fmt: skip
