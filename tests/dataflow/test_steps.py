"""The flow's steps without Kafka: decode, the per-user score logic, decide; the poison-pill
rule in each of them and in the drift step."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import msgspec
import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from prometheus_client import REGISTRY

from dataflow import flow, steps
from dataflow.records import Accepted, Scored
from dataflow.steps import DriftStep, PassThrough, UserScorer, decide, decode, user_of
from deepcredit.codec import encode
from deepcredit.events import Activity, ClickEvent
from deepcredit.records import DeadLetter, DeadLetterReason, Decision, Score, ThresholdUpdate
from scorer.artifact import load_scorer
from scorer.model import StateVersionError, advance
from scorer.monitors import DriftMonitors, MonitorConfig, UserSample
from scorer.reasons import advance_with_reasons, post_reasons
from scorer.user_state import RECENT_IDS, UserState, encode_state

CASES = Path(__file__).parents[1] / "cases"
THRESHOLDS = ThresholdUpdate(version=7, delinquent_review=0.3, delinquent_decline=0.6,
                             default_review=0.1, default_decline=0.3, updated_by="t",
                             updated_at=0.0)  # fmt: skip


def message(value: bytes, offset: int = 5) -> KafkaSourceMessage:
    return KafkaSourceMessage(key=b"u1", value=value, topic="clicks", partition=2, offset=offset,
                              timestamp=(1, 1_700_000_000_000))  # fmt: skip


def test_decode_accepts_an_event_with_its_kafka_coordinates(clicks: list[ClickEvent]) -> None:
    out = decode(message(encode(clicks[0])))
    assert out == Accepted(clicks[0], 1_700_000_000.0, 2, 5, "clicks", b"u1")


def test_decode_turns_bad_bytes_into_a_dead_letter_that_keeps_the_key() -> None:
    out = decode(message(b'{"event_id": "e"}', offset=9))
    assert isinstance(out, DeadLetter)
    assert out.reason is DeadLetterReason.MISSING_FIELD
    assert (out.key, out.topic, out.partition, out.offset) == (b"u1", "clicks", 2, 9)


def test_the_nfc_and_nfd_forms_of_a_user_id_are_one_user_with_one_history(
    model_dir: Path,
) -> None:
    """Case unicode-user-id-split: the NFD form of a user id (post LB) was scored as a new user,
    apart from the NFC form's history (post LC a minute later)."""
    lines = (CASES / "unicode-user-id-split" / "input.jsonl").read_bytes().splitlines()
    nfc = "zo\u00eb.test-user"
    raw_ids = [msgspec.json.decode(line)["user_id"] for line in lines]
    assert raw_ids[4] != nfc and unicodedata.normalize("NFC", raw_ids[4]) == nfc
    # Each message keyed by the id as its producer wrote it: the key must not split the user.
    decoded = [decode(KafkaSourceMessage(key=u.encode(), value=line, topic="clicks", partition=0,
                                         offset=i, timestamp=(1, 1_700_000_000_000)))
               for i, (u, line) in enumerate(zip(raw_ids, lines, strict=True))]  # fmt: skip
    assert all(isinstance(a, Accepted) for a in decoded)
    assert {user_of(a) for a in decoded} == {nfc}

    w = load_scorer(model_dir)
    _, lb, lc = UserScorer(w, None).on_batch(decoded)[0]  # the flow's logic for the one user
    assert (lb.accepted.event.loan_id, lc.accepted.event.loan_id) == ("LB", "LC")
    # LC posted at LB's moment instead, with LB's history: the same probabilities as LB.
    *history, lb_post, lc_post = (a.event for a in decoded)
    lc_then = msgspec.structs.replace(lc_post, ts=lb_post.ts)
    _, lc_at_lb = UserScorer(w, None).on_batch([Accepted(e, 0.0, 0, 0)
                                                for e in (*history, lc_then)])[0]  # fmt: skip
    assert (lc_at_lb.p_delinquent, lc_at_lb.p_default) == (lb.p_delinquent, lb.p_default)
    # ... and not those of a new user (the case's wrong answer).
    [new_user] = UserScorer(w, None).on_batch([decoded[4]])[0]
    assert (new_user.p_delinquent, new_user.p_default) != (lb.p_delinquent, lb.p_default)

    for bad in ("   ", "u1\\u0000"):  # also accepted as ids before
        line = lines[0].replace(raw_ids[0].encode(), bad.encode())
        letter = decode(message(line))
        assert isinstance(letter, DeadLetter) and letter.reason is DeadLetterReason.INVALID_ID


