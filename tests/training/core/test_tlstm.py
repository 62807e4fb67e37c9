"""The torch TLSTM cell and layer, and their parity with the numpy step the scorer runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from scorer.timegap import normalise_gap
from scorer.tlstm import tlstm_step
from training.core.tlstm import CellRun, TLSTMCell, TLSTMLayer, export_numpy, final_states

GAPS_S = st.sampled_from([0.0, 1.0, 3600.0, 86_400.0, 30 * 86_400.0, 180 * 86_400.0]) | st.floats(
    -60.0, 1e8
)
MONTH = float(normalise_gap(30 * 86_400.0))


def random_cell(
    i: int, d: int, use_time: bool = True, seed: int = 0, dtype: torch.dtype = torch.float32
) -> TLSTMCell:
    """A cell with seeded N(0, 0.5²) weights everywhere, so no structure of the init hides a bug."""
    cell = TLSTMCell(i, d, use_time).to(dtype)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=dtype) * 0.5)
    return cell


def random_inputs(
    rng: np.random.Generator, i: int, d: int, b: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(h, c, x) float32 of batch b, h in (−1, 1) as a real hidden state is."""
    h = np.tanh(rng.normal(0.0, 1.0, (b, d))).astype(np.float32)
    c = rng.normal(0.0, 1.5, (b, d)).astype(np.float32)
    x = rng.normal(0.0, 2.0, (b, i)).astype(np.float32)
    return h, c, x


def torch_step(
    cell: TLSTMCell, h: np.ndarray, c: np.ndarray, x: np.ndarray, dt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The cell's forward on numpy batches, back as numpy."""
    with torch.no_grad():
        state = (torch.from_numpy(h), torch.from_numpy(c))
        h_new, c_new = cell(torch.from_numpy(x), torch.from_numpy(dt.astype(np.float32)), state)
    return h_new.numpy(), c_new.numpy()


def test_shapes_and_dt_forms() -> None:
    cell = TLSTMCell(3, 5)
    x, dt = torch.randn(4, 3), torch.rand(4) * 9
    h, c = cell(x, dt)
    assert h.shape == c.shape == (4, 5)
    h_col, c_col = cell(x, dt[:, None])
    torch.testing.assert_close((h_col, c_col), (h, c), rtol=0, atol=0)
    hs, (h_last, c_last) = TLSTMLayer(3, 5)(torch.randn(4, 7, 3), torch.rand(4, 7))
    assert hs.shape == (4, 7, 5) and h_last.shape == c_last.shape == (4, 5)


def test_initialisation() -> None:
    cell = TLSTMCell(3, 8)
    assert torch.all(cell.gates.bias[8:16] == 1.0)
    c = torch.linspace(-0.2, 0.2, 8).repeat(2, 1)  # (2, 8)
    adjusted = cell.adjust_memory(c, torch.tensor([0.0, 10.0]))
    torch.testing.assert_close(adjusted[0], torch.tanh(0.982 * torch.tanh(c[0])), atol=1e-3, rtol=0)
    torch.testing.assert_close(adjusted[1], torch.tanh(0.5 * torch.tanh(c[1])), atol=1e-6, rtol=0)


@pytest.mark.parametrize("use_time", [True, False])
def test_gap_changes_the_state_only_with_time(use_time: bool) -> None:
    cell = random_cell(3, 6, use_time)
    x, h, c = torch.randn(2, 3), torch.randn(2, 6).tanh(), torch.randn(2, 6)
    with torch.no_grad():
        at_once = cell(x, torch.zeros(2), (h, c))
        a_month_later = cell(x, torch.full((2,), MONTH), (h, c))
    for now, later in zip(at_once, a_month_later, strict=True):
        assert (not torch.allclose(now, later)) is use_time


def test_without_time_it_is_torch_lstm_cell() -> None:
    i, d = 4, 6
    cell = random_cell(i, d, use_time=False, seed=1)
    lstm = nn.LSTMCell(i, d)
    with torch.no_grad():
        lstm.weight_ih.copy_(cell.gates.weight[:, :i])
        lstm.weight_hh.copy_(cell.gates.weight[:, i:])
        lstm.bias_ih.copy_(cell.gates.bias)
        lstm.bias_hh.zero_()
        x, h, c = torch.randn(5, i), torch.randn(5, d).tanh(), torch.randn(5, d)
        torch.testing.assert_close(
            cell(x, torch.rand(5), (h, c)), lstm(x, (h, c)), atol=1e-6, rtol=0
        )


def test_gradients() -> None:
    i, d, b = 2, 3, 2
    cell = random_cell(i, d, seed=2, dtype=torch.float64)
    names = [name for name, _ in cell.named_parameters()]

    def step(x: Tensor, dt: Tensor, h: Tensor, c: Tensor, *params: Tensor) -> tuple[Tensor, ...]:
        weights = dict(zip(names, params, strict=True))
        return torch.func.functional_call(cell, weights, (x, dt, (h, c)))

    inputs = (torch.randn(b, i), torch.rand(b) * 9, torch.randn(b, d).tanh(), torch.randn(b, d))
    params = tuple(p.detach().clone() for p in cell.parameters())
    args = tuple(a.to(torch.float64).requires_grad_() for a in (*inputs, *params))
    assert torch.autograd.gradcheck(step, args)


def test_layer_mask_leaves_state_on_padded_steps() -> None:
    layer = TLSTMLayer(3, 4)
    b, t = 3, 6
    x, dt = torch.randn(b, t, 3), torch.rand(b, t) * 9
    mask = torch.tensor(
        [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 1, 0]], dtype=torch.bool
    )
    with torch.no_grad():
        hs, (h_last, c_last) = layer(x, dt, mask)
        for row in range(b):
            state = layer.cell.initial_state(1)
            for step in range(t):
                if mask[row, step]:
                    state = layer.cell(x[row, step, None], dt[row, step, None], state)
                torch.testing.assert_close(hs[row, step], state[0][0], atol=1e-6, rtol=0)
            torch.testing.assert_close((h_last[row], c_last[row]), (state[0][0], state[1][0]))


