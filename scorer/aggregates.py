"""The running aggregates of a user's history that a gradient-boosted tree feeds on, kept in the
per-user state and updated in O(1) per event: the model's *wide* input, fed to the heads beside
the state-level TLSTM's hidden state (``training.core.model``: head input [h_state; aggregates]).

The facts are those of the GBDT baseline's history group (``training.core.postfeatures``:
counts of repayments, late repayments and misses (decayed), mean and max repayment delay,
recency of the last late one) plus debt, activity rates and quick withdrawals, each scaled to
about [0, 1.5] as ``scorer.features`` scales the TLSTM inputs (a late one's weight halves in
about four months there and here). Where they come from:

- the loan record and debt from the ledger (``scorer.ledger.Ledger``: on-time and late loans,
  repayment delays, principal borrowed, unpaid and overdue debt as of the post);
- activity rates from ``Rates`` here: per activity type, an exponentially decayed count with a
  half-life of ``HALF_LIVES_DAYS`` (7 and 60 days), and a decayed count (60 days) of
  withdrawals within ``QUICK_WITHDRAWAL_S`` of the user's latest post or funding;
- history length from the step memory (events before the post, days since the first).

The columns form groups (``GROUPS``), each the evidence of one reason code
(``scorer.reasons``). ``aggregate_features`` reads them at a post; ``scorer.steps.plan_step``
calls it, so training, the live scorer and a rebuild see the very same numbers.

A decayed count is sum_i 2^(-(t - t_i) / H) over the events i of its kind: kept as its value at
``Rates.ts`` (the latest event time seen) and decayed forward on read. An event read out of
order (earlier than ``Rates.ts``) adds its own decayed weight, so the sum is that of event-time
order whatever the arrival order.

>>> from deepcredit.events import Activity, ClickEvent
>>> r = Rates()
>>> for day in (0, 7):
...     r.update(ClickEvent(event_id="e", user_id="u", ts=1e9 + day * 86_400,
...                         activity=Activity.WITHDRAW, amount=5.0))
>>> round(r.fast[ACTIVITY_INDEX[Activity.WITHDRAW]], 6)  # 1 * 2^-1 + 1
1.5
>>> len(FEATURE_NAMES) == AGGREGATE_FEATURES == GROUPS[-1].stop
True
"""

from __future__ import annotations

import math
from typing import NamedTuple

import msgspec

from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.loans import DEFAULT_DELAY_DAYS
from scorer.ledger import Debt, Ledger, Record

__all__ = [
    "ACTIVITY_INDEX",
    "AGGREGATE_FEATURES",
    "FEATURE_NAMES",
    "GROUPS",
    "HALF_LIVES_DAYS",
    "QUICK_WITHDRAWAL_S",
    "Group",
    "Rates",
    "aggregate_features",
]

#: Half-lives of the decayed activity counts: recent weeks, recent months.
HALF_LIVES_DAYS = (7.0, 60.0)
#: A withdrawal this soon after the user's latest post or funding is a quick withdrawal.
QUICK_WITHDRAWAL_S = 3 * DAY_S
ACTIVITY_INDEX = {a: i for i, a in enumerate(Activity)}
_RATE = tuple(math.log(2.0) / (h * DAY_S) for h in HALF_LIVES_DAYS)  # per second
_COUNT_SCALE = 3.0  # log1p(count) / 3, as scorer.features: twenty ≈ 1
_MONEY_SCALE = 10.0  # log1p(amount) / 10, as scorer.features
_UNDUE_CAP = 20


class Rates(msgspec.Struct, array_like=True):
    """Decayed counts as of ``ts`` (the latest event time seen, Unix s): ``fast`` and ``slow``
    per activity type (``ACTIVITY_INDEX`` order; half-lives ``HALF_LIVES_DAYS``), ``quick`` the
    quick withdrawals (slow half-life); ``loan_ts`` the latest post or funding. Mutated in place
    by ``update``; one per user, in the step memory."""

    ts: float | None = None
    fast: list[float] = msgspec.field(default_factory=lambda: [0.0] * len(Activity))
    slow: list[float] = msgspec.field(default_factory=lambda: [0.0] * len(Activity))
    quick: float = 0.0
    loan_ts: float | None = None

    def update(self, event: ClickEvent) -> None:
        """Count ``event`` (any order: an earlier event adds its weight as of ``ts``)."""
        # Run at every event of every user: one exp per half-life when time moves on, none for
        # an event in order (its own weight is exactly 1), so the common case stays cheap.
        ts = event.ts
        last = self.ts
        f = s = 1.0
        if last is None:
            self.ts = ts
        elif ts > last:
            dt = ts - last
            decay_fast, decay_slow = math.exp(-_RATE[0] * dt), math.exp(-_RATE[1] * dt)
            self.fast = [v * decay_fast for v in self.fast]
            self.slow = [v * decay_slow for v in self.slow]
            self.quick *= decay_slow
            self.ts = ts
        elif ts < last:  # read out of order: its weight as of ``self.ts``
            f, s = _decay(last - ts)
        activity = event.activity
        k = ACTIVITY_INDEX[activity]
        self.fast[k] += f
        self.slow[k] += s
        if activity is Activity.POST or activity is Activity.BORROW:
            self.loan_ts = ts if self.loan_ts is None else max(self.loan_ts, ts)
        elif activity is Activity.WITHDRAW and self.loan_ts is not None \
                and 0.0 <= ts - self.loan_ts <= QUICK_WITHDRAWAL_S:  # fmt: skip
            self.quick += s

    def at(self, ts: float) -> tuple[list[float], list[float], float]:
        """(fast, slow, quick) decayed to ``ts`` (as they are when ``ts`` is not later)."""
        if self.ts is None or ts <= self.ts:
            return self.fast, self.slow, self.quick
        f, s = _decay(ts - self.ts)
        return [v * f for v in self.fast], [v * s for v in self.slow], self.quick * s


