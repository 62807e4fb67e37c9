"""One synthetic user's financial life, simulated as a discrete-event process over a hidden
distress level, yielding that user's click events lazily in time order.

The hidden process (never written to the stream; labels are derived from the events):

- **distress** x(t): an Ornstein–Uhlenbeck level around the user's own baseline μ (mean
  reversion over ``DISTRESS_REVERSION_DAYS``) plus upward jump *shocks* at Poisson times (job
  loss, a bill). Shocks decay with the same reversion, so distress is bursty and persistent and
  delinquencies cluster (paper Figure 3).
- **scar**: every missed payment leaves a trace with a fast and a slow decay, so a recent
  delinquency raises risk a lot and an old one still a little (Figures 4, 5). Risk grows with
  its logarithm: the tenth delinquency adds less than the first, which keeps the feedback
  loop (miss → risk → miss) from running away.
- **debt**: unpaid principal and overdue principal, relative to the user's money scale.

Distress share s = logistic(x) tilts what the user does (``training.benchmark.mix``), how often they
come back, how much they ask for, and lenders' willingness to fund. Each funded loan is settled a
few days before its due date by a draw on the risk z = x + scar + debt terms + per-loan noise: on
time, late by d ∈ (0, 120] days, or default (repaid after more than 120 days, or never). Debt and
scar feed back into z (Figures 6, 7).

Regime shift, from ``GeneratorConfig.shift_at_ts`` on (a macro shock to the platform):
baseline distress μ += ``SHIFT_DISTRESS_OFFSET``; shock rate × ``SHIFT_SHOCK_RATE_FACTOR``;
funding probability × ``SHIFT_FUNDING_FACTOR``; loan request amounts ×
``SHIFT_POST_AMOUNT_FACTOR``; lending weight × ``SHIFT_LEND_WEIGHT_FACTOR`` and lend amounts ×
``SHIFT_LEND_AMOUNT_FACTOR``; withdraw weight × ``SHIFT_WITHDRAW_WEIGHT_FACTOR``. Optionally
(``GeneratorConfig.shift_term_risk``, default 0), a loan settled in the new regime has its risk
z raised by shift_term_risk · log(term / the shortest term).

Constants marked *calibrated* were fitted by simulation (a few damped fixed-point rounds at 2,000
users) so that 10,000 users reproduce the paper's totals and rates.

Randomness comes from the seed sequence ``[seed, user index]``, so a user's stream does not
depend on how many other users are generated or in what order. Shocks draw from their own child
stream: with a shift configured, everything before ``shift_at_ts`` is byte-identical to the run
without it, and a drift detector sees the same world until the shift.
"""

from __future__ import annotations

import copy
import heapq
import math
from bisect import bisect
from collections.abc import Callable, Iterator
from itertools import accumulate

import msgspec
import numpy as np

from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.loans import DEFAULT_DELAY_DAYS, due_ts
from training.benchmark.config import GeneratorConfig
from training.benchmark.mix import CHAINED, END, START, SessionChain
from training.benchmark.oracle import LoanOracle, outcome_probabilities

__all__ = ["UserSimulator", "user_id"]

_YEAR_S = 365.0 * DAY_S
#: Event times are written to the millisecond.
_TS_DECIMALS = 3

# --- Who the user is (drawn once per user) -----------------------------------------------------
#: Users open their account during the first 30% of the horizon, so each has a history.
JOIN_SPREAD = 0.3
#: Median days between sessions (calibrated: total activity), its spread across users.
SESSION_GAP_MEDIAN_DAYS = 1.93
SESSION_GAP_USER_SIGMA = 0.6
#: Within-user lognormal sigma of session gaps: a heavy tail from hours to months.
SESSION_GAP_SIGMA = 1.8
#: Distressed users come back sooner: gap / (1 + this · s).
DISTRESS_SESSION_SPEEDUP = 1.0
#: Gaps between clicks within a session: seconds to minutes.
INTRA_GAP_MEDIAN_S = 40.0
INTRA_GAP_SIGMA = 1.0
#: The user's typical amount in RMB, and its spread across users.
MONEY_SCALE_MEDIAN = 3_000.0
MONEY_SCALE_SIGMA = 0.8
#: Spread across users of the taste for borrowing and for investing.
BORROW_BIAS_SIGMA = 0.5
INVEST_BIAS_SIGMA = 0.7
#: Population-level column weights of the session chain, in ``CHAINED`` order; calibrated so
#: the activity totals and the post count match the paper.
MIX_WEIGHTS = (1.02, 0.74, 1.36, 1.35, 0.54, 0.99)

