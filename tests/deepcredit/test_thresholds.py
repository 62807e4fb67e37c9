"""Live thresholds on the real broker: set, show, version rules, the background reader, the CLI."""

from __future__ import annotations

import logging
import re
import time

import msgspec
import pytest
from confluent_kafka import Producer

from deepcredit.codec import encode
from deepcredit.records import Decision, ThresholdUpdate
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import (
    DEFAULT_THRESHOLDS,
    THRESHOLDS_KEY,
    InvalidThresholds,
    LiveThresholds,
    decode_thresholds,
    describe,
    read_latest,
    set_thresholds,
)
from deploy.cli import main

OPS = {"updated_by": "ops", "timeout_s": 10.0}


def write_raw(kafka: KafkaSettings, topic: str, value: bytes | None) -> None:
    producer = Producer(kafka.client_config())
    producer.produce(topic, key=THRESHOLDS_KEY, value=value)
    assert producer.flush(10) == 0


# -- without the broker ---------------------------------------------------------------------------


def test_defaults_are_sane_but_never_written() -> None:
    assert DEFAULT_THRESHOLDS.version == 0
    assert DEFAULT_THRESHOLDS.problem() == "version must be a positive integer, got 0"
    assert msgspec.structs.replace(DEFAULT_THRESHOLDS, version=1).problem() is None
    assert DEFAULT_THRESHOLDS.decide(p_delinquent=0.01, p_default=0.01) is Decision.APPROVE
    assert DEFAULT_THRESHOLDS.decide(p_delinquent=0.6, p_default=0.01) is Decision.DECLINE
    assert "built-in defaults" in describe(DEFAULT_THRESHOLDS)


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (None, "tombstone"),
        (b"not json", "not a thresholds record"),
        (b'{"type":"score","version":2}', "not a thresholds record"),
        (encode(msgspec.structs.replace(DEFAULT_THRESHOLDS, version=2, default_review=0.9)),
         "must not exceed"),
    ],
)  # fmt: skip
def test_decode_thresholds_says_why_not(value: bytes | None, complaint: str) -> None:
    problem = decode_thresholds(value)
    assert isinstance(problem, str) and complaint in problem


# -- against the broker ---------------------------------------------------------------------------


@pytest.mark.kafka
def test_set_then_read_latest_with_versions_counting_up(
    kafka: KafkaSettings, topics: Topics
) -> None:
    assert read_latest(kafka, topics.thresholds, 10.0) is None
    first = set_thresholds(kafka, topics.thresholds, default_decline=0.3, note="q3", **OPS)
    assert first.version == 1
    # Thresholds not given keep their value in force: the defaults, then the first update's.
    assert (first.default_decline, first.default_review) == (0.3, DEFAULT_THRESHOLDS.default_review)
    second = set_thresholds(kafka, topics.thresholds, delinquent_review=0.2, **OPS)
    assert second.version == 2
    assert (second.delinquent_review, second.default_decline, second.note) == (0.2, 0.3, "")
    assert read_latest(kafka, topics.thresholds, 10.0) == second
    assert set_thresholds(kafka, topics.thresholds, default_review=0.05, version=10,
                          **OPS).version == 10  # fmt: skip
    assert set_thresholds(kafka, topics.thresholds, default_review=0.06, **OPS).version == 11


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"default_review": 1.5}, "default_review must be a probability in [0, 1], got 1.5"),
        ({"delinquent_review": 0.9}, "delinquent_review (0.9) must not exceed"),
        ({"updated_by": ""}, "updated_by must name who"),
        ({"version": 0}, "version must be a positive integer"),
    ],
)
def test_invalid_thresholds_are_refused_and_nothing_is_written(
    kafka: KafkaSettings, topics: Topics, change: dict, complaint: str
) -> None:
    with pytest.raises(InvalidThresholds, match=re.escape(complaint)):
        set_thresholds(kafka, topics.thresholds, **{**OPS, **change})
    assert read_latest(kafka, topics.thresholds, 10.0) is None


@pytest.mark.kafka
def test_a_version_not_above_the_one_in_force_is_refused(
    kafka: KafkaSettings, topics: Topics
) -> None:
    set_thresholds(kafka, topics.thresholds, default_review=0.1, version=5, **OPS)
    for version in (4, 5):
        with pytest.raises(InvalidThresholds, match=f"version {version} is not above version 5"):
            set_thresholds(kafka, topics.thresholds, default_review=0.12, version=version, **OPS)
    assert read_latest(kafka, topics.thresholds, 10.0).version == 5  # type: ignore[union-attr]


