"""What a PromQL expression names, and what the flow's metrics registry holds, so the shipped
alerting rules and the Grafana dashboard can be checked against the code: a renamed metric or
label fails a test instead of an alert going silent.

The reader is lexical, for our own expressions: it finds the series selectors (identifiers not
called as functions, not keywords), their label matchers, and the label lists of ``by``,
``without``, ``on``, ``ignoring`` and ``group_*``. Grafana's ``$variables`` are left alone.

>>> sorted(names('sum by (job) (rate(a_total{job="x", reason!~"y|z"}[5m])) / on (job) b'))
['a_total', 'b']
>>> sorted(labels('sum by (job) (rate(a_total{job="x", reason!~"y|z"}[5m]))'), key=str)
[('a_total', 'job', 'x'), ('a_total', 'reason', None), (None, 'job', None)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.metrics import MetricWrapperBase

__all__ = [
    "LABEL_VALUES",
    "TARGET_LABELS",
    "Registered",
    "labels",
    "names",
    "problems",
    "registered",
]

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "offset", "bool", "inf", "nan", "atan2"}  # fmt: skip
_IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(rf"({_IDENT})?\s*\{{([^}}]*)\}}")
_MATCHER = re.compile(rf'({_IDENT})\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_TOKEN = re.compile(rf"(?<![\w.$])({_IDENT})(\s*\()?")

#: Labels Prometheus adds to every scraped series (the target's).
TARGET_LABELS = frozenset({"job", "instance"})


def names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (bare or before ``{...}``)."""
    found = set()
    stripped = _RANGE.sub(" ", _GROUPING.sub(" ", expr))
    for m in _SELECTOR.finditer(stripped):
        if m.group(1) and m.group(1) not in _KEYWORDS:
            found.add(m.group(1))
    stripped = _STRING.sub(" ", _SELECTOR.sub(" ", stripped))
    for m in _TOKEN.finditer(stripped):
        word, call = m.group(1), m.group(2)
        if call or word in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        found.add(word)
    return found


def labels(expr: str) -> set[tuple[str | None, str, str | None]]:
    """(metric, label, value) for each label matcher in ``expr`` (value for ``=`` only, else
    None), and (None, label, None) for each label of a grouping clause."""
    found: set[tuple[str | None, str, str | None]] = set()
    for m in _GROUPING.finditer(expr):
        for name in m.group(2).split(","):
            if name.strip():
                found.add((None, name.strip(), None))
    for sel in _SELECTOR.finditer(_RANGE.sub(" ", expr)):
        metric = sel.group(1) if sel.group(1) not in _KEYWORDS else None
        for m in _MATCHER.finditer(sel.group(2)):
            found.add((metric, m.group(1), m.group(3) if m.group(2) == "=" else None))
    return found


#: The keys of each Info, which it is given when set (``dataflow.serve``: the model's).
INFO_KEYS = {"deepcredit_model": frozenset({"version", "hidden_size"})}


@dataclass(frozen=True)
class Registered:
    """The series names the process exposes, and each one's label names."""

    series: dict[str, frozenset[str]]

    def label_names(self) -> set[str]:
        out = set(TARGET_LABELS)
        for names_ in self.series.values():
            out |= names_
        return out


_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
             "histogram": ("_bucket", "_count", "_sum", "_created"),
             "summary": ("_count", "_sum", "_created")}  # fmt: skip


def registered() -> Registered:
    """Every series the flow's endpoint can expose: our metrics modules and Bytewax's Kafka
    consumer lag, plus Prometheus's own ``up`` of each target."""
    from bytewax.connectors import kafka as bytewax_kafka

    from dataflow import metrics as flow_metrics
    from deepcredit import metrics as ground_metrics

    series: dict[str, frozenset[str]] = {"up": frozenset()}
    objects = [v for module in (flow_metrics, ground_metrics) for v in vars(module).values()
               if isinstance(v, MetricWrapperBase)]  # fmt: skip
    objects.append(bytewax_kafka.BYTEWAX_CONSUMER_LAG_GAUGE)
    for metric in objects:
        # prometheus-client keeps a metric's name, type and label names in these attributes.
        kind, base, label_names = metric._type, metric._name, frozenset(metric._labelnames)
        if kind == "info":
            label_names |= INFO_KEYS[base]
        for suffix in _SUFFIXES[kind]:
            series[base + suffix] = label_names
        if kind == "histogram":
            series[base + "_bucket"] = label_names | {"le"}
    return Registered(series)


def label_values() -> dict[str, set[str]]:
    """The values our code gives each label a query may match on."""
    from deepcredit.events import Activity
    from deepcredit.records import DeadLetterReason, Decision, Monitor
    from scorer.monitors import InputMonitor, PerformanceMonitor, ScoreMonitor

    return {
        "decision": {d.value for d in Decision},
        "reason": {r.value for r in DeadLetterReason},
        "activity": {a.value for a in Activity},
        "monitor": {m.value for m in Monitor},
        "signal": {s for m in (ScoreMonitor, InputMonitor, PerformanceMonitor) for s in m.SIGNALS},
        "target": {"delinquent", "default"},
    }


LABEL_VALUES = label_values()


def problems(expr: str, known: Registered) -> list[str]:
    """What in ``expr`` the code does not register: metric names, label names, label values
    (an equality matcher on a label of ``LABEL_VALUES``); empty when all is known."""
    out = []
    used = names(expr)
    if not used:
        out.append("names no metric")
    out += [f"unknown metric {n}" for n in sorted(used - set(known.series))]
    for metric, label, value in sorted(labels(expr), key=str):
        if metric is not None and metric not in known.series:
            continue
        allowed = known.label_names() if metric is None else known.series[metric] | TARGET_LABELS
        if label not in allowed:
            out.append(f"{metric or 'a grouping'} has no label {label!r}")
        elif value is not None and label in LABEL_VALUES and value not in LABEL_VALUES[label]:
            out.append(f"{label}={value!r} is not a value the code gives")
    return out