# --- Hidden distress ---------------------------------------------------------------------------
DISTRESS_MEAN = -2.0
DISTRESS_USER_SD = 0.8
DISTRESS_REVERSION_DAYS = 60.0
#: Stationary standard deviation of the diffusive part of distress.
DISTRESS_NOISE_SD = 0.5
SHOCK_RATE_PER_YEAR = 1.0
SHOCK_RATE_USER_SIGMA = 0.5
#: Mean jump of distress at a shock (exponential).
SHOCK_SIZE_MEAN = 1.5
SCAR_FAST_DAYS = 30.0
SCAR_SLOW_DAYS = 365.0
SCAR_FAST_WEIGHT = 0.6
SCAR_SLOW_WEIGHT = 0.3
#: Scar left by a missed payment that turns into a default; a shorter delay leaves 1.
DEFAULT_SCAR = 2.0
DEBT_WEIGHT = 0.3
OVERDUE_WEIGHT = 0.4
LOAN_NOISE_SD = 0.5
#: P(delinquent) = logistic(DELINQUENT_BIAS + z); P(default | delinquent) =
#: logistic(DEFAULT_BIAS + DEFAULT_SLOPE · z). Both biases calibrated: 13.4% and 4.8%.
DELINQUENT_BIAS = -3.015
DEFAULT_BIAS = -4.3
DEFAULT_SLOPE = 1.0
#: Share of defaults never repaid; the rest are recovered after more than 120 days.
NEVER_REPAY_SHARE = 0.5
LATE_DELAY_MEDIAN_DAYS = 8.0
LATE_DELAY_SIGMA = 1.0
#: Recovered defaults: days beyond the 120-day threshold.
RECOVERY_DELAY_MEDIAN_DAYS = 45.0
RECOVERY_DELAY_SIGMA = 0.8

# --- Loans and money ---------------------------------------------------------------------------
TERM_DAYS = (30, 60, 90, 180, 360)
TERM_WEIGHTS = (0.5, 0.2, 0.15, 0.1, 0.05)
POST_AMOUNT_SIGMA = 0.6
#: Distressed users ask for more: amount · (1 + this · s).
POST_DISTRESS_AMOUNT = 0.5
#: Loan requests are in multiples of this many RMB.
POST_AMOUNT_STEP = 50.0
#: Interest rate: weakly informative of risk, mostly noise (annual fraction).
RATE_BASE = 0.11
RATE_DISTRESS = 0.04
RATE_NOISE_SD = 0.03
RATE_MIN = 0.05
RATE_MAX = 0.24
#: Calibrated: 82.3% of posts funded overall (586,957 of 712,857).
FUND_PROBABILITY = 0.886
#: Lenders see an overdue loan and hold back.
OVERDUE_FUNDING_FACTOR = 0.7
FUND_DELAY_MEDIAN_S = 2 * 3600.0
FUND_DELAY_SIGMA = 1.2
FUND_DELAY_MAX_S = 3 * DAY_S
#: Repayment is decided this long before the due date; an on-time repay falls in that window.
REPAY_LEAD_DAYS = 5.0
#: An on-time repayment lands at least this long before due, so millisecond rounding of its
#: time can never make it late.
ON_TIME_MARGIN_S = 60.0
#: Probability of topping up the account just before an on-time repayment, and of borrowing
#: from friends (transfer_in) just before a late one.
RECHARGE_BEFORE_REPAY = 0.4
TRANSFER_IN_BEFORE_LATE_REPAY = 0.5
#: Late fee per day late, as a fraction of the amount due.
LATE_FEE_PER_DAY = 0.0005
#: Share of investments whose borrower never pays back (no be_repaid).
BAD_INVESTMENT_SHARE = 0.05
#: (amount as a share of the money scale, lognormal sigma, change per unit of distress s).
CASH_AMOUNTS = {
    Activity.LEND: (0.5, 0.8, -0.4),
    Activity.TRANSFER_IN: (0.3, 1.0, 0.0),
    Activity.TRANSFER_OUT: (0.3, 1.0, 0.3),
    Activity.RECHARGE: (0.8, 0.9, -0.3),
    Activity.WITHDRAW: (0.8, 0.9, 0.3),
}
MAX_AMOUNT = 1e7

