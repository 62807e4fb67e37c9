"""Crash recovery against the real broker: ``deepcredit serve`` is SIGKILLed mid-stream, twice,
and restarted. Every post is scored at least once, a repeat is the same score under the same
event id, and the users' final states equal those of an uninterrupted run. A restart whose
stored offsets the clicks topic does not hold (recreated) refuses to start."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

from dataflow.flow import FlowConfig, _SeededKafkaSource
from deepcredit.events import ClickEvent
from deepcredit.kafka_io import read_to_end, watermarks
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until
from scorer.artifact import load_scorer
from state.recovery_store import read_input_offsets, read_states
from state.seed import Seed, write_seed
from tests.serving import serve_process
from tests.streams import clicks_lines, expected_scores, read_scores, recreate, send


def wait_for_scores(kafka: KafkaSettings, topic: str, at_least: int, timeout_s: float) -> int:
    """How many scores ``topic`` holds, once at least ``at_least``."""
    return wait_until(lambda: n if (n := len(read_to_end(kafka, topic))) >= at_least else 0,
                      timeout_s, 0.3, what=f"{at_least} scores on {topic}")


def test_sigkill_mid_stream_loses_nothing_and_changes_no_state(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, clicks: list[ClickEvent],
    model_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    w = load_scorer(model_dir)
    expected, final_states = expected_scores(w, clicks)
    lines = clicks_lines(clicks_file)
    recovery, log = tmp_path / "recovery", tmp_path / "serve.log"
    args = ("--recovery-dir", str(recovery), "--metrics-port", "0")
    # The first run snapshots every second, so its restart usually resumes from a snapshot
    # mid-stream; the second snapshots only after an hour, so it is killed before any of its
    # epochs ends and what it scored is scored again: repeats however loaded the machine is.
    # The second half of the stream comes only after the first kill, so the second run has
    # posts of its own to score (a first run fast enough could have scored everything).
    snapshots = ("1", "3600")
    half = len(lines) // 2

    # The first half arrives over ~3 s in slices while the first run runs.
    def trickle() -> None:
        for start in range(0, half, 250):
            send(kafka, topics.clicks, lines[start : min(start + 250, half)])
            time.sleep(0.25)

    feeder = threading.Thread(target=trickle)
    flow = serve_process(kafka, topics, model_dir, *args, "--snapshot-seconds", snapshots[0],
                         log=log)  # fmt: skip
    feeder.start()
    kills, at_least, scored_before_kill = 0, 1, []
    for restart in range(2):
        n = wait_for_scores(kafka, topics.risk_scores, at_least, timeout_s=60)
        time.sleep(0.7)  # a little more output before the kill
        flow.send_signal(signal.SIGKILL)
        assert flow.wait(10) == -signal.SIGKILL
        kills += 1
        scored_before_kill.append(n)
        if restart == 0:
            feeder.join()
            # The second run must write scores of its own before it is killed.
            at_least = len(read_to_end(kafka, topics.risk_scores)) + 1
            flow = serve_process(kafka, topics, model_dir, *args, "--snapshot-seconds",
                                 snapshots[1], log=log)  # fmt: skip
            send(kafka, topics.clicks, lines[half:])
    assert scored_before_kill[0] < len(expected), "the first kill came after the stream ended"
    # The last run reads to the end of the clicks topic and stops.
    final = serve_process(kafka, topics, model_dir, *args, "--snapshot-seconds", "1",
                          "--until-end", log=log)  # fmt: skip
    assert final.wait(120) == 0, log.read_text()[-3000:]

    scores = read_scores(kafka, topics.risk_scores)
    by_event: dict[str, set[tuple[float, float]]] = defaultdict(set)
    for s in scores:
        by_event[s.event_id].add((s.p_delinquent, s.p_default))
    assert set(by_event) == set(expected)  # every post scored at least once, nothing else
    assert all(v == {expected[k]} for k, v in by_event.items())  # repeats: the same score
    assert kills == 2
    assert len(scores) > len(expected)  # the kills did cost repeats: replays were exercised
    assert read_states(recovery) == final_states


CASES = Path(__file__).parents[1] / "cases"


def test_a_recreated_clicks_topic_stops_the_restart_instead_of_skipping_clicks(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    """Case topic-recreated-offsets: the recovery store resumes the clicks past the new topic's
    end. The restart refuses, naming the partitions, the stored offsets and the topic's ends;
    nothing is scored; with an empty recovery directory the new clicks are all scored."""
    lines = clicks_lines(clicks_file)[:1500]
    send(kafka, topics.clicks, lines)
    recovery, log = tmp_path / "recovery", tmp_path / "serve.log"
    args = ("--recovery-dir", str(recovery), "--metrics-port", "0", "--until-end")
    first = serve_process(kafka, topics, model_dir, *args, log=log)
    assert first.wait(120) == 0, log.read_text()[-3000:]
    scored = len(read_scores(kafka, topics.risk_scores))
    stored = read_input_offsets(recovery, topics.clicks)
    assert sum(stored.values()) == len(lines)

    recreate(kafka, topics.clicks, partitions=3)
    after = clicks_lines(CASES / "topic-recreated-offsets" / "input-after-recreate.jsonl")
    send(kafka, topics.clicks, after)
    ends = {p: high for p, (_, high) in watermarks(kafka, topics.clicks).items()}
    second = serve_process(kafka, topics, model_dir, *args, log=log)
    assert second.wait(120) == 1
    text = log.read_text()
    past = ", ".join(f"partition {p} at {stored[p]} (the topic ends at {ends[p]})"
                     for p in sorted(stored) if stored[p] > ends[p])  # fmt: skip
    assert (f"deepcredit: error: the recovery directory {recovery} holds offsets of "
            f"{topics.clicks} past the end: {past} (the topic was recreated?)") in text  # fmt: skip
    assert "start with an empty --recovery-dir" in text
    assert "Traceback" not in text
    assert len(read_scores(kafka, topics.risk_scores)) == scored  # nothing scored, silently or not

    fresh = serve_process(kafka, topics, model_dir, "--recovery-dir", str(tmp_path / "fresh"),
                          *args[2:], log=log)  # fmt: skip
    assert fresh.wait(120) == 0, log.read_text()[-3000:]
    new_posts = {msgspec.json.decode(line)["event_id"] for line in after}
    assert new_posts <= {s.event_id for s in read_scores(kafka, topics.risk_scores)}


def test_a_seed_past_the_topics_end_stops_the_start(
    kafka: KafkaSettings, topics: Topics, model_dir: Path, tmp_path: Path
) -> None:
    send(kafka, topics.clicks, [b'{"user_id": "u1"}'] * 3)
    ends = {p: high for p, (_, high) in watermarks(kafka, topics.clicks).items()}
    write_seed(tmp_path / "seed", Seed(model_version=load_scorer(model_dir).version,
                                       topic=topics.clicks, offsets={0: 500, 1: 0, 2: 0},
                                       states={}, created_at=0.0))  # fmt: skip
    log = tmp_path / "serve.log"
    flow = serve_process(kafka, topics, model_dir, "--seed", str(tmp_path / "seed"),
                         "--recovery-dir", str(tmp_path / "recovery"), "--metrics-port", "0",
                         "--until-end", log=log)  # fmt: skip
    assert flow.wait(120) == 1
    text = log.read_text()
    assert (f"the cut-over seed {tmp_path / 'seed'} holds offsets of {topics.clicks} past the "
            f"end: partition 0 at 500 (the topic ends at {ends[0]})") in text  # fmt: skip
    assert "Run the cut-over again" in text
    assert read_scores(kafka, topics.risk_scores) == []


def test_an_offset_out_of_range_met_while_running_is_an_error_not_a_jump(
    kafka: KafkaSettings, topics: Topics
) -> None:
    """A partition resumed past the end (the start-up check bypassed, or the topic recreated
    while the flow runs) stops the flow instead of jumping to the end."""
    send(kafka, topics.clicks, [b'{"user_id": "u1"}'] * 3)
    source = _SeededKafkaSource(FlowConfig(kafka, topics), {})
    assert len(source.list_parts()) == 3
    part = source.build_part("t.clicks", f"0-{topics.clicks}", 10_000)
    try:
        with pytest.raises(RuntimeError, match="Offset out of range"):
            wait_until(lambda: part.next_batch() and False, 30, what="an error")
    finally:
        part.close()
