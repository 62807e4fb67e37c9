"""What a model change does to decisions: two models replayed over the same clicks, their
decisions compared at the same thresholds (``deepcredit models promote``/``rollback``, and
the retraining controller when it promotes).

Both models' probabilities at each post come from replaying the whole click history through
each of them (``scorer.rebuild``: every user's state from their first click, all users in
lockstep; the probabilities equal the live scorer's within float32 rounding, calibration
included). Not from the risk-scores topic: the scores there are the serving model's only,
over a stretch that may cross earlier cut-overs, while a promotion needs the candidate's
probabilities on the very same posts; replaying both through one code path makes the two
columns differ only by the weights. The ``last`` most recent posts by event time are
compared; their outcomes follow ``deepcredit.loans`` as known at ``as_of``, and each post's
segment facts are its amount, term and the events its user had before it (as a score's
``prior_events``). The decision math is ``deepcredit.whatif``'s.

>>> # impact = replay_impact(current_w, candidate_w, clicks, thresholds, last=50_000,
>>> #                        as_of=clock, source="the clicks topic")
>>> # impact.shift_points(Decision.DECLINE) -> +4.2 (points)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from deepcredit.events import Activity, ClickEvent
from deepcredit.loans import loan_outcomes
from deepcredit.records import ThresholdUpdate
from deepcredit.whatif import ModelImpact, ScoredPost, model_impact
from scorer.model import ModelWeights
from scorer.rebuild import rebuild

__all__ = ["replay_impact"]


def replay_impact(
    current: ModelWeights,
    candidate: ModelWeights,
    events: Sequence[ClickEvent],
    thresholds: ThresholdUpdate,
    *,
    last: int,
    as_of: float | None,
    source: str = "",
) -> ModelImpact | None:
    """``current`` and ``candidate`` on the ``last`` most recent posts of ``events`` (valid
    clicks, each user's in the order the flow reads them), decided under ``thresholds``;
    outcomes as known at ``as_of`` (Unix s, event time; None: none known). None when the
    clicks hold no post both models scored."""
    by_user: dict[str, list[ClickEvent]] = defaultdict(list)
    for e in events:
        by_user[e.user_id].append(e)
    mine, theirs = rebuild(current, by_user), rebuild(candidate, by_user)
    posts: dict[str, ClickEvent] = {}
    for e in events:  # the first copy of a resent post: the one both rebuilds scored
        if e.activity is Activity.POST and e.event_id in mine.posts:
            posts.setdefault(e.event_id, e)
    recent = sorted(posts.values(), key=lambda e: e.ts)[-last:] if last > 0 else []
    recent = [e for e in recent if e.event_id in theirs.posts]
    if not recent:
        return None
    outcomes = loan_outcomes(events, as_of=as_of) if as_of is not None else {}

    def scored(rebuilt, e: ClickEvent) -> ScoredPost:
        p_del, p_def = rebuilt.posts[e.event_id]
        seen = rebuilt.history.get(e.event_id, (None, 0.0))[0]
        return ScoredPost(p_del, p_def, outcomes.get(e.loan_id or ""), e.amount, e.term_days,
                          seen)  # fmt: skip

    return model_impact([scored(mine, e) for e in recent], [scored(theirs, e) for e in recent],
                        thresholds, current_model=current.version,
                        candidate_model=candidate.version, as_of=as_of,
                        source=source)  # fmt: skip
