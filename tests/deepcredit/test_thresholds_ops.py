"""Risk operations on the real broker: simulate a change on scored posts and their outcomes,
confirm large shifts, keep every change on the audit topic, history, rollback."""

from __future__ import annotations

import io
import itertools
import json
import random
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from deepcredit.codec import decode_click, encode
from deepcredit.events import ClickEvent
from deepcredit.jsonlines import read_lines
from deepcredit.loans import loan_outcomes
from deepcredit.records import Decision, Score, score_record
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import (
    DEFAULT_THRESHOLDS,
    ThresholdsUnavailable,
    read_history,
    read_latest,
    set_thresholds,
)
from deepcredit.whatif import ScoredPost, WhatIf, decision_mix
from deploy.cli import main

#: The first clicks of the session's stream: enough posts with outcomes of every kind.
LINES = 2_500


class Terminal(io.StringIO):
    """Standard input as a person at a terminal types it."""

    def isatty(self) -> bool:
        return True


def publish_stream(kafka: KafkaSettings, topics: Topics, clicks_file: Path) -> list[Score]:
    """The clicks on the clicks topic and a score of every post on the risk-scores topic
    (model m1, decided by the defaults; a few posts also scored by an older model m0, and one
    score delivered twice). Returns the m1 scores."""
    producer = Producer(kafka.client_config())
    rng = random.Random(5)
    scores: list[Score] = []
    seen: dict[str, int] = {}
    for line in itertools.islice(read_lines(str(clicks_file)), LINES):
        event = decode_click(line)
        assert isinstance(event, ClickEvent)
        producer.produce(topics.clicks, key=event.user_id.encode(), value=line)
        if event.activity == "post":
            p = (rng.random() ** 2 * 0.8, rng.random() ** 3 * 0.4)
            history = (seen.get(event.user_id, 0), 0.0)
            scores.append(score_record(event, p, DEFAULT_THRESHOLDS, "m1", history))
        seen[event.user_id] = seen.get(event.user_id, 0) + 1
    for s in [*scores, scores[0]]:  # the first one delivered twice
        producer.produce(topics.risk_scores, key=s.key, value=encode(s))
    for s in scores[:3]:  # an older model's scores of the same posts, under other event ids
        old = msgspec.structs.replace(s, event_id=f"{s.event_id}-m0", model_version="m0",
                                      scored_at=s.scored_at - 3600)  # fmt: skip
        producer.produce(topics.risk_scores, key=s.key, value=encode(old))
    assert producer.flush(30) == 0
    return scores


@pytest.fixture
def stream(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, monkeypatch: pytest.MonkeyPatch
) -> list[Score]:
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.thresholds.removesuffix("thresholds"))
    return publish_stream(kafka, topics, clicks_file)


