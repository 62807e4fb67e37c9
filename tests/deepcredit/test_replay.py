"""``replay`` and ``deepcredit replay`` against the real broker: complete, keyed, paced; and
however it stops (SIGTERM, a refused message, an error), what it handed over arrives and it
says where to go on."""

from __future__ import annotations

import gzip
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from deepcredit.codec import encode
from deepcredit.kafka_io import read_to_end, watermarks
from deepcredit.replay import ReplayError, ReplayReport, _Through, replay, user_key
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until
from deploy.cli import main
from tests.deepcredit.test_kafka_io import ensure_small_topic
from tests.deepcredit.test_kafka_roundtrip import consume
from tests.strategies import make_events

CASES = Path(__file__).parents[1] / "cases"
BAD_LINES = [b'{"event_id": "bad-1", "user_id": "u1", "activity"', b'["not", "an", "object"]']


def write_events(path: Path, n: int, *, bad: bool = False) -> list[bytes]:
    lines = [encode(e) for e in make_events(n, users=7, seed=11)]
    if bad:
        lines[3:3] = BAD_LINES
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(b"".join(line + b"\n" for line in lines))
    return lines


def test_user_key_is_the_user_id_or_none() -> None:
    assert user_key(b'{"user_id": "u1", "amount": "junk", "extra": [1, 2]}') == b"u1"
    assert user_key(b'{"user_id": 42}') is None
    assert user_key(b'{"user_id": ""}') is None
    assert user_key(b'["u1"]') is None
    assert user_key(b"\xff\xfe") is None
    for bad in ("   ", "u1\\u0000", " u1", "u\\u200b1"):  # the id rule of canonical_id
        assert user_key(b'{"user_id": "%s"}' % bad.encode()) is None


def test_user_keys_of_the_forms_of_one_id_are_one_key() -> None:
    """Case unicode-user-id-split: the NFC and NFD forms of a user id go to one partition."""
    lines = (CASES / "unicode-user-id-split" / "input.jsonl").read_bytes().splitlines()
    assert {user_key(line) for line in lines} == {"zo\u00eb.test-user".encode()}


def test_report_rate_and_description() -> None:
    report = ReplayReport(sent=50, delivered=50, seconds=0.5, offsets={0: (0, 20), 2: (5, 33)})
    assert report.rate == 100.0
    assert "p0 0..20, p2 5..33" in report.describe()


def test_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(FileNotFoundError, match="no such events file"):
        replay("/no/such/file.jsonl", KafkaSettings("127.0.0.1:1"), "clicks")
    assert main(["replay", "/no/such/file.jsonl"]) == 1
    assert "no such events file: /no/such/file.jsonl" in capsys.readouterr().err


@pytest.mark.kafka
def test_replay_arrives_complete_as_is_and_keyed_by_user(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    lines = write_events(tmp_path / "events.jsonl.gz", 200, bad=True)
    report = replay(tmp_path / "events.jsonl.gz", kafka, topics.clicks, progress=False)
    assert (report.sent, report.delivered, report.unkeyed) == (202, 202, 2)
    assert sum(last - first + 1 for first, last in report.offsets.values()) == 202

    messages = consume(kafka, topics.clicks, len(lines))
    assert sorted(m.value() for m in messages) == sorted(lines)  # byte for byte, bad lines too
    assert all(m.key() == user_key(m.value()) for m in messages)
    assert Counter(m.key() for m in messages)[None] == 2  # the two that are no JSON object
    # Each user's events in one partition, in file order.
    by_user: dict[bytes, list[bytes]] = {}
    partitions: dict[bytes, set[int]] = {}
    for m in messages:
        if m.key() is not None:
            by_user.setdefault(m.key(), []).append(m.value())
            partitions.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in partitions.values())
    for key, values in by_user.items():
        assert values == [line for line in lines if user_key(line) == key]


@pytest.mark.kafka
def test_replay_sends_every_line_of_the_deep_nesting_case(kafka: KafkaSettings,
                                                          topics: Topics) -> None:  # fmt: skip
    """Case deep-nesting-crash: ``user_key`` died on the deep line, losing the line before."""
    path = CASES / "deep-nesting-crash" / "input.jsonl"
    report = replay(path, kafka, topics.clicks, progress=False)
    assert (report.sent, report.delivered, report.unkeyed) == (3, 3, 1)
    messages = consume(kafka, topics.clicks, 3)
    assert sorted(m.value() for m in messages) == sorted(path.read_bytes().splitlines())


