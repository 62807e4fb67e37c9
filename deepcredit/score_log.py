"""What the risk-scores topic holds: counts by decision, thresholds and model version, and the
latest scores, for operators (``deepcredit scores``) and the demo.

Delivery is at least once, so repeats of a post (same event id) are counted once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import msgspec

from deepcredit.kafka_io import read_to_end
from deepcredit.records import Score
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

    def describe(self) -> str:
        def mix(c: Counter) -> str:
            return ", ".join(f"{k}: {v:,}" for k, v in sorted(c.items())) or "none"

        lines = [
            f"scored posts   {self.posts:,}  ({self.messages:,} messages; more = redeliveries)",
            f"decisions      {mix(self.decisions)}",
            f"thresholds     {mix(self.thresholds_versions)}  (by version)",
            f"models         {mix(self.model_versions)}",
        ]
        if self.latest:
            lines.append("latest:")
            lines += [
                f"  {s.user_id:<10} loan {s.loan_id:<14} P(delinquent) {s.p_delinquent:.3f}  "
                f"P(default) {s.p_default:.3f}  {s.decision.value:<8} "
                f"thresholds v{s.thresholds_version}"
                for s in self.latest
            ]
        return "\n".join(lines)


def summarise(settings: KafkaSettings, topic: str, latest: int) -> ScoreSummary:
    """Read ``topic`` to its end and summarise it, with its ``latest`` scores."""
    out = ScoreSummary()
    seen: dict[str, Score] = {}
    for m in read_to_end(settings, topic):
        out.messages += 1
        s = msgspec.json.decode(m.value(), type=Score)
        seen.setdefault(s.event_id, s)
    for s in seen.values():
        out.decisions[s.decision.value] += 1
        out.thresholds_versions[s.thresholds_version] += 1
        out.model_versions[s.model_version] += 1
    out.posts = len(seen)
    out.latest = sorted(seen.values(), key=lambda s: s.scored_at)[-latest:] if latest else []
    return out
