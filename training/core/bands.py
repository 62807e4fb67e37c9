"""Score bands: rows cut into equal-count bands of predicted probability (deciles by default),
each with its bad rate and mean prediction. One table serves two readings: bad rate by score
band (does risk rise band by band, how many bads do the riskiest bands hold) and the
reliability table (mean predicted probability against the observed rate, band by band).

>>> import numpy as np
>>> y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
>>> p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
>>> [(b.band, b.n, b.bads) for b in score_bands(y, p, bands=2)]
[(1, 4, 3), (2, 4, 1)]
>>> calibration_in_the_large(y, p)
CalibrationInTheLarge(mean_predicted=0.45, observed_rate=0.5, difference=-0.05, ratio=0.9)
"""

from __future__ import annotations

import itertools

import msgspec
import numpy as np

__all__ = ["Band", "CalibrationInTheLarge", "calibration_in_the_large", "score_bands"]


class Band(msgspec.Struct, frozen=True):
    """One band: 1 is the riskiest (highest probabilities). ``p_low``..``p_high`` are the
    smallest and largest probability in it; ``captured`` is the share of all bads in this band
    and the riskier ones, ``population`` the share of all rows likewise."""

    band: int
    p_low: float
    p_high: float
    n: int
    bads: int
    bad_rate: float
    mean_predicted: float
    captured: float
    population: float


class CalibrationInTheLarge(msgspec.Struct, frozen=True):
    """Mean predicted probability against the observed rate: ``difference`` = predicted -
    observed (positive: the model overstates risk), ``ratio`` = predicted / observed."""

    mean_predicted: float
    observed_rate: float
    difference: float
    ratio: float


def score_bands(y: np.ndarray, p: np.ndarray, bands: int = 10) -> list[Band]:
    """``bands`` equal-count bands of ``p`` (N,) with labels ``y`` (N,) 0/1, riskiest first.
    Rows with equal probabilities stay in one band, so a band may hold more or fewer rows than
    N / bands, and there are fewer bands when ``p`` has fewer distinct values. Raises
    ValueError on empty input."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0:
        raise ValueError("no rows to band")
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    # Cut at the positions of equal counts, moved to the end of a run of equal scores.
    last = np.maximum((np.arange(1, bands) * len(ps)) // bands - 1, 0)
    cuts = np.unique(np.searchsorted(-ps, -ps[last], side="right"))
    edges = np.r_[0, cuts[(cuts > 0) & (cuts < len(ps))], len(ps)]
    total_bads = max(int(ys.sum()), 1)
    out = []
    for k, (lo, hi) in enumerate(itertools.pairwise(edges), start=1):
        yk, pk = ys[lo:hi], ps[lo:hi]
        out.append(Band(
            band=k, p_low=float(pk.min()), p_high=float(pk.max()), n=int(hi - lo),
            bads=int(yk.sum()), bad_rate=float(yk.mean()), mean_predicted=float(pk.mean()),
            captured=float(ys[:hi].sum() / total_bads), population=float(hi / len(ps)),
        ))  # fmt: skip
    return out


def calibration_in_the_large(y: np.ndarray, p: np.ndarray) -> CalibrationInTheLarge:
    """Mean prediction against the observed rate of labels ``y`` (N,) 0/1. ``ratio`` is inf
    when no row is bad."""
    predicted, observed = float(np.mean(p)), float(np.mean(y))
    ratio = predicted / observed if observed > 0 else float("inf")
    return CalibrationInTheLarge(round(predicted, 12), round(observed, 12),
                                 round(predicted - observed, 12), round(ratio, 12))  # fmt: skip
