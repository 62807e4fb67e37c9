"""A user's running debt: the loans they posted, borrowed and still owe, from their events alone.

The paper's debt features (unpaid debt, delinquent amount, undue loans; Figures 6, 7 and 12)
are read off this ledger as of any moment, so they never look past the event being scored.
A loan's life (post, borrow, repay; due date; late) follows ``deepcredit.loans``. Overdue is
judged by the clock (due date passed, not repaid), not by a miss_payment event, so a lost or
late miss_payment cannot skew it. To stay small the ledger forgets a post still unfunded
``PENDING_POST_TTL_S`` after it was posted (at the user's next post); a second post of an open
loan id leaves the first standing.

**Disorder.** A user's events can be read out of event-time order (one user's events on two
partitions, from two producers): a repay read before its loan's post would be ignored, and
the loan would count as overdue debt for good. So a borrow, repay or miss_payment that names a
loan not open (or not funded) yet is *held* (``Ledger.held``), and applied once the events it
waits for have arrived and the user's events have reached its time (an event at or after
it), in event-time order, as if it had come in its place. A held event whose loan was opened
or funded at or after its time is dropped: in event time it came first, and the in-order
ledger ignores it too. Holding is bounded (``HOLD_BOUND``): at most a few events per user,
each for at most a week of the user's event time; beyond that it is given up and counted in
``Ledger.given_up``. In time order nothing held is ever applied, so the ledger of an in-order
history (every training history) is what it was without holding.

What that guarantees: at a post read after every event of the user with an earlier time (and
no later one), the debt and the record equal the in-order ledger's, when the displaced events
stayed within the bound and each loan was funded within ``PENDING_POST_TTL_S``. The model's
TLSTM steps are not redone: an event read out of order steps them when it is read, with its
time gap clamped to 0 (``scorer.timegap``).

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

A repay read before its loan's post and borrow is held, and applied before the first event read
at or after its time:

>>> book = Ledger()
>>> book.apply(ev(1e9 + 20 * 86_400, Activity.REPAY, loan_id="b"))
>>> book.held
[Held(ts=1001728000.0, activity=<Activity.REPAY: 'repay'>, loan_id='b')]
>>> book.apply(ev(1e9, Activity.POST, loan_id="b", rate=0.1, term_days=30))
>>> book.apply(ev(1e9 + 60, Activity.BORROW, loan_id="b"))
>>> book.apply(ev(1e9 + 40 * 86_400, Activity.POST, loan_id="c", rate=0.1, term_days=30))
>>> book.debt(as_of=1e9 + 40 * 86_400), book.on_time, book.held
(Debt(unpaid=0.0, overdue=0.0, undue_loans=0), 1, [])
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

import msgspec

from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.loans import Loan, Transition, step_follow_up, step_loan, waits_for_loan

__all__ = [
    "DELAY_CLIP_DAYS",
    "HOLD_BOUND",
    "PENDING_POST_TTL_S",
    "Debt",
    "Held",
    "HoldBound",
    "Ledger",
    "OpenLoan",
    "Record",
]

#: Repayment delays enter the running aggregates clipped to this range of days (early, late).
DELAY_CLIP_DAYS = (-30.0, 365.0)

#: A post not funded within this long never will be; forget it so the state stays small.
PENDING_POST_TTL_S = 14 * DAY_S


class HoldBound(NamedTuple):
    """How much of a user's disorder the ledger absorbs."""

    events: int  # most loan events held at once; one more gives up the earliest in event time
    seconds: float  # a held event still waiting when an event this much later is read: given up


#: A user's loan events read before the post or borrow they need are held, at most 4 at once,
#: each until an event of the user more than 7 days later is read. Disorder within a user's
#: stream comes from partitions read at different paces: minutes to hours behind, seldom days.
#: Four events are a loan's borrow, miss_payment and repay with room for one more; the state
#: carries each while it is held.
HOLD_BOUND = HoldBound(events=4, seconds=7 * DAY_S)


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


class Held(msgspec.Struct, array_like=True, frozen=True):
    """A borrow, repay or miss_payment held until the loan it names is open (and funded)."""

    ts: float  # event time, epoch s
    activity: Activity
    loan_id: str


class Record(NamedTuple):
    """The user's repayment record so far (paper Figures 4 and 5: how many past loans were
    late, and how recently)."""

    on_time: int  # funded loans repaid by their due date
    late: int  # funded loans that missed their due date or were repaid after it
    days_since_late: float | None  # since the last missed payment or late repayment


