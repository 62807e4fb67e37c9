"""Crash recovery against the real broker: ``deepcredit serve`` is SIGKILLed mid-stream, twice,
and restarted. Every post is scored at least once, a repeat is the same score under the same
event id, and the users' final states equal those of an uninterrupted run."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

from deepcredit.events import ClickEvent
from deepcredit.kafka_io import read_to_end
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until
from scorer.artifact import load_scorer
from state.recovery_store import read_states
from tests.serving import serve_process
from tests.streams import clicks_lines, expected_scores, read_scores, send


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
    args = ("--recovery-dir", str(recovery), "--snapshot-seconds", "1", "--metrics-port", "0")

    # The clickstream arrives over ~6 s in slices while the flow runs, is killed and restarts.
    def trickle() -> None:
        for start in range(0, len(lines), 250):
            send(kafka, topics.clicks, lines[start : start + 250])
            time.sleep(0.25)

    feeder = threading.Thread(target=trickle)
    flow = serve_process(kafka, topics, model_dir, *args, log=log)
    feeder.start()
    kills, at_least, scored_before_kill = 0, 1, []
    for _ in range(2):
        n = wait_for_scores(kafka, topics.risk_scores, at_least, timeout_s=60)
        time.sleep(0.7)  # inside an epoch, with output not yet snapshotted
        flow.send_signal(signal.SIGKILL)
        assert flow.wait(10) == -signal.SIGKILL
        kills += 1
        scored_before_kill.append(n)
        at_least = n + 1  # the restarted flow must make progress before the next kill
        flow = serve_process(kafka, topics, model_dir, *args, log=log)
    feeder.join()
    assert scored_before_kill[0] < len(expected), "the first kill came after the stream ended"
    flow.send_signal(signal.SIGKILL)
    flow.wait(10)
    # The last run reads to the end of the clicks topic and stops.
    final = serve_process(kafka, topics, model_dir, *args, "--until-end", log=log)
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
