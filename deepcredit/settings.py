"""Where the Kafka broker is and what our topics are called. Nothing else hard-codes either.

Defaults come from the environment (``DEEPCREDIT_BOOTSTRAP``, ``DEEPCREDIT_TOPIC_PREFIX``) so
the CLI, the dataflow and the tests agree without passing flags everywhere.

>>> Topics.from_prefix("t1-").clicks
't1-clicks'
>>> KafkaSettings("127.0.0.1:9999", {"linger.ms": 5}).client_config(**{"group.id": "g"})
{'bootstrap.servers': '127.0.0.1:9999', 'linger.ms': 5, 'group.id': 'g'}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["DEFAULT_BOOTSTRAP", "KafkaSettings", "Topics"]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


@dataclass(frozen=True)
class Topics:
    """The eight topics of the system. A prefix keeps test runs and tenants apart."""

    clicks: str = "clicks"
    risk_scores: str = "risk-scores"
    dead_letter: str = "dead-letter"
    thresholds: str = "thresholds"
    drift_alerts: str = "drift-alerts"
    model_events: str = "model-events"
    thresholds_audit: str = "thresholds-audit"
    models_audit: str = "models-audit"

    @classmethod
    def from_prefix(cls, prefix: str = "") -> Topics:
        return cls(**{f.name: prefix + f.default for f in fields(cls)})

    @classmethod
    def from_env(cls) -> Topics:
        return cls.from_prefix(os.environ.get("DEEPCREDIT_TOPIC_PREFIX", ""))

    def names(self) -> list[str]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True)
class KafkaSettings:
    """Bootstrap servers plus client settings merged over our defaults (Quix-style extra_config)."""

    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    extra_config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> KafkaSettings:
        return cls(os.environ.get("DEEPCREDIT_BOOTSTRAP", DEFAULT_BOOTSTRAP))

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """A confluent-kafka config dict: ours, then ``extra_config``, then ``overrides``."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.extra_config, **overrides}
