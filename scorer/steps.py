"""What one event does to a user's model state: the streaming form, shared by training and scoring.

Per event (DESIGN.md, "the one place we differ from the paper"):

1. every event but a post advances the **activity** TLSTM (the paper's A_i, eq. 3);
2. a post, a repayment of a funded loan and a missed payment advance the **loan-level**
   (repayment) TLSTM (eq. 5) with the loan input, so outcomes enter when they happen;
3. a post then advances the **state-level** TLSTM over [h_repay; h_activity] (eq. 4), is
   scored by the heads, and resets the activity TLSTM for the next subsequence.

``plan_step`` decides this and computes the inputs and time gaps; the model (torch or numpy)
only executes the plan, so both execute the same one.

>>> from deepcredit.events import DAY_S, Activity, ClickEvent
>>> memory = StepMemory()
>>> e = ClickEvent(event_id="e", user_id="u", ts=1e9, activity=Activity.POST, amount=10.0,
...                loan_id="a", rate=0.1, term_days=30)
>>> plan = plan_step(memory, e)
>>> plan.activity_x is None, plan.loan_step, plan.post_gap_s
(True, <LoanStep.POST: 0>, 0.0)
>>> history_at(memory, e.ts)  # a first-time user: nothing before this post
(0, 0.0)
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from deepcredit.events import DAY_S, Activity, ClickEvent
from scorer.aggregates import Rates, aggregate_features
from scorer.features import LoanStep, activity_features, loan_features, loan_step_of
from scorer.ledger import Ledger

__all__ = ["StepMemory", "StepPlan", "history_at", "out_of_order_s", "plan_step"]


class StepMemory(msgspec.Struct, array_like=True):
    """The bookkeeping part of a user's state: open loans, when each TLSTM last stepped, and
    how much history the state holds (``history_at``: the scores' cold-start signal).

    ``events`` and ``first_ts`` are last and have defaults, so a memory encoded before them
    decodes (as a state with no history counted: it counts from its next event on); so does
    ``rates``, last, the running activity aggregates (``scorer.aggregates``)."""

    ledger: Ledger = msgspec.field(default_factory=Ledger)
    activity_ts: float | None = None  # last activity step, or the post that reset it
    loan_ts: float | None = None  # last loan-level step
    post_ts: float | None = None  # last post (state-level step)
    events: int = 0  # events stepped by (resends and conflicting duplicates never are)
    first_ts: float | None = None  # the earliest of their event times, Unix s
    rates: Rates = msgspec.field(default_factory=Rates)  # decayed activity counts


class StepPlan(NamedTuple):
    """Inputs and gaps (seconds) for the TLSTMs one event advances; None where it does not."""

    activity_x: tuple[float, ...] | None
    activity_gap_s: float
    loan_step: LoanStep | None
    loan_x: tuple[float, ...] | None
    loan_gap_s: float
    post_gap_s: float  # for the state-level step; meaningful when loan_step is POST
    # The running aggregates at a post (``scorer.aggregates.aggregate_features``), else None.
    aggregates: tuple[float, ...] | None = None


def _gap(last: float | None, now: float) -> float:
    # Negative only for an event read out of order (``out_of_order_s``): the TLSTM takes it
    # as simultaneous with the step before.
    return 0.0 if last is None else max(0.0, now - last)


def out_of_order_s(memory: StepMemory, event: ClickEvent) -> float:
    """How much earlier (s) ``event`` is than the latest event of the user already stepped by:
    the last one (``memory.activity_ts``, which every event sets), or the last loan-level or
    post step; 0 when it is not. Above 0 the event was read out of event-time order: a TLSTM
    time gap reaching back past it is clamped to 0 (no other event's gap ever is), and the
    ledger puts its loan events in their place (``scorer.ledger``, "Disorder")."""
    latest = max((t for t in (memory.activity_ts, memory.loan_ts, memory.post_ts)
                  if t is not None), default=event.ts)  # fmt: skip
    return max(0.0, latest - event.ts)


def history_at(memory: StepMemory, ts: float) -> tuple[int, float]:
    """The cold-start signal of the event at ``ts`` that ``memory`` was just stepped by
    (``plan_step``): (the user's events before it, days from the user's first event to it;
    0 and 0.0 for a first event). A pure function of the memory, so the live flow, a rebuild
    and a cut-over give a post the same figures."""
    days = 0.0 if memory.first_ts is None else max(0.0, ts - memory.first_ts) / DAY_S
    return max(0, memory.events - 1), days


def plan_step(memory: StepMemory, event: ClickEvent) -> StepPlan:
    """Update ``memory`` with ``event`` and say which TLSTMs step, with which inputs."""
    ts = event.ts
    memory.events += 1
    if memory.first_ts is None or ts < memory.first_ts:  # out of order, an earlier one comes late
        memory.first_ts = ts
    delay = memory.ledger.apply(event)
    memory.rates.update(event)
    activity_x = None
    activity_gap = 0.0
    if event.activity is not Activity.POST:
        activity_x = activity_features(event)
        activity_gap = _gap(memory.activity_ts, ts)
        memory.activity_ts = ts
    step = loan_step_of(event, delay)
    loan_x = None
    loan_gap = post_gap = 0.0
    aggregates = None
    if step is not None:
        book = memory.ledger
        debt, record = book.debt(as_of=ts), book.record(as_of=ts)
        loan_x = loan_features(step, event, debt, record, delay)
        loan_gap = _gap(memory.loan_ts, ts)
        memory.loan_ts = ts
        if step is LoanStep.POST:
            post_gap = _gap(memory.post_ts, ts)
            memory.post_ts = ts
            memory.activity_ts = ts  # the next subsequence's first gap counts from this post
            aggregates = aggregate_features(book, memory.rates, *history_at(memory, ts), event,
                                            debt, record)  # fmt: skip
    return StepPlan(activity_x, activity_gap, step, loan_x, loan_gap, post_gap, aggregates)
