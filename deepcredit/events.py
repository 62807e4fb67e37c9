"""The click event: one financial activity of one user, as it arrives on the clicks topic.

The field bounds and the id rule (``canonical_id``) are the contract (see DESIGN.md): anything
outside them is not a click event and goes to the dead-letter topic with the reason.

>>> e = ClickEvent(event_id="e1", user_id="u1", ts=1.5e9, activity=Activity.RECHARGE, amount=50.0)
>>> e.activity.value, e.needs_loan_id
('recharge', False)
"""

from __future__ import annotations

import enum
import unicodedata
from typing import Annotated

import msgspec

__all__ = [
    "DAY_S",
    "LOAN_ACTIVITIES",
    "MAX_AMOUNT",
    "MAX_TERM_DAYS",
    "TS_MAX",
    "TS_MIN",
    "Activity",
    "ClickEvent",
    "canonical_id",
]

#: Seconds in a day: event times are Unix seconds, loan terms and delays are days.
DAY_S = 86_400.0
#: Event time bounds, Unix seconds: 2000-01-01 and 2100-01-01. Outside is a producer bug.
TS_MIN = 946_684_800.0
TS_MAX = 4_102_444_800.0
#: No single activity on a lending platform moves a quadrillion; above is corruption.
MAX_AMOUNT = 1e12
MAX_TERM_DAYS = 3650
MAX_ID_LENGTH = 128


class Activity(enum.StrEnum):
    """What the user did. The first three write to a loan; the rest move money."""

    POST = "post"  # asks for a loan: this is the moment we score
    BORROW = "borrow"  # a posted loan got funded
    LEND = "lend"
    REPAY = "repay"
    BE_REPAID = "be_repaid"
    MISS_PAYMENT = "miss_payment"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    RECHARGE = "recharge"
    WITHDRAW = "withdraw"


#: Activities that must name the loan they concern.
LOAN_ACTIVITIES = frozenset(
    {Activity.POST, Activity.BORROW, Activity.REPAY, Activity.MISS_PAYMENT}
)

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
#: Unicode categories no id may contain: controls (Cc, NUL included), format characters (Cf:
#: zero-width and bidi marks, invisible in logs and dashboards), line and paragraph separators.
_FORBIDDEN_IN_IDS = frozenset({"Cc", "Cf", "Zl", "Zp"})


def canonical_id(raw: str) -> str:
    r"""The one form of an id (``user_id``, ``event_id``, ``loan_id``) that state, scores and
    training are keyed on: ``raw`` in Unicode NFC, so an id typed on a system that sends it
    decomposed (NFD, as macOS and iOS do) names the same user as its composed form.

    Raises ValueError, saying why, for an id that is empty, has leading or trailing whitespace
    (an all-blank id included), contains a character of category Cc, Cf, Zl or Zp, or is longer
    than ``MAX_ID_LENGTH`` characters once composed. Such an id is refused, not repaired: two
    producers would repair it differently, and a repaired id would name someone else.

    >>> canonical_id("zoe\u0308") == canonical_id("zo\u00eb") == "zo\u00eb"
    True
    >>> canonical_id("u1\x00")
    Traceback (most recent call last):
    ...
    ValueError: contains U+0000 (category Cc)
    """
    # Printable ASCII, the common case, is NFC and free of controls: only its ends need a look.
    if raw.isascii() and raw.isprintable() and raw and raw[0] != " " and raw[-1] != " ":
        return raw
    nfc = raw if unicodedata.is_normalized("NFC", raw) else unicodedata.normalize("NFC", raw)
    if not nfc.strip():
        raise ValueError("empty or blank")
    if nfc != nfc.strip():
        raise ValueError("leading or trailing whitespace")
    for ch in nfc:
        category = unicodedata.category(ch)
        if category in _FORBIDDEN_IN_IDS:
            raise ValueError(f"contains U+{ord(ch):04X} (category {category})")
    if len(nfc) > MAX_ID_LENGTH:
        raise ValueError(f"{len(nfc)} characters in NFC > limit of {MAX_ID_LENGTH}")
    return nfc

EventTime = Annotated[float, msgspec.Meta(ge=TS_MIN, le=TS_MAX)]
Amount = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_AMOUNT)]
Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
TermDays = Annotated[int, msgspec.Meta(ge=1, le=MAX_TERM_DAYS)]


class ClickEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One financial activity. ``rate`` is the annual interest rate as a fraction (0.12 = 12%).

    Unknown JSON fields are ignored so that producers can add fields without dead-lettering
    the stream; every field we read is checked. An event decoded by ``codec.decode_click`` has
    its ids in ``canonical_id`` form.
    """

    event_id: Id
    user_id: Id
    ts: EventTime
    activity: Activity
    amount: Amount
    loan_id: Id | None = None
    rate: Rate | None = None
    term_days: TermDays | None = None

    @property
    def needs_loan_id(self) -> bool:
        return self.activity in LOAN_ACTIVITIES

    def contract_violation(self) -> str | None:
        """The cross-field rule this event breaks, or None. Field bounds are checked on decode."""
        if self.needs_loan_id and self.loan_id is None:
            return f"activity '{self.activity.value}' needs loan_id"
        if self.activity is Activity.POST:
            missing = [f for f in ("rate", "term_days") if getattr(self, f) is None]
            if missing:
                return f"activity 'post' needs {' and '.join(missing)}"
        return None
