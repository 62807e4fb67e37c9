"""The cut-over against the real broker. Blue (``deepcredit serve``, model A) scores the stream as
it arrives and is stopped mid-stream; ``deepcredit cutover`` rebuilds every user's state under
model B at the clicks topic's end and scores what blue left unscored; green (B, from the seed)
scores the rest. Every post ends up with a score, each post's scores carry one model version,
and green's states are B's after the whole history. Clicks that retention dropped come from
the click archive. In two phases, the rebuild is prepared while blue still runs and the finish
after it stops replays only the clicks since: same seed as the one-shot."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import msgspec
import numpy as np
import pytest
from bytewax.recovery import init_db_dir
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from deepcredit.codec import decode_click
from deepcredit.events import Activity, ClickEvent
from deepcredit.kafka_io import read_to_end, watermarks
from deepcredit.records import Score
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from deepcredit.waiting import wait_until
from deploy.cli import main
from scorer.artifact import load_scorer
from scorer.user_state import UserState, decode_state
from state.cutover import (
    PREPARED_FILE,
    SUMMARY_FILE,
    CutoverConfig,
    CutoverError,
    Prepared,
    finish_cutover,
    read_prepared,
)
from state.recovery_store import read_input_offsets, read_states
from state.seed import Seed, read_seed
from tests.dataflow.test_recovery import wait_for_scores
from tests.serving import serve_process
from tests.streams import case_lines, clicks_lines, expected_scores, read_scores, send

pytestmark = pytest.mark.kafka
log = logging.getLogger(__name__)

TOLERANCE = 1e-5  # lockstep vs event by event: float32 rounding (see scorer/rebuild.py)


@pytest.fixture(scope="module")
def model_b(clicks_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second small model on the same clicks, another seed: other weights, other scores."""
    out = tmp_path_factory.mktemp("model-b")
    args = ["train", "--events", str(clicks_file), "--out-dir", str(out), "--hidden", "8",
            "--epochs", "1", "--seed", "1", "--quiet"]  # fmt: skip
    assert main(args) == 0
    [folder] = out.iterdir()
    return folder


def run_cutover(kafka: KafkaSettings, model: Path, out: Path, *extra: str) -> int:
    return main(["cutover", "--model", str(model), "--out", str(out), "--bootstrap",
                 kafka.bootstrap_servers, "--quiet", *extra])  # fmt: skip


def one_version_per_post(
    kafka: KafkaSettings, topics: Topics, blue_green: tuple, before: set[str]
) -> tuple[dict[str, list[Score]], set[str], set[str]]:
    """Every post scored, each by one model: blue's exactly A's event-by-event scores, and only
    before the cut-over offsets (``before``); the rest B's within TOLERANCE. Returns the scores
    by post, blue's posts, and the posts before the offsets that B filled in."""
    wa, wb, expected_a, expected_b, _ = blue_green
    by_event: dict[str, list[Score]] = defaultdict(list)
    for s in read_scores(kafka, topics.risk_scores):
        by_event[s.event_id].append(s)
    assert set(by_event) == set(expected_b)  # every post scored, nothing else
    assert all(len({s.model_version for s in ss}) == 1 for ss in by_event.values())
    by_blue = {k for k, ss in by_event.items() if ss[0].model_version == wa.version}
    assert by_blue <= before  # blue scored nothing past the cut-over offsets
    assert all((s.p_delinquent, s.p_default) == expected_a[k]
               for k in by_blue for s in by_event[k])  # fmt: skip
    for k in set(by_event) - by_blue:  # filled in by the cut-over, or scored by green
        [s] = by_event[k]
        assert s.model_version == wb.version
        np.testing.assert_allclose((s.p_delinquent, s.p_default), expected_b[k], atol=TOLERANCE)
    return by_event, by_blue, before - by_blue


