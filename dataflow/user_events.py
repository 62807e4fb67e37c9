"""What the score step reports about a user's events besides their scores.

- A **resend** (an event id the user's state remembers, with the same content) changes nothing
  and is counted in ``deepcredit_duplicate_events_total{activity}``.
- A **conflicting duplicate** (a remembered id with other content: the id was reused) changes
  nothing either, as training keeps an id's first copy; it goes to the dead-letter topic with
  reason ``conflicting_event_id`` (counted in ``deepcredit_dead_letters_total``), so a loan
  request that gets no decision is seen.
- An event **read out of order** (earlier than an event of the user already read,
  ``scorer.steps.out_of_order_s``) is scored as it comes, its time gaps taken as 0 and its
  loan events put in their place by the ledger (``scorer.ledger``, "Disorder"); counted in
  ``deepcredit_out_of_order_events_total{activity}``. Loan events the ledger held for a loan
  that did not come within ``scorer.ledger.HOLD_BOUND`` are counted in
  ``deepcredit_held_loan_events_given_up_total``. Both are logged, at most one line a minute
  each, with how many there were since the last line: a steady disorder (a producer with its
  own partitioner) must not flood the log.
"""

from __future__ import annotations

import logging
import time

from dataflow import metrics
from dataflow.records import Accepted
from deepcredit.codec import encode
from deepcredit.records import DeadLetter, DeadLetterReason
from scorer.user_state import RECENT_IDS, Seen, UserState

__all__ = ["LOG_INTERVAL_S", "given_up", "out_of_order", "repeat"]

log = logging.getLogger(__name__)

#: Seconds between two log lines about out-of-order events (and about given-up ones).
LOG_INTERVAL_S = 60.0


class _Sampler:
    """Says when a line may be logged: at most one per ``interval_s``."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = 0.0
        self.count = 0  # occurrences since the last line logged

    def due(self, n: int = 1) -> int:
        """Note ``n`` more occurrences; how many the line to log now stands for, or 0 when it
        is too soon to log."""
        self.count += n
        now = time.monotonic()
        if now < self._next:
            return 0
        self._next = now + self.interval_s
        count, self.count = self.count, 0
        return count


_out_of_order_log = _Sampler(LOG_INTERVAL_S)
_given_up_log = _Sampler(LOG_INTERVAL_S)


def repeat(a: Accepted, state: UserState, seen: Seen, key: bytes, fingerprint: bytes
           ) -> DeadLetter | None:  # fmt: skip
    """Count an event the state does not advance by (``seen``: RESEND or CONFLICT); the dead
    letter of a conflicting duplicate. ``key``, ``fingerprint``: the event's
    (``scorer.user_state.event_key``, ``event_fingerprint``)."""
    event = a.event
    if seen is Seen.RESEND:
        metrics.DUPLICATES.labels(event.activity.value).inc()
        return None
    earlier = state.fingerprint_of(key)
    payload = encode(event)
    metrics.DEAD_LETTERS.labels(DeadLetterReason.CONFLICTING_EVENT_ID.value).inc()
    return DeadLetter(
        reason=DeadLetterReason.CONFLICTING_EVENT_ID,
        detail=(f"event id {event.event_id!r} names another event among the last {RECENT_IDS} "
                f"of user {event.user_id!r}: content (ts, activity, amount, loan_id, rate, "
                f"term_days) fingerprint {fingerprint.hex()} is not the earlier one's "
                f"{earlier.hex() if earlier else '?'}; not applied (the first copy stands): "
                "send it under a new event id"),
        payload=payload,  # the event as accepted: canonical JSON that decodes to it
        payload_size=len(payload),
        key=event.user_id.encode(),  # the clicks' key: a replay lands with the user's events
        topic=a.topic,
        partition=a.partition,
        offset=a.offset,
        received_at=time.time(),
    )  # fmt: skip


def out_of_order(a: Accepted, seconds: float) -> None:
    """Count (and log, at a low rate) an event read ``seconds`` (> 0) after a later one."""
    event = a.event
    metrics.OUT_OF_ORDER.labels(event.activity.value).inc()
    count = _out_of_order_log.due()
    if count:
        log.warning("user %s: %s event %s is %.0f s earlier than an event of the user already "
                    "read (partition %d, offset %d): its time gaps count as 0, its loan events "
                    "are held for their loan; %d such events since the last line (a user's "
                    "events on two partitions?)", event.user_id, event.activity.value,
                    event.event_id, seconds, a.partition, a.offset, count)  # fmt: skip


def given_up(a: Accepted, n: int) -> None:
    """Count (and log, at a low rate) ``n`` held loan events the ledger gave up on ``a``."""
    metrics.HELD_GIVEN_UP.inc(n)
    count = _given_up_log.due(n)
    if count:
        log.warning("user %s: loan events held for a loan that did not arrive within the bound "
                    "were dropped (at event %s); %d since the last line", a.event.user_id,
                    a.event.event_id, count)  # fmt: skip
