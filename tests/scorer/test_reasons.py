"""Reason codes (scorer.reasons): occlusion of the aggregate groups against the reference, the
catalogue and its README table, and the codes of a post as the live flow computes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepcredit.events import DAY_S, Activity, ClickEvent
from scorer.aggregates import AGGREGATE_FEATURES, GROUPS
from scorer.model import ModelWeights, advance, head_input, head_logits
from scorer.reasons import (
    CATALOGUE,
    MAX_REASONS,
    MIN_CONTRIBUTION,
    contributions,
    post_reasons,
    reasons,
)
from scorer.user_state import UserState
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def weights() -> ModelWeights:
    torch.manual_seed(4)
    model = DeepCredit(ModelConfig(hidden_size=8, head_sizes=(16,)))
    with torch.no_grad():
        model.reference.copy_(torch.rand(AGGREGATE_FEATURES) * 0.5)
    return ModelWeights.from_bytes(export_scorer(model, "r1").to_bytes())


def test_each_group_has_a_code_and_the_readme_lists_them_all() -> None:
    assert [c.code for c in CATALOGUE] == [g.code for g in GROUPS]
    text = README.read_text()
    for code, statement in CATALOGUE:
        assert f"| {code} | {statement} |" in text


def test_contributions_are_the_logit_lost_when_a_group_is_set_to_the_reference(
    weights: ModelWeights,
) -> None:
    rng = np.random.default_rng(0)
    head_in = rng.uniform(0, 1.5, (5, weights.hidden_size + AGGREGATE_FEATURES))
    head_in = head_in.astype(np.float32)
    got = contributions(weights, head_in)
    assert got.shape == (5, len(GROUPS))
    d = weights.hidden_size
    for n in range(5):
        z = head_logits(weights, head_in[n])[0]
        for k, g in enumerate(GROUPS):
            occluded = head_in[n].copy()
            occluded[d + g.start : d + g.stop] = weights.reference[g.start : g.stop]
            assert got[n, k] == pytest.approx(z - head_logits(weights, occluded)[0], abs=1e-5)
    for n, codes in enumerate(reasons(weights, head_in)):
        want = sorted((k for k in range(len(GROUPS)) if got[n, k] > MIN_CONTRIBUTION),
                      key=lambda k: -got[n, k])[:MAX_REASONS]  # fmt: skip
        assert codes == [GROUPS[k].code for k in want]


def test_a_user_at_the_reference_has_no_reasons(weights: ModelWeights) -> None:
    h = np.random.default_rng(1).normal(size=weights.hidden_size).astype(np.float32)
    assert reasons(weights, head_input(weights, h, weights.reference)) == [[]]


def test_a_model_without_aggregates_gives_no_reasons() -> None:
    w = export_scorer(DeepCredit(ModelConfig(hidden_size=4, use_aggregates=False)), "n")
    assert reasons(w, np.zeros(4, np.float32)) == [[]]
    with pytest.raises(ValueError, match="no aggregates"):
        contributions(w, np.zeros(4, np.float32))


def test_post_reasons_attribute_the_head_input_the_post_was_scored_on(
    weights: ModelWeights,
) -> None:
    def ev(day: float, act: Activity, **kw: object) -> ClickEvent:
        return ClickEvent(event_id=f"e{day}{act}", user_id="u", ts=1e9 + day * DAY_S,
                          activity=act, amount=500.0, **kw)  # fmt: skip

    s = UserState.new(weights.version, weights.hidden_size)
    history = [ev(0, Activity.POST, loan_id="a", rate=0.1, term_days=30),
               ev(1, Activity.BORROW, loan_id="a"), ev(1.5, Activity.WITHDRAW),
               ev(45, Activity.REPAY, loan_id="a"),
               ev(46, Activity.POST, loan_id="b", rate=0.2, term_days=30)]  # fmt: skip
    for e in history:
        p = advance(weights, s, e)
    assert p is not None
    codes = post_reasons(weights, s, history[-1])
    assert 0 < len(codes) <= MAX_REASONS and len(set(codes)) == len(codes)
    # The codes are a pure function of the state and the post: asked again, the same.
    assert post_reasons(weights, s, history[-1]) == codes