def test_user_scorer_equals_advancing_the_state_event_by_event(
    clicks: list[ClickEvent], model_dir: Path
) -> None:
    w = load_scorer(model_dir)
    user = clicks[0].user_id
    history = [e for e in clicks if e.user_id == user]
    expected_state = UserState.new(w.version, w.hidden_size)
    expected, codes = [], []
    for e in history:
        if (p := advance(w, expected_state, e)) is not None:
            expected.append(p)
            codes.append(post_reasons(w, expected_state, e))  # offline, from the state
    logic = UserScorer(w, None)
    scored = []
    for start in range(0, len(history), 7):  # batches of any size give the same result
        out, discard = logic.on_batch([Accepted(e, 0.0, 0, 0) for e in history[start : start + 7]])
        scored += out
        assert discard is False
    assert [(s.p_delinquent, s.p_default) for s in scored] == expected
    assert [list(s.reasons) for s in scored] == codes and any(codes)  # the streaming reasons
    assert [s.accepted.event.activity for s in scored] == [Activity.POST] * len(expected)
    assert logic.snapshot() == encode_state(expected_state)

    # A restored logic goes on exactly where the snapshot was taken.
    restored = UserScorer(w, logic.snapshot())
    assert restored.state == expected_state


def test_a_user_without_a_snapshot_starts_from_the_seed_and_a_snapshot_wins_over_it(
    clicks: list[ClickEvent], model_dir: Path
) -> None:
    w = load_scorer(model_dir)
    user = clicks[0].user_id
    history = [e for e in clicks if e.user_id == user]
    half = len(history) // 2
    expected_state = UserState.new(w.version, w.hidden_size)
    for e in history[:half]:
        advance(w, expected_state, e)
    seed = {user: encode_state(expected_state)}  # the state at the cut-over
    expected = [p for e in history[half:] if (p := advance(w, expected_state, e)) is not None]
    logic = UserScorer(w, None, seed=seed)
    out, _ = logic.on_batch([Accepted(e, 0.0, 0, 0) for e in history[half:]])
    assert [(s.p_delinquent, s.p_default) for s in out] == expected
    assert logic.snapshot() == encode_state(expected_state)
    assert user not in seed  # the seed's bytes are not held beside the state
    assert UserScorer(w, logic.snapshot(), seed=seed).state == expected_state

    other = next(e for e in clicks if e.user_id != user)  # a user the seed does not hold
    fresh = UserScorer(w, None, seed=seed)
    fresh.on_batch([Accepted(other, 0.0, 0, 0)])
    new = UserState.new(w.version, w.hidden_size)
    advance(w, new, other)
    assert fresh.state == new


def duplicates_counted(activity: str) -> float:
    value = REGISTRY.get_sample_value("deepcredit_duplicate_events_total", {"activity": activity})
    return value or 0.0


@pytest.mark.parametrize("emit_events", [False, True])
def test_a_resent_event_is_counted_and_emits_nothing_not_even_to_the_drift_monitors(
    clicks: list[ClickEvent], model_dir: Path, emit_events: bool
) -> None:
    w = load_scorer(model_dir)
    user = clicks[0].user_id
    history = [e for e in clicks if e.user_id == user]
    posts = [e for e in history if e.activity is Activity.POST]
    assert len(posts) >= 2
    once = UserScorer(w, None, emit_events=emit_events)
    expected, _ = once.on_batch([Accepted(e, 0.0, 0, 0) for e in history])

    # Each event resent right away, in the same batch; then each post of the last few events
    # resent again in a later batch (Kafka redelivers at least once, producers resend).
    twice = UserScorer(w, None, emit_events=emit_events)
    posts_before, others_before = duplicates_counted("post"), duplicates_counted("repay")
    out, _ = twice.on_batch([Accepted(x, 0.0, 0, 0) for e in history for x in (e, e)])
    late = [e for e in history[-RECENT_IDS:] if e.activity is Activity.POST]
    assert late
    more, _ = twice.on_batch([Accepted(e, 0.0, 0, 0) for e in late])
    assert out == expected and more == []  # one score per post; the monitors see each once
    assert sum(isinstance(s, Scored) for s in out) == len(posts)
    assert twice.snapshot() == once.snapshot()
    assert duplicates_counted("post") - posts_before == len(posts) + len(late)
    repays = sum(e.activity is Activity.REPAY for e in history)
    assert duplicates_counted("repay") - others_before == repays