class Ledger(msgspec.Struct, array_like=True):
    """Open loans by id, and the loan events held for disorder (oldest first). Mutated in place
    by ``apply``: one ledger per user, in the user's state. ``held`` and ``given_up`` are last
    with defaults, so snapshots written before them decode (nothing held)."""

    loans: dict[str, OpenLoan] = msgspec.field(default_factory=dict)
    on_time: int = 0
    late: int = 0
    last_late_ts: float | None = None
    held: list[Held] = msgspec.field(default_factory=list)
    given_up: int = 0  # held events dropped beyond ``HOLD_BOUND``, ever
    # Running outcome aggregates (``scorer.aggregates``), last with defaults so snapshots
    # written before them decode (as a ledger that counts from its next event on).
    # The sums are of whole units (cents, seconds) so that they do not depend on the order
    # events are applied in: a sum of fractions does, in its last bits, and a ledger that
    # applied a held event late must equal the in-order one exactly. The delays' sum is a
    # float of whole seconds (exact below 2**53) because it may be negative (early repays).
    borrowed_cents: int = 0  # principal of every loan funded so far, cents
    funded: int = 0  # loans funded so far
    repays: int = 0  # funded loans repaid (on time or late)
    delay_sum_s: float = 0.0  # their repayment delays' sum, whole seconds, each clipped to
    # [-30, 365] days
    delay_max: float | None = None  # the largest of them (clipped), days; None before a repayment

    @property
    def borrowed(self) -> float:
        """Principal of every loan funded so far (money units)."""
        return self.borrowed_cents / 100.0

    @property
    def delay_sum(self) -> float:
        """Sum of the repayment delays of ``repays`` loans, days (each clipped)."""
        return self.delay_sum_s / DAY_S

    def apply(self, event: ClickEvent) -> float | None:
        """Record one event. Returns the repayment delay in days when it settles a funded loan
        (negative: early), else None. Held events due by its time are applied first."""
        ts = event.ts
        if self.held:
            self._release(ts)
        change = step_loan(self.loans, event, _open_loan, funding_ttl_s=PENDING_POST_TTL_S)
        delay = None
        if change is not None:
            delay = self._record(change, ts)
        elif event.loan_id is not None and waits_for_loan(self.loans, event.activity,
                                                          event.loan_id):  # fmt: skip
            self._hold(Held(ts, event.activity, event.loan_id))
        if self.held:
            self._expire(ts)
        return delay

    def _record(self, change: Transition[OpenLoan], ts: float) -> float | None:
        loan = change.loan
        if change.activity is Activity.POST or change.activity is Activity.BORROW:
            self._drop_preceding(change, ts)
            if change.activity is Activity.BORROW:
                self.borrowed_cents += round(loan.amount * 100)
                self.funded += 1
        elif change.activity is Activity.MISS_PAYMENT:
            self._mark_late(loan, ts)
        elif change.activity is Activity.REPAY:
            if change.delay_days is not None:
                delay = min(max(change.delay_days, DELAY_CLIP_DAYS[0]), DELAY_CLIP_DAYS[1])
                self.repays += 1
                self.delay_sum_s += float(round(delay * DAY_S))
                self.delay_max = delay if self.delay_max is None else max(self.delay_max, delay)
            if loan.labels(ts, repaid=True).delinquent:
                self._mark_late(loan, ts)
            elif not loan.late:
                self.on_time += 1
            return change.delay_days
        return None

    def _hold(self, event: Held) -> None:
        loan = self.loans.get(event.loan_id)
        if loan is not None and loan.post_ts >= event.ts:
            return  # the loan was posted after it: ignored, as in time order
        bisect.insort_right(self.held, event, key=lambda h: h.ts)
        if len(self.held) > HOLD_BOUND.events:
            del self.held[0]  # the earliest: the user's events are past it already, or soonest
            self.given_up += 1

    def _release(self, ts: float) -> None:
        """Apply, in event-time order, the held events at or before ``ts`` whose loan is ready."""
        for h in list(self.held):  # oldest first
            if h.ts > ts:
                break
            if h not in self.held or waits_for_loan(self.loans, h.activity, h.loan_id):
                continue  # dropped by an earlier one's release, or still waiting
            self.held.remove(h)
            change = step_follow_up(self.loans, h.activity, h.loan_id, h.ts)
            if change is not None:
                self._record(change, h.ts)

    def _drop_preceding(self, change: Transition[OpenLoan], ts: float) -> None:
        """Drop the held events of the loan a post or borrow at ``ts`` opened or funded that are
        not after it: in event time they came first, when they could not apply."""
        loan_id = change.loan_id
        self.held = [h for h in self.held if h.loan_id != loan_id or h.ts > ts]

    def _expire(self, ts: float) -> None:
        kept = [h for h in self.held if ts - h.ts <= HOLD_BOUND.seconds]
        self.given_up += len(self.held) - len(kept)
        self.held = kept

    def _mark_late(self, loan: OpenLoan, ts: float) -> None:
        if not loan.late:
            loan.late = True
            self.late += 1
        # The most recent late event, also when an earlier one is applied after it.
        self.last_late_ts = ts if self.last_late_ts is None else max(self.last_late_ts, ts)

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
