"""Realised statistics of a generated benchmark, beside the DeepCredit paper's figures.

Collected in one pass over the stream with bounded memory: counters, a per-user last timestamp,
a log-spaced histogram of inter-event gaps, and the open loans of an ``OutcomeTracker``.
"""

from __future__ import annotations

import msgspec
import numpy as np

from deepcredit.events import Activity, ClickEvent
from deepcredit.loans import LoanOutcome, OutcomeTracker
from training.benchmark.config import GeneratorConfig

__all__ = ["PAPER", "BenchmarkStats", "StatsCollector"]


class _PaperTargets(msgspec.Struct, frozen=True):
    """The paper's dataset (Evaluation section): totals for its 10K users."""

    users: int = 10_000
    activities: int = 4_881_056
    posts: int = 712_857
    funded_loans: int = 586_957
    delinquent_fraction: float = 78_652 / 586_957  # 13.4%
    default_fraction: float = 28_174 / 586_957  # 4.8%


PAPER = _PaperTargets()
GAP_QUANTILES = (0.1, 0.5, 0.9, 0.99)
#: Gap histogram: 0.01-decade bins from 1 ms to 30 years, i.e. about 2% resolution.
_GAP_EDGES = np.logspace(-3.0, 9.0, 1201)
_GAP_FLUSH = 1 << 16


class BenchmarkStats(msgspec.Struct, frozen=True, kw_only=True):
    """Realised counts and rates. Loan rates are over funded loans whose label is known at the
    end of the horizon (censored ones are left out, see ``deepcredit.loans``)."""

    users: int
    activities: int
    posts: int
    funded_loans: int
    delinquent_fraction: float
    default_fraction: float
    #: Funded loans with a delinquency label / a default label (the rates' denominators).
    labelled_delinquent: int
    labelled_default: int
    censored_loans: int
    activity_mix: dict[str, float]
    gap_quantiles_s: dict[str, float]
    shift_at_ts: float | None = None
    #: Delinquent fraction of funded loans posted before / after the shift.
    delinquent_fraction_before_shift: float | None = None
    delinquent_fraction_after_shift: float | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict."""
        return msgspec.to_builtins(self)

    def table(self) -> str:
        """Realised values beside the paper's, scaled to this many users."""
        scale = self.users / PAPER.users
        rows = [("quantity", "realised", f"paper x{scale:g}", "diff")]

        def count(name: str, realised: int, paper: int) -> None:
            target = paper * scale
            rows.append((name, f"{realised:,}", f"{target:,.0f}", f"{realised / target - 1:+.1%}"))

        def rate(name: str, realised: float, paper: float) -> None:
            rows.append(
                (name, f"{realised:.2%}", f"{paper:.2%}", f"{(realised - paper) * 100:+.2f} pp")
            )

        rows.append(("users", f"{self.users:,}", f"{self.users:,}", ""))
        count("activities", self.activities, PAPER.activities)
        count("posts", self.posts, PAPER.posts)
        count("funded loans", self.funded_loans, PAPER.funded_loans)
        rate(
            "funded / posts",
            self.funded_loans / max(self.posts, 1),
            PAPER.funded_loans / PAPER.posts,
        )
        rate("delinquent / funded", self.delinquent_fraction, PAPER.delinquent_fraction)
        rate("default / funded", self.default_fraction, PAPER.default_fraction)
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        lines.append(f"censored funded loans (not in the rates): {self.censored_loans:,}")
        if self.delinquent_fraction_after_shift is not None:
            lines.append(
                f"delinquent / funded, posted before shift: "
                f"{_percent(self.delinquent_fraction_before_shift)}, after: "
                f"{_percent(self.delinquent_fraction_after_shift)}"
            )
        mix = sorted(self.activity_mix.items(), key=lambda item: -item[1])
        lines.append("activity mix: " + ", ".join(f"{name} {share:.1%}" for name, share in mix))
        lines.append(
            "per-user gaps between events: "
            + ", ".join(
                f"{name} {_duration(seconds)}" for name, seconds in self.gap_quantiles_s.items()
            )
        )
        return "\n".join(lines)