def test_a_snapshot_of_another_model_is_refused(model_dir: Path) -> None:
    w = load_scorer(model_dir)
    other = encode_state(UserState.new("another-model", w.hidden_size))
    with pytest.raises(StateVersionError, match="rebuild"):
        UserScorer(w, other)


def test_decide_applies_the_thresholds_in_force_and_records_their_version(
    clicks: list[ClickEvent],
) -> None:
    post = next(e for e in clicks if e.activity is Activity.POST)
    scored = Scored(Accepted(post, 0.0, 0, 0), 0.35, 0.05, reasons=("R02", "R01"))
    msg = decide(scored, lambda: THRESHOLDS, "m9")
    score = msgspec.json.decode(msg.value, type=Score)
    assert score.decision is Decision.REVIEW and score.thresholds_version == 7
    assert score.reasons == ["R02", "R01"]
    assert (score.event_id, score.user_id, score.loan_id) == (post.event_id, post.user_id,
                                                              post.loan_id)  # fmt: skip
    assert score.model_version == "m9" and score.scored_at > 0
    assert isinstance(score, Score) and msg.key == post.user_id.encode()


# -- the poison-pill rule: an exception on one message dead-letters it, the rest goes on -------


def processing_errors() -> float:
    value = REGISTRY.get_sample_value("deepcredit_dead_letters_total",
                                      {"reason": "processing_error"})  # fmt: skip
    return value or 0.0


def accepted(e: ClickEvent, offset: int) -> Accepted:
    return Accepted(e, 0.0, 1, offset, "clicks", e.user_id.encode())


def assert_processing_error(letter: object, step: str, a: Accepted, text: str) -> None:
    assert isinstance(letter, DeadLetter)
    assert letter.reason is DeadLetterReason.PROCESSING_ERROR
    assert (letter.key, letter.topic, letter.partition, letter.offset) == (a.key, "clicks", 1,
                                                                           a.offset)  # fmt: skip
    assert letter.detail.startswith(f"{step}: RuntimeError: {text}")
    assert msgspec.json.decode(letter.payload, type=ClickEvent) == a.event  # replayable


def test_decode_dead_letters_a_message_it_fails_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(steps, "decode_click", broken)
    before = processing_errors()
    with caplog.at_level(logging.ERROR, logger="dataflow.steps"):
        out = decode(message(b'{"event_id": "e"}', offset=11))
    assert isinstance(out, DeadLetter) and out.reason is DeadLetterReason.PROCESSING_ERROR
    assert (out.key, out.topic, out.partition, out.offset) == (b"u1", "clicks", 2, 11)
    assert out.payload == b'{"event_id": "e"}' and "decode: RuntimeError: decoder bug" in out.detail
    assert processing_errors() - before == 1
    [record] = caplog.records  # logged once, with the traceback
    assert record.exc_info is not None and "offset 11" in record.getMessage()


@pytest.mark.parametrize("where", [0, 3, -1])
def test_an_event_the_score_step_fails_on_is_dead_lettered_and_leaves_the_state_untouched(
    clicks: list[ClickEvent], model_dir: Path, monkeypatch: pytest.MonkeyPatch, where: int
) -> None:
    w = load_scorer(model_dir)
    user = clicks[0].user_id
    history = [e for e in clicks if e.user_id == user][:12]
    poison = history[where]
    items = [accepted(e, i) for i, e in enumerate(history)]
    clean = UserScorer(w, None, emit_events=True)
    expected, _ = clean.on_batch([a for a in items if a.event is not poison])

    def half_then_fail(
        w_: object, s: UserState, event: ClickEvent, key: bytes, fingerprint: bytes
    ) -> object:
        # advanced: the failure is half-way
        scored = advance_with_reasons(w, s, event, key, fingerprint)
        if event.event_id in (poison.event_id, "second"):
            raise RuntimeError(f"boom on {event.event_id}")
        return scored

    monkeypatch.setattr(steps, "advance_with_reasons", half_then_fail)
    before = processing_errors()
    logic = UserScorer(w, None, emit_events=True)
    second = msgspec.structs.replace(history[-1], event_id="second")  # a second failure, later
    out, _ = logic.on_batch([*items, accepted(second, 99)])
    first_letter, second_letter = (x for x in out if isinstance(x, DeadLetter))
    assert_processing_error(first_letter, "score", items[where], f"boom on {poison.event_id}")
    assert_processing_error(second_letter, "score", accepted(second, 99), "boom on second")
    assert [x for x in out if not isinstance(x, DeadLetter)] == expected
    assert logic.snapshot() == clean.snapshot()  # as if the failed events had never come
    assert processing_errors() - before == 2

    monkeypatch.setattr(steps, "advance_with_reasons", advance_with_reasons)
    again, _ = logic.on_batch([items[where]])  # redelivered once fixed: not taken for a resend
    assert len(again) == 1 and not isinstance(again[0], DeadLetter)


