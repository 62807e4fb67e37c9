"""A loan's life and its labels, read off the click stream: the one home of their rules.

1. A **post** with a loan id and a term opens the loan, due at post ts + term_days·86400
   (``due_ts``; DESIGN.md).
2. A **borrow** funds it. Only a funded loan is owed, and only a funded loan gets labels.
3. A **miss_payment** of a funded loan is reported and changes nothing: lateness is judged by
   the clock, so a lost or late miss_payment cannot skew it.
4. A **repay** of a funded loan settles it, with delay d = (repay ts − due ts) / 86400 days.

Anything else changes nothing: a second post of an id still open (the first post stands: a
loan id, like an event id, names one loan, and a re-post must not reset a funded loan to
unfunded or forget its debt), a borrow of an unknown loan, a repay of an unfunded or settled
one. ``step_loan`` applies these rules to a reader's table of open ``Loan`` records
(``step_follow_up`` the rules 2.-4. alone).

A borrow, repay or miss_payment that names a loan not open yet (or, repay and miss_payment,
not funded yet: ``waits_for_loan``) is out of its place in event time, or in arrival order
only: a user's events read out of order (two partitions) bring a repay before its loan's post.
A reader that tolerates that disorder holds such an event until what it waits for arrives
(``scorer.ledger``); the others ignore it.

delinquent ⇔ d > 0 or never repaid; default ⇔ d > 120 days or never repaid. Both are judged on
timestamps (repaid after ``due_ts``, after ``default_ts`` = due + 120 days), so a repayment and
the clock give the same answer at the boundary (``Loan.labels``).

"Never repaid" can only be judged at some moment ``as_of``: events after it are ignored, so the
labels are exactly what was knowable then (no look-ahead for a dataset cut at ``as_of``). A loan
whose label cannot be known yet is *censored* for that label (None):

- not repaid and not yet due at ``as_of``: both labels None;
- not repaid, past due by at most 120 days: delinquent True, default None (it may still be
  repaid within 120 days).

Rates over labelled loans leave the censored ones out. That biases the default rate of the most
recent loans slightly down (the fast on-time repayers are labelled first); for a multi-year
horizon it is a small effect, which is why the benchmark statistics accept it.

The readers, each with its own record per loan (a ``Loan`` subclass) and the same rules:
``OutcomeTracker`` and ``loan_outcomes`` here (training labels, generator statistics),
``scorer.ledger.Ledger`` (debt features) and ``scorer.monitors.LoanLabeller`` (live performance
labels). They differ only in how long an unfunded post is kept: forever here; in the ledger
``scorer.ledger.PENDING_POST_TTL_S`` (``step_loan``'s ``funding_ttl_s``), to keep the state
small; in the labeller until its due date, the first of its deadlines. And the ledger holds
loan events that came before their loan (``scorer.ledger.HOLD_BOUND``).

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

from collections.abc import Callable, Iterable, Mapping
from typing import Generic, NamedTuple, TypeVar

import msgspec

from deepcredit.events import DAY_S, Activity, ClickEvent

__all__ = [
    "DEFAULT_DELAY_DAYS",
    "Labels",
    "Loan",
    "LoanOutcome",
    "OutcomeTracker",
    "Transition",
    "due_ts",
    "loan_outcomes",
    "step_follow_up",
    "step_loan",
    "waits_for_loan",
]

#: P2PFA definition of default: more than 120 days late, or never repaid.
DEFAULT_DELAY_DAYS = 120.0


def due_ts(post_ts: float, term_days: int) -> float:
    """When a loan posted at ``post_ts`` (epoch s) for ``term_days`` days falls due (epoch s)."""
    return post_ts + term_days * DAY_S


class Labels(NamedTuple):
    """A loan's two labels; None where not knowable yet (censored)."""

    delinquent: bool | None
    default: bool | None


class Loan(msgspec.Struct):
    """A posted loan not settled yet: waiting to be funded, or funded and owed.

    Readers subclass it to keep their own data beside; the ledger's snapshots store these four
    fields first, in this order.

    >>> loan = Loan(100.0, due_ts=1e9, post_ts=1e9 - 30 * 86_400, funded=True)
    >>> loan.labels(1e9, repaid=False), loan.labels(1e9 + 1, repaid=False)
    (Labels(delinquent=None, default=None), Labels(delinquent=True, default=None))
    >>> loan.labels(1e9 + 1, repaid=True), loan.delay_days(1e9 + 86_400)
    (Labels(delinquent=True, default=False), 1.0)
    """

    amount: float  # principal, money units
    due_ts: float  # epoch s
    post_ts: float  # epoch s
    funded: bool = False

    @property
    def default_ts(self) -> float:
        """Past this moment (epoch s) an unrepaid loan is in default: due + 120 days."""
        return self.due_ts + DEFAULT_DELAY_DAYS * DAY_S

    def delay_days(self, ts: float) -> float:
        """Days from the due date to ``ts`` (negative: before it)."""
        return (ts - self.due_ts) / DAY_S

    def past_due(self, as_of: float) -> bool:
        """Whether the due date has passed at ``as_of`` (unrepaid by then: delinquent)."""
        return as_of > self.due_ts

    def labels(self, ts: float, *, repaid: bool) -> Labels:
        """The labels of a funded loan repaid at ``ts`` (both known), or, ``repaid=False``, as
        known at ``ts`` when not repaid by then: a label is True once its deadline has passed,
        else censored. An unfunded loan has none."""
        if repaid:
            return Labels(self.past_due(ts), ts > self.default_ts)
        if not self.funded:
            return Labels(None, None)
        return Labels(self.past_due(ts) or None, ts > self.default_ts or None)


