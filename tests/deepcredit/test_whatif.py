"""The what-if math (pure): decision mixes, expected and realised bad rates, the operating
curve, the audit record's rules, a change planned against the thresholds in force."""

from __future__ import annotations

import math
import random

import msgspec
import numpy as np
import pytest

from deepcredit.audit import ThresholdsChange
from deepcredit.loans import LoanOutcome
from deepcredit.records import Decision, ThresholdUpdate
from deepcredit.thresholds import DEFAULT_THRESHOLDS, InvalidThresholds, NoChange, plan_thresholds
from deepcredit.whatif import (
    ScoredPost,
    Target,
    WhatIf,
    decision_mix,
    operating_curve,
    what_if,
)

T = ThresholdUpdate(version=1, delinquent_review=0.2, delinquent_decline=0.5,
                    default_review=0.08, default_decline=0.2, updated_by="ops",
                    updated_at=1.7e9)  # fmt: skip


def outcome(funded: bool, delinquent: bool | None, default: bool | None) -> LoanOutcome:
    return LoanOutcome(loan_id="l", user_id="u", post_ts=0.0, due_ts=1.0, amount=1.0,
                       funded=funded, delinquent=delinquent, default=default)  # fmt: skip


def random_posts(n: int, seed: int) -> list[ScoredPost]:
    rng = random.Random(seed)
    kinds = [None, outcome(False, None, None), outcome(True, None, None),
             outcome(True, True, None), outcome(True, True, True), outcome(True, True, False),
             outcome(True, False, False)]  # fmt: skip
    return [ScoredPost(rng.random() ** 2, rng.random() ** 3 * 0.5, rng.choice(kinds))
            for _ in range(n)]  # fmt: skip


@pytest.mark.parametrize("seed", range(5))
def test_the_mix_counts_as_a_plain_loop_over_the_posts(seed: int) -> None:
    posts = random_posts(400, seed)
    mix = decision_mix(posts, T)
    decisions = [T.decide(p_delinquent=p.p_delinquent, p_default=p.p_default) for p in posts]
    approved = [p for p, d in zip(posts, decisions, strict=True) if d is Decision.APPROVE]
    for d in Decision:
        assert mix.rate(d) == decisions.count(d) / len(posts)
    assert mix.expected_bad(Target.DELINQUENT) == pytest.approx(
        np.mean([p.p_delinquent for p in approved])
    )
    assert mix.expected_bad(Target.DEFAULT) == pytest.approx(
        np.mean([p.p_default for p in approved])
    )
    for target in Target:
        labels = [getattr(p.outcome, target.value) for p in approved
                  if p.outcome is not None and p.outcome.funded
                  and getattr(p.outcome, target.value) is not None]  # fmt: skip
        assert mix.labelled(target) == (len(labels), sum(labels))
        assert mix.realised_bad(target) == pytest.approx(sum(labels) / len(labels))
    funded = [p.outcome for p in approved if p.outcome is not None and p.outcome.funded]
    assert mix.approved_open == sum(o.delinquent is None or o.default is None for o in funded)
    assert mix.approved_unfunded == sum(p.outcome is not None and not p.outcome.funded
                                        for p in approved)  # fmt: skip
    assert mix.approved_without_outcome == sum(p.outcome is None for p in approved)


def test_no_posts_and_nobody_approved_give_no_rates() -> None:
    empty = decision_mix([], T)
    assert (empty.rate(Decision.APPROVE), empty.expected_bad(Target.DEFAULT)) == (None, None)
    none_approved = decision_mix([ScoredPost(0.9, 0.9, None)], T)
    assert none_approved.rate(Decision.DECLINE) == 1.0
    assert none_approved.expected_bad(Target.DELINQUENT) is None
    assert none_approved.realised_bad(Target.DELINQUENT) is None