def test_layer_without_mask_is_the_cell_in_a_loop() -> None:
    layer = TLSTMLayer(2, 3)
    x, dt = torch.randn(2, 5, 2), torch.rand(2, 5)
    with torch.no_grad():
        hs, final = layer(x, dt)
        state = None
        for step in range(5):
            state = layer.cell(x[:, step], dt[:, step], state)
            torch.testing.assert_close(hs[:, step], state[0], atol=0, rtol=0)
    torch.testing.assert_close(final, state, atol=0, rtol=0)


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=7), seed=st.integers(0, 999))
def test_final_states_equal_the_masked_layer_in_any_order(lengths: list[int], seed: int) -> None:
    cell = random_cell(3, 4, seed=seed)
    layer = TLSTMLayer(3, 4)
    layer.cell = cell
    g = torch.Generator().manual_seed(seed)
    s, longest = len(lengths), max(*lengths, 1)
    x, dt = torch.randn(s, longest, 3, generator=g), torch.rand(s, longest, generator=g) * 9
    length = torch.tensor(lengths)
    mask = length[:, None] > torch.arange(longest)[None, :]  # (S, L): real prefix
    with torch.no_grad():
        h, c = final_states(cell, x, dt, length)
        _, (h_ref, c_ref) = layer(x, dt, mask)
    torch.testing.assert_close((h, c), (h_ref, c_ref), atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    i=st.integers(1, 9),
    d=st.integers(1, 17),
    b=st.integers(1, 6),
    use_time=st.booleans(),
    gaps_s=st.lists(GAPS_S, min_size=6, max_size=6),
)
def test_numpy_step_matches_torch(
    seed: int, i: int, d: int, b: int, use_time: bool, gaps_s: list[float]
) -> None:
    cell = random_cell(i, d, use_time, seed)
    w = export_numpy(cell)
    h, c, x = random_inputs(np.random.default_rng(seed), i, d, b)
    dt = normalise_gap(np.array(gaps_s[:b]))
    h_ref, c_ref = torch_step(cell, h, c, x, dt)
    h_batch, c_batch = tlstm_step(w, h, c, x, dt)
    np.testing.assert_allclose(h_batch, h_ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(c_batch, c_ref, atol=1e-5, rtol=0)
    for row in range(b):
        h_one, c_one = tlstm_step(w, h[row], c[row], x[row], dt[row])
        np.testing.assert_allclose(h_one, h_ref[row], atol=1e-5, rtol=0)
        np.testing.assert_allclose(c_one, c_ref[row], atol=1e-5, rtol=0)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    d=st.integers(1, 33),
    use_time=st.booleans(),
    gaps_s=st.lists(GAPS_S, min_size=50, max_size=50),
)
def test_parity_holds_over_50_steps(seed: int, d: int, use_time: bool, gaps_s: list[float]) -> None:
    i, b = 5, 3
    cell = random_cell(i, d, use_time, seed)
    w = export_numpy(cell)
    rng = np.random.default_rng(seed)
    h_ref, c_ref, _ = random_inputs(rng, i, d, b)
    h_np, c_np = h_ref.copy(), c_ref.copy()  # each implementation carries its own state
    h_one, c_one = h_ref[0], c_ref[0]
    worst = 0.0
    for gap_s in gaps_s:
        x = rng.normal(0.0, 2.0, (b, i)).astype(np.float32)
        dt = normalise_gap(rng.permutation([gap_s, 0.0, 3600.0 * rng.random()]))
        h_ref, c_ref = torch_step(cell, h_ref, c_ref, x, dt)
        h_np, c_np = tlstm_step(w, h_np, c_np, x, dt)
        h_one, c_one = tlstm_step(w, h_one, c_one, x[0], dt[0])
        errors = (h_np - h_ref, c_np - c_ref, h_one - h_ref[0], c_one - c_ref[0])
        worst = max(worst, *(float(np.abs(e).max()) for e in errors))
    assert worst < 1e-5


@pytest.mark.parametrize("use_time", [True, False])
def test_cell_run_is_the_cell_forward(use_time: bool) -> None:
    """CellRun (inputs for every step at once, then steps) is TLSTMCell.forward, gradients
    included, with part of the input known ahead and part given per step."""
    cell = random_cell(5, 4, use_time, seed=3, dtype=torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64)
    dt = torch.rand(3, dtype=torch.float64) * 5
    h0 = torch.tanh(torch.randn(3, 4, dtype=torch.float64))
    c0 = torch.randn(3, 4, dtype=torch.float64)
    run = CellRun(cell, known=slice(0, 3), dynamic=slice(3, 5))
    gx, tm, sh = run.inputs(x[:, :3], dt)
    fast = run.step(gx, tm, sh, (h0, c0), x[:, 3:])
    fast_grad = torch.autograd.grad(sum(t.sum() for t in fast), list(cell.parameters()))
    plain = cell(x, dt, (h0, c0))
    plain_grad = torch.autograd.grad(sum(t.sum() for t in plain), list(cell.parameters()))
    torch.testing.assert_close(fast, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast_grad, plain_grad, rtol=1e-10, atol=1e-10)
