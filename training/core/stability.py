"""The population stability index (PSI) of a score between a reference sample (the training or
validation rows) and a later one (the test rows).

PSI = sum over bins of (a - e) ln(a / e), with e and a the shares of the reference and the
later sample in each bin; bins are the reference's deciles. The industry's reading (Siddiqi,
"Credit Risk Scorecards", 2006): below 0.1 stable, 0.1 to 0.25 a shift to look into, above
0.25 a significant shift.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> round(psi(rng.random(5000), rng.random(5000)), 3)
0.003
>>> round(psi(rng.random(5000), rng.random(5000) ** 2), 2)
0.37
"""

from __future__ import annotations

import numpy as np

__all__ = ["psi", "psi_reading"]

#: A bin empty on one side would make the index infinite: shares are floored at this.
FLOOR = 1e-4


def psi(reference: np.ndarray, later: np.ndarray, bins: int = 10) -> float:
    """PSI of ``later`` (M,) against ``reference`` (N,) over the reference's ``bins``
    quantile bins (fewer when it has fewer distinct values). Raises ValueError on an empty
    sample."""
    reference = np.asarray(reference, dtype=np.float64)
    later = np.asarray(later, dtype=np.float64)
    if len(reference) == 0 or len(later) == 0:
        raise ValueError("PSI needs both samples non-empty")
    inner = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    e = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=len(inner) + 1)
    a = np.bincount(np.searchsorted(inner, later, side="right"), minlength=len(inner) + 1)
    e = np.maximum(e / len(reference), FLOOR)
    a = np.maximum(a / len(later), FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_reading(value: float) -> str:
    """The conventional reading of a PSI value."""
    if value < 0.1:
        return "stable"
    return "shift to look into" if value < 0.25 else "significant shift"