class StatsCollector:
    """Feed every event of a stream, in order, then ``finish`` for the statistics."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self._counts = dict.fromkeys(Activity, 0)
        self._tracker = OutcomeTracker()
        self._last_ts: dict[str, float] = {}
        self._gaps: list[float] = []
        self._gap_hist = np.zeros(len(_GAP_EDGES) - 1, dtype=np.int64)
        self._zero_gaps = 0
        # [regime][0: labelled, 1: positive] for delinquent and default, regime 1 = after shift
        self._delinquent = [[0, 0], [0, 0]]
        self._default = [[0, 0], [0, 0]]
        self._censored = 0

    def add(self, event: ClickEvent) -> None:
        self._counts[event.activity] += 1
        last = self._last_ts.get(event.user_id)
        if last is not None:
            self._gaps.append(event.ts - last)
            if len(self._gaps) >= _GAP_FLUSH:
                self._flush_gaps()
        self._last_ts[event.user_id] = event.ts
        outcome = self._tracker.update(event)
        if outcome is not None:
            self._tally(outcome)

    def finish(self) -> BenchmarkStats:
        """Close the open loans at the end of the horizon and compute the statistics."""
        for outcome in self._tracker.close(self.config.end_ts):
            self._tally(outcome)
        self._flush_gaps()
        total = sum(self._counts.values())
        shift = self.config.shift_at_ts
        return BenchmarkStats(
            users=self.config.users,
            activities=total,
            posts=self._counts[Activity.POST],
            funded_loans=self._counts[Activity.BORROW],
            delinquent_fraction=_fraction(_merged(self._delinquent)) or 0.0,
            default_fraction=_fraction(_merged(self._default)) or 0.0,
            labelled_delinquent=_merged(self._delinquent)[0],
            labelled_default=_merged(self._default)[0],
            censored_loans=self._censored,
            activity_mix={a.value: n / max(total, 1) for a, n in self._counts.items()},
            gap_quantiles_s=self._gap_quantiles(),
            shift_at_ts=shift,
            delinquent_fraction_before_shift=None
            if shift is None
            else _fraction(self._delinquent[0]),
            delinquent_fraction_after_shift=None
            if shift is None
            else _fraction(self._delinquent[1]),
        )

    def _tally(self, outcome: LoanOutcome) -> None:
        if not outcome.funded:
            return
        shift = self.config.shift_at_ts
        regime = int(shift is not None and outcome.post_ts >= shift)
        self._censored += outcome.censored
        for label, tally in (
            (outcome.delinquent, self._delinquent),
            (outcome.default, self._default),
        ):
            if label is not None:
                tally[regime][0] += 1
                tally[regime][1] += label

    def _flush_gaps(self) -> None:
        gaps = np.asarray(self._gaps)
        self._gaps = []
        positive = gaps[gaps > 0.0]
        self._zero_gaps += len(gaps) - len(positive)
        clipped = np.clip(positive, _GAP_EDGES[0], _GAP_EDGES[-1])
        self._gap_hist += np.histogram(clipped, bins=_GAP_EDGES)[0]

    def _gap_quantiles(self) -> dict[str, float]:
        """Quantiles from the histogram, as the geometric centre of the bin they fall in."""
        total = self._zero_gaps + int(self._gap_hist.sum())
        cumulative = self._zero_gaps + np.cumsum(self._gap_hist)
        centres = np.sqrt(_GAP_EDGES[:-1] * _GAP_EDGES[1:])
        quantiles = {}
        for q in GAP_QUANTILES:
            rank = q * total
            if total == 0 or rank <= self._zero_gaps:
                value = 0.0
            else:
                value = float(centres[min(np.searchsorted(cumulative, rank), len(centres) - 1)])
            quantiles[f"p{q * 100:g}"] = value
        return quantiles


def _merged(tally: list[list[int]]) -> list[int]:
    return [tally[0][0] + tally[1][0], tally[0][1] + tally[1][1]]


def _fraction(labelled_positive: list[int]) -> float | None:
    labelled, positive = labelled_positive
    return positive / labelled if labelled else None


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _duration(seconds: float) -> str:
    """Seconds in the unit a person reads best."""
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
