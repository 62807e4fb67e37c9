"""The flow against the real broker, in this process: every post scored once with the scores
of the step-by-step scorer, bad input dead-lettered with its reason, metrics scraped over HTTP."""

from __future__ import annotations

import urllib.request
from collections import Counter
from pathlib import Path

from bytewax.testing import run_main
from prometheus_client.parser import text_string_to_metric_families

from dataflow.endpoint import Endpoint
from dataflow.flow import FlowConfig, build_flow
from deepcredit.events import Activity, ClickEvent
from deepcredit.records import DeadLetterReason
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from scorer.artifact import load_scorer
from tests.ports import free_port
from tests.streams import (
    BAD_MESSAGES,
    clicks_lines,
    expected_scores,
    read_dead_letters,
    read_scores,
    send,
)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def test_every_post_is_scored_once_as_the_scorer_would_and_bad_input_is_dead_lettered(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, clicks: list[ClickEvent],
    model_dir: Path,
) -> None:  # fmt: skip
    port = free_port()
    endpoint = Endpoint(port, lambda: [])
    before = scrape(port)
    lines = clicks_lines(clicks_file)
    send(kafka, topics.clicks, lines[:1000] + list(BAD_MESSAGES) + lines[1000:])
    w = load_scorer(model_dir)

    run_main(build_flow(FlowConfig(kafka, topics, tail=False), w, lambda: DEFAULT_THRESHOLDS))

    scores = read_scores(kafka, topics.risk_scores)
    expected, _ = expected_scores(w, clicks)
    assert len(scores) == len(expected) > 100  # each post once
    assert {s.event_id: (s.p_delinquent, s.p_default) for s in scores} == expected
    assert all(s.model_version == w.version and s.thresholds_version == 0 for s in scores)
    letters = read_dead_letters(kafka, topics.dead_letter)
    assert sorted(d.reason for d in letters) == sorted([DeadLetterReason.INVALID_JSON,
                                                        DeadLetterReason.MISSING_FIELD,
                                                        DeadLetterReason.INVALID_UTF8])  # fmt: skip

    after = scrape(port)
    endpoint.close()

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("deepcredit_scores_total") == len(expected)
    by_activity = Counter(e.activity for e in clicks)
    assert delta("deepcredit_events_consumed_total", activity="post") == by_activity[Activity.POST]
    assert delta("deepcredit_dead_letters_total", reason="invalid_utf8") == 1
    decisions = Counter(s.decision.value for s in scores)
    for decision, n in decisions.items():
        assert delta("deepcredit_decisions_total", decision=decision) == n
    assert delta("deepcredit_event_to_score_seconds_count") == len(expected)
    assert delta("deepcredit_processing_seconds_count") == len(clicks)
    assert after[("deepcredit_users_in_state", ())] >= len({e.user_id for e in clicks})