L = TypeVar("L", bound=Loan)


class Transition(NamedTuple, Generic[L]):
    """What one event did to the loan it names: ``activity`` POST opened it, BORROW funded it,
    MISS_PAYMENT was seen on it while funded, REPAY settled it (``delay_days`` then set)."""

    activity: Activity
    loan_id: str
    loan: L
    delay_days: float | None = None


def step_loan(
    loans: dict[str, L],
    event: ClickEvent,
    open_loan: Callable[[ClickEvent, float], L | None],
    *,
    funding_ttl_s: float | None = None,
) -> Transition[L] | None:
    """Apply ``event`` to the open loans (by id, changed in place); None if it changes nothing.

    A post calls ``open_loan(event, due_ts)`` for the reader's record of the new loan (None:
    the reader does not follow it); a post of an id already open changes nothing (the first
    post stands). A settled loan leaves ``loans``. ``funding_ttl_s``: each post first drops the
    posts still unfunded more than this long (s) after they were posted (None: kept until
    settled).
    """
    loan_id = event.loan_id
    if loan_id is None:
        return None
    activity = event.activity
    if activity is not Activity.POST:
        return step_follow_up(loans, activity, loan_id, event.ts)
    if event.term_days is None:
        return None
    now = event.ts
    if funding_ttl_s is not None:
        stale = [k for k, v in loans.items()
                 if not v.funded and now - v.post_ts > funding_ttl_s]  # fmt: skip
        for k in stale:
            del loans[k]
    if loan_id in loans:
        return None
    new = open_loan(event, due_ts(now, event.term_days))
    if new is None:
        return None
    loans[loan_id] = new
    return Transition(activity, loan_id, new)


def step_follow_up(
    loans: dict[str, L], activity: Activity, loan_id: str, ts: float
) -> Transition[L] | None:
    """Apply a borrow, repay or miss_payment of loan ``loan_id`` at ``ts`` (epoch s) to the
    open loans (rules 2.-4.); None if it changes nothing (any other activity included)."""
    loan = loans.get(loan_id)
    if loan is None:
        return None
    if activity is Activity.BORROW:
        loan.funded = True
        return Transition(activity, loan_id, loan)
    if not loan.funded:
        return None
    if activity is Activity.MISS_PAYMENT:
        return Transition(activity, loan_id, loan)
    if activity is Activity.REPAY:
        del loans[loan_id]
        return Transition(activity, loan_id, loan, loan.delay_days(ts))
    return None


def waits_for_loan(loans: Mapping[str, Loan], activity: Activity, loan_id: str) -> bool:
    """Whether a loan event would apply once the post (a borrow) or the post and the borrow (a
    repay, a miss_payment) of ``loan_id`` are in ``loans``, and they are not yet."""
    if activity is Activity.BORROW:
        return loan_id not in loans
    if activity is Activity.REPAY or activity is Activity.MISS_PAYMENT:
        loan = loans.get(loan_id)
        return loan is None or not loan.funded
    return False


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


class _OpenLoan(Loan, kw_only=True):
    """A posted loan whose final repayment has not been seen yet, with its borrower."""

    user_id: str


def _open_loan(event: ClickEvent, due: float) -> _OpenLoan:
    return _OpenLoan(event.amount, due, event.ts, user_id=event.user_id)


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
        change = step_loan(self._open, event, _open_loan)
        if change is None or change.activity is not Activity.REPAY:
            return None
        loan = change.loan
        return _outcome(change.loan_id, loan, loan.labels(event.ts, repaid=True),
                        repay_ts=event.ts, delay=change.delay_days)  # fmt: skip

    def peek(self, as_of: float) -> list[LoanOutcome]:
        """Outcomes, as known at ``as_of``, of every loan still open, which stay open: for a
        reader that follows a stream and asks now and then (``gateway.watch``)."""
        return [_outcome(loan_id, loan, loan.labels(as_of, repaid=False))
                for loan_id, loan in self._open.items()]  # fmt: skip

    def close(self, as_of: float) -> list[LoanOutcome]:
        """Outcomes, as known at ``as_of``, of every loan still open. Leaves the tracker empty."""
        outcomes = self.peek(as_of)
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
    labels: Labels,
    *,
    repay_ts: float | None = None,
    delay: float | None = None,
) -> LoanOutcome:
    return LoanOutcome(
        loan_id=loan_id,
        user_id=loan.user_id,
        post_ts=loan.post_ts,
        due_ts=loan.due_ts,
        amount=loan.amount,
        funded=loan.funded,
        repay_ts=repay_ts,
        delay_days=delay,
        delinquent=labels.delinquent,
        default=labels.default,
    )
