"""Event to model input: the one definition shared by training (torch) and live scoring (numpy).

Two inputs, following the paper's two sequences:

- the **activity** input a_{i,j} (paper: "activity type, involved money amount"; the time gap
  goes to the TLSTM as Δt), for every event other than a post;
- the **loan-level** input p_i (paper: loan amount, rate, term, delinquency, unpaid debt and
  delinquent amount; we add the user's record of on-time and late loans and the recency of
  the last late one, running aggregates as DESIGN.md asks), for a post and for each outcome
  event of a funded loan (a repayment, with its delay, or a missed payment) when it happens.
  This is the streaming form of DESIGN.md: outcome knowledge arrives as events instead of
  being re-encoded. The complementary layer's Y(i-1) is appended by the model.

Money enters as log1p(amount) / 10 (amounts span 1 to 1e6; this keeps inputs near [0, 1.5]).

>>> from deepcredit.events import Activity, ClickEvent
>>> e = ClickEvent(event_id="e", user_id="u", ts=1e9, activity=Activity.LEND, amount=999.0)
>>> [round(v, 3) for v in activity_features(e)]
[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.691]
"""

from __future__ import annotations

import enum
import math

from deepcredit.events import Activity, ClickEvent
from deepcredit.loans import DEFAULT_DELAY_DAYS
from scorer.ledger import DELAY_CLIP_DAYS, Debt, Record

__all__ = [
    "ACTIVITY_FEATURES",
    "LOAN_FEATURES",
    "STEP_ACTIVITIES",
    "LoanStep",
    "activity_features",
    "loan_features",
    "loan_step_of",
]

#: Activities that advance the activity TLSTM: all but post, which starts a new subsequence.
STEP_ACTIVITIES: tuple[Activity, ...] = tuple(a for a in Activity if a is not Activity.POST)
_ACTIVITY_INDEX = {a: i for i, a in enumerate(STEP_ACTIVITIES)}
ACTIVITY_FEATURES = len(STEP_ACTIVITIES) + 1

_MONEY_SCALE = 10.0
#: Delays are clipped to [-30, 365] days and divided by the 120-day default horizon.
(_DELAY_MIN_DAYS, _DELAY_MAX_DAYS), _DELAY_SCALE_DAYS = DELAY_CLIP_DAYS, DEFAULT_DELAY_DAYS
_TERM_SCALE_DAYS = 365.0
_UNDUE_CAP = 20


class LoanStep(enum.IntEnum):
    """What kind of loan-level step an event is."""

    POST = 0  # a new loan request: the moment we score
    REPAY = 1  # a funded loan repaid: its delay is now known
    MISS = 2  # a funded loan missed its due date


LOAN_FEATURES = len(LoanStep) + 3 + 3 + 3 + 1  # kind, loan terms, debt, record, delay
_COUNT_SCALE = 3.0  # log1p(count) / 3: twenty loans ≈ 1
_RECENCY_DAYS = 180.0  # a late payment's weight halves in about four months


def money(amount: float) -> float:
    return math.log1p(amount) / _MONEY_SCALE


def activity_features(event: ClickEvent) -> tuple[float, ...]:
    """One-hot activity and log money. The caller routes posts elsewhere."""
    onehot = [0.0] * len(STEP_ACTIVITIES)
    onehot[_ACTIVITY_INDEX[event.activity]] = 1.0
    return (*onehot, money(event.amount))


def loan_step_of(event: ClickEvent, settled_delay_days: float | None) -> LoanStep | None:
    """Which loan-level step this event is, given what the ledger said when applying it."""
    if event.activity is Activity.POST:
        return LoanStep.POST
    if event.activity is Activity.REPAY and settled_delay_days is not None:
        return LoanStep.REPAY
    if event.activity is Activity.MISS_PAYMENT:
        return LoanStep.MISS
    return None


def loan_features(
    step: LoanStep, event: ClickEvent, debt: Debt, record: Record, delay_days: float | None
) -> tuple[float, ...]:
    """The loan-level input for one step. Loan terms are zero except on a post; the delay
    (last column) is zero except on a repayment."""
    kind = [0.0] * len(LoanStep)
    kind[step] = 1.0
    is_post = step is LoanStep.POST
    rate = (event.rate or 0.0) if is_post else 0.0
    term = (event.term_days or 0) / _TERM_SCALE_DAYS if is_post else 0.0
    delay = 0.0
    if step is LoanStep.REPAY and delay_days is not None:
        clipped = min(max(delay_days, _DELAY_MIN_DAYS), _DELAY_MAX_DAYS)
        delay = clipped / _DELAY_SCALE_DAYS
    return (
        *kind,
        money(event.amount),
        rate,
        term,
        money(debt.unpaid),
        money(debt.overdue),
        min(debt.undue_loans, _UNDUE_CAP) / 10.0,
        math.log1p(record.on_time) / _COUNT_SCALE,
        math.log1p(record.late) / _COUNT_SCALE,
        0.0 if record.days_since_late is None
        else math.exp(-record.days_since_late / _RECENCY_DAYS),
        delay,
    )