@pytest.mark.kafka
def test_replay_paces_to_the_rate_and_stops_at_the_limit(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    write_events(tmp_path / "events.jsonl", 200)
    report = replay(tmp_path / "events.jsonl", kafka, topics.clicks, rate=100, limit=50,
                    progress=False)  # fmt: skip
    assert (report.sent, report.delivered) == (50, 50)
    assert 0.35 <= report.seconds < 5.0  # 50 events at 100/s: about 0.5 s
    assert report.rate < 150


@pytest.mark.kafka
def test_replay_command(
    kafka: KafkaSettings,
    topics: Topics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    write_events(tmp_path / "events.jsonl", 30)
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    broker = ["--bootstrap", kafka.bootstrap_servers]
    assert main(["replay", str(tmp_path / "events.jsonl"), "--limit", "20", "--quiet",
                 *broker]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"to topic {topics.clicks}" in out
    assert "sent                20" in out and "delivered           20" in out
    assert len(consume(kafka, topics.clicks, 20, timeout_s=10)) == 20

    assert main(["replay", str(tmp_path / "events.jsonl"), "--rate", "0", *broker]) == 1
    assert "rate must be a positive number" in capsys.readouterr().err


def test_through_is_the_delivered_prefix_whatever_the_order() -> None:
    through = _Through(10)
    for line in (12, 14, 11):
        through.add(line)
    assert through.line == 12  # 13 is missing
    through.add(13)
    assert through.line == 14


def test_a_stopped_replay_says_where_to_go_on() -> None:
    report = ReplayReport(sent=50, delivered=50, skipped=100, through=150, seconds=1.0,
                          stopped_by="SIGTERM")  # fmt: skip
    assert "resume      lines 1..150 are on the topic: go on with --skip 150" in report.describe()
    assert "resume" not in ReplayReport(sent=5, delivered=5, through=5).describe()


def _many_lines(path: Path, n: int) -> list[bytes]:
    lines = [b'{"event_id": "e%d", "user_id": "u%d", "activity": "lend", "pad": "%s"}'
             % (i, i % 97, b"x" * 40) for i in range(n)]  # fmt: skip
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return lines


@pytest.mark.kafka
def test_sigterm_mid_stream_delivers_what_was_handed_over_and_says_where_to_resume(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case replay-sigterm-loss: ``deepcredit replay`` stopped as docker stop, systemd or k8s
    stop it. Every line it reports delivered is on the topic, the count on the topic is its
    delivered count, and going on with --skip completes the file."""
    lines = _many_lines(tmp_path / "events.jsonl", 40_000)
    monkeypatch.setenv("DEEPCREDIT_BOOTSTRAP", kafka.bootstrap_servers)
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    cmd = [sys.executable, "-m", "deploy.cli", "replay", str(tmp_path / "events.jsonl"),
           "--quiet", "--rate", "5000"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: sum(h for _, h in watermarks(kafka, topics.clicks).values()) > 500,
                   60, what="the replay under way")  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert b"stopped by SIGTERM" in err and b"Traceback" not in err
    report = out.decode()
    delivered = int(re.search(r"delivered\s+([\d,]+)", report)[1].replace(",", ""))
    through = int(re.search(r"go on with --skip (\d+)", report)[1])
    on_topic = [m.value() for m in read_to_end(kafka, topics.clicks)]
    assert len(on_topic) == delivered == through < len(lines)  # stopped mid-stream, nothing lost
    assert set(lines[:through]) == set(on_topic)

    assert main(["replay", str(tmp_path / "events.jsonl"), "--quiet", "--skip", str(through),
                 "--bootstrap", kafka.bootstrap_servers]) == 0  # fmt: skip
    assert sorted(m.value() for m in read_to_end(kafka, topics.clicks)) == sorted(lines)


@pytest.mark.kafka
def test_a_refused_message_is_reported_with_the_lines_that_arrived(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    small = topics.clicks + "-small"
    ensure_small_topic(kafka, small, max_message_bytes=4096)
    lines = _many_lines(tmp_path / "events.jsonl", 30)
    lines[20] = b'{"event_id": "big", "user_id": "u1", "pad": "%s"}' % (b"x" * 8000)
    (tmp_path / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    # The broker's limit is on a whole batch: small batches keep the big message alone in one.
    small_batches = KafkaSettings(kafka.bootstrap_servers, {"batch.size": 1000})
    with pytest.raises(ReplayError, match="refused by the broker, first: line 21: ") as caught:
        replay(tmp_path / "events.jsonl", small_batches, small, progress=False)
    report = caught.value.report
    assert (report.failed, report.through, report.complete) == (1, 20, False)
    on_topic = [m.value() for m in read_to_end(kafka, small)]
    assert len(on_topic) == report.delivered == report.sent - 1
    assert on_topic[:20] == lines[:20]
    assert "go on with --skip 20" in report.describe()


@pytest.mark.kafka
def test_an_error_mid_file_still_delivers_what_was_sent(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    lines = _many_lines(tmp_path / "events.jsonl", 20_000)
    packed = gzip.compress((tmp_path / "events.jsonl").read_bytes())
    (tmp_path / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])  # a truncated upload
    with pytest.raises(EOFError) as caught:
        replay(tmp_path / "cut.jsonl.gz", kafka, topics.clicks, progress=False)
    [note] = caught.value.__notes__
    sent = int(re.search(r"sent\s+([\d,]+)", note)[1].replace(",", ""))
    assert f"go on with --skip {sent}" in note
    on_topic = [m.value() for m in read_to_end(kafka, topics.clicks)]
    assert 0 < len(on_topic) == sent and set(on_topic) == set(lines[:sent])
