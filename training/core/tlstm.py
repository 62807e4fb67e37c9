"""The TLSTM cell in torch (DESIGN.md's reading of the paper's eq. 1), a layer over padded
sequences, and the export of a cell's weights to the numpy step the live scorer runs.

Per step, with Δt already normalised (``scorer.timegap.normalise_gap``)::

    c_short  = tanh(W_short · c(t−1) + w_short_t * Δt + b_short)
    c_long   = tanh(W_long  · c(t−1) + w_long_t  * Δt + b_long)
    c_short' = tanh(w_shrink * Δt + b_shrink) ⊙ c_short
    c_adj    = tanh(w_new_short ⊙ c_short' + w_new_long ⊙ c_long + b_merge)
    i, f, o  = σ(W_x · x + W_h · h(t−1) + b)  ;  g = tanh(W_xg · x + W_hg · h(t−1) + b_g)
    c(t)     = f ⊙ c_adj + i ⊙ g              ;  h(t) = o ⊙ tanh(c(t))

With ``use_time=False`` (the H-LSTM ablation) c_adj = c(t−1): a plain LSTM cell.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from scorer.tlstm import TLSTMWeights

__all__ = ["CellRun", "TLSTMCell", "TLSTMLayer", "export_numpy", "final_states"]

State = tuple[Tensor, Tensor]


class TLSTMCell(nn.Module):
    """One TLSTM step: adjust the memory c(t−1) for the gap Δt, then run the LSTM gates on it.

    Parameters are fused for speed and named after the equations:
    ``gates`` is [W_x W_h] and b for i, f, g, o (the order of ``torch.nn.LSTMCell``); ``split`` is
    [W_short; W_long]; ``w_time``/``b_time`` are [w_short_t; w_long_t; w_shrink] and
    [b_short; b_long; b_shrink]; ``w_new`` is [w_new_short; w_new_long].

    Initialisation: gates as ``torch.nn.LSTMCell`` (U(±1/√D)) with the forget bias at +1, so
    memory is kept by default (Jozefowicz et al. 2015). W_short = W_long = identity and
    w_short_t = w_long_t = 0, so both parts start as tanh(c); the shrink factor
    tanh(2 − 0.2 Δt) falls from 0.96 at Δt = 0 through 0.59 at a month to 0 at Δt = 10 (≈ 2.5
    years); w_new_short = w_new_long = ½. At Δt = 0 the adjustment is then ≈ identity for
    small c (slope 0.98), and a long gap keeps about half the memory.
    """

    def __init__(self, input_size: int, hidden_size: int, use_time: bool = True) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.use_time = use_time
        d = hidden_size
        self.gates = nn.Linear(input_size + d, 4 * d)
        if use_time:
            self.split = nn.Linear(d, 2 * d, bias=False)
            self.w_time = nn.Parameter(torch.empty(3 * d))
            self.b_time = nn.Parameter(torch.empty(3 * d))
            self.w_new = nn.Parameter(torch.empty(2 * d))
            self.b_merge = nn.Parameter(torch.empty(d))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Set the initial weights the class docstring describes."""
        d = self.hidden_size
        nn.init.uniform_(self.gates.weight, -(d**-0.5), d**-0.5)
        nn.init.uniform_(self.gates.bias, -(d**-0.5), d**-0.5)
        self.gates.bias[d : 2 * d] = 1.0
        if self.use_time:
            self.split.weight.copy_(torch.eye(d).repeat(2, 1))
            self.w_time.copy_(torch.cat((torch.zeros(2 * d), torch.full((d,), -0.2))))
            self.b_time.copy_(torch.cat((torch.zeros(2 * d), torch.full((d,), 2.0))))
            self.w_new.fill_(0.5)
            self.b_merge.zero_()

    def forward(self, x: Tensor, dt: Tensor, state: State | None = None) -> State:
        """(h, c) after one event with input x (B, I) and normalised gap dt (B,) or (B, 1)."""
        if state is None:
            state = self.initial_state(x.shape[0], dtype=x.dtype, device=x.device)
        h, c = state  # (B, D) each
        c_adj = self.adjust_memory(c, dt) if self.use_time else c  # (B, D)
        i, f, g, o = self.gates(torch.cat((x, h), dim=-1)).chunk(4, dim=-1)  # (B, D) each
        c = torch.sigmoid(f) * c_adj + torch.sigmoid(i) * torch.tanh(g)  # (B, D)
        h = torch.sigmoid(o) * torch.tanh(c)  # (B, D)
        return h, c

    def adjust_memory(self, c: Tensor, dt: Tensor) -> Tensor:
        """c_adj: split c(t−1) into short and long parts, shrink the short part by Δt, merge."""
        d = self.hidden_size
        pre = dt.reshape(*c.shape[:-1], 1) * self.w_time + self.b_time  # (B, 3D)
        c_short, c_long = torch.tanh(self.split(c) + pre[:, : 2 * d]).chunk(2, dim=-1)  # (B, D)
        shrink = torch.tanh(pre[:, 2 * d :])  # (B, D)
        w_new_short, w_new_long = self.w_new.chunk(2)  # (D,) each
        return torch.tanh(w_new_short * (shrink * c_short) + w_new_long * c_long + self.b_merge)

    def initial_state(
        self, batch_size: int, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> State:
        """Zero (h, c), the state of a user with no history."""
        zeros = torch.zeros(batch_size, self.hidden_size, dtype=dtype, device=device)
        return zeros, zeros.clone()


class CellRun:
    """A cell's forward for a pass over many steps, split into the part that can run for every
    step at once and the part that must run step by step: the same function as
    ``TLSTMCell.forward``, with fewer operations per step (what a training epoch spends its
    time on: dozens of small operations per step, each with its autograd node).

    ``inputs`` projects the input columns ``known`` (known for every step before the pass
    starts) through the gates in one matrix product, with the bias, and computes the time terms
    of every step (they depend on Δt only: the short and long parts' pre-activations and
    w_new_short ⊙ tanh(w_shrink Δt + b_shrink)). ``step`` adds what only the step knows: the
    hidden state, and the input columns ``dynamic`` (a value fed back from the step before,
    such as Y(i−1)). The weight views are taken once per pass, here."""

    def __init__(self, cell: TLSTMCell, known: slice, dynamic: slice | None = None) -> None:
        self.cell = cell
        d, i = cell.hidden_size, cell.input_size
        w = cell.gates.weight  # (4D, I + D): columns [x; h]
        self.w_known = w[:, known]  # (4D, k)
        self.w_dynamic_t = None if dynamic is None else w[:, dynamic].t()  # (I - k, 4D)
        self.w_h_t = w[:, i:].t()  # (D, 4D)
        if cell.use_time:
            self.w_split_t = cell.split.weight.t()  # (D, 2D)
            self.w_new_long = cell.w_new[d:]  # (D,)

    def inputs(self, x: Tensor, dt: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """For inputs x (..., k) and normalised gaps dt (...): the gates' input part
        (..., 4D), and with time the short/long pre-activations (..., 2D) and the weighted
        shrink factor (..., D); None for the last two without time."""
        cell = self.cell
        gx = nn.functional.linear(x, self.w_known, cell.gates.bias)  # (..., 4D)
        if not cell.use_time:
            return gx, None, None
        d = cell.hidden_size
        pre = dt.unsqueeze(-1) * cell.w_time + cell.b_time  # (..., 3D)
        return gx, pre[..., : 2 * d], cell.w_new[:d] * torch.tanh(pre[..., 2 * d :])

    def step(
        self,
        gx: Tensor,
        time: Tensor | None,
        shrink: Tensor | None,
        state: State,
        dynamic: Tensor | None = None,
    ) -> State:
        """(h, c) after one step: ``gx``, ``time``, ``shrink`` the step's rows of ``inputs``
        (B, ...), ``dynamic`` (B, I - k) the step's own input columns."""
        h, c = state  # (B, D) each
        d = self.cell.hidden_size
        gates = torch.addmm(gx, h, self.w_h_t)  # (B, 4D)
        if dynamic is not None:
            gates = torch.addmm(gates, dynamic, self.w_dynamic_t)
        if time is not None:
            c_short, c_long = torch.tanh(torch.addmm(time, c, self.w_split_t)).chunk(2, dim=-1)
            merged = torch.addcmul(self.cell.b_merge, shrink, c_short)
            c = torch.tanh(torch.addcmul(merged, self.w_new_long, c_long))  # c_adj
        i, f, _, o = torch.sigmoid(gates).chunk(4, dim=-1)  # (B, D) each
        c = torch.addcmul(f * c, i, torch.tanh(gates[:, 2 * d : 3 * d]))
        return o * torch.tanh(c), c


class TLSTMLayer(nn.Module):
    """A TLSTMCell run over padded sequences; a padded step leaves (h, c) as it was."""

    def __init__(self, input_size: int, hidden_size: int, use_time: bool = True) -> None:
        super().__init__()
        self.cell = TLSTMCell(input_size, hidden_size, use_time)

    def forward(
        self, x: Tensor, dt: Tensor, mask: Tensor | None = None, state: State | None = None
    ) -> tuple[Tensor, State]:
        """Hidden states (B, T, D) and the final (h, c) for x (B, T, I), dt (B, T), mask (B, T).

        ``mask`` is true on real steps (any pattern, not only a prefix); at a padded step the
        output repeats the previous h. Without a mask every step is real.
        """
        if state is None:
            state = self.cell.initial_state(x.shape[0], dtype=x.dtype, device=x.device)
        h, c = state  # (B, D) each
        hs = []
        for t in range(x.shape[1]):
            h_next, c_next = self.cell(x[:, t], dt[:, t], (h, c))  # (B, D) each
            if mask is None:
                h, c = h_next, c_next
            else:
                real = mask[:, t, None].bool()  # (B, 1)
                h, c = torch.where(real, h_next, h), torch.where(real, c_next, c)
            hs.append(h)
        return torch.stack(hs, dim=1), (h, c)  # (B, T, D), ((B, D), (B, D))


def final_states(cell: TLSTMCell, x: Tensor, dt: Tensor, length: Tensor) -> State:
    """The last (h, c) of each of S sequences x (S, L, I), dt (S, L) with real lengths (S,);
    zero states for an empty one. Runs longest first, so step t costs only the sequences still
    running (subsequences are mostly short: a masked pass over all S rows wastes most steps).

    The running rows shrink in place of being re-assembled: when sequences end, their states
    are set aside and the step goes on with the rest, so an epoch's work is the sum of the
    lengths, not S × L (a full-size concatenation per step, and its gradient, cost that)."""
    order = torch.argsort(length, descending=True, stable=True)  # (S,)
    run = CellRun(cell, known=slice(0, cell.input_size))
    real = length[order][None, :] > torch.arange(x.shape[1])[:, None]  # (L, S)
    running = real.sum(1).tolist()
    # Packed as a PackedSequence is: step t's rows (the first running[t] of the sorted
    # sequences) contiguous, the steps one after another. Every step's input projection and
    # time terms then come from one product over real steps only, and splitting them per step
    # has a backward of one concatenation (slicing a padded (L, S, ...) tensor per step would
    # fill a zero (S, ...) gradient at every step).
    packed = run.inputs(x[order].transpose(0, 1)[real], dt[order].transpose(0, 1)[real])
    gx, tm, sh = (None if p is None else p.split(running) for p in packed)
    h, c = cell.initial_state(x.shape[0], dtype=x.dtype, device=x.device)  # (S, D) each
    done_h: list[Tensor] = []  # final states of ended sequences, last-ended first
    done_c: list[Tensor] = []
    n_prev = x.shape[0]
    for t, n in enumerate(running):
        if n < n_prev:  # rows n..n_prev ended before step t
            h, h_end = h.split((n, n_prev - n))
            c, c_end = c.split((n, n_prev - n))
            done_h.append(h_end)
            done_c.append(c_end)
            n_prev = n
        if n == 0:
            break
        h, c = run.step(
            gx[t], None if tm is None else tm[t], None if sh is None else sh[t], (h, c)
        )  # (n, D) each
    done_h.append(h)
    done_c.append(c)
    h_all = torch.cat(done_h[::-1])  # (S, D) in the sorted order
    c_all = torch.cat(done_c[::-1])
    back = torch.empty_like(order)
    back[order] = torch.arange(order.numel())
    return h_all[back], c_all[back]


def export_numpy(cell: TLSTMCell) -> TLSTMWeights:
    """The cell's weights as float32 numpy arrays in the layout ``scorer.tlstm.tlstm_step`` uses."""

    def array(t: Tensor) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).numpy()

    time = {}
    if cell.use_time:
        time = {
            "w_split": array(cell.split.weight.T),
            "w_time": array(cell.w_time),
            "b_time": array(cell.b_time),
            "w_new": array(cell.w_new),
            "b_merge": array(cell.b_merge),
        }
    return TLSTMWeights(w_gates=array(cell.gates.weight.T), b_gates=array(cell.gates.bias), **time)
