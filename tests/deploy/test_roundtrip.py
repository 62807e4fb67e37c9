"""``deepcredit roundtrip`` against the real broker, dead-letter topic included."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from deepcredit.codec import encode
from deepcredit.records import DeadLetter
from deepcredit.settings import KafkaSettings, Topics
from deploy.cli import main
from deploy.roundtrip import SAMPLE_BAD_MESSAGES
from tests.deepcredit.test_kafka_roundtrip import consume
from tests.strategies import make_events

pytestmark = pytest.mark.kafka


def test_roundtrip_command_reports_and_dead_letters(
    kafka: KafkaSettings,
    topics: Topics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    events = make_events(500, users=20, seed=3)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(encode(e) + b"\n" for e in events))
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))

    args = ["roundtrip", str(path), "--bootstrap", kafka.bootstrap_servers, "--with-bad-messages"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "produced             503" in out
    assert "valid events         500  (500 identical to what was sent)" in out
    assert "dead letters           3  (invalid_json 1, out_of_range 1, unknown_activity 1)" in out

    letters = [msgspec.json.decode(m.value(), type=DeadLetter)
               for m in consume(kafka, topics.dead_letter, 3)]  # fmt: skip
    assert sorted(d.payload for d in letters) == sorted(SAMPLE_BAD_MESSAGES)
    assert all(d.topic == topics.clicks and d.offset is not None for d in letters)


def test_roundtrip_of_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["roundtrip", "/no/such/file.jsonl"]) == 1
    assert "no such events file" in capsys.readouterr().err