@pytest.mark.kafka
def test_simulate_then_set_with_confirmation_history_and_rollback(
    kafka: KafkaSettings,
    topics: Topics,
    stream: list[Score],
    clicks: list[ClickEvent],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """The README's walk-through: what a change would do, making it (asked when it moves the
    decline or review rate a lot), every change kept, and back."""
    clicks = clicks[:LINES]
    plot, out = tmp_path / "curve.png", tmp_path / "whatif.json"
    assert main(["thresholds", "simulate", "--delinquent-decline", "0.3", "--plot", str(plot),
                 "--out", str(out), "--bootstrap", kafka.bootstrap_servers]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    effect = msgspec.json.decode(out.read_bytes(), type=WhatIf)
    assert (effect.current_version, effect.candidate_version, effect.model_version) == (0, 1, "m1")

    # The same replay done here from the clicks, labels as known at the clock it reports.
    assert effect.as_of is not None and effect.as_of <= max(e.ts for e in clicks)
    outcomes = loan_outcomes(clicks, as_of=effect.as_of)
    posts = [ScoredPost(s.p_delinquent, s.p_default, outcomes.get(s.loan_id)) for s in stream]
    candidate = msgspec.structs.replace(DEFAULT_THRESHOLDS, version=1, delinquent_decline=0.3)
    for mine, theirs in ((effect.current, decision_mix(posts, DEFAULT_THRESHOLDS)),
                         (effect.candidate, decision_mix(posts, candidate))):  # fmt: skip
        got, want = msgspec.to_builtins(mine), msgspec.to_builtins(theirs)
        assert got == pytest.approx(want)
    # At the thresholds in force, the replay gives the decisions the scores carry.
    recorded = {d: sum(s.decision is d for s in stream) for d in Decision}
    assert (effect.current.approve, effect.current.review, effect.current.decline) == (
        recorded[Decision.APPROVE],
        recorded[Decision.REVIEW],
        recorded[Decision.DECLINE],
    )
    assert effect.candidate.decline > effect.current.decline
    assert effect.current.approved_open > 0  # the stream ends with loans not yet due

    assert f"the {len(stream):,} most recent posts scored by model m1" in printed
    assert "(3 posts of other models left out)" in printed and "still open" in printed
    assert "in force (v0)" in printed and "candidate (v1)" in printed
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert read_latest(kafka, topics.thresholds) is None  # simulate writes nothing

    # Segments: thin-file users apart, established users by amount band.
    cuts = {"delinquent_review": 0.2, "delinquent_decline": 0.4, "default_review": 0.08,
            "default_decline": 0.2}  # fmt: skip
    segments = tmp_path / "segments.json"
    segments.write_text(json.dumps({"thin_file_events": 10, "segments": [
        {"name": "thin", "file": "thin", **cuts, "delinquent_decline": 0.25},
        {"name": "small", "file": "established", "amount_max": 1000, **cuts},
        {"name": "large", "file": "established", "amount_min": 1000, **cuts}]}))  # fmt: skip
    assert main(["thresholds", "simulate", "--segments", str(segments), "--out", str(out),
                 "--bootstrap", kafka.bootstrap_servers]) == 0  # fmt: skip
    assert "by segment" in capsys.readouterr().out
    by_segment = msgspec.json.decode(out.read_bytes(), type=WhatIf).segments
    assert list(by_segment) == ["thin", "small", "large"]
    assert sum(cur.posts for cur, _ in by_segment.values()) == len(stream)
    assert all(cur.posts for cur, _ in by_segment.values())
    assert by_segment["thin"][1].decline >= by_segment["thin"][0].decline
    segments.write_text('{"segments": [{"name": "all", "file": "thin"}]}')
    assert main(["thresholds", "simulate", "--segments", str(segments),
                 "--bootstrap", kafka.bootstrap_servers]) == 1  # fmt: skip
    assert "cannot read the segments" in capsys.readouterr().err

    broker = ["--bootstrap", kafka.bootstrap_servers]
    decline_all = ["thresholds", "set", "--delinquent-decline", "0", "--delinquent-review", "0",
                   "--by", "alice", "--reason", "stop lending", *broker]  # fmt: skip

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script: no one to ask
    assert main(decline_all) == 1
    captured = capsys.readouterr()
    assert "decline rate by +" in captured.err and "confirm with --yes" in captured.err
    assert "decline rate" in captured.out  # the diff was shown first
    monkeypatch.setattr("sys.stdin", Terminal("no\n"))
    assert main(decline_all) == 1
    assert "not confirmed" in capsys.readouterr().err
    assert read_latest(kafka, topics.thresholds) is None
    assert read_history(kafka, topics.thresholds_audit).changes == []

    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    assert main(decline_all) == 0
    assert "thresholds version 1, set by alice" in capsys.readouterr().out
    assert main([*decline_all, "--yes"]) == 1  # the same values again
    assert "no change: these are the thresholds in force (version 1)" in capsys.readouterr().err

    monkeypatch.setenv("DEEPCREDIT_USER", "dana")
    assert main(["thresholds", "rollback", "--to", "0", "--reason", "too strict", "--yes",
                 *broker]) == 0  # fmt: skip
    capsys.readouterr()
    back = read_latest(kafka, topics.thresholds)
    assert back is not None and back.version == 2 and back.updated_by == "dana"
    assert {n: getattr(back, n) for n in ("delinquent_review", "default_decline")} == {
        "delinquent_review": DEFAULT_THRESHOLDS.delinquent_review,
        "default_decline": DEFAULT_THRESHOLDS.default_decline,
    }
    assert main(["thresholds", "rollback", "--to", "2", "--reason", "x", "--yes", *broker]) == 1
    assert "no change" in capsys.readouterr().err
    assert main(["thresholds", "rollback", "--to", "7", "--reason", "x", *broker]) == 1
    assert "version 7 is not in the audit trail" in capsys.readouterr().err

    history = read_history(kafka, topics.thresholds_audit)
    [first, second] = history.changes
    assert (first.action, first.by, first.reason, first.old.version, first.new.version) == (
        "set",
        "alice",
        "stop lending",
        0,
        1,
    )
    assert first.effect is not None and first.effect.candidate.decline == len(stream)
    assert (second.action, second.rollback_to, second.by, second.old, second.new) == (
        "rollback",
        0,
        "dana",
        first.new,
        back,
    )
    assert second.effect is not None and second.effect.candidate.approve > 0

    Producer(kafka.client_config()).produce(topics.thresholds_audit, value=b"{oops")
    assert main(["thresholds", "history", *broker]) == 0
    out = capsys.readouterr().out
    assert "v1 " in out and "set by alice (from v0)" in out and "why: stop lending" in out
    assert "rollback to v0 by dana" in out and "delinquent_decline  0.000 -> 0.500" in out
    assert f"simulated on {len(stream):,} posts: approve" in out and "decline 100.0%" in out


@pytest.mark.kafka
def test_a_change_without_its_audit_record_is_not_made(
    kafka: KafkaSettings, topics: Topics
) -> None:
    with pytest.raises(ThresholdsUnavailable, match="no topic 'nope' on the broker"):
        set_thresholds(kafka, topics.thresholds, default_review=0.1, updated_by="ops",
                       note="x", timeout_s=10, audit_topic="nope")  # fmt: skip
    assert read_latest(kafka, topics.thresholds) is None
    update = set_thresholds(kafka, topics.thresholds, default_review=0.1, updated_by="ops",
                            note="x", timeout_s=10)  # fmt: skip
    [change] = read_history(kafka, topics.thresholds_audit).changes
    assert change.new == update and change.effect is None
    assert json.loads(msgspec.json.encode(change))["type"] == "thresholds_change"
