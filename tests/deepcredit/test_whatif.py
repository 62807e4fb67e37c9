"""The what-if math (pure): decision mixes, expected and realised bad rates, the operating
curve, the audit record's rules, a change planned against the thresholds in force."""

from __future__ import annotations

import math
import random

import msgspec
import numpy as np
import pytest

from deepcredit.audit import ThresholdsChange
from deepcredit.codec import encode
from deepcredit.events import Activity, ClickEvent
from deepcredit.loans import LoanOutcome
from deepcredit.records import Decision, ThresholdSegment, ThresholdUpdate, score_record
from deepcredit.thresholds import (
    DEFAULT_THRESHOLDS,
    InvalidThresholds,
    NoChange,
    Segments,
    decode_thresholds,
    plan_thresholds,
)
from deepcredit.whatif import (
    ModelImpact,
    PostFacts,
    ScoredPost,
    Target,
    WhatIf,
    decision_mix,
    model_impact,
    operating_curve,
    post_facts,
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


# -- segments -------------------------------------------------------------------------------------

CUTS = {"delinquent_review": 0.2, "delinquent_decline": 0.5, "default_review": 0.08,
        "default_decline": 0.2}  # fmt: skip


def seg(name: str, **kw: object) -> ThresholdSegment:
    return ThresholdSegment(name=name, **{**CUTS, **kw})  # type: ignore[arg-type]


#: Thin-file users apart; established users by amount band, the small amounts by term band.
GRID = (
    seg("thin", file="thin", delinquent_review=0.1, delinquent_decline=0.25),
    seg("small-short", file="established", amount_max=1000.0, term_max_days=90),
    seg("small-long", file="established", amount_max=1000.0, term_min_days=90,
        default_review=0.05),
    seg("large", file="established", amount_min=1000.0, delinquent_decline=0.4),
)  # fmt: skip
SEGMENTED = msgspec.structs.replace(T, thin_file_events=20, segments=GRID)


def test_segments_that_hold_every_post_once_are_valid_and_decide() -> None:
    assert SEGMENTED.problem() is None
    p = {"p_delinquent": 0.25, "p_default": 0.01}
    assert SEGMENTED.decide(**p, amount=500, term_days=30, events_seen=3) is Decision.DECLINE
    assert SEGMENTED.decide(**p, amount=500, term_days=30, events_seen=20) is Decision.REVIEW
    # An unknown count of events makes no thin-file verdict: established.
    assert SEGMENTED.segment(500, 30).name == "small-short"  # type: ignore[union-attr]
    assert SEGMENTED.segment(500, 90, 25).name == "small-long"  # type: ignore[union-attr]
    assert SEGMENTED.segment(1000, 5, 25).name == "large"  # type: ignore[union-attr]
    assert SEGMENTED.decide(p_delinquent=0.45, p_default=0.0, amount=2e6, term_days=30,
                            events_seen=99) is Decision.DECLINE  # fmt: skip
    # Without amount and term (a caller that does not know them): the top-level four.
    assert SEGMENTED.segment(None, None) is None
    assert SEGMENTED.decide(p_delinquent=0.45, p_default=0.0) is Decision.REVIEW


@pytest.mark.parametrize(
    ("segments", "complaint"),
    [
        (GRID[:3], "amount >= 1000, term >= 1 days, falls in no segment"),
        ((*GRID, seg("overlap", amount_min=5000.0)), "falls in 'thin' and 'overlap'"),
        (
            (
                GRID[0],
                GRID[1],
                seg("small-long", file="established", amount_max=1000.0, term_min_days=120),
                GRID[3],
            ),
            "established user, amount >= 0, term >= 90 days, falls in no segment",
        ),
        ((*GRID, seg("thin")), "segment names must differ"),
        ((seg("all", delinquent_review=0.6),), "segment 'all': delinquent_review (0.6)"),
        ((seg("all", amount_min=10.0, amount_max=5.0),), "amount_max (5.0) must exceed"),
        ((seg("all", file="new"),), "file must be one of thin, established, any"),
    ],
)
def test_segments_that_miss_or_overlap_posts_are_refused(
    segments: tuple[ThresholdSegment, ...], complaint: str
) -> None:
    bad = msgspec.structs.replace(SEGMENTED, segments=segments)
    assert complaint in (bad.problem() or "")


def test_a_thin_file_segment_needs_the_count_that_defines_it() -> None:
    bad = msgspec.structs.replace(SEGMENTED, thin_file_events=None)
    assert "thin_file_events must say how many events" in (bad.problem() or "")
    assert "at least 1" in (msgspec.structs.replace(SEGMENTED, thin_file_events=0).problem())


def test_records_from_before_segments_decode_and_decide_as_before() -> None:
    old = (b'{"type":"thresholds","version":3,"delinquent_review":0.2,"delinquent_decline":0.5,'
           b'"default_review":0.08,"default_decline":0.2,"updated_by":"ops",'
           b'"updated_at":1700000000.0,"note":""}')  # fmt: skip
    decoded = decode_thresholds(old)
    assert isinstance(decoded, ThresholdUpdate) and decoded.segments == ()
    assert decoded == msgspec.structs.replace(T, version=3)
    assert decode_thresholds(encode(SEGMENTED)) == SEGMENTED
    assert "falls in no segment" in str(decode_thresholds(encode(
        msgspec.structs.replace(SEGMENTED, segments=GRID[:3]))))  # fmt: skip


def test_the_live_score_applies_the_post_segment() -> None:
    post = ClickEvent(event_id="e", user_id="u", ts=1.7e9, activity=Activity.POST,
                      amount=5000.0, loan_id="l", rate=0.1, term_days=30)  # fmt: skip
    established = (25, 90.0)  # the score's cold-start signal: prior events, days of history
    assert score_record(post, (0.45, 0.0), SEGMENTED, "m", established).decision is (
        Decision.DECLINE)
    assert score_record(post, (0.45, 0.0), T, "m", established).decision is Decision.REVIEW
    # The thin-file segment comes from the score's prior_events (thin below 20 here).
    small = msgspec.structs.replace(post, amount=500.0)
    p = (0.25, 0.01)
    assert score_record(small, p, SEGMENTED, "m", (3, 2.0)).decision is Decision.DECLINE
    assert score_record(small, p, SEGMENTED, "m", (20, 40.0)).decision is Decision.REVIEW


def test_post_facts_count_the_user_events_before_each_post() -> None:
    def ev(i: int, user: str, act: Activity, **kw: object) -> ClickEvent:
        return ClickEvent(event_id=str(i), user_id=user, ts=1.7e9 + i, activity=act,
                          amount=10.0 * i, **kw)  # type: ignore[arg-type]  # fmt: skip

    loan = {"loan_id": "l", "rate": 0.1, "term_days": 30}
    events = [ev(1, "a", Activity.RECHARGE), ev(2, "b", Activity.POST, **loan),
              ev(3, "a", Activity.LEND), ev(4, "a", Activity.POST, **loan)]  # fmt: skip
    assert post_facts(events) == {"2": PostFacts(20.0, 30, 0), "4": PostFacts(40.0, 30, 2)}


def segmented_posts(n: int, seed: int) -> list[ScoredPost]:
    rng = random.Random(seed)
    return [p._replace(amount=rng.choice([50.0, 999.0, 1000.0, 20000.0]),
                       term_days=rng.choice([7, 89, 90, 365]),
                       events_seen=rng.choice([None, 0, 19, 20, 500]))
            for p in random_posts(n, seed)]  # fmt: skip


def test_the_what_if_by_segment_adds_up_and_uses_each_segment_cutoffs() -> None:
    posts = segmented_posts(600, 2)
    effect = what_if(posts, T, SEGMENTED)
    assert list(effect.segments) == [s.name for s in GRID]
    assert sum(cur.posts for cur, _ in effect.segments.values()) == len(posts)
    for field in ("approve", "review", "decline", "approved_open"):
        for i, whole in ((0, effect.current), (1, effect.candidate)):
            parts = sum(getattr(mixes[i], field) for mixes in effect.segments.values())
            assert parts == getattr(whole, field)
    thin = [p for p in posts if p.events_seen is not None and p.events_seen < 20]
    assert effect.segments["thin"][1] == decision_mix(thin, SEGMENTED)
    assert effect.segments["thin"][0] == decision_mix(thin, T)
    assert msgspec.json.decode(msgspec.json.encode(effect), type=WhatIf) == effect
    # The operating curve goes through the segmented thresholds' point too.
    curve = operating_curve(posts, SEGMENTED, Target.DELINQUENT)
    mix = effect.candidate
    [at] = np.flatnonzero(np.isclose(curve.approval, mix.rate(Decision.APPROVE)))
    assert curve.expected[at] == pytest.approx(mix.expected_bad(Target.DELINQUENT))


def test_a_change_of_segments_alone_is_a_change() -> None:
    plan = plan_thresholds(T, segments=Segments(GRID, 20), updated_by="bo", at=1.8e9)
    assert (plan.segments, plan.thin_file_events) == (GRID, 20)
    change = ThresholdsChange(action="set", by="bo", at=1.8e9, reason="segments", old=T,
                              new=plan)  # fmt: skip
    assert change.problem() is None and set(change.changed()) == {"thin_file_events", "segments"}
    with pytest.raises(NoChange):
        plan_thresholds(plan, segments=Segments(GRID, 20), updated_by="bo")
    cleared = plan_thresholds(plan, segments=Segments(), updated_by="bo")
    assert (cleared.segments, cleared.thin_file_events) == ((), None)
    assert plan_thresholds(plan, default_review=0.07, updated_by="bo").segments == GRID


def test_a_model_change_on_four_posts_as_computed_by_hand() -> None:
    """Two models' probabilities at the same four posts, decided at the defaults (review /
    decline: delinquent 0.25 / 0.5, default 0.08 / 0.2), with two amount segments that keep
    those cut-offs."""

    def outcome(loan: str, bad: bool) -> LoanOutcome:
        return LoanOutcome(loan_id=loan, user_id="u", post_ts=0.0, due_ts=1.0, amount=1.0,
                           funded=True, delinquent=bad, default=False)  # fmt: skip

    facts = [(outcome("a", False), 500.0), (None, 500.0), (None, 2000.0),
             (outcome("d", True), 2000.0)]  # fmt: skip
    now = [(0.10, 0.02), (0.30, 0.05), (0.60, 0.10), (0.20, 0.06)]  # approve review decline approve
    after = [(0.05, 0.01), (0.55, 0.03), (0.40, 0.25), (0.30, 0.06)]  # approve decline decline rev.
    cut = {name: getattr(DEFAULT_THRESHOLDS, name) for name in ("delinquent_review",
           "delinquent_decline", "default_review", "default_decline")}  # fmt: skip
    t = msgspec.structs.replace(DEFAULT_THRESHOLDS, version=3, segments=(
        ThresholdSegment(name="small", amount_max=1000.0, **cut),
        ThresholdSegment(name="large", amount_min=1000.0, **cut)))  # fmt: skip

    def posts(ps):
        return [ScoredPost(p[0], p[1], o, amount, 30, 5)
                for p, (o, amount) in zip(ps, facts[:len(ps)], strict=True)]  # fmt: skip

    impact = model_impact(posts(now), posts(after), t, current_model="A", candidate_model="B")
    assert (impact.current_model, impact.candidate_model) == ("A", "B")
    assert impact.thresholds_version == 3
    cur, cand = impact.current, impact.candidate
    assert (cur.approve, cur.review, cur.decline) == (2, 1, 1)
    assert (cand.approve, cand.review, cand.decline) == (1, 1, 2)
    assert impact.shift_points(Decision.DECLINE) == pytest.approx(25.0)
    assert impact.shift_points(Decision.REVIEW) == pytest.approx(0.0)
    assert impact.shift_points(Decision.APPROVE) == pytest.approx(-25.0)
    assert cur.expected_bad(Target.DELINQUENT) == pytest.approx((0.10 + 0.20) / 2)
    assert cur.expected_bad(Target.DEFAULT) == pytest.approx((0.02 + 0.06) / 2)
    assert cand.expected_bad(Target.DELINQUENT) == pytest.approx(0.05)
    assert cand.expected_bad(Target.DEFAULT) == pytest.approx(0.01)
    assert cur.realised_bad(Target.DELINQUENT) == 0.5 and cur.labelled(Target.DELINQUENT)[0] == 2
    assert cand.realised_bad(Target.DELINQUENT) == 0.0 and cand.approved_without_outcome == 0
    small, large = impact.segments["small"], impact.segments["large"]
    assert [(m.approve, m.review, m.decline) for m in small] == [(1, 1, 0), (1, 0, 1)]
    assert [(m.approve, m.review, m.decline) for m in large] == [(1, 0, 1), (0, 1, 1)]
    again = msgspec.convert(msgspec.to_builtins(impact), ModelImpact)  # as a model event holds it
    assert again == impact
    with pytest.raises(ValueError, match="not the same posts"):
        model_impact(posts(now), posts(after)[:3], t, current_model="A", candidate_model="B")
