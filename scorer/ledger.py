"""A user's running debt: the loans they posted, borrowed and still owe, from their events alone.

The paper's debt features (unpaid debt, delinquent amount, undue loans; Figures 6, 7 and 12)
are read off this ledger as of any moment, so they never look past the event being scored.
A loan's life (post, borrow, repay; due date; late) follows ``deepcredit.loans``. Overdue is
judged by the clock (due date passed, not repaid), not by a miss_payment event, so a lost or
late miss_payment cannot skew it. To stay small the ledger forgets a post still unfunded
``PENDING_POST_TTL_S`` after it was posted (at the user's next post), and a second post of an
open loan id replaces that loan.

>>> from deepcredit.events import Activity, ClickEvent
>>> def ev(ts, act, **kw):
...     return ClickEvent(event_id="e", user_id="u", ts=ts, activity=act, amount=100.0, **kw)
>>> book = Ledger()
>>> book.apply(ev(0.0 + 1e9, Activity.POST, loan_id="a", rate=0.1, term_days=30))
>>> book.apply(ev(1e9 + 60, Activity.BORROW, loan_id="a"))
>>> book.debt(as_of=1e9 + 10 * 86_400)
Debt(unpaid=100.0, overdue=0.0, undue_loans=1)
>>> book.debt(as_of=1e9 + 31 * 86_400)
Debt(unpaid=100.0, overdue=100.0, undue_loans=0)
>>> book.apply(ev(1e9 + 35 * 86_400, Activity.REPAY, loan_id="a"))
5.0
>>> book.record(as_of=1e9 + 45 * 86_400)
Record(on_time=0, late=1, days_since_late=10.0)
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.loans import Loan, step_loan

__all__ = ["PENDING_POST_TTL_S", "Debt", "Ledger", "OpenLoan", "Record"]

#: A post not funded within this long never will be; forget it so the state stays small.
PENDING_POST_TTL_S = 14 * DAY_S


class Debt(NamedTuple):
    """Debt as of one moment, in money units (principal) and loan counts."""

    unpaid: float  # principal of funded loans not yet repaid
    overdue: float  # the part of it past its due date
    undue_loans: int  # funded, not repaid, not yet due: outcome unknown (paper Figure 12)


class OpenLoan(Loan, array_like=True):
    """A posted loan not settled yet: pending funding, or funded and owed."""

    late: bool = False  # a missed payment was seen for it


def _open_loan(event: ClickEvent, due: float) -> OpenLoan:
    return OpenLoan(event.amount, due, event.ts)


class Record(NamedTuple):
    """The user's repayment record so far (paper Figures 4 and 5: how many past loans were
    late, and how recently)."""

    on_time: int  # funded loans repaid by their due date
    late: int  # funded loans that missed their due date or were repaid after it
    days_since_late: float | None  # since the last missed payment or late repayment


class Ledger(msgspec.Struct, array_like=True):
    """Open loans by id. Mutated in place by ``apply``: one ledger per user, in the user's state."""

    loans: dict[str, OpenLoan] = msgspec.field(default_factory=dict)
    on_time: int = 0
    late: int = 0
    last_late_ts: float | None = None

    def apply(self, event: ClickEvent) -> float | None:
        """Record one event. Returns the repayment delay in days when it settles a funded loan
        (negative: early), else None."""
        change = step_loan(self.loans, event, _open_loan,
                           funding_ttl_s=PENDING_POST_TTL_S, replace=True)  # fmt: skip
        if change is None:
            return None
        loan = change.loan
        if change.activity is Activity.MISS_PAYMENT:
            self._mark_late(loan, event.ts)
        elif change.activity is Activity.REPAY:
            if loan.labels(event.ts, repaid=True).delinquent:
                self._mark_late(loan, event.ts)
            elif not loan.late:
                self.on_time += 1
            return change.delay_days
        return None

    def _mark_late(self, loan: OpenLoan, ts: float) -> None:
        if not loan.late:
            loan.late = True
            self.late += 1
        self.last_late_ts = ts

    def record(self, as_of: float) -> Record:
        since = None if self.last_late_ts is None else max(0.0, as_of - self.last_late_ts) / DAY_S
        return Record(self.on_time, self.late, since)

    def debt(self, as_of: float) -> Debt:
        unpaid = overdue = 0.0
        undue = 0
        for loan in self.loans.values():
            if not loan.funded:
                continue
            unpaid += loan.amount
            if loan.past_due(as_of):
                overdue += loan.amount
            else:
                undue += 1
        return Debt(unpaid, overdue, undue)
