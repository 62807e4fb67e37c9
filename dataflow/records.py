"""What travels between the flow's steps: an accepted event with where and when it arrived, and
a post's probabilities. Both pickle (Bytewax exchanges them between workers)."""

from __future__ import annotations

import msgspec

from deepcredit.events import ClickEvent

__all__ = ["Accepted", "Scored"]


class Accepted(msgspec.Struct, frozen=True):
    """A valid click event and its Kafka coordinates, so that any later step can dead-letter it
    with them (``dataflow.steps``, the poison-pill rule)."""

    event: ClickEvent
    arrived_at: float  # Kafka message timestamp, Unix s (when it reached the clicks topic)
    partition: int
    offset: int
    topic: str | None = None
    key: bytes | None = None  # the message key as it came (identity is ``event.user_id``)


class Scored(msgspec.Struct, frozen=True):
    """The two probabilities of a post, before the live thresholds decide, and how much history
    they rest on (``scorer.steps.history_at``)."""

    accepted: Accepted
    p_delinquent: float
    p_default: float
    history: tuple[int, float] = (0, 0.0)  # (events before the post, days since the first)
    reasons: tuple[str, ...] = ()  # reason codes (``scorer.reasons.advance_with_reasons``)
    watched: bool = True  # its user is in the drift monitors' sample (``UserSample``)
