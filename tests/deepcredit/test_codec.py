"""The decoder: strict, and never raises."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcredit.codec import (
    DEAD_LETTER_PAYLOAD_LIMIT,
    MAX_DEPTH,
    MAX_EVENT_BYTES,
    decode_click,
    encode,
    exceeds_depth,
)
from deepcredit.events import ClickEvent, canonical_id
from deepcredit.records import DeadLetter, DeadLetterReason
from tests.strategies import click_events

CASES = Path(__file__).parents[1] / "cases"

GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "ts": 1.6e9,
    "activity": "post",
    "amount": 1000.0,
    "loan_id": "l1",
    "rate": 0.12,
    "term_days": 90,
}


def _with(**changes: object) -> bytes:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_accepts_a_valid_post() -> None:
    event = decode_click(_with())
    assert isinstance(event, ClickEvent)
    assert event.loan_id == "l1" and event.term_days == 90


def test_ignores_unknown_fields_for_forward_compatibility() -> None:
    assert isinstance(decode_click(_with(channel="app")), ClickEvent)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"", DeadLetterReason.INVALID_JSON),
        (None, DeadLetterReason.INVALID_JSON),
        (b'{"event_id": "e1"', DeadLetterReason.INVALID_JSON),
        (_with()[:-1] + b", NaN}", DeadLetterReason.INVALID_JSON),
        (_with() + b" trailing", DeadLetterReason.INVALID_JSON),
        (b"[1, 2]", DeadLetterReason.NOT_AN_OBJECT),
        (b'"post"', DeadLetterReason.NOT_AN_OBJECT),
        (_with(activity="gamble"), DeadLetterReason.UNKNOWN_ACTIVITY),
        (_with(activity=...), DeadLetterReason.MISSING_FIELD),
        (_with(user_id=...), DeadLetterReason.MISSING_FIELD),
        (_with(ts="yesterday"), DeadLetterReason.WRONG_TYPE),
        (_with(amount=True), DeadLetterReason.WRONG_TYPE),
        (_with(term_days=90.5), DeadLetterReason.WRONG_TYPE),
        (_with(user_id=7), DeadLetterReason.WRONG_TYPE),
        (_with(amount=-0.01), DeadLetterReason.OUT_OF_RANGE),
        (_with()[:-1] + b', "amount": 1e400}', DeadLetterReason.OUT_OF_RANGE),
        (_with(ts=0), DeadLetterReason.OUT_OF_RANGE),
        (_with(ts=1e13), DeadLetterReason.OUT_OF_RANGE),
        (_with(rate=12.0), DeadLetterReason.OUT_OF_RANGE),
        (_with(term_days=0), DeadLetterReason.OUT_OF_RANGE),
        (_with(event_id=""), DeadLetterReason.OUT_OF_RANGE),
        (_with(user_id="u" * 129), DeadLetterReason.OUT_OF_RANGE),
        (_with(loan_id=...), DeadLetterReason.MISSING_LOAN_FIELDS),
        (_with(loan_id=None), DeadLetterReason.MISSING_LOAN_FIELDS),
        (_with(rate=...), DeadLetterReason.MISSING_LOAN_FIELDS),
        (_with(term_days=...), DeadLetterReason.MISSING_LOAN_FIELDS),
        (_with(activity="repay", loan_id=...), DeadLetterReason.MISSING_LOAN_FIELDS),
        (_with(event_id="e\udcff").replace(b"\\udcff", b"\xff"), DeadLetterReason.INVALID_UTF8),
        (_with(note="\udcff").replace(b"\\udcff", b"\xc3\x28"), DeadLetterReason.INVALID_UTF8),
        (_with(pad="x" * MAX_EVENT_BYTES), DeadLetterReason.OVERSIZE),
        (_with(meta=json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)), DeadLetterReason.TOO_DEEP),
        (b"[" * 3000, DeadLetterReason.TOO_DEEP),
        (b'{"a":' * 800, DeadLetterReason.TOO_DEEP),
        (_with(user_id="   "), DeadLetterReason.INVALID_ID),
        (_with(user_id="u1\u0000"), DeadLetterReason.INVALID_ID),
        (_with(user_id=" u1"), DeadLetterReason.INVALID_ID),
        (_with(user_id="u1\u00a0"), DeadLetterReason.INVALID_ID),
        (_with(user_id="u\u200b1"), DeadLetterReason.INVALID_ID),
        (_with(user_id="u\u20281"), DeadLetterReason.INVALID_ID),
        (_with(event_id="e\t1"), DeadLetterReason.INVALID_ID),
        (_with(loan_id="l1\n"), DeadLetterReason.INVALID_ID),
        (_with(loan_id="\u202el1"), DeadLetterReason.INVALID_ID),
    ],
)
def test_rejects_with_reason(message: bytes | None, reason: DeadLetterReason) -> None:
    result = decode_click(message)
    assert isinstance(result, DeadLetter), result
    assert result.reason is reason, result.detail
    assert result.detail


def test_the_deep_nesting_case_dead_letters_only_its_deep_line() -> None:
    """Case deep-nesting-crash: 1,000 nested arrays in an ignored field, 2 KB, crashed decoding
    (RecursionError) and with it the live flow and ``replay``."""
    first, deep, last = (CASES / "deep-nesting-crash" / "input.jsonl").read_bytes().splitlines()
    assert len(deep) < MAX_EVENT_BYTES
    letter = decode_click(deep, key=b"u1", topic="clicks", partition=0, offset=1)
    assert isinstance(letter, DeadLetter) and letter.reason is DeadLetterReason.TOO_DEEP
    assert (letter.key, letter.partition, letter.offset) == (b"u1", 0, 1)
    assert [decode_click(line).event_id for line in (first, last)] == ["e1", "e3"]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    inner = MAX_DEPTH - 1  # the event itself is the first level
    assert isinstance(decode_click(_with(meta=json.loads("[" * inner + "]" * inner))), ClickEvent)
    brackets_in_text = "[{" * (MAX_EVENT_BYTES // 8)
    assert isinstance(decode_click(_with(note=brackets_in_text)), ClickEvent)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


json_text = st.text(st.sampled_from('[]{}"\\ab\n'))  # what could fool a bracket counter
nested = st.recursive(
    st.none() | st.integers() | json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=30,
)


@given(nested, st.integers(0, 6))
def test_exceeds_depth_is_the_depth_of_the_json(value: object, limit: int) -> None:
    assert exceeds_depth(json.dumps(value).encode(), limit) is (_depth(value) > limit)


@given(st.text(st.sampled_from('[]{}"\\:,1 '), max_size=200), st.integers(0, 6))
def test_what_exceeds_depth_lets_through_parses_within_the_limit(text: str, limit: int) -> None:
    """Any text, JSON or not: when the check says it is within ``limit``, what parses is too."""
    if exceeds_depth(text.encode(), limit):
        return
    decoder = msgspec.json.Decoder()
    try:
        value = decoder.decode(text.encode())
    except msgspec.DecodeError:
        return
    assert _depth(value) <= limit


def test_ids_are_put_in_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "zo\u00eb.test-user")
    event = decode_click(_with(user_id=nfd, event_id="e\u0301", loan_id="Lo\u0308"))
    assert isinstance(event, ClickEvent)
    assert (event.user_id, event.event_id, event.loan_id) == ("zo\u00eb.test-user", "\u00e9",
                                                             "L\u00f6")  # fmt: skip


@given(st.text(max_size=40))
def test_canonical_ids_are_nfc_and_fixed_points(text: str) -> None:
    try:
        canonical = canonical_id(text)
    except ValueError:
        return
    assert canonical == unicodedata.normalize("NFC", text) and canonical_id(canonical) == canonical
    assert canonical.strip() == canonical != ""


def test_dead_letter_keeps_coordinates_and_a_bounded_payload() -> None:
    junk = b"x" * 100_000
    dl = decode_click(junk, key=b"u1", topic="clicks", partition=3, offset=42)
    assert isinstance(dl, DeadLetter)
    assert (dl.key, dl.topic, dl.partition, dl.offset) == (b"u1", "clicks", 3, 42)
    assert dl.payload == junk[:DEAD_LETTER_PAYLOAD_LIMIT] and dl.payload_size == len(junk)
    # Binary payloads survive the JSON wire format (base64).
    assert msgspec.json.decode(encode(dl), type=DeadLetter) == dl


@given(click_events())
def test_round_trip(event: ClickEvent) -> None:
    assert decode_click(encode(event)) == event


@given(st.binary(max_size=MAX_EVENT_BYTES + 64))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert isinstance(decode_click(data), ClickEvent | DeadLetter)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300)
@given(st.sampled_from(sorted(GOOD)), json_values)
def test_any_field_value_never_raises(field: str, value: object) -> None:
    message = json.dumps({**GOOD, field: value}).encode()
    assert isinstance(decode_click(message), ClickEvent | DeadLetter)


@given(click_events(), st.integers(0, 400), st.binary(min_size=1, max_size=4))
def test_corrupted_valid_messages_never_raise(event: ClickEvent, at: int, junk: bytes) -> None:
    raw = encode(event)
    at = at % (len(raw) + 1)
    assert isinstance(decode_click(raw[:at] + junk + raw[at:]), ClickEvent | DeadLetter)