def test_the_shift_in_points_and_the_record_round_trips() -> None:
    posts = random_posts(300, 7)
    tighter = msgspec.structs.replace(T, version=2, delinquent_decline=0.3)
    effect = what_if(posts, T, tighter, as_of=1.7e9, model_version="m1")
    before, after = decision_mix(posts, T), decision_mix(posts, tighter)
    assert effect.shift_points(Decision.DECLINE) == pytest.approx(
        100 * (after.decline - before.decline) / len(posts)
    )
    assert effect.shift_points(Decision.DECLINE) > 0
    assert effect.shift_points(Decision.APPROVE) == 0  # review thresholds unchanged
    assert msgspec.json.decode(msgspec.json.encode(effect), type=WhatIf) == effect


@pytest.mark.parametrize("target", list(Target))
def test_the_operating_curve_passes_through_the_thresholds_point(target: Target) -> None:
    posts = random_posts(500, 3)
    curve = operating_curve(posts, T, target)
    assert curve.approval[0] == 0 and curve.approval[-1] == 1
    assert np.all(np.diff(curve.approval) > 0)
    mix = decision_mix(posts, T)
    [at] = np.flatnonzero(np.isclose(curve.approval, mix.rate(Decision.APPROVE)))
    assert curve.expected[at] == pytest.approx(mix.expected_bad(target))
    assert curve.realised[at] == pytest.approx(mix.realised_bad(target))
    # Scaling the review thresholds by 2 is another point of the same curve.
    wider = msgspec.structs.replace(T, delinquent_review=0.4, default_review=0.16,
                                    delinquent_decline=0.8, default_decline=0.4)  # fmt: skip
    wide = decision_mix(posts, wider)
    assert np.isclose(curve.approval, wide.rate(Decision.APPROVE)).any()


def test_a_review_threshold_of_zero_approves_nobody_on_the_curve() -> None:
    posts = random_posts(50, 1)
    curve = operating_curve(posts, msgspec.structs.replace(T, default_review=0.0),
                            Target.DELINQUENT)  # fmt: skip
    assert list(curve.approval) == [0.0] and math.isnan(curve.expected[0])


def test_plan_keeps_what_is_not_given_and_refuses_a_no_op() -> None:
    plan = plan_thresholds(T, default_decline=0.3, updated_by="bo", note="why", at=1.8e9)
    assert (plan.version, plan.default_decline, plan.delinquent_review) == (2, 0.3, 0.2)
    with pytest.raises(NoChange, match="no change: these are the thresholds in force"):
        plan_thresholds(T, default_decline=0.2, updated_by="bo")
    with pytest.raises(InvalidThresholds, match="must not exceed"):
        plan_thresholds(T, delinquent_review=0.9, updated_by="bo")
    # The defaults are version 0: the first change is version 1.
    assert plan_thresholds(DEFAULT_THRESHOLDS, default_review=0.1, updated_by="b").version == 1


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"reason": " "}, "reason must say why"),
        ({"by": ""}, "by must name who"),
        ({"action": "delete"}, "action must be one of set, rollback"),
        ({"new": T}, "new version 1 is not above old version 1"),
        ({"new": msgspec.structs.replace(T, version=2)}, "old and new thresholds are the same"),
        ({"rollback_to": 0}, "rollback_to is set exactly on a rollback"),
        ({"at": 1.7e12}, "at must be Unix seconds"),
        ({"new": msgspec.structs.replace(T, version=2, default_review=0.9)}, "new thresholds:"),
    ],
)
def test_an_audit_record_says_what_is_wrong(change: dict, complaint: str) -> None:
    new = msgspec.structs.replace(T, version=2, default_review=0.1)
    good = ThresholdsChange(action="set", by="ops", at=1.7e9, reason="q3", old=T, new=new)
    assert good.problem() is None
    assert complaint in (msgspec.structs.replace(good, **change).problem() or "")
    # From the defaults (version 0, never valid on the topic) is a valid change.
    assert msgspec.structs.replace(good, old=DEFAULT_THRESHOLDS).problem() is None
