"""The compiled step (``scorer.fast``, behind ``scorer.model.advance``) against the numpy
reference step (``scorer.model.advance_reference``): the same states and probabilities, from
random states over random events, for every variant of the model. Parity with torch goes
through ``advance`` in tests/scorer/test_model_parity.py. The reason codes' compiled occlusion
against the numpy one (``scorer.reasons.contributions``): on random head inputs, and at each
post of random histories, from the head input the step scored it on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scorer import fast
from scorer.aggregates import AGGREGATE_FEATURES, GROUPS
from scorer.model import (
    ModelWeights,
    advance,
    advance_reference,
    advance_unseen,
    head_logits,
    post_head_input,
)
from scorer.reasons import advance_with_reasons, contributions, post_reasons
from scorer.steps import StepMemory
from scorer.user_state import UserState, event_fingerprint, event_key
from tests.strategies import make_events
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig
from training.core.variants import VARIANTS

TOLERANCE = 1e-5


def weights(variant: str, hidden: int, seed: int, scale: float, calibrated: bool) -> ModelWeights:
    torch.manual_seed(seed)
    model = DeepCredit(ModelConfig(hidden_size=hidden, head_sizes=(16, 8), **VARIANTS[variant]))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)  # away from the initialisation: saturated gates too
    if calibrated:
        model.calibration = torch.tensor([[1.3, 0.7], [-0.4, 0.2]])
    return ModelWeights.from_bytes(export_scorer(model.eval(), "m").to_bytes())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(VARIANTS)), st.sampled_from([4, 8, 32]), st.integers(0, 2**31 - 1),
    st.floats(0.5, 3.0), st.booleans(), st.floats(0.0, 2.0), st.integers(1, 150),
)  # fmt: skip
def test_compiled_step_equals_numpy_step(
    variant: str, hidden: int, seed: int, scale: float, calibrated: bool, spread: float, n: int
) -> None:
    """From a random state (hidden rows and Y(i-1) drawn at random, ``spread`` their size, then
    the states the events lead to), each event gives the same state rows, Y(i-1) and post
    probabilities both ways. Each step starts from the reference's state: float32 rounding
    that differs by an ulp is what a recurrence amplifies over many steps, whichever way it is
    computed (the torch parity tests bound the scores over whole histories)."""
    w = weights(variant, hidden, seed, scale, calibrated)
    rng = np.random.default_rng(seed)
    fast_state = UserState.new(w.version, hidden)
    fast_state.hc[:] = rng.normal(0.0, spread, fast_state.hc.shape)
    fast_state.y_prev[:] = rng.uniform(0.0, 1.0, 2)
    ref_state = fast_state.copy()
    for e in make_events(n, users=1, seed=seed):
        fast_state = ref_state.copy()
        key, fingerprint = event_key(e.event_id), event_fingerprint(e)
        got = advance_unseen(w, fast_state, e, key, fingerprint)
        expected = advance_reference(w, ref_state, e, key, fingerprint)
        assert (got is None) == (expected is None), e
        if got is not None:
            np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(fast_state.hc, ref_state.hc, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(fast_state.y_prev, ref_state.y_prev, atol=TOLERANCE, rtol=0)
        assert fast_state.hc.dtype == np.float32 and fast_state.y_prev.dtype == np.float32
        assert fast_state.memory == ref_state.memory and fast_state.recent == ref_state.recent


def test_tanh32_within_a_few_float32_ulps() -> None:
    """The rational tanh the compiled step uses, over a dense grid and past its clamp."""
    x = np.concatenate((np.linspace(-20, 20, 400_001), [0.0, 1e-30, -1e-8, 3e-4, 1e3]))
    x = x.astype(np.float32)
    got = fast.tanh_array(x)
    exact = np.tanh(x.astype(np.float64))
    assert got.dtype == np.float32
    # Past the clamp (|x| > 7.9) it stays 2.4e-7 short of ±1; numpy's float32 tanh: 6e-8.
    assert np.abs(got - exact).max() <= 2.4e-7
    assert np.all(np.abs(got) <= 1.0)


def test_pack_refuses_a_head_without_two_outputs() -> None:
    w = weights("deepcredit", 4, 0, 1.0, False)
    cells = tuple(tuple(getattr(c, f) for f in ("w_gates", "b_gates", "w_split", "w_time",
                                                "b_time", "w_new", "b_merge"))
                  for c in (w.activity, w.repay, w.state))  # fmt: skip
    bad_head = (*w.head[:-1], (w.head[-1][0][:, :1], w.head[-1][1][:1]))
    with pytest.raises(ValueError, match="2 outputs"):
        fast.pack(cells, bad_head, hidden_size=4, complementary=True, use_activity=True,
                  use_repay=True, calibration=None)  # fmt: skip


def test_a_state_of_another_hidden_size_is_refused_not_read_past_its_end() -> None:
    """A damaged snapshot can carry the model's version with another D: the compiled loops
    index by D unchecked, so the step refuses it (the flow dead-letters the event); so too a
    loan-level input longer than the buffer it is copied into."""
    w = weights("deepcredit", 4, 0, 1.0, False)
    event = make_events(5, users=1)[0]
    for hc in (np.zeros((6, 8), np.float32), np.zeros((6, 2), np.float32)):
        s = UserState(w.version, StepMemory(), hc, np.zeros(2, np.float32))
        with pytest.raises(ValueError, match=r"must be \(6, 4\)"):
            advance(w, s, event)
    hc, y_prev = np.zeros((6, 4), np.float32), np.zeros(2, np.float32)
    too_long = np.zeros(w.packed.loan_inputs + 1, np.float32)
    with pytest.raises(ValueError, match="loan-level step reads"):
        fast.step(w.packed, hc, y_prev, too_long, 1.0, too_long, 1.0, 1.0, 2)


def wide_weights(variant: str, hidden: int, heads: tuple[int, ...], seed: int,
                 scale: float) -> ModelWeights:  # fmt: skip
    """Random weights whose heads read the aggregates, with a random reference."""
    torch.manual_seed(seed)
    model = DeepCredit(ModelConfig(hidden_size=hidden, head_sizes=heads, **VARIANTS[variant]))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
        model.reference.copy_(torch.rand(AGGREGATE_FEATURES) * 1.5)
    return ModelWeights.from_bytes(export_scorer(model.eval(), "m").to_bytes())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([(), (16,), (32, 16, 8)]), st.sampled_from([4, 32]),
    st.integers(0, 2**31 - 1), st.floats(0.5, 3.0), st.floats(0.0, 3.0),
)  # fmt: skip
def test_compiled_occlusion_equals_the_numpy_occlusion(
    heads: tuple[int, ...], hidden: int, seed: int, scale: float, spread: float
) -> None:
    """Each group's contribution both ways, to float32 rounding of the logits (1e-5 of their
    size): the compiled one layer by layer on the change from the scored row's, the numpy one
    with every occluded row through every layer. A row at the reference has none."""
    w = wide_weights("deepcredit", hidden, heads, seed, scale)
    assert w.reference is not None
    rng = np.random.default_rng(seed)
    head_in = rng.normal(0.0, spread, (6, hidden + AGGREGATE_FEATURES)).astype(np.float32)
    head_in[0, hidden:] = w.reference
    g = GROUPS[seed % len(GROUPS)]
    head_in[1, hidden + g.start : hidden + g.stop] = w.reference[g.start : g.stop]
    got, want = fast.contributions(w.packed, head_in), contributions(w, head_in)
    assert got.shape == want.shape == (6, len(GROUPS)) and got.dtype == np.float64
    size = max(1.0, float(np.abs(head_logits(w, head_in)).max()))
    np.testing.assert_allclose(got, want, atol=TOLERANCE * size, rtol=0)
    assert not got[0].any() and got[1, seed % len(GROUPS)] == 0.0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(v for v in VARIANTS if v != "deep-only")),
    st.integers(0, 2**31 - 1), st.integers(20, 200),
)  # fmt: skip
def test_the_step_attributes_the_head_input_it_scored_the_post_on(
    variant: str, seed: int, n: int
) -> None:
    """At each post of a random history, the contributions the compiled step fills in equal the
    numpy occlusion of ``post_head_input`` (recomputed from the state), and the codes
    ``advance_with_reasons`` gives are ``post_reasons``'s; no other event touches them."""
    events = make_events(n, users=1, seed=seed)
    assume(any(e.activity == "post" for e in events))
    w = wide_weights(variant, 8, (16, 8), seed, 2.0)
    s = UserState.new(w.version, w.hidden_size)
    for e in events:
        key, fingerprint = event_key(e.event_id), event_fingerprint(e)
        other = s.copy()
        got = np.full(len(GROUPS), np.nan)
        p = advance_unseen(w, s, e, key, fingerprint, got)
        assert advance_with_reasons(w, other, e, key, fingerprint) == (
            p, [] if p is None else post_reasons(w, s, e))  # fmt: skip
        assert other == s
        if p is None:
            assert np.isnan(got).all()
            continue
        head_in = post_head_input(w, s, e)
        size = max(1.0, float(np.abs(head_logits(w, head_in)).max()))
        np.testing.assert_allclose(got, contributions(w, head_in)[0], atol=TOLERANCE * size,
                                   rtol=0)  # fmt: skip


def test_contributions_need_a_reference_and_the_groups_size() -> None:
    deep = weights("deep-only", 4, 0, 1.0, False)
    s = UserState.new(deep.version, deep.hidden_size)
    post = next(e for e in make_events(50, users=1) if e.activity == "post")
    assert advance_with_reasons(deep, s, post, event_key(post.event_id),
                                event_fingerprint(post))[1] == []  # fmt: skip
    with pytest.raises(ValueError, match="without a reference"):
        fast.contributions(deep.packed, np.zeros((1, 4), np.float32))
    w = wide_weights("deepcredit", 4, (8,), 0, 1.0)
    s = UserState.new(w.version, w.hidden_size)
    with pytest.raises(ValueError, match="contributions must be"):
        advance_unseen(w, s, post, event_key(post.event_id), event_fingerprint(post),
                       np.zeros(len(GROUPS) + 1))  # fmt: skip
