"""The numpy TLSTM step: its equations, its single/batch forms, purity and the weights' bytes."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.timegap import normalise_gap
from scorer.tlstm import TLSTMWeights, tlstm_step

GAPS_S = st.sampled_from([0.0, 1.0, 3600.0, 86_400.0, 30 * 86_400.0, 180 * 86_400.0]) | st.floats(
    -60.0, 1e8
)


def random_weights(rng: np.random.Generator, i: int, d: int, use_time: bool = True) -> TLSTMWeights:
    """Seeded weights of the magnitude a trained cell has."""

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.5, shape)

    time = {}
    if use_time:
        time = {
            "w_split": normal(d, 2 * d),
            "w_time": normal(3 * d),
            "b_time": normal(3 * d),
            "w_new": normal(2 * d),
            "b_merge": normal(d),
        }
    return TLSTMWeights(w_gates=normal(i + d, 4 * d), b_gates=normal(4 * d), **time)


def random_inputs(
    rng: np.random.Generator, w: TLSTMWeights, *batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, c, x) float32, h in (−1, 1) as a real hidden state is."""
    d, i = w.hidden_size, w.input_size
    h = np.tanh(rng.normal(0.0, 1.0, (*batch, d))).astype(np.float32)
    c = rng.normal(0.0, 1.5, (*batch, d)).astype(np.float32)
    x = rng.normal(0.0, 2.0, (*batch, i)).astype(np.float32)
    return h, c, x


def equations(
    w: TLSTMWeights, h: np.ndarray, c: np.ndarray, x: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """DESIGN.md's equations line by line, in float64, one user, from the named blocks."""
    d, i_size = w.hidden_size, w.input_size
    f64 = {name: getattr(w, name).astype(np.float64) for name in ("w_gates", "b_gates")}

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z))

    def block(k: int) -> np.ndarray:
        wk, bk = f64["w_gates"][:, k * d : (k + 1) * d], f64["b_gates"][k * d : (k + 1) * d]
        return x @ wk[:i_size] + h @ wk[i_size:] + bk

    i, f, g, o = sigmoid(block(0)), sigmoid(block(1)), np.tanh(block(2)), sigmoid(block(3))
    if w.use_time:
        w_short, w_long = w.w_split[:, :d], w.w_split[:, d:]
        w_short_t, w_long_t, w_shrink = np.split(w.w_time.astype(np.float64), 3)
        b_short, b_long, b_shrink = np.split(w.b_time.astype(np.float64), 3)
        w_new_short, w_new_long = np.split(w.w_new.astype(np.float64), 2)
        c_short = np.tanh(c @ w_short + w_short_t * dt + b_short)
        c_long = np.tanh(c @ w_long + w_long_t * dt + b_long)
        c_short_new = np.tanh(w_shrink * dt + b_shrink) * c_short
        c_adj = np.tanh(w_new_short * c_short_new + w_new_long * c_long + w.b_merge)
    else:
        c_adj = c
    c_next = f * c_adj + i * g
    return o * np.tanh(c_next), c_next


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    i=st.integers(1, 9),
    d=st.integers(1, 17),
    use_time=st.booleans(),
    gap_s=GAPS_S,
)
def test_step_follows_the_equations(
    seed: int, i: int, d: int, use_time: bool, gap_s: float
) -> None:
    rng = np.random.default_rng(seed)
    w = random_weights(rng, i, d, use_time)
    h, c, x = random_inputs(rng, w)
    dt = float(normalise_gap(gap_s))
    h_new, c_new = tlstm_step(w, h, c, x, dt)
    h_ref, c_ref = equations(w, h.astype(np.float64), c.astype(np.float64), x, dt)
    np.testing.assert_allclose(h_new, h_ref, atol=1e-5)
    np.testing.assert_allclose(c_new, c_ref, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(1, 6), gaps_s=st.lists(GAPS_S, min_size=6))
def test_batch_rows_are_single_steps(seed: int, b: int, gaps_s: list[float]) -> None:
    rng = np.random.default_rng(seed)
    w = random_weights(rng, 5, 8)
    h, c, x = random_inputs(rng, w, b)
    dt = normalise_gap(np.array(gaps_s[:b]))
    h_new, c_new = tlstm_step(w, h, c, x, dt)
    assert h_new.shape == c_new.shape == (b, 8)
    for row in range(b):
        h_one, c_one = tlstm_step(w, h[row], c[row], x[row], dt[row])
        np.testing.assert_allclose(h_new[row], h_one, atol=1e-6)
        np.testing.assert_allclose(c_new[row], c_one, atol=1e-6)


