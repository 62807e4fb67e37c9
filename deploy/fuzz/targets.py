"""The fuzz targets: one per decoder of bytes that come from outside the process, each with the
contract it is held to and a few valid inputs to start from.

A target's ``build()`` imports its decoder (so that the fuzzing process imports it inside
atheris' instrumentation) and returns ``check(data)``: it runs the decoder on ``data`` and
returns when the contract holds. Anything it raises is a crash: an exception the decoder
let out (a RecursionError, a KeyError...) or a ``ContractViolation`` when the decoder accepted
a value the contract forbids. ``seeds()`` gives the starting corpus, generated here (valid
examples, and the inputs of the failing cases the project has seen), so no binary file is
committed.

This module imports only the standard library: ``deepcredit --help`` and the fuzzing process
load it before any decoder.

>>> set(TARGETS) - set(FUZZED)  # fuzzed when named only: it tests the harness
{'canary'}
>>> TARGETS["canary"].build()(b"no crash here")
"""

from __future__ import annotations

import atexit
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["FUZZED", "TARGETS", "Check", "ContractViolation", "Target"]

#: Runs the decoder on one input; raises when the contract does not hold.
Check = Callable[[bytes], None]

#: The packages the fuzzing process instruments for coverage: ours. msgspec's parser is C and
#: is not instrumented, so coverage guides through our checks around it.
INSTRUMENTED = ("deepcredit", "scorer", "state")

#: Nesting of the failing cases: past Python's recursion limit where msgspec parses it.
_DEEP = 1200
_TS = 1_700_000_000.0


class ContractViolation(AssertionError):
    """A decoder returned a value its contract forbids (the message says which and why)."""


@dataclass(frozen=True)
class Target:
    """One decoder under fuzzing. ``max_len``: longest input tried, bytes."""

    name: str
    decoder: str  # what is fuzzed, as people find it in the code
    contract: str  # what every input must give
    build: Callable[[], Check]
    seeds: Callable[[], list[bytes]]
    max_len: int = 4096


def _require(ok: bool, why: str) -> None:
    if not ok:
        raise ContractViolation(why)


