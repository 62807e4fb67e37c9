"""What-if of decision thresholds: replay candidate thresholds over scored posts and their
realised outcomes, beside the thresholds in force. Pure functions, no I/O: the command
(``deepcredit thresholds simulate``) reads the risk-scores topic and the clicks.

A post's decision under any thresholds is ``ThresholdUpdate.decide`` on the two
probabilities it was scored with (the one home of the rule), so the mix replayed at the
thresholds in force is the mix the flow produced, for posts scored under them by the same
model. Outcomes follow ``deepcredit.loans`` (labels as knowable at the data's clock):

- *expected bad rate among approved*: the mean P(delinquent), resp. P(default), of the posts
  approved: what the model predicts for them;
- *realised bad rate among approved*: among approved posts whose loan was funded and whose
  label is known, the share delinquent (resp. in default). A funded loan not yet decidable
  is *open* (censored) and left out, and counted; a post never funded has no outcome.

>>> from deepcredit.loans import LoanOutcome
>>> t = ThresholdUpdate(version=1, delinquent_review=0.2, delinquent_decline=0.5,
...                     default_review=0.1, default_decline=0.3, updated_by="ops",
...                     updated_at=1.7e9)
>>> good = LoanOutcome(loan_id="a", user_id="u", post_ts=0.0, due_ts=1.0, amount=1.0,
...                    funded=True, delinquent=False, default=False)
>>> posts = [ScoredPost(0.1, 0.01, good), ScoredPost(0.3, 0.05, None), ScoredPost(0.6, 0.2, None)]
>>> m = decision_mix(posts, t)
>>> (m.approve, m.review, m.decline), m.expected_bad(Target.DELINQUENT)
((1, 1, 1), 0.1)
>>> m.realised_bad(Target.DELINQUENT), m.approved_open, m.approved_without_outcome
(0.0, 0, 0)
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec
import numpy as np

from deepcredit.events import Activity, ClickEvent
from deepcredit.loans import LoanOutcome
from deepcredit.records import Decision, ThresholdUpdate

__all__ = [
    "DecisionMix",
    "ModelImpact",
    "OperatingCurve",
    "PostFacts",
    "ScoredPost",
    "Target",
    "WhatIf",
    "by_segment",
    "decision_mix",
    "model_impact",
    "operating_curve",
    "post_facts",
    "what_if",
]


class Target(enum.StrEnum):
    """Which bad outcome a bad rate counts."""

    DELINQUENT = "delinquent"  # any lateness (repaid after the due date, or not at all)
    DEFAULT = "default"  # more than 120 days late, or never repaid


class ScoredPost(NamedTuple):
    """One scored post: its two probabilities (as on its ``Score``), its loan's outcome as
    known now (None: the loan is not in the clicks read, e.g. posted before the archive), and
    what places it in a segment (``ThresholdUpdate.segment``): loan amount, term (days), the
    user's events seen before it (None: unknown)."""

    p_delinquent: float
    p_default: float
    outcome: LoanOutcome | None
    amount: float | None = None
    term_days: int | None = None
    events_seen: int | None = None

    def decide(self, thresholds: ThresholdUpdate) -> Decision:
        """This post's decision under ``thresholds`` (the flow's rule)."""
        return thresholds.decide(p_delinquent=self.p_delinquent, p_default=self.p_default,
                                 amount=self.amount, term_days=self.term_days,
                                 events_seen=self.events_seen)  # fmt: skip


