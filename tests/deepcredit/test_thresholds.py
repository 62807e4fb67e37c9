"""Live thresholds on the real broker: set, show, version rules, the background reader, the CLI."""

from __future__ import annotations

import itertools
import logging
import re
import subprocess
import time

import msgspec
import pytest
from confluent_kafka import Producer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

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
from deepcredit.waiting import wait_until
from deploy.cli import main
from tests.strategies import thresholds_like

OPS = {"updated_by": "ops", "note": "test", "timeout_s": 10.0}

# The case thresholds-malformed-record: what an admin tool writing Date.now() puts there, and a
# record with an extra field of 1,200 nested arrays. Lines for ``kcat -P -K '\t'``.
MS_RECORD = (b'{"type":"thresholds","version":2,"delinquent_review":0.25,"delinquent_decline":0.5,'
             b'"default_review":0.08,"default_decline":0.25,"updated_by":"java-admin",'
             b'"updated_at":1796037800000}')  # fmt: skip
DEEP_RECORD = (b'{"type":"thresholds","version":4,"delinquent_review":0.25,'
               b'"delinquent_decline":0.5,"default_review":0.08,"default_decline":0.2,'
               b'"updated_by":"dave","updated_at":1796037900,"note":"x","meta":'
               + b"[" * 1200 + b"]" * 1200 + b"}")  # fmt: skip


def write_raw(kafka: KafkaSettings, topic: str, value: bytes | None) -> None:
    producer = Producer(kafka.client_config())
    producer.produce(topic, key=THRESHOLDS_KEY, value=value)
    assert producer.flush(10) == 0


# -- without the broker ---------------------------------------------------------------------------


def test_defaults_are_sane_but_never_written() -> None:
    assert DEFAULT_THRESHOLDS.version == 0
    assert DEFAULT_THRESHOLDS.problem() == "version must be a positive integer, got 0"
    written = msgspec.structs.replace(DEFAULT_THRESHOLDS, version=1, updated_at=time.time())
    assert written.problem() is None
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
        (MS_RECORD, "updated_at must be Unix seconds"),
        (DEEP_RECORD, "nested too deep"),
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
    first = set_thresholds(kafka, topics.thresholds, default_decline=0.3, **{**OPS, "note": "q3"})
    assert first.version == 1
    # Thresholds not given keep their value in force: the defaults, then the first update's.
    assert (first.default_decline, first.default_review) == (0.3, DEFAULT_THRESHOLDS.default_review)
    second = set_thresholds(kafka, topics.thresholds, delinquent_review=0.2, **OPS)
    assert second.version == 2
    assert (second.delinquent_review, second.default_decline, second.note) == (0.2, 0.3, "test")
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

    assert main(["thresholds", "set", "--default-review", "0.9", "--by", "bob", "--reason", "x",
                 *broker]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("deepcredit: error: thresholds not changed: default_review (0.9)")
    assert err.count("\n") == 1

    assert main(["thresholds", "set", "--default-review", "0.1", "--by", "bob", "--version",
                 "1", "--reason", "x", *broker]) == 1  # fmt: skip
    assert "version 1 is not above version 1" in capsys.readouterr().err
    assert read_latest(kafka, topics.thresholds, 10.0).version == 1  # type: ignore[union-attr]


def test_cli_set_needs_something_to_change(capsys: pytest.CaptureFixture) -> None:
    assert main(["thresholds", "set", "--by", "alice", "--reason", "x", "--bootstrap",
                 "127.0.0.1:1"]) == 1  # fmt: skip
    assert "nothing to change" in capsys.readouterr().err


def test_cli_show_without_a_broker_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["thresholds", "show", "--bootstrap", "127.0.0.1:1", "--timeout", "0.5"]) == 1
    assert capsys.readouterr().err.startswith("deepcredit: error: cannot reach the broker")


# -- any record on the topic ----------------------------------------------------------------------


def skipped(topic: str, reason: str) -> float:
    """This process's count of ``topic``'s records skipped for ``reason``."""
    return REGISTRY.get_sample_value("deepcredit_control_records_skipped_total",
                                     {"topic": topic, "reason": reason}) or 0.0  # fmt: skip