# --- Regime shift ------------------------------------------------------------------------------
SHIFT_DISTRESS_OFFSET = 0.7
SHIFT_SHOCK_RATE_FACTOR = 3.0
SHIFT_FUNDING_FACTOR = 0.85
SHIFT_POST_AMOUNT_FACTOR = 1.3
SHIFT_LEND_WEIGHT_FACTOR = 0.5
SHIFT_LEND_AMOUNT_FACTOR = 0.7
SHIFT_WITHDRAW_WEIGHT_FACTOR = 1.5

_POST_COLUMN = CHAINED.index(Activity.POST)
_LEND_COLUMN = CHAINED.index(Activity.LEND)
_WITHDRAW_COLUMN = CHAINED.index(Activity.WITHDRAW)
_TERM_CUMULATIVE = list(accumulate(TERM_WEIGHTS))
#: Draws fetched from numpy per call: amortises numpy's per-call cost while keeping a few KB
#: per user, since every user's generator is alive at once during the global merge.
_DRAW_BUFFER = 64

# Agenda kinds, processed in time order.
_SESSION, _SHOCK, _SHIFT, _FUND, _SETTLE, _EMIT = range(6)


def user_id(index: int) -> str:
    """The user id of the ``index``-th user."""
    return f"u{index:06d}"


class _Draws:
    """Scalar random draws served from small numpy batches (scalar numpy calls are slow)."""

    __slots__ = ("_normals", "_rng", "_uniforms")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._uniforms: list[float] = []
        self._normals: list[float] = []

    def uniform(self) -> float:
        if not self._uniforms:
            self._uniforms = self._rng.random(_DRAW_BUFFER).tolist()
        return self._uniforms.pop()

    def normal(self) -> float:
        if not self._normals:
            self._normals = self._rng.standard_normal(_DRAW_BUFFER).tolist()
        return self._normals.pop()

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(sigma * self.normal())

    def exponential(self, mean: float) -> float:
        return -mean * math.log1p(-self.uniform())

    def pick(self, cumulative: list[float]) -> int:
        """Index drawn with probabilities proportional to the steps of ``cumulative``."""
        return bisect(cumulative, self.uniform() * cumulative[-1])


class _Loan:
    """A loan the user posted; ``late`` / ``defaulted`` once its repayment is settled so."""

    __slots__ = ("defaulted", "due_ts", "late", "loan_id", "number", "post_event_id",
                 "principal", "rate", "term_days")  # fmt: skip

    def __init__(
        self,
        number: int,
        loan_id: str,
        principal: float,
        rate: float,
        term_days: int,
        due_ts: float,
    ) -> None:
        self.number = number  # the user's how-manieth loan
        self.loan_id = loan_id
        self.principal = principal
        self.rate = rate
        self.term_days = term_days
        self.due_ts = due_ts
        self.late = False
        self.defaulted = False
        self.post_event_id = ""  # set when the post is emitted


_Payload = tuple[Activity, float, _Loan | None] | _Loan | None


