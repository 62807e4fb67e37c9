"""The activities a user chooses within one session: a Markov chain tilted by distress.

Only the activities a user starts at will are chained here: post, lend, transfer in/out,
recharge, withdraw. The others follow from them on their own clock (borrow when a post is
funded, repay / miss_payment at the due date, be_repaid when an investment matures).

Two transition matrices, blended by the hidden distress share s ∈ [0, 1]:
``HEALTHY`` favours investing and money coming in (recharge→lend, withdraw→lend), ``DISTRESSED``
favours asking for and taking out money (post→post, post→withdraw, withdraw→transfer_out), the
transitions the paper's Figure 9 finds more common before good and before delinquent loans.
Its Figure 8 differences (more posts and outward transfers, less lending and recharge before
delinquent loans) follow from the same tilt.

>>> chain = SessionChain((1.0,) * len(CHAINED))
>>> CHAINED[chain.step(START, distress=0.0, u=0.1)], CHAINED[chain.step(START, distress=1.0, u=0.1)]
(<Activity.POST: 'post'>, <Activity.POST: 'post'>)
>>> CHAINED[chain.step(START, distress=0.0, u=0.3)], CHAINED[chain.step(START, distress=1.0, u=0.3)]
(<Activity.LEND: 'lend'>, <Activity.POST: 'post'>)
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

from deepcredit.events import Activity

__all__ = ["CHAINED", "DISTRESSED", "END", "HEALTHY", "START", "SessionChain"]

#: Chain states, in matrix order. Index END (== len(CHAINED)) ends the session.
CHAINED: tuple[Activity, ...] = (
    Activity.POST,
    Activity.LEND,
    Activity.TRANSFER_IN,
    Activity.TRANSFER_OUT,
    Activity.RECHARGE,
    Activity.WITHDRAW,
)
END = len(CHAINED)
#: Row index of the session-opening distribution (after the per-activity rows).
START = len(CHAINED)

# Rows: from post, lend, transfer_in, transfer_out, recharge, withdraw, then session start.
# Columns: to post, lend, transfer_in, transfer_out, recharge, withdraw, end of session.
HEALTHY: tuple[tuple[float, ...], ...] = (
    (0.03, 0.10, 0.05, 0.05, 0.12, 0.05, 0.60),
    (0.08, 0.12, 0.05, 0.04, 0.08, 0.08, 0.55),
    (0.10, 0.15, 0.05, 0.05, 0.05, 0.15, 0.45),
    (0.10, 0.05, 0.05, 0.05, 0.10, 0.10, 0.55),
    (0.10, 0.35, 0.05, 0.05, 0.03, 0.02, 0.40),
    (0.05, 0.25, 0.05, 0.05, 0.05, 0.03, 0.52),
    (0.20, 0.15, 0.12, 0.10, 0.28, 0.15, 0.00),
)
DISTRESSED: tuple[tuple[float, ...], ...] = (
    (0.30, 0.01, 0.06, 0.05, 0.03, 0.20, 0.35),
    (0.15, 0.03, 0.05, 0.10, 0.05, 0.15, 0.47),
    (0.25, 0.01, 0.05, 0.15, 0.02, 0.20, 0.32),
    (0.20, 0.01, 0.10, 0.10, 0.02, 0.10, 0.47),
    (0.25, 0.03, 0.05, 0.10, 0.02, 0.10, 0.45),
    (0.10, 0.01, 0.05, 0.35, 0.02, 0.05, 0.42),
    (0.35, 0.03, 0.15, 0.15, 0.12, 0.20, 0.00),
)


class SessionChain:
    """The chain for one set of column weights (a borrower posts more, an investor lends more;
    the end-of-session odds are not weighted).

    Keeps the cumulative healthy and distressed rows; a cumulative sum is linear in the blend,
    so a step blends only the row it draws from instead of rebuilding the matrix per session.
    """

    def __init__(self, weights: Sequence[float]) -> None:
        self.weights = tuple(weights)
        self._healthy = [_cumulative(row, self.weights) for row in HEALTHY]
        self._distressed = [_cumulative(row, self.weights) for row in DISTRESSED]

    def step(self, state: int, distress: float, u: float) -> int:
        """Next state after ``state`` (``START`` to open a session) for distress share
        ``distress`` in [0, 1] and a uniform draw ``u``; ``END`` ends the session."""
        healthy, distressed = self._healthy[state], self._distressed[state]
        calm = 1.0 - distress
        target = u * (calm * healthy[END] + distress * distressed[END])
        for column in range(END):
            if calm * healthy[column] + distress * distressed[column] > target:
                return column
        return END


def _cumulative(row: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Running sums of a weighted row; the last entry adds the unweighted end odds."""
    sums = list(accumulate(p * w for p, w in zip(row[:END], weights, strict=True)))
    return [*sums, sums[-1] + row[END]]
