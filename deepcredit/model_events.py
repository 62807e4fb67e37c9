"""Model decisions on Kafka: every promotion, rollback and gate verdict as a ``ModelEvent``
on the model-events topic (what the team watches; a year's retention) and on the
models-audit topic (one partition, never compacted, no time limit: the durable trail), both
in one Kafka transaction, so the trail holds exactly what was announced.

Why a topic beside the registry's ``promotions.jsonl``: that log is a file on the machine
that ran the command, while the topic is on the broker every process and every analyst reads
(the thresholds' audit trail is kept the same way, ``deepcredit.audit``).
"""

from __future__ import annotations

from dataclasses import dataclass

from deepcredit.codec import encode
from deepcredit.control import decode_control
from deepcredit.kafka_io import TransactionFailed, produce_in_transaction, read_to_end
from deepcredit.records import ModelEvent, kafka_headers
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until

__all__ = ["ModelAudit", "ModelEventsUnavailable", "publish_model_event", "read_model_audit"]


class ModelEventsUnavailable(RuntimeError):
    """The model event could not be written, or the trail read; the message says why."""


def publish_model_event(
    settings: KafkaSettings, topics: Topics, event: ModelEvent, timeout_s: float = 30.0
) -> None:
    """``event`` on ``topics.model_events`` and ``topics.models_audit`` in one transaction,
    keyed by its version. Raises ValueError for an event whose ``problem()`` is not None
    (nothing written) and ModelEventsUnavailable when the transaction does not commit."""
    problem = event.problem()
    if problem is not None:
        raise ValueError(f"not a usable model event: {problem}")
    value, key, headers = encode(event), event.version.encode(), kafka_headers(event)
    try:
        # One writer id per audit topic: a second writer fences the first.
        produce_in_transaction(settings, f"deepcredit-models-{topics.models_audit}",
                               [(topics.model_events, key, value, headers),
                                (topics.models_audit, key, value, headers)],
                               timeout_s)  # fmt: skip
    except TransactionFailed as exc:
        raise ModelEventsUnavailable(f"model event of {event.version} not written to "
                                     f"{topics.model_events!r} and {topics.models_audit!r}: "
                                     f"{exc}") from None  # fmt: skip

    # A commit returns before its markers are on the partitions; until they are, a reader
    # (read_committed) stops short of the event. Return once both topics show it.
    def readable() -> bool:
        return all(any(m.value() == value for m in read_to_end(settings, topic, timeout_s))
                   for topic in (topics.model_events, topics.models_audit))  # fmt: skip

    try:
        wait_until(readable, timeout_s, 0.2, what=f"the model event of {event.version} readable")
    except TimeoutError as exc:
        raise ModelEventsUnavailable(f"model event of {event.version} committed but not "
                                     f"readable yet: {exc}") from None  # fmt: skip


@dataclass(frozen=True)
class ModelAudit:
    """The models-audit topic read to its end: every usable event, oldest first, and how many
    records were skipped as unusable (the warnings say why)."""

    events: list[ModelEvent]
    records: int
    skipped: int


def read_model_audit(settings: KafkaSettings, topic: str, timeout_s: float = 10.0) -> ModelAudit:
    """Every model event on the audit ``topic``, oldest first. Raises ModelEventsUnavailable
    when the topic cannot be read to its end within ``timeout_s``."""
    try:
        messages = read_to_end(settings, topic, timeout_s)
    except (TimeoutError, ValueError, RuntimeError) as exc:
        raise ModelEventsUnavailable(f"cannot read {topic!r}: {exc}") from None
    events = [e for m in messages if (e := decode_control(m, ModelEvent)) is not None]
    return ModelAudit(events, len(messages), len(messages) - len(events))