class DecisionMix(msgspec.Struct, frozen=True, kw_only=True):
    """The decisions of some thresholds on a set of posts, with the approved posts' expected
    and realised bad rates. Counts are posts; sums of probabilities are over approved posts.

    ``approved_labelled_*`` / ``approved_bad_*``: approved posts whose loan was funded and
    whose label (delinquent, resp. default) is known, and how many of those were bad.
    ``approved_open``: approved, funded, a label not knowable yet. ``approved_unfunded``:
    approved posts whose loan was never funded (no outcome). ``approved_without_outcome``:
    approved posts whose loan is not in the clicks read.
    """

    posts: int
    approve: int
    review: int
    decline: int
    approved_p_delinquent_sum: float
    approved_p_default_sum: float
    approved_labelled_delinquent: int
    approved_bad_delinquent: int
    approved_labelled_default: int
    approved_bad_default: int
    approved_open: int
    approved_unfunded: int
    approved_without_outcome: int

    def rate(self, decision: Decision) -> float | None:
        """Share of the posts (0..1) given ``decision``; None without posts."""
        count = {Decision.APPROVE: self.approve, Decision.REVIEW: self.review,
                 Decision.DECLINE: self.decline}[decision]  # fmt: skip
        return count / self.posts if self.posts else None

    def expected_bad(self, target: Target) -> float | None:
        """Mean predicted probability of ``target`` among approved posts (0..1); None when
        none is approved."""
        if not self.approve:
            return None
        total = (self.approved_p_delinquent_sum if target is Target.DELINQUENT
                 else self.approved_p_default_sum)  # fmt: skip
        return total / self.approve

    def realised_bad(self, target: Target) -> float | None:
        """Share bad (0..1) among approved posts with a known ``target`` label; None when none
        has one."""
        labelled, bad = self.labelled(target)
        return bad / labelled if labelled else None

    def labelled(self, target: Target) -> tuple[int, int]:
        """(approved posts with a known ``target`` label, of which bad)."""
        if target is Target.DELINQUENT:
            return self.approved_labelled_delinquent, self.approved_bad_delinquent
        return self.approved_labelled_default, self.approved_bad_default


class WhatIf(msgspec.Struct, frozen=True, kw_only=True):
    """The thresholds in force and a candidate replayed on the same posts: what the audit
    trail keeps as a change's simulated effect. ``as_of``: the clock (Unix s, event time) the
    outcomes are known at; ``model_version``: whose scores were replayed."""

    current_version: int
    candidate_version: int
    current: DecisionMix
    candidate: DecisionMix
    as_of: float | None = None
    model_version: str = ""
    #: By segment of the candidate (of the thresholds in force when the candidate has none):
    #: name -> (mix in force, mix of the candidate) on that segment's posts.
    segments: dict[str, tuple[DecisionMix, DecisionMix]] = {}

    def shift_points(self, decision: Decision) -> float:
        """How far the share of ``decision`` moves, in percentage points (candidate minus
        current); 0 without posts."""
        before, after = self.current.rate(decision), self.candidate.rate(decision)
        return 0.0 if before is None or after is None else 100.0 * (after - before)


def decision_mix(posts: Sequence[ScoredPost], thresholds: ThresholdUpdate) -> DecisionMix:
    """The decisions ``thresholds`` give ``posts`` and the approved posts' bad rates."""
    counts = dict.fromkeys(Decision, 0)
    p_del = p_def = 0.0
    lab_del = bad_del = lab_def = bad_def = open_ = unfunded = unknown = 0
    for post in posts:
        decision = post.decide(thresholds)
        counts[decision] += 1
        if decision is not Decision.APPROVE:
            continue
        p_del += post.p_delinquent
        p_def += post.p_default
        o = post.outcome
        if o is None:
            unknown += 1
        elif not o.funded:
            unfunded += 1
        else:
            if o.delinquent is not None:
                lab_del += 1
                bad_del += o.delinquent
            if o.default is not None:
                lab_def += 1
                bad_def += o.default
            open_ += o.censored
    return DecisionMix(
        posts=len(posts), approve=counts[Decision.APPROVE], review=counts[Decision.REVIEW],
        decline=counts[Decision.DECLINE], approved_p_delinquent_sum=p_del,
        approved_p_default_sum=p_def, approved_labelled_delinquent=lab_del,
        approved_bad_delinquent=bad_del, approved_labelled_default=lab_def,
        approved_bad_default=bad_def, approved_open=open_, approved_unfunded=unfunded,
        approved_without_outcome=unknown,
    )  # fmt: skip