@pytest.mark.kafka
def test_read_latest_skips_invalid_and_older_records(
    kafka: KafkaSettings, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    good = set_thresholds(kafka, topics.thresholds, default_review=0.1, version=3, **OPS)
    write_raw(kafka, topics.thresholds, b"{oops")
    write_raw(kafka, topics.thresholds, encode(msgspec.structs.replace(good, version=2)))
    with caplog.at_level(logging.WARNING, logger="deepcredit.thresholds"):
        assert read_latest(kafka, topics.thresholds, 10.0) == good
    assert "not a thresholds record" in caplog.text
    assert "version 2 is not above version 3" in caplog.text


@pytest.mark.kafka
def test_live_thresholds_load_what_is_there_then_follow_changes(
    kafka: KafkaSettings, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    stored = set_thresholds(kafka, topics.thresholds, default_decline=0.4, **OPS)
    seen: list[ThresholdUpdate] = []
    with LiveThresholds(kafka, topics.thresholds, on_change=seen.append) as live:
        # start() waited for the stored record: no post is scored with the defaults.
        assert live.caught_up and live.current() == stored
        assert live.last_change_latency_s is None  # a stored record is not a change

        with caplog.at_level(logging.WARNING, logger="deepcredit.thresholds"):
            write_raw(kafka, topics.thresholds, b'{"type":"thresholds","version":99}')
            changed = set_thresholds(kafka, topics.thresholds, default_decline=0.35, **OPS)
            assert live.wait_for_version(2, timeout_s=5)
        assert live.current() == changed
        assert live.current().decide(p_delinquent=0.0, p_default=0.36) is Decision.DECLINE
        assert seen == [stored, changed]
        assert live.last_change_latency_s is not None and 0 <= live.last_change_latency_s < 5
        assert live.applied_at is not None and live.applied_at >= changed.updated_at
        assert "skipped: not a thresholds record" in caplog.text
        assert not live.wait_for_version(3, timeout_s=0.3)
    assert live._thread is not None and not live._thread.is_alive()


@pytest.mark.kafka
def test_live_thresholds_start_with_the_defaults_on_an_empty_topic(
    kafka: KafkaSettings, topics: Topics
) -> None:
    started = time.monotonic()
    with LiveThresholds(kafka, topics.thresholds) as live:
        assert live.current() is DEFAULT_THRESHOLDS
        assert time.monotonic() - started < 5  # nothing to wait for


@pytest.mark.kafka
def test_cli_set_and_show(
    kafka: KafkaSettings,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.thresholds.removesuffix("thresholds"))
    broker = ["--bootstrap", kafka.bootstrap_servers]

    assert main(["thresholds", "show", *broker]) == 0
    assert "built-in defaults are in force" in capsys.readouterr().out

    assert main(["thresholds", "set", "--default-decline", "0.3", "--by", "alice",
                 "--note", "tighter", *broker]) == 0  # fmt: skip
    assert "thresholds version 1, set by alice" in capsys.readouterr().out

    assert main(["thresholds", "show", *broker]) == 0
    out = capsys.readouterr().out
    assert "version 1, set by alice" in out and "note: tighter" in out and "0.300" in out

    assert main(["thresholds", "set", "--default-review", "0.9", "--by", "bob", *broker]) == 1
    err = capsys.readouterr().err
    assert err.startswith("deepcredit: error: thresholds not changed: default_review (0.9)")
    assert err.count("\n") == 1

    assert main(["thresholds", "set", "--default-review", "0.1", "--by", "bob", "--version",
                 "1", *broker]) == 1  # fmt: skip
    assert "version 1 is not above version 1" in capsys.readouterr().err
    assert read_latest(kafka, topics.thresholds, 10.0).version == 1  # type: ignore[union-attr]


def test_cli_set_needs_something_to_change(capsys: pytest.CaptureFixture) -> None:
    assert main(["thresholds", "set", "--by", "alice", "--bootstrap", "127.0.0.1:1"]) == 1
    assert "nothing to change" in capsys.readouterr().err


def test_cli_show_without_a_broker_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["thresholds", "show", "--bootstrap", "127.0.0.1:1", "--timeout", "0.5"]) == 1
    assert capsys.readouterr().err.startswith("deepcredit: error: cannot reach the broker")
