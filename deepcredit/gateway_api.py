"""The request/reply gateway's answers (``deepcredit gateway``), as they cross HTTP: what the
gateway sends and what ``deepcredit.client`` decodes. The request is a click event of the
event contract (``deepcredit.events.ClickEvent``), a ``post``.

====  ==============  ==================================================================
code  body            when
====  ==============  ==================================================================
200   ``ScoreAnswer`` the post's score, the very record the flow wrote to the risk topic
409   ``Refused``     the event id names another post (reused id, other content)
422   ``Refused``     not a click of the contract (the dead-letter reason and detail), not
                      a ``post``, or a post the flow could not score (its not_scored reason)
503   ``NotAnswered`` the flow (or the broker) is down; ``partition``/``offset`` when the
                      post was accepted before it went down
504   ``NotAnswered`` accepted at ``partition``/``offset``, not scored within the timeout
====  ==============  ==================================================================

>>> a = ScoreAnswer(event_id="e1", user_id="u1", loan_id="l1", p_delinquent=0.2,
...                 p_default=0.05, decision="approve", thresholds_version=3,
...                 model_version="dc-1", event_ts=1.7e9, scored_at=1.7e9)
>>> msgspec.json.decode(msgspec.json.encode(a), type=ScoreAnswer) == a
True
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["NotAnswered", "Reason", "Refused", "ScoreAnswer"]

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class Reason(msgspec.Struct, frozen=True, kw_only=True):
    """One principal reason behind a score (adverse-action reason code): a stable ``code``
    from the catalogue (``scorer.reasons.CATALOGUE``) and its plain-language ``statement``; the
    gateway copies the score record's codes with their statements."""

    code: str
    statement: str


class ScoreAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A scored post: the fields of the flow's ``Score`` record (``deepcredit.records``).
    Probabilities in [0, 1]; times in Unix seconds; ``decision`` approve, review or decline
    under thresholds ``thresholds_version``; ``prior_events`` and ``history_days`` the
    cold-start signal (the user's events before this post, days since the first; 0 and 0.0: no
    history); ``reasons`` most important first (up to four)."""

    event_id: str
    user_id: str
    loan_id: str
    p_delinquent: Probability
    p_default: Probability
    decision: Literal["approve", "review", "decline"]
    thresholds_version: int
    model_version: str
    event_ts: float
    scored_at: float
    prior_events: int = 0
    history_days: float = 0.0
    reasons: list[Reason] = []


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """A request that will never be scored as sent. ``reason``: a dead-letter reason of the
    event contract (the same text the dead-letter topic would carry for these bytes),
    ``not_a_post``, or ``conflicting_event_id``; ``detail`` says what exactly."""

    reason: str
    detail: str
    event_id: str | None = None


class NotAnswered(msgspec.Struct, frozen=True, kw_only=True):
    """No score (yet). ``status``: ``pending`` (accepted at ``partition``/``offset`` of the
    clicks topic, not scored within the gateway's timeout: resend the same request later to
    get the answer) or ``unavailable`` (the flow or broker is down; ``partition``/``offset``
    are set when the post was accepted before that). ``detail`` is for people."""

    status: Literal["pending", "unavailable"]
    detail: str
    event_id: str | None = None
    partition: int | None = None
    offset: int | None = None
