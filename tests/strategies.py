"""Hypothesis strategies and seeded builders for click events and control records, shared by
the tests."""

from __future__ import annotations

import random
import time
import unicodedata

import msgspec
from hypothesis import strategies as st

from deepcredit.events import (
    LOAN_ACTIVITIES,
    MAX_AMOUNT,
    MAX_ID_LENGTH,
    MAX_TERM_DAYS,
    TS_MAX,
    TS_MIN,
    Activity,
    ClickEvent,
    canonical_id,
)


def _is_canonical(text: str) -> bool:
    try:
        return canonical_id(text) == text
    except ValueError:
        return False


#: Ids as the contract keeps them (``canonical_id``): NFC, no controls, no whitespace at the ends.
ids = (
    st.text(st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), min_size=1,
            max_size=MAX_ID_LENGTH)
    .map(lambda text: unicodedata.normalize("NFC", text).strip())
    .filter(_is_canonical)
)  # fmt: skip


@st.composite
def click_events(draw: st.DrawFn) -> ClickEvent:
    """Any event the contract accepts, including the edges of every bound."""
    activity = draw(st.sampled_from(list(Activity)))
    is_post = activity is Activity.POST
    loan_id = draw(ids if activity in LOAN_ACTIVITIES else st.none() | ids)
    return ClickEvent(
        event_id=draw(ids),
        user_id=draw(ids),
        ts=draw(st.floats(TS_MIN, TS_MAX)),
        activity=activity,
        amount=draw(st.floats(0.0, MAX_AMOUNT)),
        loan_id=loan_id,
        rate=draw(st.floats(0.0, 1.0) if is_post else st.none() | st.floats(0.0, 1.0)),
        term_days=draw(
            st.integers(1, MAX_TERM_DAYS) if is_post else st.none() | st.integers(1, 3650)
        ),
    )


def make_events(n: int, *, users: int = 100, seed: int = 0) -> list[ClickEvent]:
    """``n`` valid events over ``users`` users, each user's events in time order."""
    rng = random.Random(seed)
    clock = [1.6e9 + rng.uniform(0, 86_400) for _ in range(users)]
    events = []
    for i in range(n):
        u = rng.randrange(users)
        clock[u] += rng.expovariate(1 / 3600)
        activity = rng.choice(list(Activity))
        post = activity is Activity.POST
        events.append(
            ClickEvent(
                event_id=f"e{seed}-{i}",
                user_id=f"u{u}",
                ts=clock[u],
                activity=activity,
                amount=round(rng.uniform(0, 10_000), 2),
                loan_id=f"l{u}-{i}" if activity in LOAN_ACTIVITIES else None,
                rate=round(rng.uniform(0.05, 0.3), 4) if post else None,
                term_days=rng.choice([30, 90, 180, 360]) if post else None,
            )
        )
    return events


_json_leaves = st.one_of(
    st.floats(allow_nan=False), st.floats(-0.5, 1.5), st.integers(-(2**70), 2**70), st.none(),
    st.text(max_size=5), st.booleans(),
)  # fmt: skip
_json_values = st.recursive(
    _json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=8,
)  # fmt: skip


@st.composite
def thresholds_like(draw: st.DrawFn) -> bytes:
    """Mostly a thresholds record with some fields missing, mistyped or out of bounds (times
    in milliseconds among them), sometimes with extra fields."""
    record: dict = {"type": draw(st.sampled_from(["thresholds", "thresholds", "score"]))}
    fields = {
        "version": st.integers(-3, 50) | _json_values,
        "delinquent_review": st.floats(0, 1) | _json_leaves,
        "delinquent_decline": st.floats(0, 1) | _json_leaves,
        "default_review": st.floats(0, 1) | _json_leaves,
        "default_decline": st.floats(0, 1) | _json_leaves,
        "updated_by": st.text(max_size=8) | _json_values,
        "updated_at": st.sampled_from([time.time(), time.time() * 1000, 0.0, -1.0]) | _json_values,
        "note": st.text(max_size=8) | _json_values,
    }
    for name, values in fields.items():
        if draw(st.integers(0, 9)):  # a field is missing now and then
            record[name] = draw(values)
    record |= draw(st.dictionaries(st.text(max_size=4), _json_values, max_size=2))
    return msgspec.json.encode(record)
