"""Our topics and their settings, created idempotently.

The clicks and risk-scores topics are keyed by user and partitioned so a Bytewax cluster can
share them; thresholds is compacted (latest thresholds per key survive forever).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from deepcredit.errors import DeployError
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until

__all__ = ["TopicSpec", "delete_topics", "ensure_topics", "topic_specs"]

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(topics: Topics, partitions: int) -> list[TopicSpec]:
    """The eight topics. ``partitions`` applies to the user-keyed ones (clicks, risk-scores)."""
    return [
        TopicSpec(topics.clicks, partitions),
        TopicSpec(topics.risk_scores, partitions),
        # Dead letters are read by people investigating a producer bug: keep them a month.
        TopicSpec(topics.dead_letter, 1, {"retention.ms": str(30 * _DAY_MS)}),
        TopicSpec(topics.thresholds, 1, {"cleanup.policy": "compact"}),
        TopicSpec(topics.drift_alerts, 1),
        TopicSpec(topics.model_events, 1, {"retention.ms": str(365 * _DAY_MS)}),
        # Every thresholds change, kept for good: one partition (one order of changes), neither
        # compacted nor expired (the thresholds topic itself keeps only the latest).
        TopicSpec(
            topics.thresholds_audit,
            1,
            {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
        ),
        # Every model promotion, rollback and gate verdict, kept for good (model-events expires
        # after a year): the same settings.
        TopicSpec(
            topics.models_audit,
            1,
            {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
        ),
    ]


def ensure_topics(
    settings: KafkaSettings, specs: list[TopicSpec], timeout_s: float = 30.0
) -> dict[str, str]:
    """Create the topics that do not exist yet. Returns ``{name: "created" | "exists"}``."""
    admin = AdminClient(settings.client_config())
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, 1, config=s.config) for s in specs],
        request_timeout=timeout_s,
    )
    outcome: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            outcome[name] = "created"
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise DeployError(f"could not create topic {name!r}: {error.str()}") from None
            outcome[name] = "exists"
    _wait_for_leaders(admin, [s.name for s in specs], timeout_s)
    return outcome


def delete_topics(settings: KafkaSettings, names: list[str], timeout_s: float = 30.0) -> int:
    """Delete the topics (a benchmark's or a scenario's own, never the live ones); a topic
    that does not exist is no error. Returns how many were deleted."""
    admin = AdminClient(settings.client_config())
    deleted = 0
    for name, future in admin.delete_topics(list(names), request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            deleted += 1
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise DeployError(f"could not delete topic {name!r}: {error.str()}") from None
    return deleted


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Wait until every partition answers a ListOffsets request on its leader.

    A created topic shows a leader in metadata a moment before that leader serves requests;
    a client arriving in between gets NOT_LEADER_FOR_PARTITION.
    """
    problem: str | None = None

    def ready() -> bool:
        nonlocal problem
        problem = _first_unready(admin, names)
        return problem is None

    try:
        wait_until(ready, timeout_s, 0.1)
    except TimeoutError:
        raise DeployError(f"topics not ready after {timeout_s:.0f} s: {problem}") from None


def _first_unready(admin: AdminClient, names: list[str]) -> str | None:
    meta = admin.list_topics(timeout=10).topics
    requests = {}
    for name in names:
        if name not in meta or meta[name].error is not None:
            return f"{name}: no metadata yet"
        for p in meta[name].partitions.values():
            if p.leader < 0:
                return f"{name}[{p.id}]: no leader yet"
            requests[TopicPartition(name, p.id)] = OffsetSpec.latest()
    for tp, future in admin.list_offsets(requests, request_timeout=5).items():
        try:
            future.result(timeout=6)
        except KafkaException as exc:
            return f"{tp.topic}[{tp.partition}]: {exc.args[0].str()}"
    return None