def test_what_must_stop_the_flow_is_not_dead_lettered(
    clicks: list[ClickEvent], model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(steps, "advance_with_reasons", out_of_memory)
    with pytest.raises(MemoryError):
        UserScorer(load_scorer(model_dir), None).on_batch([accepted(clicks[0], 0)])


def test_decide_dead_letters_a_post_it_fails_on(clicks: list[ClickEvent]) -> None:
    post = next(e for e in clicks if e.activity is Activity.POST)

    def thresholds() -> ThresholdUpdate:
        raise RuntimeError("thresholds unavailable")

    a = accepted(post, 7)
    assert_processing_error(decide(Scored(a, 0.35, 0.05), thresholds, "m9"), "decide", a,
                            "thresholds unavailable")  # fmt: skip


def test_a_batch_is_decided_post_by_post_and_counted_once(
    clicks: list[ClickEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    posts = [accepted(e, i) for i, e in enumerate(clicks) if e.activity is Activity.POST][:40]
    batch = [Scored(a, 0.1 + 0.02 * (i % 30), 0.05) for i, a in enumerate(posts)]
    poison = batch[7]
    record = steps.score_record

    def failing(event: ClickEvent, *rest: object) -> Score:
        if event is poison.accepted.event:
            raise RuntimeError("bad post")
        return record(event, *rest)

    monkeypatch.setattr(steps, "score_record", failing)
    reads = []

    def thresholds() -> ThresholdUpdate:
        reads.append(1)
        return THRESHOLDS

    def counted() -> dict[str, float]:
        values = {d.value: REGISTRY.get_sample_value("deepcredit_decisions_total",
                                                     {"decision": d.value}) or 0.0
                  for d in Decision}  # fmt: skip
        return values | {"scores": REGISTRY.get_sample_value("deepcredit_scores_total") or 0.0}

    before = counted()
    out = steps.decide_batch(batch, thresholds, "m9")
    after = counted()
    assert len(reads) == 1  # the thresholds in force, read once for the batch
    assert_processing_error(out[7], "decide", poison.accepted, "bad post")
    scores = [msgspec.json.decode(m.value, type=Score) for i, m in enumerate(out) if i != 7]
    assert [s.event_id for s in scores] == [b.accepted.event.event_id for b in batch
                                            if b is not poison]  # fmt: skip
    expected = [THRESHOLDS.decide(p_delinquent=b.p_delinquent, p_default=b.p_default)
                for b in batch if b is not poison]  # fmt: skip
    assert [s.decision for s in scores] == expected
    assert after["scores"] - before["scores"] == len(batch) - 1
    for d in Decision:
        assert after[d.value] - before[d.value] == expected.count(d)


def test_the_drift_step_dead_letters_an_event_it_fails_on_and_goes_on(
    clicks: list[ClickEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [accepted(e, i) for i, e in enumerate(clicks[:50])]
    poison = items[20]
    update = DriftMonitors.update

    def fail_on_poison(self: DriftMonitors, event: ClickEvent, p: object) -> list:
        if event is poison.event:
            raise RuntimeError("monitor bug")
        return update(self, event, p)

    monkeypatch.setattr(DriftMonitors, "update", fail_on_poison)
    step = DriftStep("m1", MonitorConfig(), None, reorder=0)
    out, _ = step.on_batch(items)
    [letter] = out
    assert_processing_error(letter, "drift", poison, "monitor bug")
    assert step.monitors.inputs.events_seen == len(items) - 1


@pytest.mark.parametrize("with_model", [True, False])
def test_the_score_step_passes_on_only_the_drift_sample_s_users(
    clicks: list[ClickEvent], model_dir: Path, with_model: bool
) -> None:
    w = load_scorer(model_dir)
    sample = UserSample(fraction=0.5)
    users = sorted({e.user_id for e in clicks})
    watched = {u for u in users if sample.watches(u)}
    assert 0 < len(watched) < len(users)
    drift_items = []
    for u in users:
        logic = (UserScorer(w, None, emit_events=True, sample=sample) if with_model
                 else PassThrough(emit_events=True, sample=sample))  # fmt: skip
        history = [accepted(e, i) for i, e in enumerate(clicks) if e.user_id == u]
        out = [x for i in range(0, len(history), 5) for x in logic.on_batch(history[i:i + 5])[0]]
        posts = [x for x in out if isinstance(x, Scored)]
        # Every post is scored and goes on to decide, whoever its user is.
        assert len(posts) == sum(a.event.activity is Activity.POST for a in history)
        assert all(p.watched == (u in watched) for p in posts)
        assert len(out) == (len(history) if u in watched else len(posts))
        drift_items += [i for x in out if (i := flow._watched(x)) is not None]
    assert {_of(x).user_id for _, x in drift_items} == watched
    assert {k for k, _ in drift_items} == {"all"}


def _of(item: Scored | Accepted) -> ClickEvent:
    return item.accepted.event if isinstance(item, Scored) else item.event


def test_the_drift_step_restored_takes_the_flow_s_sample(
    clicks: list[ClickEvent], caplog: pytest.LogCaptureFixture
) -> None:
    items = [accepted(e, i) for i, e in enumerate(clicks)]
    step = DriftStep("m1", MonitorConfig(), None, reorder=0)
    step.on_batch(items)
    users = step.monitors.users
    narrow = UserSample(fraction=0.5)
    restored = DriftStep("m1", MonitorConfig(), step.snapshot(), reorder=0, sample=narrow)
    assert restored.monitors.sample == narrow and restored.monitors.share == 0.5
    assert 0 < restored.monitors.users < users
    fresh = DriftStep("m1", MonitorConfig(), None, reorder=0, sample=UserSample(max_users=5))
    with caplog.at_level(logging.WARNING, logger="dataflow.steps"):
        fresh.on_batch(items)
    assert fresh.monitors.users <= 5 < users and fresh.monitors.share < 1.0
    assert REGISTRY.get_sample_value("deepcredit_drift_sample_share") == fresh.monitors.share
    assert REGISTRY.get_sample_value("deepcredit_drift_users_watched") == fresh.monitors.users
    assert "--drift-max-users" in caplog.text


def test_a_batch_is_decoded_in_order_and_counted_once_per_activity_and_reason(
    clicks: list[ClickEvent],
) -> None:
    def count(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    msgs = [message(encode(e), offset=i) for i, e in enumerate(clicks[:50])]
    msgs.insert(7, message(b"not json", offset=99))
    before = {a: count("deepcredit_events_consumed_total", activity=a.value) for a in Activity}
    refused = count("deepcredit_dead_letters_total", reason=DeadLetterReason.INVALID_JSON.value)

    def timeless(x: Accepted | DeadLetter) -> Accepted | DeadLetter:
        return msgspec.structs.replace(x, received_at=0.0) if isinstance(x, DeadLetter) else x

    out = steps.decode_batch(msgs)
    assert [timeless(x) for x in out] == [timeless(decode(m)) for m in msgs]  # a batch of one
    for a in Activity:
        seen = sum(e.activity is a for e in clicks[:50])
        assert count("deepcredit_events_consumed_total", activity=a.value) == before[a] + 2 * seen
    assert count("deepcredit_dead_letters_total",
                 reason=DeadLetterReason.INVALID_JSON.value) == refused + 2  # fmt: skip


@pytest.mark.parametrize("seconds", [0.0, 1e-4, 3e-4, 0.7, 31.0])
def test_observe_many_is_n_observations(seconds: float) -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from dataflow.metrics import observe_many

    one, many = CollectorRegistry(), CollectorRegistry()
    buckets = (1e-4, 2.5e-4, 0.5, 1.0)
    h1, h2 = (Histogram("h", "h", buckets=buckets, registry=r) for r in (one, many))
    for _ in range(3):
        h1.observe(seconds)
    observe_many(h2, seconds, 3)
    strip = [line for line in generate_latest(one).splitlines() if b"_created" not in line]
    assert strip == [line for line in generate_latest(many).splitlines()
                     if b"_created" not in line]  # fmt: skip