class PostFacts(NamedTuple):
    """What places a post in a segment: loan amount, term (days), and how many of the user's
    events came before it in the clicks read."""

    amount: float
    term_days: int | None
    events_seen: int


def post_facts(events: Iterable[ClickEvent]) -> dict[str, PostFacts]:
    """Each post's facts by event id, from clicks in each user's order (as a partition holds
    them). ``events_seen`` counts the user's events before the post among ``events`` only: a
    history before them (a trimmed topic, an archive window) is not counted."""
    seen: dict[str, int] = {}
    facts: dict[str, PostFacts] = {}
    for e in events:
        n = seen.get(e.user_id, 0)
        if e.activity is Activity.POST:
            facts.setdefault(e.event_id, PostFacts(e.amount, e.term_days, n))
        seen[e.user_id] = n + 1
    return facts


def by_segment(
    posts: Sequence[ScoredPost], thresholds: ThresholdUpdate
) -> dict[str, list[ScoredPost]]:
    """``posts`` grouped by the segment of ``thresholds`` each falls in, in the segments'
    order; empty without segments."""
    groups: dict[str, list[ScoredPost]] = {s.name: [] for s in thresholds.segments}
    for post in posts:
        segment = thresholds.segment(post.amount, post.term_days, post.events_seen)
        if segment is not None:
            groups[segment.name].append(post)
    return groups


def what_if(
    posts: Sequence[ScoredPost],
    current: ThresholdUpdate,
    candidate: ThresholdUpdate,
    *,
    as_of: float | None = None,
    model_version: str = "",
) -> WhatIf:
    """``current`` and ``candidate`` replayed on the same ``posts``, and on each segment's."""
    groups = by_segment(posts, candidate if candidate.segments else current)
    return WhatIf(current_version=current.version, candidate_version=candidate.version,
                  current=decision_mix(posts, current), candidate=decision_mix(posts, candidate),
                  as_of=as_of, model_version=model_version,
                  segments={name: (decision_mix(group, current), decision_mix(group, candidate))
                            for name, group in groups.items()})  # fmt: skip


class ModelImpact(msgspec.Struct, frozen=True, kw_only=True):
    """Two models' decisions on the same posts at the same thresholds: what a promotion or a
    rollback would do to the decision mix and to the expected bad rate among approved.

    ``current_model`` serves now, ``candidate_model`` would; ``current`` / ``candidate``:
    each model's ``DecisionMix`` under the thresholds of version ``thresholds_version`` (the
    outcomes are the same loans', so the realised rates differ only by who is approved);
    ``segments``: name -> (current's mix, candidate's mix) on that segment's posts (empty
    without segments). ``as_of``: the clock (Unix s, event time) the outcomes are known at;
    ``source``: where the posts came from (people read it)."""

    current_model: str
    candidate_model: str
    thresholds_version: int
    current: DecisionMix
    candidate: DecisionMix
    segments: dict[str, tuple[DecisionMix, DecisionMix]] = {}
    as_of: float | None = None
    source: str = ""

    def shift_points(self, decision: Decision) -> float:
        """How far the share of ``decision`` moves, in percentage points (candidate minus
        current); 0 without posts."""
        before, after = self.current.rate(decision), self.candidate.rate(decision)
        return 0.0 if before is None or after is None else 100.0 * (after - before)