def _finite_in(value: Any, lo: float, hi: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and lo <= value <= hi


# -- clicks ---------------------------------------------------------------------------------------


def _click_lines() -> list[bytes]:
    """Click messages: one of each activity, and the shapes the failing cases had."""
    base = b'"user_id":"u1","ts":1700000000.5,"amount":120.0'
    loan = b',"loan_id":"L1","rate":0.12,"term_days":30'
    lines = [
        b'{"event_id":"e1",' + base + b',"activity":"post"' + loan + b"}",
        b'{"event_id":"e2",' + base + b',"activity":"borrow","loan_id":"L1"}',
        b'{"event_id":"e3",' + base + b',"activity":"repay","loan_id":"L1"}',
        b'{"event_id":"e4",' + base + b',"activity":"miss_payment","loan_id":"L1"}',
        b'{"event_id":"e5",' + base + b',"activity":"recharge","meta":{"app":"ios","v":[1,2]}}',
        b'{"activity":"withdraw","amount":0,"ts":946684800,"user_id":"z","event_id":"e6"}',
        b'{"event_id":"e7",' + base + b',"activity":"post","loan_id":"L2","rate":1e-3}',
        # unicode-user-id-split: the same user, composed and decomposed
        '{"event_id":"e8","user_id":"zoë","ts":1.7e9,"activity":"lend","amount":5}'.encode(),
        '{"event_id":"e9","user_id":"zoe\u0308","ts":1.7e9,"activity":"lend","amount":5}'.encode(),
        # topic-recreated-offsets and dup-id-different-content: an id sent twice, changed
        b'{"event_id":"e1",' + base + b',"activity":"transfer_in"}',
        # deep-nesting-crash: an ignored field nested past the recursion limit
        b'{"event_id":"e10",'
        + base
        + b',"activity":"recharge","meta":'
        + b"[" * _DEEP
        + b"]" * _DEEP
        + b"}",
    ]
    return [*lines, b'{\n  "event_id": "e11",\n' + base + b',\n"activity": "lend"\n}']


def _click() -> Check:
    from deepcredit import codec
    from deepcredit.codec import decode_click, encode_click
    from deepcredit.events import (
        MAX_AMOUNT,
        MAX_ID_LENGTH,
        MAX_TERM_DAYS,
        TS_MAX,
        TS_MIN,
        Activity,
        ClickEvent,
    )
    from deepcredit.records import DeadLetter, DeadLetterReason

    keep = codec.DEAD_LETTER_PAYLOAD_LIMIT

    def id_ok(value: Any) -> bool:
        return isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH

    def check(data: bytes) -> None:
        out = decode_click(data)
        if isinstance(out, DeadLetter):
            _require(isinstance(out.reason, DeadLetterReason), f"reason {out.reason!r}")
            _require(out.payload == data[:keep] and out.payload_size == len(data),
                     "the dead letter does not keep the message")  # fmt: skip
            return
        _require(isinstance(out, ClickEvent), f"returned a {type(out).__name__}")
        e: ClickEvent = out
        _require(id_ok(e.event_id) and id_ok(e.user_id), f"ids {e.event_id!r}, {e.user_id!r}")
        _require(e.loan_id is None or id_ok(e.loan_id), f"loan_id {e.loan_id!r}")
        _require(_finite_in(e.ts, TS_MIN, TS_MAX), f"ts {e.ts!r}")
        _require(isinstance(e.activity, Activity), f"activity {e.activity!r}")
        _require(_finite_in(e.amount, 0.0, MAX_AMOUNT), f"amount {e.amount!r}")
        _require(e.rate is None or _finite_in(e.rate, 0.0, 1.0), f"rate {e.rate!r}")
        _require(e.term_days is None or (type(e.term_days) is int
                                         and 1 <= e.term_days <= MAX_TERM_DAYS),
                 f"term_days {e.term_days!r}")  # fmt: skip
        _require(e.contract_violation() is None, f"accepted: {e.contract_violation()}")
        again = decode_click(encode_click(e))
        _require(again == e, f"re-encoded, {e!r} decodes to {again!r}")

    return check


def _post_ids() -> Check:
    import json

    from deepcredit.codec import MAX_DEPTH, MAX_EVENT_BYTES, post_ids
    from deepcredit.events import canonical_id

    def check(data: bytes) -> None:
        ids = post_ids(data)
        if ids is None:
            return
        _require(len(data) <= MAX_EVENT_BYTES, "ids read from an oversize message")
        if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:  # stdlib json: no deep recursion
            message = json.loads(data)
            _require(isinstance(message, dict) and message.get("activity") == "post",
                     f"ids of a message that is no post: {message!r}"[:200])  # fmt: skip
        for name in ("event_id", "user_id", "loan_id"):
            value = getattr(ids, name)
            _require(value is None or canonical_id(value) == value,
                     f"{name} {value!r} is not canonical")  # fmt: skip
        _require(ids.ts is None or math.isfinite(ids.ts), f"ts {ids.ts!r}")

    return check


def _replay_key() -> Check:
    from deepcredit.replay import user_key

    def check(data: bytes) -> None:
        key = user_key(data)
        _require(key is None or (isinstance(key, bytes) and key != b""), f"key {key!r}")

    return check


# -- control topics -------------------------------------------------------------------------------


def _message(value: bytes, topic: str) -> Any:
    from confluent_kafka import Message

    return Message(topic=topic, partition=0, offset=7, key=b"k", value=value)


def _record_check(kind_name: str) -> Check:
    """decode_control's contract for the records of one control topic."""
    from deepcredit import records
    from deepcredit.codec import encode
    from deepcredit.control import decode_control

    kind = getattr(records, kind_name)

    def check(data: bytes) -> None:
        record = decode_control(_message(data, "fuzz-control"), kind)
        if record is None:
            return
        _require(type(record) is kind, f"returned a {type(record).__name__}")
        _require(record.problem() is None, f"accepted: {record.problem()}")
        again = decode_control(_message(encode(record), "fuzz-control"), kind)
        _require(again == record, f"re-encoded, {record!r} decodes to {again!r}")

    return check


def _thresholds() -> Check:
    from deepcredit.control import decode_control
    from deepcredit.records import ThresholdUpdate
    from deepcredit.thresholds import decode_thresholds, describe

    common = _record_check("ThresholdUpdate")

    def check(data: bytes) -> None:
        update = decode_thresholds(data)
        same = decode_control(_message(data, "fuzz-thresholds"), ThresholdUpdate)
        if isinstance(update, str):
            _require(same is None, "decode_thresholds refuses what decode_control accepts")
            return
        _require(update == same, "decode_thresholds and decode_control disagree")
        _require(update.version >= 1, f"version {update.version} accepted")
        describe(update)  # what 'deepcredit thresholds show' prints
        common(data)

    return check


def _threshold_seeds() -> list[bytes]:
    import msgspec

    from deepcredit.codec import encode
    from deepcredit.records import ThresholdSegment
    from deepcredit.thresholds import DEFAULT_THRESHOLDS

    valid = msgspec.structs.replace(DEFAULT_THRESHOLDS, version=3, updated_at=_TS,
                                    updated_by="alice", note="tighter")  # fmt: skip
    good = encode(valid)
    cuts = {"delinquent_review": 0.2, "delinquent_decline": 0.5, "default_review": 0.08,
            "default_decline": 0.2}  # fmt: skip
    segmented = msgspec.structs.replace(valid, thin_file_events=20, segments=(
        ThresholdSegment(name="thin", file="thin", **cuts),
        ThresholdSegment(name="small", file="established", amount_max=1000.0, **cuts),
        ThresholdSegment(name="large", file="established", amount_min=1000.0, **cuts)))  # fmt: skip
    return [
        good,
        encode(segmented),
        # thresholds-malformed-record: updated_at in milliseconds, and a deeply nested field
        encode(msgspec.structs.replace(valid, updated_at=_TS * 1000)),
        good[:-1] + b',"meta":' + b"[" * _DEEP + b"]" * _DEEP + b"}",
        encode(DEFAULT_THRESHOLDS),  # version 0: never valid on the topic
        b'{"type":"thresholds","version":1}',
    ]


def _drift_seeds() -> list[bytes]:
    import msgspec

    from deepcredit.codec import encode
    from deepcredit.records import DriftAlert, Monitor

    alert = DriftAlert(alert_id="a1", monitor=Monitor.SCORES, detector="ADWIN",
                       signal="p_default", model_version="dc-1", event_ts=_TS,
                       events_seen=1000, detected_at=_TS + 5, value=0.25)  # fmt: skip
    readable = msgspec.structs.replace(alert, reference_value=0.2, reference_n=400,
                                       reference_from_ts=_TS - 90 * 86_400.0,
                                       reference_to_ts=_TS - 60 * 86_400.0, current_value=0.3,
                                       window_n=250, window_from_ts=_TS - 86_400.0,
                                       direction="up", severity="high")  # fmt: skip
    return [encode(alert), encode(msgspec.structs.replace(alert, value=None, detail="x" * 40,
                                                           monitor=Monitor.INPUTS)),
            encode(readable)]  # fmt: skip


def _model_event_seeds() -> list[bytes]:
    from deepcredit.codec import encode
    from deepcredit.records import ModelEvent

    return [
        encode(ModelEvent(action="promote", version="dc-2", previous="dc-1", by="controller",
                          reason="beats dc-1", at=_TS,
                          metrics={"auc": 0.71, "folds": [1, 2], "by": {"x": None}})),
        encode(ModelEvent(action="reject", version="dc-3", previous=None, by="alice",
                          reason="worse", at=_TS)),
        encode(ModelEvent(action="rollback", version="dc-1", previous="dc-2", by="ops",
                          reason="too strict", at=_TS,
                          impact={"current": {"posts": 3, "approve": 1}, "as_of": None})),
        encode(ModelEvent(action="promote", version="dc-3", previous="dc-1", by="ops",
                          reason="gate users too few", at=_TS, override=True)),
    ]  # fmt: skip


# -- state at rest --------------------------------------------------------------------------------


def _example_states(version: str, hidden: int, users: int) -> list[Any]:
    """User states with open loans, a repayment record and remembered ids, without a model: the
    step memory is advanced by real events, the TLSTM rows are random."""
    import numpy as np

    from deepcredit.events import Activity, ClickEvent
    from scorer.steps import plan_step
    from scorer.user_state import UserState, event_key

    rng = np.random.default_rng(0)
    states = []
    for u in range(users):
        s = UserState.new(version, hidden)
        events = [("post", {"rate": 0.1, "term_days": 30}), ("borrow", {}), ("repay", {}),
                  ("post", {"rate": 0.2, "term_days": 60}), ("borrow", {}),
                  ("miss_payment", {}), ("recharge", {})]  # fmt: skip
        for i, (activity, extra) in enumerate(events[: 2 + 2 * u]):
            loan = f"L{i // 3}" if activity != "recharge" else None
            e = ClickEvent(event_id=f"e{i}", user_id=f"u{u}", ts=_TS + i * 86_400.0,
                           activity=Activity(activity), amount=100.0, loan_id=loan,
                           **extra)  # fmt: skip
            plan_step(s.memory, e)
            s.recent += event_key(e.event_id)  # as ``remember`` keeps them
        s.hc = rng.normal(size=s.hc.shape).astype(np.float32)
        s.y_prev = np.array([0.2, 0.05], np.float32)
        states.append(s)
    return states


def _state_problem(s: Any, version: str | None = None) -> str | None:
    """Why ``s`` is not a state the scorer can advance, or None. Independent of the decoder's
    own check, so that it is not the decoder grading itself."""
    import msgspec
    import numpy as np

    from scorer.user_state import KEY_BYTES, RECENT_IDS, UserState

    if type(s) is not UserState:
        return f"a {type(s).__name__}"
    if version is not None and s.model_version != version:
        return f"model version {s.model_version!r}, not {version!r}"
    hc, y = s.hc, s.y_prev
    if hc.dtype != np.float32 or hc.ndim != 2 or hc.shape[0] != 6 or hc.shape[1] < 1:
        return f"hc {hc.dtype} {hc.shape}, not (6, D) float32"
    if y.dtype != np.float32 or y.shape != (2,):
        return f"y_prev {y.dtype} {y.shape}, not (2,) float32"
    if not (np.isfinite(hc).all() and np.isfinite(y).all()):
        return "non-finite hc or y_prev"
    if len(s.recent) % KEY_BYTES or len(s.recent) > RECENT_IDS * KEY_BYTES:
        return f"recent holds {len(s.recent)} bytes"
    for number in _numbers(msgspec.to_builtins(s.memory)):
        if not math.isfinite(number) or (isinstance(number, int) and number < 0):
            return f"memory holds {number!r}"
    return None


def _numbers(obj: Any) -> Iterable[float]:
    if isinstance(obj, bool):
        return
    if isinstance(obj, int | float):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


def _user_state() -> Check:
    from scorer.user_state import StateDecodeError, decode_state, encode_state

    def check(data: bytes) -> None:
        try:
            s = decode_state(data)
        except StateDecodeError:
            return
        problem = _state_problem(s)
        _require(problem is None, f"accepted a state with {problem}")
        again = decode_state(encode_state(s))
        _require(again == s, "re-encoded, the state decodes to another")

    return check


def _state_seeds() -> list[bytes]:
    from scorer.user_state import UserState, encode_state

    return [encode_state(UserState.new("dc-1", 4)),
            *(encode_state(s) for s in _example_states("dc-1", 3, 3))]  # fmt: skip


def _scratch() -> Path:
    """A folder for the targets that read files; removed when the process exits (the fuzzing
    process's whole temporary folder is removed by the runner, crash or not)."""
    folder = Path(tempfile.mkdtemp(prefix="deepcredit-fuzz-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _seed() -> Check:
    from scorer.user_state import decode_state
    from state.seed import SEED_FILE, Seed, SeedError, read_seed

    folder = _scratch()

    def check(data: bytes) -> None:
        (folder / SEED_FILE).write_bytes(data)
        try:
            seed = read_seed(folder)
        except SeedError:
            return
        _require(type(seed) is Seed, f"returned a {type(seed).__name__}")
        _require(all(p >= 0 and o >= 0 for p, o in seed.offsets.items()),
                 f"offsets {seed.offsets}")  # fmt: skip
        hidden = set()
        for user, blob in seed.states.items():
            state = decode_state(blob)  # raises if the seed let a broken state through
            problem = _state_problem(state, seed.model_version)
            _require(problem is None, f"user {user!r}: a state with {problem}")
            hidden.add(state.hc.shape[1])
        _require(len(hidden) <= 1, f"states of hidden sizes {sorted(hidden)}")

    return check


def _seed_seeds() -> list[bytes]:
    import msgspec

    from scorer.user_state import encode_state
    from state.seed import Seed

    states = {f"u{i}": encode_state(s) for i, s in enumerate(_example_states("dc-2", 3, 2))}
    seed = Seed(model_version="dc-2", topic="clicks", offsets={0: 12, 1: 0}, states=states,
                created_at=_TS)  # fmt: skip
    empty = Seed(model_version="dc-2", topic="clicks", offsets={}, states={}, created_at=0.0)
    return [msgspec.msgpack.encode(seed), msgspec.msgpack.encode(empty)]


# -- the click archive ----------------------------------------------------------------------------


def _manifest() -> Check:
    from deepcredit.archive import MANIFEST_FILE, ArchiveError, Segment, read_segments

    folder = _scratch()

    def check(data: bytes) -> None:
        (folder / MANIFEST_FILE).write_bytes(data)
        try:
            segments = read_segments(folder)
        except ArchiveError:
            return
        _require(type(segments) is list, f"returned a {type(segments).__name__}")
        for s in segments:
            _require(type(s) is Segment, f"a {type(s).__name__} among the segments")
            path = PurePosixPath(s.file)
            _require(path.parent == PurePosixPath("segments") and path.name not in ("", "..")
                     and "\x00" not in s.file, f"segment file {s.file!r}")  # fmt: skip
            _require(
                s.partition >= 0 and 0 <= s.first_offset <= s.next_offset,
                f"partition {s.partition}, offsets {s.first_offset}..{s.next_offset}",
            )
            _require(0 <= s.lines <= s.next_offset - s.first_offset, f"{s.lines} lines")
            _require((s.min_ts is None) == (s.max_ts is None), "one event-time bound")
            _require(s.min_ts is None or s.min_ts <= s.max_ts,  # type: ignore[operator]
                     f"event times {s.min_ts}..{s.max_ts}")  # fmt: skip

    return check


def _manifest_seeds() -> list[bytes]:
    import msgspec

    from deepcredit.archive import Segment

    lines = [
        msgspec.json.encode(Segment(file=f"segments/p0000-{a:012d}-{b:012d}.jsonl.gz",
                                    topic="clicks", partition=p, first_offset=a, next_offset=b,
                                    lines=n, min_ts=lo, max_ts=hi, written_at=_TS))
        for p, a, b, n, lo, hi in [(0, 0, 100, 100, _TS, _TS + 3600), (1, 0, 5, 4, None, None),
                                   (0, 100, 250, 150, _TS + 3600, _TS + 7200)]
    ]  # fmt: skip
    whole = b"".join(line + b"\n" for line in lines)
    return [whole, whole + lines[0][:40], b"\n\n" + lines[1] + b"\n"]


def _archive_line() -> Check:
    from deepcredit import archive
    from deepcredit.codec import decode_click
    from deepcredit.events import ClickEvent

    # The archiver's per-message steps (compact to one line, read the event time) are private:
    # the public path needs a broker.
    one_line, event_ts = archive._one_line, archive._event_ts

    def check(data: bytes) -> None:
        line = one_line(data)
        _require(isinstance(line, bytes) and b"\n" not in line and b"\r" not in line,
                 f"archived as {line[:80]!r}")  # fmt: skip
        ts = event_ts(line)
        _require(ts is None or (type(ts) is float and math.isfinite(ts)), f"ts {ts!r}")
        event = decode_click(data)
        if isinstance(event, ClickEvent):
            archived = decode_click(line)
            _require(archived == event, f"the archive turns {event!r} into {archived!r}")

    return check


# -- the harness' own check -----------------------------------------------------------------------


def _canary() -> Check:
    def check(data: bytes) -> None:
        if data[:4] == b"FUZZ":
            raise ContractViolation("the canary: found on purpose")

    return check


def _t(name: str, decoder: str, contract: str, build: Callable[[], Check],
       seeds: Callable[[], list[bytes]], max_len: int = 4096) -> tuple[str, Target]:  # fmt: skip
    return name, Target(name, decoder, contract, build, seeds, max_len)


TARGETS: dict[str, Target] = dict(
    [
        _t("click", "deepcredit.codec.decode_click",
           "a ClickEvent within the contract's bounds that re-encodes to itself, or a DeadLetter "
           "keeping the message; never raises",
           _click, _click_lines, max_len=5000),
        _t("post-ids", "deepcredit.codec.post_ids (a dead letter's payload -> not_scored)",
           "None, or the ids of a JSON object whose activity is \"post\": each canonical or "
           "None, ts finite or None; never raises",
           _post_ids, _click_lines),
        _t("replay-key", "deepcredit.replay.user_key",
           "the line's user_id as non-empty bytes, or None; never raises",
           _replay_key, _click_lines),
        _t("thresholds", "deepcredit.thresholds.decode_thresholds, control.decode_control",
           "a ThresholdUpdate with problem() None, version >= 1, that 'thresholds show' can "
           "print and that re-encodes to itself, or the reason (None from decode_control); the "
           "two agree; never raises",
           _thresholds, _threshold_seeds),
        _t("drift-alert", "deepcredit.control.decode_control(message, DriftAlert)",
           "a DriftAlert with problem() None that re-encodes to itself, or None; never raises",
           lambda: _record_check("DriftAlert"), _drift_seeds),
        _t("model-event", "deepcredit.control.decode_control(message, ModelEvent)",
           "a ModelEvent with problem() None that re-encodes to itself, or None; never raises",
           lambda: _record_check("ModelEvent"), _model_event_seeds),
        _t("user-state", "scorer.user_state.decode_state",
           "a UserState the scorer can advance ((6, D) and (2,) finite float32 rows, whole "
           "remembered keys, finite memory) that re-encodes to itself, or StateDecodeError",
           _user_state, _state_seeds),
        _t("seed", "state.seed.read_seed (seed.msgpack)",
           "a Seed with partitions and offsets >= 0 and states that decode as the scorer needs "
           "them, of the seed's model and one hidden size, or SeedError",
           _seed, _seed_seeds),
        _t("archive-manifest", "deepcredit.archive.read_segments (manifest.jsonl)",
           "segments with a file in segments/, offsets and line counts that add up, both "
           "event-time bounds or neither, or ArchiveError",
           _manifest, _manifest_seeds),
        _t("archive-line", "deepcredit.archive: the archiver's one-line form and event time",
           "one line without a line break that decodes to the same click, a finite event time "
           "or None; never raises",
           _archive_line, _click_lines),
        _t("canary", "none: fails on purpose on inputs starting with FUZZ",
           "the harness finds, saves and reports a crash", _canary, lambda: [b"FUZ"]),
    ]
)  # fmt: skip

#: The targets ``--target all`` runs: every decoder, not the canary.
FUZZED = tuple(name for name in TARGETS if name != "canary")
