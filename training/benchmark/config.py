"""What to generate: how many users, which seed, which stretch of time, and an optional shock.

>>> GeneratorConfig(users=10).end_ts - GeneratorConfig(users=10).start_ts == 1095 * 86_400
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepcredit.events import DAY_S, TS_MAX, TS_MIN

__all__ = ["DEFAULT_HORIZON_DAYS", "DEFAULT_START_TS", "GeneratorConfig"]

#: 2015-01-01 00:00 UTC. With three years the stream covers March 2017, when the paper's users
#: were sampled, and leaves most loans time to come due.
DEFAULT_START_TS = 1_420_070_400.0
DEFAULT_HORIZON_DAYS = 3 * 365.0


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """Benchmark parameters. The calibration constants live with the process they shape
    (``training.benchmark.user``); these are only what a caller varies.

    ``shift_at_ts``: from this event time on, every user lives in a harsher macro regime (a platform
    crisis): more distress shocks, higher baseline distress, fewer funded posts, larger loan
    requests, less lending and more withdrawals. ``training.benchmark.user`` lists the exact
    factors. None means one regime throughout.

    ``shift_term_risk``: in that regime a loan's risk also grows by this much per unit of
    log(term / shortest term): longer loans go bad, the borrower's situation worsening before
    they come due. The calibrated shift mostly moves the level of risk, which hurts calibration
    but hardly the ranking (AUC), and what it does to a user soon shows in their repayment
    record, which a pre-shift model reads; a risk carried by the loan itself is what only a
    model trained after the shift can know. 0 (the default) leaves the shift as calibrated.
    """

    users: int = field(metadata={"help": "number of users"})
    seed: int = field(default=0, metadata={"help": "random seed: the same seed, the same stream"})
    start_ts: float = DEFAULT_START_TS
    horizon_days: float = field(default=DEFAULT_HORIZON_DAYS,
                                metadata={"help": "days of history from 2015-01-01"})  # fmt: skip
    shift_at_ts: float | None = field(
        default=None,
        metadata={"help": "inject a regime shift (a platform crisis) from this event time on, "
                          "Unix seconds (default: one regime throughout)"},
    )  # fmt: skip
    shift_term_risk: float = 0.0

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError(f"users must be >= 1, got {self.users}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy seed sequences), got {self.seed}")
        if self.horizon_days <= 0:
            raise ValueError(f"horizon_days must be > 0, got {self.horizon_days}")
        if not TS_MIN <= self.start_ts < self.end_ts <= TS_MAX:
            raise ValueError("start_ts and the horizon must lie within the event contract's time")
        if self.shift_at_ts is not None and not self.start_ts <= self.shift_at_ts <= self.end_ts:
            raise ValueError("shift_at_ts must lie within [start_ts, end_ts]")
        if self.shift_term_risk and self.shift_at_ts is None:
            raise ValueError("shift_term_risk needs a shift (shift_at_ts)")

    @property
    def end_ts(self) -> float:
        """First moment after the stream: events have start_ts <= ts < end_ts."""
        return self.start_ts + self.horizon_days * DAY_S
