"""The compiled step (``scorer.fast``, behind ``scorer.model.advance``) against the numpy
reference step (``scorer.model.advance_reference``): the same states and probabilities, from
random states over random events, for every variant of the model. Parity with torch goes
through ``advance`` in tests/scorer/test_model_parity.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer import fast
from scorer.model import ModelWeights, advance_reference, advance_unseen
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
