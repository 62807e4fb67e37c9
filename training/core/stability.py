"""The population stability index (PSI) of a score or an input between a reference sample (the
training or validation rows, a drift monitor's reference period) and a later one (the test
rows, a monitor's current window).

PSI = sum over bins of (a - e) ln(a / e), with e and a the shares of the reference and the
later sample in each bin; bins are the reference's deciles, or the categories of a categorical
input. The industry's reading (Siddiqi, "Credit Risk Scorecards", 2006): below 0.1 stable, 0.1
to 0.25 a moderate shift (one to look into), above 0.25 a major shift.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> round(psi(rng.random(5000), rng.random(5000)), 3)
0.003
>>> round(psi(rng.random(5000), rng.random(5000) ** 2), 2)
0.37
>>> round(psi_shares(np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.75, 0.0])), 4)
0.2747
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PsiBins", "psi", "psi_bins", "psi_reading", "psi_shares"]

#: A bin empty on one side would make the index infinite: shares are floored at this.
FLOOR = 1e-4


@dataclass(frozen=True)
class PsiBins:
    """The reference's quantile bins and each sample's share in them: bin k holds
    ``cuts[k-1] <= x < cuts[k]`` (the first from minus infinity, the last to plus infinity)."""

    cuts: np.ndarray  # (K - 1,) inner cut points, increasing
    expected: np.ndarray  # (K,) the reference's shares, summing to 1
    actual: np.ndarray  # (K,) the later sample's shares

    @property
    def contributions(self) -> np.ndarray:
        """(K,) each bin's term of the index (floored shares); they sum to ``psi``."""
        return _terms(self.expected, self.actual)

    @property
    def psi(self) -> float:
        return float(np.sum(self.contributions))


def psi_bins(reference: np.ndarray, later: np.ndarray, bins: int = 10) -> PsiBins:
    """``later`` (M,) and ``reference`` (N,) shared out over the reference's ``bins`` quantile
    bins (fewer when it has fewer distinct values). Raises ValueError on an empty sample."""
    reference = np.asarray(reference, dtype=np.float64)
    later = np.asarray(later, dtype=np.float64)
    if len(reference) == 0 or len(later) == 0:
        raise ValueError("PSI needs both samples non-empty")
    inner = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    e = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=len(inner) + 1)
    a = np.bincount(np.searchsorted(inner, later, side="right"), minlength=len(inner) + 1)
    return PsiBins(inner, e / len(reference), a / len(later))


def psi(reference: np.ndarray, later: np.ndarray, bins: int = 10) -> float:
    """PSI of ``later`` (M,) against ``reference`` (N,) over the reference's ``bins``
    quantile bins (fewer when it has fewer distinct values). Raises ValueError on an empty
    sample."""
    return psi_bins(reference, later, bins).psi


def psi_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI from the shares (K,) of the reference and of the later sample in the same K bins or
    categories (each summing to 1); shares are floored at ``FLOOR``."""
    return float(np.sum(_terms(np.asarray(expected, float), np.asarray(actual, float))))


def _terms(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    e, a = np.maximum(expected, FLOOR), np.maximum(actual, FLOOR)
    return (a - e) * np.log(a / e)


def psi_reading(value: float) -> str:
    """The conventional reading of a PSI value: stable, moderate shift, major shift."""
    if value < 0.1:
        return "stable"
    return "moderate shift" if value < 0.25 else "major shift"