class UserSimulator:
    """The ``index``-th user of a benchmark. ``events()`` yields their clicks in time order.

    Everything that happens is an agenda item popped in time order; every item schedules only
    later items, so the emitted events are ordered without sorting.
    """

    def __init__(
        self,
        config: GeneratorConfig,
        index: int,
        oracle: list[LoanOracle] | None = None,
        paths_at_post: int = 0,
    ) -> None:
        """``oracle``: a list that each settled loan's true outcome probabilities are appended
        to (``training.benchmark.oracle``; never a model input). ``paths_at_post``: with an
        oracle, also the probabilities as of each funded loan's post, averaged over this many
        simulated futures (``_at_post_oracle``; 0: none). Neither takes a draw from this user's
        streams, so the events are the same with or without them."""
        self.config = config
        self.index = index
        self._oracle = oracle
        self._paths_at_post = paths_at_post if oracle is not None else 0
        self._at_post: dict[str, tuple[float, float]] = {}
        self.user_id = user_id(index)
        main, shocks = np.random.SeedSequence([config.seed, index]).spawn(2)
        draw = _Draws(np.random.default_rng(main))
        self._draw = draw
        self._shock_draw = _Draws(np.random.default_rng(shocks))
        self._gap_median_s = draw.lognormal(SESSION_GAP_MEDIAN_DAYS, SESSION_GAP_USER_SIGMA) * DAY_S
        self._scale = draw.lognormal(MONEY_SCALE_MEDIAN, MONEY_SCALE_SIGMA)
        self._borrow_bias = draw.lognormal(1.0, BORROW_BIAS_SIGMA)
        self._invest_bias = draw.lognormal(1.0, INVEST_BIAS_SIGMA)
        self._shock_rate = draw.lognormal(SHOCK_RATE_PER_YEAR, SHOCK_RATE_USER_SIGMA) / _YEAR_S
        self._mu = DISTRESS_MEAN + DISTRESS_USER_SD * draw.normal()
        self._x = self._mu + DISTRESS_NOISE_SD * draw.normal()
        self._x_ts = config.start_ts
        self._scar_fast = 0.0
        self._scar_slow = 0.0
        self._unpaid = 0.0
        self._overdue = 0.0
        self._shifted = False
        self._chain = self._session_chain()
        self._loans = 0
        self._events = 0
        self._agenda: list[tuple[float, int, int, _Payload]] = []
        self._seq = 0
        self._handlers: tuple[Callable[[float, _Payload], ClickEvent | None], ...] = (
            self._session,
            self._shock,
            self._shift,
            self._fund,
            self._settle,
            self._emit,
        )
        join_ts = config.start_ts + draw.uniform() * JOIN_SPREAD * config.horizon_days * DAY_S
        self._push(join_ts, _SESSION, None)
        self._schedule_shock(config.start_ts)
        if config.shift_at_ts is not None:
            self._push(config.shift_at_ts, _SHIFT, None)

    def events(self) -> Iterator[ClickEvent]:
        """This user's click events with start_ts <= ts < end_ts, in time order."""
        end_ts = self.config.end_ts
        agenda, handlers = self._agenda, self._handlers
        while agenda:
            ts, _, kind, payload = heapq.heappop(agenda)
            if ts >= end_ts:
                return
            event = handlers[kind](ts, payload)
            if event is not None:
                yield event

    # --- agenda handlers ----------------------------------------------------------------------

    def _session(self, ts: float, _: _Payload) -> None:
        """A visit: a chain of voluntary activities seconds apart, then the next visit."""
        draw, chain = self._draw, self._chain
        self._advance(ts)
        s = self._share()
        t = ts
        state = chain.step(START, s, draw.uniform())
        while True:
            self._plan(CHAINED[state], t, s)
            state = chain.step(state, s, draw.uniform())
            if state == END:
                break
            t += draw.lognormal(INTRA_GAP_MEDIAN_S, INTRA_GAP_SIGMA)
        gap = draw.lognormal(self._gap_median_s, SESSION_GAP_SIGMA)
        self._push(t + gap / (1.0 + DISTRESS_SESSION_SPEEDUP * s), _SESSION, None)

    def _shock(self, ts: float, _: _Payload) -> None:
        self._advance(ts)
        self._x += self._shock_draw.exponential(SHOCK_SIZE_MEAN)
        self._schedule_shock(ts)

    def _shift(self, ts: float, _: _Payload) -> None:
        self._advance(ts)
        self._mu += SHIFT_DISTRESS_OFFSET
        self._shifted = True
        self._chain = self._session_chain()

    def _fund(self, ts: float, loan: _Payload) -> ClickEvent:
        """The posted loan is funded: borrow now, settle its repayment shortly before due."""
        assert isinstance(loan, _Loan)
        self._push(loan.due_ts - REPAY_LEAD_DAYS * DAY_S, _SETTLE, loan)
        return self._emit(ts, (Activity.BORROW, loan.principal, loan))

    def _settle(self, ts: float, loan: _Payload) -> None:
        """Decide on time, late or default from the risk now, and schedule what follows."""
        assert isinstance(loan, _Loan)
        draw = self._draw
        self._advance(ts)
        risk = (
            self._x
            + SCAR_FAST_WEIGHT * math.log1p(self._scar_fast)
            + SCAR_SLOW_WEIGHT * math.log1p(self._scar_slow)
            + DEBT_WEIGHT * math.log1p(self._unpaid / self._scale)
            + OVERDUE_WEIGHT * math.log1p(self._overdue / self._scale)
        )
        # Summed in the same order as one expression would, so z is the same float.
        z = risk + LOAN_NOISE_SD * draw.normal()
        if self._shifted and self.config.shift_term_risk:
            term_risk = self.config.shift_term_risk * math.log(loan.term_days / TERM_DAYS[0])
            z += term_risk
            risk += term_risk
        if self._oracle is not None:
            p_late, p_default = outcome_probabilities(risk, LOAN_NOISE_SD, DELINQUENT_BIAS,
                                                      DEFAULT_BIAS, DEFAULT_SLOPE)  # fmt: skip
            at_post = self._at_post.pop(loan.loan_id, (None, None))
            self._oracle.append(LoanOracle(loan.post_event_id, loan.loan_id, self.user_id, ts,
                                           p_late, p_default, *at_post,
                                           self._paths_at_post if at_post[0] is not None
                                           else 0))  # fmt: skip
        due_amount = loan.principal * (1.0 + loan.rate * loan.term_days / 365.0)
        if draw.uniform() >= _logistic(DELINQUENT_BIAS + z):
            repay_ts = ts + draw.uniform() * (loan.due_ts - ON_TIME_MARGIN_S - ts)
            if draw.uniform() < RECHARGE_BEFORE_REPAY:
                lead = min(draw.lognormal(INTRA_GAP_MEDIAN_S, INTRA_GAP_SIGMA), repay_ts - ts)
                self._push_emit(repay_ts - lead, Activity.RECHARGE, due_amount, None)
            self._push_emit(repay_ts, Activity.REPAY, due_amount, loan)
            return
        loan.late = True
        self._push_emit(loan.due_ts, Activity.MISS_PAYMENT, due_amount, loan, exact=True)
        if draw.uniform() < _logistic(DEFAULT_BIAS + DEFAULT_SLOPE * z):
            loan.defaulted = True
            if draw.uniform() < NEVER_REPAY_SHARE:
                return
            delay = DEFAULT_DELAY_DAYS + draw.lognormal(
                RECOVERY_DELAY_MEDIAN_DAYS, RECOVERY_DELAY_SIGMA
            )
        else:
            delay = min(
                1.0 + draw.lognormal(LATE_DELAY_MEDIAN_DAYS, LATE_DELAY_SIGMA), DEFAULT_DELAY_DAYS
            )
        repay_ts = loan.due_ts + delay * DAY_S
        amount = due_amount * (1.0 + LATE_FEE_PER_DAY * delay)
        if draw.uniform() < TRANSFER_IN_BEFORE_LATE_REPAY:
            lead = draw.lognormal(INTRA_GAP_MEDIAN_S, INTRA_GAP_SIGMA)
            self._push_emit(repay_ts - lead, Activity.TRANSFER_IN, amount, None)
        self._push_emit(repay_ts, Activity.REPAY, amount, loan)

    def _emit(self, ts: float, payload: _Payload) -> ClickEvent:
        """Write one event and apply its effect on the user's debt and scars."""
        assert isinstance(payload, tuple)
        activity, amount, loan = payload
        self._events += 1
        event = ClickEvent(event_id=f"{self.user_id}-{self._events}", user_id=self.user_id,
                           ts=ts, activity=activity, amount=amount)  # fmt: skip
        if loan is None:
            return event
        if activity is Activity.BORROW:
            self._unpaid += loan.principal
        elif activity is Activity.MISS_PAYMENT:
            self._advance(ts)
            self._overdue += loan.principal
            scar = DEFAULT_SCAR if loan.defaulted else 1.0
            self._scar_fast += scar
            self._scar_slow += scar
        elif activity is Activity.REPAY:
            self._unpaid = max(0.0, self._unpaid - loan.principal)
            if loan.late:
                self._overdue = max(0.0, self._overdue - loan.principal)
        if activity is Activity.POST:
            loan.post_event_id = event.event_id
            if self._paths_at_post:
                self._at_post_oracle(loan, ts)
            return msgspec.structs.replace(event, loan_id=loan.loan_id, rate=loan.rate,
                                           term_days=loan.term_days)  # fmt: skip
        return msgspec.structs.replace(event, loan_id=loan.loan_id)

    # --- the oracle as of a post -----------------------------------------------------------

    def _at_post_oracle(self, loan: _Loan, ts: float) -> None:
        """Keep, for a post that will be funded, the mean over ``_paths_at_post`` simulated
        futures of the settlement oracle's probabilities: P(delinquent | the hidden state at
        the post) and the same for default, by Monte Carlo over everything that happens to the
        user between the post and the settlement (distress, shocks, other loans). Each future
        runs a copy of this user (``_twin``) on streams of its own, so this user's draws, and
        hence the events, are untouched. A post settling after the end of the log gets none.

        The state the futures start from is the simulator's at the post: the hidden distress,
        scars and debt, the outcomes already drawn for loans not yet due, and what the user's
        visit planned at its start for the seconds to minutes after the post (its later
        activities, a later post's funding) and the time of the next visit. The last two are
        no state a scorer could know either; they make the ceiling a little higher, never
        lower."""
        if not any(kind == _FUND and item is loan for _, _, kind, item in self._agenda):
            return  # never funded: no outcome, no label
        if round(loan.due_ts - REPAY_LEAD_DAYS * DAY_S, _TS_DECIMALS) >= self.config.end_ts:
            return  # settles after the end of the log: censored, no label
        totals = [0.0, 0.0]
        for path in range(self._paths_at_post):
            twin = self._twin(path, loan.number, ts)
            settled = twin._run_until_settled(loan.loan_id)
            if settled is None:
                return
            totals[0] += settled.p_delinquent
            totals[1] += settled.p_default
        n = self._paths_at_post
        self._at_post[loan.loan_id] = (totals[0] / n, totals[1] / n)

    def _twin(self, path: int, loan: int, ts: float) -> UserSimulator:
        """A copy of this user as of ``ts`` whose future is drawn from streams of its own (the
        seed sequence [seed, index, loan number, path, 1], so each loan's futures are its own
        even when one visit posts several): the same hidden state and agenda,
        its own loans (settling one must not mark this user's), an oracle list of its own and
        no futures of its own. The next shock is drawn again from ``ts``: its time, already
        on this user's agenda, is no part of the state at ``ts`` (shocks are a Poisson
        process, so the time to the next is independent of the past)."""
        twin = object.__new__(UserSimulator)
        twin.__dict__.update(self.__dict__)
        copies: dict[int, _Loan] = {}

        def copied(loan: _Loan | None) -> _Loan | None:
            if loan is None:
                return None
            if id(loan) not in copies:
                copies[id(loan)] = copy.copy(loan)
            return copies[id(loan)]

        agenda: list[tuple[float, int, int, _Payload]] = []
        for at, seq, kind, payload in self._agenda:
            if kind == _SHOCK:
                continue
            if isinstance(payload, tuple):
                payload = (payload[0], payload[1], copied(payload[2]))
            elif isinstance(payload, _Loan):
                payload = copied(payload)
            agenda.append((at, seq, kind, payload))
        heapq.heapify(agenda)
        twin._agenda = agenda
        seeds = np.random.SeedSequence([self.config.seed, self.index, loan, path, 1])
        main, shocks = seeds.spawn(2)
        twin._draw = _Draws(np.random.default_rng(main))
        twin._shock_draw = _Draws(np.random.default_rng(shocks))
        twin._oracle = []
        twin._paths_at_post = 0
        twin._at_post = {}
        twin._handlers = (twin._session, twin._shock, twin._shift, twin._fund, twin._settle,
                          twin._emit)  # fmt: skip
        twin._schedule_shock(ts)
        return twin

    def _run_until_settled(self, loan_id: str) -> LoanOracle | None:
        """Run this (twin) user's agenda until the loan ``loan_id`` settles: its oracle record,
        or None when it would settle at or after the end of the log."""
        end_ts = self.config.end_ts
        agenda, handlers, records = self._agenda, self._handlers, self._oracle
        assert records is not None
        while agenda:
            ts, _, kind, payload = heapq.heappop(agenda)
            if ts >= end_ts:
                return None
            handlers[kind](ts, payload)
            if kind == _SETTLE and records and records[-1].loan_id == loan_id:
                return records[-1]
        return None

    # --- planning -----------------------------------------------------------------------------

    def _plan(self, activity: Activity, ts: float, s: float) -> None:
        """Schedule one chosen activity at ``ts`` and whatever it sets in motion."""
        draw = self._draw
        if activity is Activity.POST:
            self._plan_post(ts, s)
            return
        median_share, sigma, distress_effect = CASH_AMOUNTS[activity]
        amount = draw.lognormal(median_share * self._scale, sigma) * (1.0 + distress_effect * s)
        if activity is Activity.LEND:
            if self._shifted:
                amount *= SHIFT_LEND_AMOUNT_FACTOR
            term_days = TERM_DAYS[draw.pick(_TERM_CUMULATIVE)]
            if draw.uniform() >= BAD_INVESTMENT_SHARE:
                rate = RATE_BASE + RATE_NOISE_SD * draw.normal()
                back = amount * (1.0 + max(rate, 0.0) * term_days / 365.0)
                self._push_emit(ts + term_days * DAY_S, Activity.BE_REPAID, back, None)
        self._push_emit(ts, activity, amount, None)

    def _plan_post(self, ts: float, s: float) -> None:
        draw = self._draw
        amount = draw.lognormal(self._scale, POST_AMOUNT_SIGMA) * (1.0 + POST_DISTRESS_AMOUNT * s)
        if self._shifted:
            amount *= SHIFT_POST_AMOUNT_FACTOR
        amount = max(POST_AMOUNT_STEP, round(amount / POST_AMOUNT_STEP) * POST_AMOUNT_STEP)
        rate = RATE_BASE + RATE_DISTRESS * s + RATE_NOISE_SD * draw.normal()
        rate = round(min(max(rate, RATE_MIN), RATE_MAX), 4)
        term_days = TERM_DAYS[draw.pick(_TERM_CUMULATIVE)]
        post_ts = round(ts, _TS_DECIMALS)
        self._loans += 1
        # The due date is computed from the written post time, exactly as a reader will.
        loan = _Loan(
            self._loans,
            f"{self.user_id}-L{self._loans}",
            min(amount, MAX_AMOUNT),
            rate,
            term_days,
            due_ts(post_ts, term_days),
        )
        self._push_emit(post_ts, Activity.POST, loan.principal, loan)
        fund_probability = FUND_PROBABILITY
        if self._overdue > 0.0:
            fund_probability *= OVERDUE_FUNDING_FACTOR
        if self._shifted:
            fund_probability *= SHIFT_FUNDING_FACTOR
        if draw.uniform() < fund_probability:
            delay = min(draw.lognormal(FUND_DELAY_MEDIAN_S, FUND_DELAY_SIGMA), FUND_DELAY_MAX_S)
            self._push(post_ts + delay, _FUND, loan)

    # --- hidden state -------------------------------------------------------------------------

    def _advance(self, ts: float) -> None:
        """Move distress (exact OU transition) and the scars forward to ``ts``."""
        dt = ts - self._x_ts
        if dt <= 0.0:
            return
        decay = math.exp(-dt / (DISTRESS_REVERSION_DAYS * DAY_S))
        noise = DISTRESS_NOISE_SD * math.sqrt(1.0 - decay * decay) * self._draw.normal()
        self._x = self._mu + (self._x - self._mu) * decay + noise
        self._scar_fast *= math.exp(-dt / (SCAR_FAST_DAYS * DAY_S))
        self._scar_slow *= math.exp(-dt / (SCAR_SLOW_DAYS * DAY_S))
        self._x_ts = ts

    def _session_chain(self) -> SessionChain:
        """The activity chain for this user's tastes in the current regime."""
        weights = list(MIX_WEIGHTS)
        weights[_POST_COLUMN] *= self._borrow_bias
        weights[_LEND_COLUMN] *= self._invest_bias
        if self._shifted:
            weights[_LEND_COLUMN] *= SHIFT_LEND_WEIGHT_FACTOR
            weights[_WITHDRAW_COLUMN] *= SHIFT_WITHDRAW_WEIGHT_FACTOR
        return SessionChain(weights)

    def _share(self) -> float:
        """Distress as a share in (0, 1): how far the user leans to the distressed habits."""
        return _logistic(self._x)

    def _schedule_shock(self, ts: float) -> None:
        """Next shock of a Poisson process whose rate steps up at the regime shift."""
        shift_ts = self.config.shift_at_ts
        rate = self._shock_rate
        if self._shifted:
            rate *= SHIFT_SHOCK_RATE_FACTOR
        next_ts = ts + self._shock_draw.exponential(1.0 / rate)
        if shift_ts is not None and not self._shifted and ts <= shift_ts < next_ts:
            # Memoryless: restart the clock at the shift with the new rate.
            next_ts = shift_ts + self._shock_draw.exponential(
                1.0 / (rate * SHIFT_SHOCK_RATE_FACTOR)
            )
        self._push(next_ts, _SHOCK, None)

    # --- agenda -------------------------------------------------------------------------------

    def _push(self, ts: float, kind: int, payload: _Payload, *, exact: bool = False) -> None:
        """Schedule an item. Times go on the millisecond grid the stream is written in, so an
        item scheduled at or after the current time never lands before it after rounding;
        ``exact`` keeps a time that must match one a reader recomputes (the due date)."""
        self._seq += 1
        if not exact:
            ts = round(ts, _TS_DECIMALS)
        heapq.heappush(self._agenda, (ts, self._seq, kind, payload))

    def _push_emit(
        self,
        ts: float,
        activity: Activity,
        amount: float,
        loan: _Loan | None,
        *,
        exact: bool = False,
    ) -> None:
        self._push(ts, _EMIT, (activity, round(min(amount, MAX_AMOUNT), 2), loan), exact=exact)


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
