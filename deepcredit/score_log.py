"""What the risk-scores topic holds: counts by decision, thresholds and model version, the
posts not scored by reason, and the latest scores, for operators (``deepcredit scores``) and
the demo.

Delivery is at least once, so repeats of a post (same event id) are counted once. The topic
carries two record kinds (``records.RiskRecord``): scores and not_scored records.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import msgspec

from deepcredit.kafka_io import read_to_end
from deepcredit.records import NotScored, RiskRecord, Score
from deepcredit.settings import KafkaSettings

__all__ = ["ScoreSummary", "summarise"]


@dataclass
class ScoreSummary:
    messages: int = 0
    posts: int = 0  # distinct event ids
    decisions: Counter = field(default_factory=Counter)
    thresholds_versions: Counter = field(default_factory=Counter)
    model_versions: Counter = field(default_factory=Counter)
    latest: list[Score] = field(default_factory=list)
    first_time: int = 0  # scored posts of users with no event before the post
    not_scored: Counter = field(default_factory=Counter)  # distinct refused posts, by reason

    def describe(self) -> str:
        def mix(c: Counter) -> str:
            return ", ".join(f"{k}: {v:,}" for k, v in sorted(c.items())) or "none"

        lines = [
            f"scored posts   {self.posts:,}  ({self.messages:,} messages; more = redeliveries)",
            f"decisions      {mix(self.decisions)}",
            f"thresholds     {mix(self.thresholds_versions)}  (by version)",
            f"models         {mix(self.model_versions)}",
            f"first-time     {self.first_time:,}  (scored posts of users with no history)",
            f"not scored     {mix(self.not_scored)}  (posts dead-lettered or refused, by reason)",
        ]
        if self.latest:
            lines.append("latest:")
            lines += [
                f"  {s.user_id:<10} loan {s.loan_id:<14} P(delinquent) {s.p_delinquent:.3f}  "
                f"P(default) {s.p_default:.3f}  {s.decision.value:<8} "
                f"thresholds v{s.thresholds_version}  {s.prior_events:,} events before, "
                f"{s.history_days:.0f} days"
                for s in self.latest
            ]
        return "\n".join(lines)


_decoder = msgspec.json.Decoder(RiskRecord)


def summarise(settings: KafkaSettings, topic: str, latest: int) -> ScoreSummary:
    """Read ``topic`` to its end and summarise it, with its ``latest`` scores."""
    out = ScoreSummary()
    seen: dict[str, Score] = {}
    refused: dict[str | None, NotScored] = {}
    for m in read_to_end(settings, topic):
        out.messages += 1
        r = _decoder.decode(m.value())
        if isinstance(r, Score):
            seen.setdefault(r.event_id, r)
        elif r.event_id is None:  # no id to de-duplicate on: each one counts
            out.not_scored[r.reason.value] += 1
        else:
            refused.setdefault(r.event_id, r)
    for r in refused.values():
        out.not_scored[r.reason.value] += 1
    for s in seen.values():
        out.first_time += s.prior_events == 0
        out.decisions[s.decision.value] += 1
        out.thresholds_versions[s.thresholds_version] += 1
        out.model_versions[s.model_version] += 1
    out.posts = len(seen)
    out.latest = sorted(seen.values(), key=lambda s: s.scored_at)[-latest:] if latest else []
    return out