@pytest.mark.parametrize("use_time", [True, False])
def test_outputs_are_float32_of_the_state_shape(use_time: bool) -> None:
    rng = np.random.default_rng(0)
    w = random_weights(rng, 3, 4, use_time)
    for batch in [(), (5,)]:
        h, c, x = random_inputs(rng, w, *batch)
        h_new, c_new = tlstm_step(w, h, c, x.astype(np.float64), np.full(batch, 2.0))
        assert h_new.shape == c_new.shape == (*batch, 4)
        assert h_new.dtype == c_new.dtype == np.float32


def test_dt_may_be_any_scalar_or_column() -> None:
    rng = np.random.default_rng(1)
    w = random_weights(rng, 3, 4)
    h, c, x = random_inputs(rng, w)
    outs = [tlstm_step(w, h, c, x, dt) for dt in (2.5, np.float64(2.5), np.array(2.5), [2.5])]
    for h_new, c_new in outs[1:]:
        np.testing.assert_array_equal(h_new, outs[0][0])
        np.testing.assert_array_equal(c_new, outs[0][1])
    hb, cb, xb = random_inputs(rng, w, 3)
    flat, column = np.array([0.0, 1.0, 9.0]), np.array([[0.0], [1.0], [9.0]])
    np.testing.assert_array_equal(
        tlstm_step(w, hb, cb, xb, flat), tlstm_step(w, hb, cb, xb, column)
    )


def test_gap_changes_the_state_only_with_time() -> None:
    rng = np.random.default_rng(2)
    for use_time in (True, False):
        w = random_weights(rng, 3, 6, use_time)
        h, c, x = random_inputs(rng, w)
        at_once = tlstm_step(w, h, c, x, 0.0)
        a_month_later = tlstm_step(w, h, c, x, float(normalise_gap(30 * 86_400.0)))
        assert (not np.allclose(at_once[1], a_month_later[1])) is use_time
        assert (not np.allclose(at_once[0], a_month_later[0])) is use_time


def test_extreme_inputs_saturate_without_warnings() -> None:
    rng = np.random.default_rng(6)
    w = random_weights(rng, 3, 4)
    h, c, x = random_inputs(rng, w, 4)
    x = x * np.float32(1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h_new, c_new = tlstm_step(w, h, c, x, np.array([0.0, 1.0, 9.0, 1e3]))
    assert np.all(np.isfinite(h_new)) and np.all(np.isfinite(c_new))
    assert np.all(np.abs(h_new) <= 1.0)


def test_step_is_pure() -> None:
    rng = np.random.default_rng(3)
    w = random_weights(rng, 3, 4)
    for batch in [(), (2,)]:
        h, c, x = random_inputs(rng, w, *batch)
        dt = np.full(batch, 1.5)
        copies = [a.copy() for a in (h, c, x, dt)]
        for a in (h, c, x, dt):
            a.flags.writeable = False
        first = tlstm_step(w, h, c, x, dt)
        second = tlstm_step(w, h, c, x, dt)
        for a, copy in zip((h, c, x, dt), copies, strict=True):
            np.testing.assert_array_equal(a, copy)
        np.testing.assert_array_equal(first, second)


def test_weights_are_read_only_float32_copies() -> None:
    source = np.zeros((7, 16))
    w = TLSTMWeights(w_gates=source, b_gates=np.zeros(16))
    assert w.w_gates.dtype == np.float32 and not w.w_gates.flags.writeable
    source[0, 0] = 1.0
    assert w.w_gates[0, 0] == 0.0
    assert (w.input_size, w.hidden_size, w.use_time) == (3, 4, False)


@pytest.mark.parametrize("use_time", [True, False])
def test_bytes_and_pickle_round_trip(use_time: bool) -> None:
    rng = np.random.default_rng(4)
    w = random_weights(rng, 3, 4, use_time)
    h, c, x = random_inputs(rng, w)
    for back in (TLSTMWeights.from_bytes(w.to_bytes()), pickle.loads(pickle.dumps(w))):
        assert back.use_time is use_time
        np.testing.assert_array_equal(tlstm_step(back, h, c, x, 1.0), tlstm_step(w, h, c, x, 1.0))


def test_inconsistent_weights_are_refused() -> None:
    rng = np.random.default_rng(5)
    w = random_weights(rng, 3, 4)
    with pytest.raises(ValueError, match="b_gates has shape"):
        TLSTMWeights(w_gates=w.w_gates, b_gates=w.b_gates.reshape(4, 4))
    with pytest.raises(ValueError, match="w_gates has shape"):
        TLSTMWeights(w_gates=w.w_gates[:, :-1], b_gates=w.b_gates)
    with pytest.raises(ValueError, match="w_split has shape"):
        TLSTMWeights(
            w_gates=w.w_gates,
            b_gates=w.b_gates,
            w_split=w.w_split[:, :4],
            w_time=w.w_time,
            b_time=w.b_time,
            w_new=w.w_new,
            b_merge=w.b_merge,
        )
    with pytest.raises(ValueError, match="all given or all None"):
        TLSTMWeights(w_gates=w.w_gates, b_gates=w.b_gates, w_split=w.w_split)
