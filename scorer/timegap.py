"""The TLSTM's time input: the gap Δt since the previous event, put on one scale.

Gaps run from seconds to months, so the cell is fed ``log1p(hours)``: a minute is ≈ 0.017, an
hour ≈ 0.69, a day ≈ 3.2, a 30-day month ≈ 6.6, a year ≈ 9.1. Negative gaps come only from the
small disorder the event contract tolerates and are clamped to 0.

>>> normalise_gap(np.array([-5.0, 0.0, 3600.0, 86400.0, 30 * 86400.0]))
array([0.        , 0.        , 0.69314718, 3.21887582, 6.58063914])
>>> float(normalise_gap(3600))
0.6931471805599453
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["normalise_gap"]

SECONDS_PER_HOUR = 3600.0


def normalise_gap(seconds: ArrayLike) -> np.ndarray:
    """Δt in seconds (scalar or array) to the TLSTM's Δt input, log1p(hours), negatives as 0.

    Float inputs keep their dtype (float32 stays float32); scalars come back as numpy scalars.
    """
    return np.log1p(np.maximum(seconds, 0.0) / SECONDS_PER_HOUR)
