"""Prometheus metrics of the ground floor: what any of our processes counts while reading our
topics. They live in prometheus-client's default registry, so the endpoint of a process that
serves metrics (``deepcredit serve``) has them next to its own."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["CONTROL_RECORDS_SKIPPED"]

CONTROL_RECORDS_SKIPPED = Counter(
    "deepcredit_control_records_skipped",
    "Records of a control topic (thresholds, drift alerts, model events) skipped as unusable, "
    "by topic and reason",
    ["topic", "reason"],
)