def model_impact(
    current: Sequence[ScoredPost],
    candidate: Sequence[ScoredPost],
    thresholds: ThresholdUpdate,
    *,
    current_model: str,
    candidate_model: str,
    as_of: float | None = None,
    source: str = "",
) -> ModelImpact:
    """The same posts scored by two models (``current[i]`` and ``candidate[i]`` are one post:
    the same outcome and segment facts, each model's probabilities), decided under
    ``thresholds``. Raises ValueError when the two lists are not the same posts' length."""
    if len(current) != len(candidate):
        raise ValueError(f"{len(current)} posts of the current model, {len(candidate)} of the "
                         "candidate: not the same posts")  # fmt: skip
    groups: dict[str, list[int]] = {s.name: [] for s in thresholds.segments}
    for i, post in enumerate(current):
        segment = thresholds.segment(post.amount, post.term_days, post.events_seen)
        if segment is not None:
            groups[segment.name].append(i)
    return ModelImpact(current_model=current_model, candidate_model=candidate_model,
                       thresholds_version=thresholds.version,
                       current=decision_mix(current, thresholds),
                       candidate=decision_mix(candidate, thresholds),
                       segments={name: (decision_mix([current[i] for i in group], thresholds),
                                        decision_mix([candidate[i] for i in group], thresholds))
                                 for name, group in groups.items()},
                       as_of=as_of, source=source)  # fmt: skip


class OperatingCurve(NamedTuple):
    """Approval rate against bad rate among approved, as the review thresholds of some
    thresholds are scaled together by a factor k > 0 (their ratio kept): shape (n + 1,) each,
    from approving nobody (k = 0) to everybody. ``expected``: mean predicted probability
    among approved; ``realised``: share bad among approved with a known label (NaN where
    none has one). Rates in 0..1; ``expected`` is NaN at approval 0."""

    approval: np.ndarray
    expected: np.ndarray
    realised: np.ndarray


def operating_curve(
    posts: Sequence[ScoredPost], thresholds: ThresholdUpdate, target: Target
) -> OperatingCurve:
    """The operating curve through ``thresholds``' approve region.

    A post is approved exactly when both probabilities are below their review thresholds
    (review <= decline), i.e. when r = max(p_delinquent / delinquent_review, p_default /
    default_review) < 1, with its segment's review thresholds; scaling every review threshold
    by k approves the posts with r < k.
    Sorting the posts by r gives every point of that family; the point at k = 1 is
    ``decision_mix(posts, thresholds)``'s. A review threshold of 0 approves nobody (r = inf).
    """
    n = len(posts)
    p_del = np.fromiter((p.p_delinquent for p in posts), float, n)
    p_def = np.fromiter((p.p_default for p in posts), float, n)
    cutoffs = [thresholds.segment(p.amount, p.term_days, p.events_seen) or thresholds
               for p in posts]  # fmt: skip
    del_review = np.fromiter((c.delinquent_review for c in cutoffs), float, n)
    def_review = np.fromiter((c.default_review for c in cutoffs), float, n)
    r = np.maximum(_ratio(p_del, del_review), _ratio(p_def, def_review))
    order = np.argsort(r, kind="stable")
    p = (p_del if target is Target.DELINQUENT else p_def)[order]
    label = np.fromiter((_label(posts[i].outcome, target) for i in order), float, n)
    known = ~np.isnan(label)
    approved = np.arange(n + 1, dtype=float)
    expected = np.concatenate([[math.nan], np.cumsum(p) / np.maximum(approved[1:], 1)])
    labelled = np.concatenate([[0.0], np.cumsum(known)])
    bad = np.concatenate([[0.0], np.cumsum(np.where(known, label, 0.0))])
    with np.errstate(divide="ignore", invalid="ignore"):
        realised = np.where(labelled > 0, bad / labelled, math.nan)
    # Only every post with r = inf can never be approved; keep the points k can reach.
    reachable = np.concatenate([[True], np.isfinite(r[order])])
    return OperatingCurve(approved[reachable] / max(n, 1), expected[reachable],
                          realised[reachable])  # fmt: skip


def _ratio(p: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """p / threshold, inf where the threshold is 0 (a review threshold of 0 approves none)."""
    out = np.full_like(p, math.inf)
    np.divide(p, threshold, out=out, where=threshold > 0)
    return out


def _label(outcome: LoanOutcome | None, target: Target) -> float:
    if outcome is None or not outcome.funded:
        return math.nan
    value = outcome.delinquent if target is Target.DELINQUENT else outcome.default
    return math.nan if value is None else float(value)