def green_states_are_bs(recovery: Path, seed, states_b: dict) -> None:
    """Green's final states (its snapshots, or the seed's for users with nothing after the
    offsets) equal B's event-by-event states."""
    snapshots = read_states(recovery)
    assert snapshots and set(snapshots) <= set(states_b) == set(seed.states)
    for user, expected in states_b.items():
        assert_same_state(snapshots.get(user) or decode_state(seed.states[user]), expected)


@pytest.fixture
def blue_green(topics: Topics, clicks: list[ClickEvent], model_dir: Path, model_b: Path,
               monkeypatch: pytest.MonkeyPatch) -> tuple:  # fmt: skip
    """Model A (blue) and B (green), and what each scores event by event: A's probabilities
    per post, B's per post and B's final states; the CLI on this test's topics."""
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    wa, wb = load_scorer(model_dir), load_scorer(model_b)
    expected_a, _ = expected_scores(wa, clicks)
    expected_b, states_b = expected_scores(wb, clicks)
    return wa, wb, expected_a, expected_b, states_b


def test_blue_to_green_at_the_cutover_offset_loses_no_score_and_mixes_no_versions(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, blue_green: tuple, model_dir: Path,
    model_b: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    wa, wb, expected_a, expected_b, states_b = blue_green
    differ = [k for k in expected_a if abs(expected_a[k][1] - expected_b[k][1]) > 1e-3]
    assert wa.version != wb.version and len(differ) > len(expected_a) / 2
    lines = clicks_lines(clicks_file)
    # Blue sees ``first``; ``gap`` arrives after blue stopped (so the cut-over has posts to fill
    # in however fast blue was); green gets ``rest`` after the cut-over.
    first, gap, rest = lines[:2400], lines[2400:2800], lines[2800:]
    log, seed_dir = tmp_path / "serve.log", tmp_path / "seed"

    # Blue scores the first part as it arrives (over ~4 s) and is stopped, often while it
    # still arrives.
    def trickle() -> None:
        for start in range(0, len(first), 100):
            send(kafka, topics.clicks, first[start : start + 100])
            time.sleep(0.15)

    blue = serve_process(kafka, topics, model_dir, "--metrics-port", "0", "--recovery-dir",
                         str(tmp_path / "blue"), "--snapshot-seconds", "1", log=log)  # fmt: skip
    feeder = threading.Thread(target=trickle)
    feeder.start()
    wait_for_scores(kafka, topics.risk_scores, 20, timeout_s=60)
    wait_until(lambda: snapshotted(tmp_path / "blue"), 10, what="a snapshot of blue's states")
    blue.send_signal(signal.SIGTERM)
    assert blue.wait(30) == 0, log.read_text()[-3000:]
    feeder.join()
    send(kafka, topics.clicks, gap)

    assert run_cutover(kafka, model_b, seed_dir) == 0, capsys.readouterr().err
    summary = json.loads((seed_dir / SUMMARY_FILE).read_text())
    seed = read_seed(seed_dir)
    assert seed.offsets == {p: high for p, (_, high) in watermarks(kafka, topics.clicks).items()}
    assert sum(seed.offsets.values()) == len(first) + len(gap)

    # A seed for another model, or a recovery folder of the old flow, is refused.
    assert main(["serve", "--model", str(model_dir), "--seed", str(seed_dir)]) == 1
    assert f"made for model {wb.version}, this flow serves {wa.version}" in capsys.readouterr().err
    args = ["serve", "--model", str(model_b), "--seed", str(seed_dir), "--recovery-dir",
            str(tmp_path / "blue")]  # fmt: skip
    assert main(args) == 1
    assert f"holds states of model {wa.version}" in capsys.readouterr().err

    send(kafka, topics.clicks, rest)
    green = serve_process(kafka, topics, model_b, "--seed", str(seed_dir), "--recovery-dir",
                          str(tmp_path / "green"), "--metrics-port", "0", "--until-end",
                          log=log)  # fmt: skip
    assert green.wait(120) == 0, log.read_text()[-3000:]

    before = posts_before(kafka, topics, seed)
    by_event, by_blue, filled = one_version_per_post(kafka, topics, blue_green, before)
    assert by_blue and filled and set(by_event) - before
    assert summary["filled_in"] == len(filled) and summary["already_scored"] == len(by_blue)
    assert summary["posts"] == len(before) and summary["left_unscored"] == 0
    for s in (by_event[k][0] for k in filled):  # decided under the thresholds in force
        decision = DEFAULT_THRESHOLDS.decide(p_delinquent=s.p_delinquent, p_default=s.p_default)
        assert s.thresholds_version == DEFAULT_THRESHOLDS.version and s.decision == decision

    # Green's final states: its snapshots, or the seed's for users with nothing after the offsets.
    green_states_are_bs(tmp_path / "green", seed, states_b)


def snapshotted(recovery: Path) -> bool:
    try:
        return bool(read_states(recovery))
    except FileNotFoundError:
        return False


def posts_before(kafka: KafkaSettings, topics: Topics, seed: Seed) -> set[str]:
    """The event ids of the posts at offsets below the seed's."""
    return posts_below(kafka, topics, seed.offsets)


def posts_below(kafka: KafkaSettings, topics: Topics, offsets: dict[int, int]) -> set[str]:
    """The event ids of the posts at offsets below ``offsets`` (per clicks partition)."""
    out = set()
    for m in read_to_end(kafka, topics.clicks):
        e = decode_click(m.value())
        is_post = isinstance(e, ClickEvent) and e.activity is Activity.POST
        if is_post and m.offset() < offsets[m.partition()]:
            out.add(e.event_id)
    return out


def assert_same_state(got: UserState, expected: UserState) -> None:
    assert got.model_version == expected.model_version and got.memory == expected.memory
    np.testing.assert_allclose(got.hc, expected.hc, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(got.y_prev, expected.y_prev, atol=TOLERANCE, rtol=0)


def test_clicks_dropped_by_retention_are_replayed_from_the_archive(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, model_b: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    send(kafka, topics.clicks, clicks_lines(clicks_file)[:1500])
    assert run_cutover(kafka, model_b, tmp_path / "whole") == 0  # the topic holds everything
    archive = tmp_path / "archive"
    assert main(["archive", "--folder", str(archive), "--until-end", "--segment-events", "100",
                 "--bootstrap", kafka.bootstrap_servers]) == 0  # fmt: skip
    # Retention, by hand: each partition now starts inside its second archive segment.
    admin = AdminClient(kafka.client_config())
    futures = admin.delete_records([TopicPartition(topics.clicks, p, 150) for p in range(3)])
    for future in futures.values():
        future.result(timeout=30)
    assert all(low == 150 for low, _ in watermarks(kafka, topics.clicks).values())
    capsys.readouterr()

    assert run_cutover(kafka, model_b, tmp_path / "no-archive") == 1
    assert "starts at offset 150 (retention dropped the clicks before it): pass --archive" in (
        capsys.readouterr().err
    )
    assert run_cutover(kafka, model_b, tmp_path / "seed", "--archive", str(archive)) == 0
    whole, seed = read_seed(tmp_path / "whole"), read_seed(tmp_path / "seed")
    assert seed.offsets == whole.offsets and seed.states == whole.states
    summary = json.loads((tmp_path / "seed" / SUMMARY_FILE).read_text())
    assert summary["from_archive"] == 3 * 200  # two segments of 100 per partition, then the topic
    assert summary["filled_in"] == 0  # the first cut-over scored every post


def test_the_cutover_skips_and_counts_conflicting_duplicates_as_the_flow_does(
    kafka: KafkaSettings, topics: Topics, model_b: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The ``dup-id-different-content`` case: L2 reuses L1's event id. Skipped in the prepared
    history and in the finish's tail (and counted), a true resend of L1 skipped silently; L1
    alone is scored, and the seed's state is the state after L1 and its borrow."""
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    lines = [value for _, value in case_lines("dup-id-different-content", "input.jsonl")]
    send(kafka, topics.clicks, lines)
    out = tmp_path / "seed"
    assert run_cutover(kafka, model_b, out, "--prepare") == 0, capsys.readouterr().err
    assert read_prepared(out).conflicts == 1
    send(kafka, topics.clicks, [lines[2], lines[0]])  # L2 again, and L1 resent
    assert run_cutover(kafka, model_b, out, "--finish") == 0, capsys.readouterr().err
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["conflicting_duplicates"] == 2 and summary["filled_in"] == 1
    w = load_scorer(model_b)
    l1, borrow = (decode_click(line) for line in lines[:2])
    expected, states = expected_scores(w, [l1, borrow])
    [score] = read_scores(kafka, topics.risk_scores)
    assert (score.event_id, score.loan_id) == ("e1", "L1")
    np.testing.assert_allclose((score.p_delinquent, score.p_default), expected["e1"],
                               atol=TOLERANCE)  # fmt: skip
    seeded = decode_state(read_seed(out).states["u1"])
    assert_same_state(seeded, states["u1"])
    assert (seeded.recent, seeded.prints) == (states["u1"].recent, states["u1"].prints)


def test_prepared_while_blue_runs_and_finished_after_it_stops_equals_the_one_shot(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, blue_green: tuple, model_dir: Path,
    model_b: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    wa, wb, _, _, states_b = blue_green
    lines = clicks_lines(clicks_file)
    sent = 0

    def send_next(n: int) -> None:
        nonlocal sent
        send(kafka, topics.clicks, lines[sent : sent + n])
        sent += n

    log_file, two_phase, one_shot = tmp_path / "serve.log", tmp_path / "seed", tmp_path / "one"
    blue = serve_process(kafka, topics, model_dir, "--metrics-port", "0", "--recovery-dir",
                         str(tmp_path / "blue"), log=log_file)  # fmt: skip
    send_next(1000)
    wait_for_scores(kafka, topics.risk_scores, 20, timeout_s=60)

    # Prepare while blue scores and clicks keep coming, during the prepare and after it.
    prepared_now = threading.Event()

    def trickle() -> None:
        while not prepared_now.is_set() and sent < 2400:
            send_next(20)
            time.sleep(0.05)
        for _ in range(10):
            send_next(20)
            time.sleep(0.05)

    feeder = threading.Thread(target=trickle)
    feeder.start()
    try:
        # The history spilled in buckets of 64 clicks (about 20), the one-shot's in one.
        assert run_cutover(kafka, model_b, two_phase, "--prepare", "--bucket-events",
                           "64") == 0, capsys.readouterr().err  # fmt: skip
    finally:
        prepared_now.set()
        feeder.join()
    assert "now stop the old flow" in capsys.readouterr().out
    assert sorted(p.name for p in two_phase.iterdir()) == ["prepare.lock", PREPARED_FILE]
    prepared = read_prepared(two_phase)
    assert prepared.model_version == wb.version and prepared.users == len(prepared.states)
    assert 1000 <= sum(prepared.offsets.values()) < sent - 150  # clicks came after the prepare
    # Blue answered most posts by then: those are counted, only the rest kept for the finish.
    below = posts_below(kafka, topics, prepared.offsets)
    kept = {e.event_id for e in prepared.posts}
    assert prepared.answered > len(kept) and prepared.left_unscored == 0
    assert kept <= below and prepared.answered + len(kept) == len(below)
    now = {p: high for p, (_, high) in watermarks(kafka, topics.clicks).items()}
    tail_posts = posts_below(kafka, topics, now) - posts_below(kafka, topics, prepared.offsets)
    wait_until(lambda: tail_posts & {s.event_id for s in read_scores(kafka, topics.risk_scores)},
               30, what="blue scoring a post after the prepared offsets")  # fmt: skip
    blue.send_signal(signal.SIGTERM)
    assert blue.wait(30) == 0, log_file.read_text()[-3000:]
    assert {s.model_version for s in read_scores(kafka, topics.risk_scores)} == {wa.version}

    send_next(300)  # with blue stopped: nobody scores these until the finish
    assert run_cutover(kafka, model_b, two_phase, "--finish") == 0, capsys.readouterr().err
    summary = json.loads((two_phase / SUMMARY_FILE).read_text())
    seed = read_seed(two_phase)
    assert sum(seed.offsets.values()) == sent
    assert {int(p): h for p, h in summary["prepared_offsets"].items()} == prepared.offsets
    assert summary["tail_events"] == sent - sum(prepared.offsets.values())
    assert summary["events"] == sent and 0 < summary["tail_users"] <= summary["users"]
    assert summary["prepare_s"] == prepared.prepare_s and summary["finish_s"] > 0

    # The one-shot on the same clicks: same offsets, same states; blue's gaps are filled already.
    assert run_cutover(kafka, model_b, one_shot) == 0, capsys.readouterr().err
    whole = json.loads((one_shot / SUMMARY_FILE).read_text())
    reference = read_seed(one_shot)
    assert reference.offsets == seed.offsets and set(reference.states) == set(seed.states)
    for user, state in reference.states.items():
        got, expected = decode_state(seed.states[user]), decode_state(state)
        assert_same_state(got, expected)
        assert getattr(got, "recent", None) == getattr(expected, "recent", None)  # resend ids
    assert whole["filled_in"] == 0 and whole["posts"] == summary["posts"]
    assert whole["already_scored"] == summary["already_scored"] + summary["filled_in"]
    log.info("cut-over of %d clicks, %d after the prepared offsets: finish %.3f s (prepare "
             "%.3f s) vs one-shot %.3f s", sent, summary["tail_events"], summary["finish_s"],
             summary["prepare_s"], whole["prepare_s"] + whole["finish_s"])  # fmt: skip

    send_next(len(lines) - sent)
    green = serve_process(kafka, topics, model_b, "--seed", str(two_phase), "--recovery-dir",
                          str(tmp_path / "green"), "--metrics-port", "0", "--until-end",
                          log=log_file)  # fmt: skip
    assert green.wait(120) == 0, log_file.read_text()[-3000:]

    before = posts_before(kafka, topics, seed)
    in_tail = before - posts_below(kafka, topics, prepared.offsets)
    _, by_blue, filled = one_version_per_post(kafka, topics, blue_green, before)
    assert filled & in_tail  # the finish scored the tail's posts blue did not
    assert by_blue & in_tail  # and those it did keep A's score
    assert summary["filled_in"] == len(filled) and summary["already_scored"] == len(by_blue)
    assert summary["posts"] == len(before) and summary["left_unscored"] == 0

    green_states_are_bs(tmp_path / "green", seed, states_b)


def a_prepared(version: str, topic: str, offsets: dict[int, int]) -> Prepared:
    return Prepared(model_version=version, topic=topic, offsets=offsets, states={}, posts=[],
                    probabilities={}, events=0, from_archive=0, dead_letters=0, rebuild_s=0.0,
                    prepare_s=0.0, created_at=0.0)  # fmt: skip


def test_a_prepared_cutover_of_another_model_or_a_recreated_topic_is_refused(
    kafka: KafkaSettings, topics: Topics, model_b: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    p = a_prepared("dc-b", "clicks", {0: 5, 1: 0, 2: 7})
    assert p.problem("dc-b", "clicks") is None
    assert p.problem("dc-b", "clicks", {0: 5, 1: 3, 2: 9}) is None
    assert "prepared for model dc-b, not for dc-c: finish with the model it was prepared " in (
        p.problem("dc-c", "clicks", {0: 5, 1: 0, 2: 7}) or ""
    )
    assert "prepared on topic 'clicks', this one reads 't1-clicks'" in (
        p.problem("dc-b", "t1-clicks") or ""
    )
    assert "partitions [0, 1] now, [0, 1, 2] when the cut-over was prepared: prepare again" in (
        p.problem("dc-b", "clicks", {0: 9, 1: 9}) or ""
    )
    behind = p.problem("dc-b", "clicks", {0: 5, 1: 0, 2: 3}) or ""
    assert "clicks ends before the offsets the cut-over was prepared at ([2] ends at 3 < 7)" in (
        behind
    )
    assert "recreated" in behind and "'deepcredit cutover --prepare --model MODEL" in behind

    # Through the finish, against the real (empty) topics: refused, nothing written anywhere.
    version = load_scorer(model_b).version
    cfg = CutoverConfig(kafka, topics, model_b, tmp_path / "out", timeout_s=10)
    with pytest.raises(CutoverError, match=f"prepared for model dc-b, not for {version}"):
        finish_cutover(cfg, a_prepared("dc-b", topics.clicks, {0: 0, 1: 0, 2: 0}))
    with pytest.raises(CutoverError, match=r"ends before the offsets .*\[0\] ends at 0 < 4"):
        finish_cutover(cfg, a_prepared(version, topics.clicks, {0: 4, 1: 0, 2: 0}))
    assert not (tmp_path / "out").exists()
    assert all(high == 0 for _, high in watermarks(kafka, topics.risk_scores).values())

    # The finish with nothing prepared says to prepare first; the two phases are one at a time.
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    assert run_cutover(kafka, model_b, tmp_path / "none", "--finish") == 1
    assert "no prepared cut-over in" in capsys.readouterr().err
    finish_cutover(cfg, a_prepared(version, topics.clicks, {0: 0, 1: 0, 2: 0}))  # empty: fine
    assert read_seed(tmp_path / "out").offsets == {0: 0, 1: 0, 2: 0}
    with pytest.raises(SystemExit):
        run_cutover(kafka, model_b, tmp_path / "cli", "--prepare", "--finish")
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_cutover_split_by_partition_rebuilds_each_part_apart_and_seeds_as_one(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, model_b: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Two parts (partitions 0 and 2, then 1), each prepared apart and finished one after the
    other into one folder, with no old flow: the seed read from the folder is the one-shot
    cut-over's of every partition (same offsets, same states), every post scored once by B."""
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    lines = clicks_lines(clicks_file)[:1500]
    send(kafka, topics.clicks, lines)
    out = tmp_path / "parts"
    for part in (["0", "2"], ["1"]):
        assert run_cutover(kafka, model_b, out, "--prepare", "--partitions", *part) == 0
    for part in (["0", "2"], ["1"]):
        assert run_cutover(kafka, model_b, out, "--finish", "--partitions", *part) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["prepare-partitions-0-2.lock", "prepare-partitions-1.lock",
                     "prepared-partitions-0-2.msgpack", "prepared-partitions-1.msgpack",
                     "seed-partitions-0-2.msgpack", "seed-partitions-1.msgpack",
                     "summary-partitions-0-2.json", "summary-partitions-1.json"]  # fmt: skip
    parts = [json.loads((out / f"summary-partitions-{p}.json").read_text()) for p in ("0-2", "1")]
    assert [set(s["offsets"]) for s in parts] == [{"0", "2"}, {"1"}]
    scores = read_scores(kafka, topics.risk_scores)
    assert len(scores) == len({s.event_id for s in scores}) == sum(s["filled_in"] for s in parts)

    # The one-shot of every partition, on the same clicks (its fill-ins find every post scored).
    assert run_cutover(kafka, model_b, tmp_path / "whole") == 0
    whole, merged = read_seed(tmp_path / "whole"), read_seed(out)
    assert merged.offsets == whole.offsets and merged.states.keys() == whole.states.keys()
    for user, blob in whole.states.items():
        assert_same_state(decode_state(merged.states[user]), decode_state(blob))
    assert json.loads((tmp_path / "whole" / SUMMARY_FILE).read_text())["filled_in"] == 0
    events = [e for e in map(decode_click, lines) if isinstance(e, ClickEvent)]
    _, states_b = expected_scores(load_scorer(model_b), events)
    assert set(merged.states) == set(states_b)

    # A flow refuses a folder that lacks a part: it would read that partition from its start.
    only = tmp_path / "one-part"
    only.mkdir()
    shutil.copy(out / "seed-partitions-0-2.msgpack", only)
    capsys.readouterr()
    assert main(["serve", "--model", str(model_b), "--seed", str(only), "--metrics-port", "0",
                 "--bootstrap", kafka.bootstrap_servers]) == 1  # fmt: skip
    assert "has no part for partitions [1]" in capsys.readouterr().err

    assert run_cutover(kafka, model_b, tmp_path / "bad", "--prepare", "--partitions", "7") == 1
    assert "has no partitions [7] (it has [0, 1, 2])" in capsys.readouterr().err


def test_posts_answered_before_the_prepare_are_counted_there_and_the_rest_filled_in(
    kafka: KafkaSettings, topics: Topics, clicks: list[ClickEvent], clicks_file: Path,
    model_b: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Each user with three posts or more has the middle one answered on the risk-scores topic
    (as if the old flow scored up to there and retention dropped the earlier answers): the
    prepare keeps only the posts after it, counts it and the unanswered ones before it, and
    the finish fills in exactly the posts after it (and every post of the other users)."""
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    # Two more users with three posts each. zz's first is resent after the prepare, within
    # its state's memory of ids: the tail skips it, a repeat of a post counted as left. zy's
    # answered one is resent after 40 more clicks of zy, beyond that memory: a new post to
    # the flow, scored by the finish as the flow would have scored it.
    def extra(user: str) -> list[ClickEvent]:
        t0 = clicks[-1].ts
        posts = [ClickEvent(event_id=f"{user}-p{i}", user_id=user, ts=t0 + 60.0 * (i + 1),
                            activity=Activity.POST, amount=100.0, loan_id=f"{user}-L{i}",
                            rate=0.1, term_days=30) for i in range(3)]  # fmt: skip
        more = [ClickEvent(event_id=f"{user}-r{i}", user_id=user, ts=t0 + 600.0 + i,
                           activity=Activity.RECHARGE, amount=5.0)
                for i in range(40 if user == "zy" else 0)]  # fmt: skip
        return posts + more

    zz, zy = extra("zz"), extra("zy")
    clicks = [*clicks, *zz, *zy]
    send(kafka, topics.clicks, [*clicks_lines(clicks_file),
                                *(msgspec.json.encode(e) for e in zz + zy)])  # fmt: skip
    by_user: dict[str, list[str]] = defaultdict(list)
    for e in clicks:
        if e.activity is Activity.POST:
            by_user[e.user_id].append(e.event_id)
    answered, left, fill = set(), set(), set()
    for ids in by_user.values():
        k = len(ids) // 2 if len(ids) >= 3 else None
        if k is not None:
            answered.add(ids[k])
        left |= set(ids[:k] if k is not None else [])
        fill |= set(ids[k + 1 :] if k is not None else ids)
    everything = {i for ids in by_user.values() for i in ids}
    assert answered and left and fill and not (answered & left or answered & fill or left & fill)
    assert answered | left | fill == everything
    user_of = {i: u for u, ids in by_user.items() for i in ids}
    send(kafka, topics.risk_scores, [json.dumps({"event_id": i, "user_id": user_of[i]}).encode()
                                     for i in sorted(answered)])  # fmt: skip
    out = tmp_path / "seed"
    assert run_cutover(kafka, model_b, out, "--prepare", "--bucket-events", "500") == 0, (
        capsys.readouterr().err
    )
    prepared = read_prepared(out)
    assert {e.event_id for e in prepared.posts} == set(prepared.probabilities) == fill
    assert (prepared.answered, prepared.left_unscored) == (len(answered), len(left))
    assert "zz-p0" in left and "zy-p1" in answered
    send(kafka, topics.clicks, [msgspec.json.encode(zz[0]), msgspec.json.encode(zy[1])])
    assert run_cutover(kafka, model_b, out, "--finish") == 0, capsys.readouterr().err
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["posts"], summary["already_scored"], summary["left_unscored"]) == (
        len(everything) + 1, len(answered), len(left))  # fmt: skip
    assert summary["filled_in"] == len(fill) + 1
    on_topic = [json.loads(m.value()) for m in read_to_end(kafka, topics.risk_scores)]
    scored = sorted(r["event_id"] for r in on_topic if r.get("type") == "score")
    assert scored == sorted([*fill, "zy-p1"])  # each once, none of the answered or left ones


def test_posts_the_old_flow_read_count_as_answered_after_retention_dropped_their_answers(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, model_dir: Path, model_b: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Blue reads the first clicks and stops; retention then drops every answer on the
    risk-scores topic. Without blue's recovery folder the prepare warns and keeps every post
    as unanswered; with it, only the posts past where blue resumes, and the finish scores
    exactly those."""
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    lines = clicks_lines(clicks_file)
    send(kafka, topics.clicks, lines[:2000])
    log_file = tmp_path / "serve.log"
    blue = serve_process(kafka, topics, model_dir, "--metrics-port", "0", "--recovery-dir",
                         str(tmp_path / "blue"), "--until-end", log=log_file)  # fmt: skip
    assert blue.wait(120) == 0, log_file.read_text()[-3000:]
    read = read_input_offsets(tmp_path / "blue", topics.clicks, resumed=True)
    assert sum(read.values()) > 0
    ends = watermarks(kafka, topics.risk_scores)
    admin = AdminClient(kafka.client_config())
    gone = admin.delete_records([TopicPartition(topics.risk_scores, p, high)
                                 for p, (_, high) in ends.items() if high > 0])  # fmt: skip
    for f in gone.values():
        f.result(timeout=30)
    assert all(low == high for low, high in watermarks(kafka, topics.risk_scores).values())
    send(kafka, topics.clicks, lines[2000:2400])
    every = posts_below(kafka, topics, {p: high for p, (_, high) in
                                        watermarks(kafka, topics.clicks).items()})  # fmt: skip
    below = posts_below(kafka, topics, {p: read.get(p, 0) for p in range(3)})
    assert below and every - below

    with caplog.at_level(logging.WARNING, logger="state.cutover"):
        assert run_cutover(kafka, model_b, tmp_path / "blind", "--prepare") == 0
    assert "no longer holds its first answers (retention)" in caplog.text
    blind = read_prepared(tmp_path / "blind")
    assert {e.event_id for e in blind.posts} == every and blind.answered == 0

    # A recovery folder that read nothing of these clicks (another flow's, a wrong prefix).
    (tmp_path / "empty").mkdir()
    init_db_dir(tmp_path / "empty", 1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="state.cutover"):
        assert run_cutover(kafka, model_b, tmp_path / "wrong", "--prepare", "--old-recovery-dir",
                           str(tmp_path / "empty")) == 0  # fmt: skip
    assert "has read nothing of" in caplog.text and "partitions [0, 1, 2]" in caplog.text
    assert run_cutover(kafka, model_b, tmp_path / "wrong", "--finish", "--old-recovery-dir",
                       str(tmp_path / "blue")) == 1  # fmt: skip
    assert "--old-recovery-dir is the prepare's" in capsys.readouterr().err

    out = tmp_path / "seed"
    assert run_cutover(kafka, model_b, out, "--prepare", "--old-recovery-dir",
                       str(tmp_path / "blue")) == 0, capsys.readouterr().err  # fmt: skip
    prepared = read_prepared(out)
    assert {e.event_id for e in prepared.posts} == every - below
    assert prepared.answered == len(below)
    assert run_cutover(kafka, model_b, out, "--finish") == 0, capsys.readouterr().err
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["posts"], summary["already_scored"], summary["filled_in"]) == (
        len(every), len(below), len(every - below))  # fmt: skip
    assert {s.event_id for s in read_scores(kafka, topics.risk_scores)} == every - below