def kcat_write(kcat: str, kafka: KafkaSettings, topic: str, value: bytes) -> None:
    done = subprocess.run([kcat, "-P", "-b", kafka.bootstrap_servers, "-t", topic, "-K", "\t"],
                          input=THRESHOLDS_KEY + b"\t" + value + b"\n", capture_output=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.kafka
def test_a_malformed_record_is_skipped_by_the_flow_show_and_set(
    kafka: KafkaSettings,
    topics: Topics,
    kcat: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """The case thresholds-malformed-record, step by step: both records skipped, ``show`` and
    ``set`` keep working, later versions still apply live."""
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.thresholds.removesuffix("thresholds"))
    topic, broker = topics.thresholds, ["--bootstrap", kafka.bootstrap_servers]
    applied: list[ThresholdUpdate] = []
    with LiveThresholds(kafka, topic, on_change=applied.append) as live:  # the flow's watcher
        assert main(["thresholds", "set", "--default-decline", "0.3", "--by", "alice",
                     "--reason", "test", *broker]) == 0  # fmt: skip
        assert live.wait_for_version(1, timeout_s=5)

        kcat_write(kcat, kafka, topic, MS_RECORD)
        wait_until(lambda: skipped(topic, "invalid") == 1, 10, what="the watcher skipping it")
        capsys.readouterr()
        assert main(["thresholds", "show", *broker]) == 0
        out = capsys.readouterr().out
        assert "thresholds version 1, set by alice" in out
        assert "1 of 2 records on" in out and "skipped" in out

        assert main(["thresholds", "set", "--default-decline", "0.28", "--by", "carol",
                     "--reason", "test", *broker]) == 0  # fmt: skip
        assert "thresholds version 2, set by carol" in capsys.readouterr().out
        assert live.wait_for_version(2, timeout_s=5)

        kcat_write(kcat, kafka, topic, DEEP_RECORD)
        wait_until(lambda: skipped(topic, "not_json") == 1, 10, what="the watcher skipping it")
        assert main(["thresholds", "show", *broker]) == 0
        out = capsys.readouterr().out
        assert "thresholds version 2, set by carol" in out and "2 of 4 records on" in out

        assert main(["thresholds", "set", "--default-decline", "0.15", "--by", "erin",
                     "--reason", "test", *broker]) == 0  # fmt: skip
        assert live.wait_for_version(3, timeout_s=5)
        erin = live.current()
        assert (erin.version, erin.updated_by, erin.default_decline) == (3, "erin", 0.15)
        assert [t.updated_by for t in applied] == ["alice", "carol", "erin"]
        assert live.last_change_latency_s is not None and 0 <= live.last_change_latency_s < 5
    assert live._thread is not None and not live._thread.is_alive()

    # A restarted flow catches up at once, on the last valid version.
    started = time.monotonic()
    with LiveThresholds(kafka, topic) as restarted:
        assert restarted.caught_up and restarted.current() == erin
        assert time.monotonic() - started < 5


@pytest.mark.kafka
def test_no_bytes_on_the_topic_stop_the_watcher_or_put_invalid_thresholds_in_force(
    kafka: KafkaSettings, topics: Topics
) -> None:
    """Whatever is written, the watcher goes on, agrees with a one-shot read, and applies a
    valid record with a higher version next (here: one ``set_thresholds`` writes)."""
    topic = topics.thresholds
    applied: list[ThresholdUpdate] = []
    producer = Producer(kafka.client_config())
    reviews = itertools.cycle([0.05, 0.06])
    with LiveThresholds(kafka, topic, on_change=applied.append) as live:

        # Ten examples: each ends in a Kafka transaction (about a second); the 'thresholds'
        # fuzz target (deepcredit fuzz) goes wide on the bytes.
        @settings(max_examples=10, deadline=None)
        @given(st.lists(st.binary(max_size=64) | thresholds_like() | st.none(), max_size=4))
        def anything_then_a_valid_update(values: list[bytes | None]) -> None:
            for value in values:
                producer.produce(topic, key=THRESHOLDS_KEY, value=value)
            assert producer.flush(10) == 0
            # Each update a change: the same values again would be refused as a no-op.
            update = set_thresholds(kafka, topic, default_review=next(reviews), **OPS)
            assert live.wait_for_version(update.version, timeout_s=10)
            assert live.current() == read_latest(kafka, topic)

        anything_then_a_valid_update()
        assert live._thread is not None and live._thread.is_alive()
    assert all(t.problem() is None for t in applied)
    assert [t.version for t in applied] == sorted({t.version for t in applied})
