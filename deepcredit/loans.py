"""Loan labels derived from the click stream itself, never stored beside it.

A funded loan's delay is d = repay ts − due ts in days, with due = post ts + term_days·86400
(DESIGN.md). delinquent ⇔ d > 0 or never repaid; default ⇔ d > 120 days or never repaid.

"Never repaid" can only be judged at some moment ``as_of``: events after it are ignored, so the
labels are exactly what was knowable then (no look-ahead for a dataset cut at ``as_of``). A loan
whose label cannot be known yet is *censored* for that label (None):

- not repaid and not yet due at ``as_of``: both labels None;
- not repaid, past due by at most 120 days: delinquent True, default None (it may still be
  repaid within 120 days).

Rates over labelled loans leave the censored ones out. That biases the default rate of the most
recent loans slightly down (the fast on-time repayers are labelled first); for a multi-year
horizon it is a small effect, which is why the benchmark statistics accept it.

>>> from deepcredit.events import Activity, ClickEvent
>>> def ev(i, ts, act, **kw):
...     return ClickEvent(event_id=str(i), user_id="u", ts=ts, activity=act, amount=100.0, **kw)
>>> day = 86_400.0
>>> stream = [ev(1, 1e9, Activity.POST, loan_id="a", rate=0.1, term_days=30),
...           ev(2, 1e9 + 60, Activity.BORROW, loan_id="a"),
...           ev(3, 1e9 + 30 * day, Activity.MISS_PAYMENT, loan_id="a"),
...           ev(4, 1e9 + 35 * day, Activity.REPAY, loan_id="a")]
>>> o = loan_outcomes(stream, as_of=1e9 + 400 * day)["a"]
>>> o.delay_days, o.delinquent, o.default
(5.0, True, False)
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from deepcredit.events import DAY_S, Activity, ClickEvent

__all__ = ["DEFAULT_DELAY_DAYS", "LoanOutcome", "OutcomeTracker", "loan_outcomes"]

#: P2PFA definition of default: more than 120 days late, or never repaid.
DEFAULT_DELAY_DAYS = 120.0


class LoanOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one posted loan, as known at some moment. Labels are None when unknown
    (not funded, or censored: see the module docstring)."""

    loan_id: str
    user_id: str
    post_ts: float
    due_ts: float
    amount: float
    funded: bool
    repay_ts: float | None = None
    delay_days: float | None = None
    delinquent: bool | None = None
    default: bool | None = None

    @property
    def censored(self) -> bool:
        """A funded loan with at least one label not yet knowable."""
        return self.funded and (self.delinquent is None or self.default is None)


class _OpenLoan(msgspec.Struct):
    """A posted loan whose final repayment has not been seen yet."""

    user_id: str
    post_ts: float
    due_ts: float
    amount: float
    funded: bool = False


class OutcomeTracker:
    """Derives outcomes incrementally, for streams too long to hold in memory.

    Feed events in time order with ``update``; a loan's outcome is returned the moment its
    repayment makes it final, and ``close`` labels whatever is still open at ``as_of``. Memory
    is bounded by the number of open (unrepaid or unfunded) loans, not by the stream length.
    Events that do not fit a loan's life (repay of an unknown loan, a second repay) are ignored:
    they cannot change a label.
    """

    def __init__(self) -> None:
        self._open: dict[str, _OpenLoan] = {}

    def update(self, event: ClickEvent) -> LoanOutcome | None:
        """Take one event; return the loan's final outcome if this event settles it."""
        loan_id = event.loan_id
        if loan_id is None:
            return None
        activity = event.activity
        if activity is Activity.POST:
            if loan_id not in self._open and event.term_days is not None:
                due = event.ts + event.term_days * DAY_S
                self._open[loan_id] = _OpenLoan(event.user_id, event.ts, due, event.amount)
            return None
        loan = self._open.get(loan_id)
        if loan is None:
            return None
        if activity is Activity.BORROW:
            loan.funded = True
        elif activity is Activity.REPAY and loan.funded:
            del self._open[loan_id]
            delay = (event.ts - loan.due_ts) / DAY_S
            return _outcome(loan_id, loan, repay_ts=event.ts, delay=delay)
        return None

    def close(self, as_of: float) -> list[LoanOutcome]:
        """Outcomes, as known at ``as_of``, of every loan still open. Leaves the tracker empty."""
        outcomes = []
        for loan_id, loan in self._open.items():
            if not loan.funded or as_of <= loan.due_ts:
                outcomes.append(_outcome(loan_id, loan))
            else:
                overdue_days = (as_of - loan.due_ts) / DAY_S
                default = True if overdue_days > DEFAULT_DELAY_DAYS else None
                outcomes.append(_outcome(loan_id, loan, delinquent=True, default=default))
        self._open = {}
        return outcomes


def loan_outcomes(events: Iterable[ClickEvent], *, as_of: float) -> dict[str, LoanOutcome]:
    """Every posted loan's outcome as knowable at ``as_of`` (events after it are ignored).

    Events must be in time order per loan (post, borrow, repay), as on the clicks topic.
    """
    tracker = OutcomeTracker()
    outcomes: dict[str, LoanOutcome] = {}
    for event in events:
        if event.ts > as_of:
            continue
        outcome = tracker.update(event)
        if outcome is not None:
            outcomes[outcome.loan_id] = outcome
    for outcome in tracker.close(as_of):
        outcomes[outcome.loan_id] = outcome
    return outcomes


def _outcome(
    loan_id: str,
    loan: _OpenLoan,
    *,
    repay_ts: float | None = None,
    delay: float | None = None,
    delinquent: bool | None = None,
    default: bool | None = None,
) -> LoanOutcome:
    """The outcome of an open loan; a known delay decides both labels."""
    if delay is not None:
        delinquent, default = delay > 0.0, delay > DEFAULT_DELAY_DAYS
    return LoanOutcome(
        loan_id=loan_id,
        user_id=loan.user_id,
        post_ts=loan.post_ts,
        due_ts=loan.due_ts,
        amount=loan.amount,
        funded=loan.funded,
        repay_ts=repay_ts,
        delay_days=delay,
        delinquent=delinquent,
        default=default,
    )