def _decay(seconds: float) -> tuple[float, float]:
    return math.exp(-_RATE[0] * seconds), math.exp(-_RATE[1] * seconds)


class Group(NamedTuple):
    """Columns ``start:stop`` of the aggregates: the evidence of reason ``code``."""

    code: str
    start: int
    stop: int


def _names() -> tuple[list[str], list[Group]]:
    acts = [a.value for a in Activity]
    parts = [
        ("R01", ["late_loans", "late_share", "delay_mean", "delay_max", "late_recency"]),
        ("R02", ["unpaid", "overdue", "unpaid_share", "overdue_share", "undue_loans"]),
        ("R03", ["quick_withdrawals", "quick_share"]),
        ("R04", ["prior_events", "history_days", "funded_loans", "on_time_loans"]),
        ("R05", [f"{a}_7d" for a in acts]),
        ("R06", [f"{a}_60d" for a in acts]),
        ("R07", ["amount_vs_past"]),
    ]
    names: list[str] = []
    groups: list[Group] = []
    for code, cols in parts:
        groups.append(Group(code, len(names), len(names) + len(cols)))
        names += cols
    return names, groups


_NAMES, _GROUPS = _names()
#: Column names, in order.
FEATURE_NAMES: tuple[str, ...] = tuple(_NAMES)
#: The column groups, one per reason code (``scorer.reasons.CATALOGUE``), in column order.
GROUPS: tuple[Group, ...] = tuple(_GROUPS)
AGGREGATE_FEATURES = len(FEATURE_NAMES)


def _count(n: float) -> float:
    return math.log1p(n) / _COUNT_SCALE


def _money(amount: float) -> float:
    return math.log1p(amount) / _MONEY_SCALE


def aggregate_features(
    ledger: Ledger,
    rates: Rates,
    prior_events: int,
    history_days: float,
    event: ClickEvent,
    debt: Debt | None = None,
    record: Record | None = None,
) -> tuple[float, ...]:
    """The aggregates (``AGGREGATE_FEATURES`` floats, ``FEATURE_NAMES`` order) at the post
    ``event``, from the state after it was applied: ``ledger`` and ``rates`` as updated by it,
    ``prior_events`` and ``history_days`` as ``scorer.steps.history_at`` gives them. ``debt``
    and ``record``: ``ledger.debt`` and ``ledger.record`` as of the post when the caller has
    them already (``scorer.steps.plan_step``), else computed here. Pure."""
    ts = event.ts
    if debt is None:
        debt = ledger.debt(as_of=ts)
    if record is None:
        record = ledger.record(as_of=ts)
    fast, slow, quick = rates.at(ts)
    repays = ledger.repays
    delay_mean = ledger.delay_sum / repays if repays else 0.0
    delay_max = ledger.delay_max if ledger.delay_max is not None else 0.0
    borrowed = ledger.borrowed
    withdrawals = slow[ACTIVITY_INDEX[Activity.WITHDRAW]]
    past_mean = borrowed / ledger.funded if ledger.funded else 0.0
    return (
        # R01: lateness
        _count(record.late),
        record.late / (record.late + record.on_time) if record.late else 0.0,
        delay_mean / DEFAULT_DELAY_DAYS,
        delay_max / DEFAULT_DELAY_DAYS,
        0.0 if record.days_since_late is None else math.exp(-record.days_since_late / 180.0),
        # R02: debt, and relative to past borrowing
        _money(debt.unpaid),
        _money(debt.overdue),
        min(debt.unpaid / borrowed, 1.0) if borrowed > 0 else 0.0,
        min(debt.overdue / borrowed, 1.0) if borrowed > 0 else 0.0,
        min(debt.undue_loans, _UNDUE_CAP) / 10.0,
        # R03: withdrawals soon after a post or funding
        _count(quick),
        min(quick / withdrawals, 1.0) if withdrawals > 0 else 0.0,
        # R04: history length
        math.log1p(prior_events) / 5.0,
        math.log1p(history_days) / 6.0,
        _count(ledger.funded),
        _count(record.on_time),
        # R05, R06: activity rates
        *[math.log1p(v) / _COUNT_SCALE for v in fast],
        *[math.log1p(v) / _COUNT_SCALE for v in slow],
        # R07: the request against past loans
        _money(event.amount) - _money(past_mean) if past_mean > 0 else 0.0,
    )
