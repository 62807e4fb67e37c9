"""The loan-level recurrence of the hierarchy (the repayment TLSTM fed with Y(i−1), eq. 5, and
the state-level TLSTM over [h_repay; h_activity], eq. 4) as one autograd node, its forward and
its backward through time compiled with numba.

Why: at a batch of 32 users and D = 32 a step of the two cells is a few dozen tensor
operations of a few thousand numbers each, and torch spends far longer dispatching them and
recording their autograd nodes, forward and backward, than computing them (the profile in the
README, "Training speed"). Here a whole pass is two compiled calls: ``_forward`` runs every
step and keeps what the backward needs; ``_backward`` runs the steps in reverse and returns
the gradient of every step's pre-activations. The weight gradients are then sums over steps
and users of products of those with the kept inputs: a few large matrix products in torch
after the loop, not small ones inside it.

What stays in torch, before and after: every step's input projection and time terms
(``training.core.tlstm.CellRun.inputs``, one product over all steps), and the heads over the
posts that give the logits the loss reads; their gradients flow through torch's autograd as
before. Inside the loop the heads only give Y(i−1), a detached input (no gradient), so
``_forward`` runs them with the weights copied out, and ``_backward`` has nothing to do for them.

The same function as ``training.core.model.hierarchy_pass(..., fused=False)``, the step-by-step
torch loop it replaces (tests/training/core/test_fused.py: outputs and every gradient against
it in float32, to 2e-5, for every variant and on random masks). Its tanh is float32's
(``scorer.fast.tanh32``, within a few float32 ulps), so a float64 pass is only as accurate as
a float32 one (about 1e-7): training runs in float32.

Per cell and step, with the notation of ``training.core.tlstm`` (a = the gates' pre-activation,
m = the mask of rows that step)::

    a = gx + h·W_h + dyn·W_dyn
    u = tanh(time + c·W_split) = [c_short; c_long];  c_adj = tanh(b_merge + shrink ⊙ c_short
                                                                  + w_new_long ⊙ c_long)
    c' = σ(a_f) ⊙ c_adj + σ(a_i) ⊙ tanh(a_g);  h' = σ(a_o) ⊙ tanh(c')
    (h, c) = (h', c') where m, else (h, c)

and without time c_adj = c.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from scorer.fast import recompile_on_change, tanh32
from training.core.tlstm import CellRun

__all__ = ["CellWeights", "fused_loan_pass"]


class CellWeights:
    """One cell's weights as the fused pass reads them, views of the cell's parameters (so the
    gradients reach them): ``w_h`` (D, 4D), ``w_dyn`` (K, 4D) for the step's own input columns
    (K = 0: none), and with time ``w_split`` (D, 2D), ``w_new_long`` (D,), ``b_merge`` (D,)."""

    def __init__(self, run: CellRun) -> None:
        cell = run.cell
        d = cell.hidden_size
        self.use_time = cell.use_time
        self.w_h = run.w_h_t
        w = cell.gates.weight
        self.w_dyn = run.w_dynamic_t if run.w_dynamic_t is not None else w.new_zeros(0, 4 * d)
        if cell.use_time:
            self.w_split = run.w_split_t
            self.w_new_long = run.w_new_long
            self.b_merge = cell.b_merge
        else:
            self.w_split = w.new_zeros(d, 2 * d)
            self.w_new_long = w.new_zeros(d)
            self.b_merge = w.new_zeros(d)

    def tensors(self) -> tuple[Tensor, ...]:
        return self.w_h, self.w_dyn, self.w_split, self.w_new_long, self.b_merge


def fused_loan_pass(
    repay: CellWeights | None,
    repay_inputs: tuple[Tensor, Tensor | None, Tensor | None] | None,
    state: CellWeights,
    state_inputs: tuple[Tensor, Tensor | None, Tensor | None],
    repay_mask: Tensor,
    state_mask: Tensor,
    head: torch.nn.Module | None,
    aggregates: Tensor | None,
) -> Tensor:
    """The state-level TLSTM's hidden state after every step, (B, T, D), zero before a row's
    first post; the same as the torch loop of ``training.core.model.hierarchy_pass``.

    ``repay_inputs`` / ``state_inputs``: what ``CellRun.inputs`` gives for every step, (B, T, 4D)
    and with time (B, T, 2D) and (B, T, D); ``repay`` None (and its inputs None) when the model
    has no repayment TLSTM (its h stays zero). ``repay_mask`` / ``state_mask`` (B, T) bool: the
    steps each TLSTM takes. ``head``: the heads that give Y(i−1) at each post, fed back into the
    repayment TLSTM (None: no complementary layer); with ``aggregates`` (B, T, A) beside
    h_state when the heads are wide."""
    if head is not None and repay is not None:
        layers = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
        head_w = [lin.weight.detach().t().contiguous() for lin in layers]
        head_b = [lin.bias.detach().contiguous() for lin in layers]
    else:
        head_w, head_b = [], []
    return _LoanPass.apply(
        repay is not None,
        repay_mask,
        state_mask,
        head_w,
        head_b,
        aggregates,
        state.use_time,
        repay.use_time if repay is not None else False,
        *_cell_args(repay, repay_inputs, state_inputs[0]),
        *_cell_args(state, state_inputs, state_inputs[0]),
    )


def _cell_args(
    cell: CellWeights | None,
    inputs: tuple[Tensor, Tensor | None, Tensor | None] | None,
    like: Tensor,
) -> tuple[Tensor, ...]:
    """gx, time, shrink and the five weights of a cell; zeros of the right shapes for a part
    the cell lacks (no time: zero time terms; no cell at all: everything zero)."""
    bsz, steps, four_d = like.shape
    d = four_d // 4
    if cell is None:
        zeros = like.new_zeros
        return (zeros(bsz, steps, 4 * d), zeros(bsz, steps, 2 * d), zeros(bsz, steps, d),
                zeros(d, 4 * d), zeros(0, 4 * d), zeros(d, 2 * d), zeros(d), zeros(d))  # fmt: skip
    gx, tm, sh = inputs
    if tm is None:
        tm, sh = gx.new_zeros(bsz, steps, 2 * d), gx.new_zeros(bsz, steps, d)
    return (gx, tm, sh, *cell.tensors())


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _steps_first(t: Tensor) -> np.ndarray:
    """(B, T, ...) as a C-contiguous (T, B, ...) array."""
    return np.ascontiguousarray(t.detach().transpose(0, 1).numpy())


class _LoanPass(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        has_repay: bool,
        repay_mask: Tensor,
        state_mask: Tensor,
        head_w: list[Tensor],
        head_b: list[Tensor],
        aggregates: Tensor | None,
        state_time: bool,
        repay_time: bool,
        r_gx: Tensor, r_tm: Tensor, r_sh: Tensor,
        r_wh: Tensor, r_wd: Tensor, r_ws: Tensor, r_wnl: Tensor, r_bm: Tensor,
        s_gx: Tensor, s_tm: Tensor, s_sh: Tensor,
        s_wh: Tensor, s_wd: Tensor, s_ws: Tensor, s_wnl: Tensor, s_bm: Tensor,
    ) -> Tensor:  # fmt: skip
        dtype = s_gx.dtype
        bsz, steps, four_d = s_gx.shape
        d = four_d // 4
        r_mask = _steps_first(repay_mask.bool()) & has_repay
        s_mask = _steps_first(state_mask.bool())
        complementary = len(head_w) > 0
        agg = (_steps_first(aggregates.to(dtype)) if aggregates is not None and complementary
               else np.zeros((steps, bsz, 0), dtype=s_gx.numpy().dtype))  # fmt: skip
        hw = numba.typed.List([_np(w) for w in head_w]) if complementary else _EMPTY[dtype]
        hb = numba.typed.List([_np(b) for b in head_b]) if complementary else _EMPTY_B[dtype]
        r = (_steps_first(r_gx), _steps_first(r_tm), _steps_first(r_sh), _np(r_wh), _np(r_wd),
             _np(r_ws), _np(r_wnl), _np(r_bm))  # fmt: skip
        s = (_steps_first(s_gx), _steps_first(s_tm), _steps_first(s_sh), _np(s_wh), _np(s_wd),
             _np(s_ws), _np(s_wnl), _np(s_bm))  # fmt: skip
        kept = _forward(r_mask, s_mask, repay_time and has_repay, state_time,
                        complementary, hw, hb, agg, *r, *s)  # fmt: skip
        ctx.kept = kept
        ctx.flags = (has_repay, repay_time, state_time, d)
        ctx.weights = (r[3:], s[3:])
        ctx.shrink = (r[2], s[2])
        ctx.masks = (r_mask, s_mask)
        hs = kept[-1]  # (T, B, D)
        return torch.from_numpy(hs).transpose(0, 1)  # (B, T, D)

    @staticmethod
    def backward(ctx, grad_hs: Tensor):  # type: ignore[override]
        has_repay, repay_time, state_time, d = ctx.flags
        r_w, s_w = ctx.weights
        r_mask, s_mask = ctx.masks
        g = _steps_first(grad_hs.to(torch.from_numpy(ctx.kept[-1]).dtype))
        grads = _backward(g, r_mask, s_mask, repay_time and has_repay, state_time, ctx.kept,
                          *ctx.shrink, *r_w, *s_w)  # fmt: skip
        (r_da, r_du, r_dz, s_da, s_du, s_dz) = grads
        (r_hp, r_cp, r_dyn, _, r_u, _, _, s_hp, s_cp, s_dyn, _, s_u, _, _, _) = ctx.kept

        def sums(da, du, dz, hp, cp, dyn, u, time):
            t = torch.from_numpy
            da_t, du_t, dz_t = t(da), t(du), t(dz)
            dgx = da_t.transpose(0, 1)
            dwh = torch.einsum("tbd,tbk->dk", t(hp), da_t)
            dwd = torch.einsum("tbj,tbk->jk", t(dyn), da_t)
            if time:
                dws = torch.einsum("tbd,tbk->dk", t(cp), du_t)
                u_t = t(u)
                dwnl = (dz_t * u_t[..., d:]).sum((0, 1))
                dbm = dz_t.sum((0, 1))
                dtm = du_t.transpose(0, 1)
                dsh = (dz_t * u_t[..., :d]).transpose(0, 1)
            else:
                dws = dwnl = dbm = dtm = dsh = None
            return (dgx, dtm, dsh, dwh, dwd, dws, dwnl, dbm)

        r_grads = (sums(r_da, r_du, r_dz, r_hp, r_cp, r_dyn, r_u, repay_time) if has_repay
                   else (None,) * 8)  # fmt: skip
        s_grads = sums(s_da, s_du, s_dz, s_hp, s_cp, s_dyn, s_u, state_time)
        return (None, None, None, None, None, None, None, None, *r_grads, *s_grads)


_EMPTY = {dt: numba.typed.List([np.zeros((1, 1), dtype=np.dtype(str(dt).split(".")[-1]))])
          for dt in (torch.float32, torch.float64)}  # fmt: skip
_EMPTY_B = {dt: numba.typed.List([np.zeros(1, dtype=np.dtype(str(dt).split(".")[-1]))])
            for dt in (torch.float32, torch.float64)}  # fmt: skip


@numba.njit(cache=True, error_model="numpy")
def _cell_forward(t, mask, use_time, gx, tm, sh, wh, wd, ws, wnl, bm, h, c, dyn,
                  k_hp, k_cp, k_dyn, k_act, k_u, k_cadj, k_tc):
    """One step of one cell over the B rows, in place on h, c; keeps its activations at t.
    The products go to BLAS (np.dot); the elementwise part is one loop per row, with the
    rational tanh of ``scorer.fast`` (σ(x) = ½ + ½ tanh(x/2)), which vectorises where libm's
    tanh and exp are one call per element."""
    bsz, d = h.shape
    k_hp[t] = h
    k_cp[t] = c
    k_dyn[t] = dyn
    a = gx[t] + np.dot(h, wh)
    if dyn.shape[1] > 0:
        a += np.dot(dyn, wd)
    pre = tm[t] + np.dot(c, ws) if use_time else tm[t]
    act, u, cadj, tc = k_act[t], k_u[t], k_cadj[t], k_tc[t]
    for b in range(bsz):
        if use_time:
            for j in range(2 * d):
                u[b, j] = tanh32(pre[b, j])
            for j in range(d):
                cadj[b, j] = tanh32(bm[j] + sh[t, b, j] * u[b, j] + wnl[j] * u[b, d + j])
        else:
            for j in range(d):
                cadj[b, j] = c[b, j]
        for j in range(2 * d):
            act[b, j] = 0.5 + 0.5 * tanh32(0.5 * a[b, j])
        for j in range(2 * d, 3 * d):
            act[b, j] = tanh32(a[b, j])
        for j in range(3 * d, 4 * d):
            act[b, j] = 0.5 + 0.5 * tanh32(0.5 * a[b, j])
        for j in range(d):
            c2 = act[b, d + j] * cadj[b, j] + act[b, j] * act[b, 2 * d + j]
            tc[b, j] = tanh32(c2)
            if mask[t, b]:
                c[b, j] = c2
                h[b, j] = act[b, 3 * d + j] * tc[b, j]


@numba.njit(cache=True, error_model="numpy")
def _forward(r_mask, s_mask, repay_time, state_time, complementary, head_w, head_b, agg,
             r_gx, r_tm, r_sh, r_wh, r_wd, r_ws, r_wnl, r_bm,
             s_gx, s_tm, s_sh, s_wh, s_wd, s_ws, s_wnl, s_bm):
    steps, bsz, four_d = s_gx.shape
    d = four_d // 4
    dt = s_gx.dtype
    y_prev = np.zeros((bsz, r_wd.shape[0]), dtype=dt)
    h_r = np.zeros((bsz, d), dtype=dt)
    c_r = np.zeros((bsz, d), dtype=dt)
    h_s = np.zeros((bsz, d), dtype=dt)
    c_s = np.zeros((bsz, d), dtype=dt)
    r_hp = np.zeros((steps, bsz, d), dtype=dt)
    r_cp = np.zeros((steps, bsz, d), dtype=dt)
    r_dyn = np.zeros((steps, bsz, r_wd.shape[0]), dtype=dt)
    r_act = np.zeros((steps, bsz, 4 * d), dtype=dt)
    r_u = np.zeros((steps, bsz, 2 * d), dtype=dt)
    r_cadj = np.zeros((steps, bsz, d), dtype=dt)
    r_tc = np.zeros((steps, bsz, d), dtype=dt)
    s_hp = np.zeros((steps, bsz, d), dtype=dt)
    s_cp = np.zeros((steps, bsz, d), dtype=dt)
    s_dyn = np.zeros((steps, bsz, d), dtype=dt)
    s_act = np.zeros((steps, bsz, 4 * d), dtype=dt)
    s_u = np.zeros((steps, bsz, 2 * d), dtype=dt)
    s_cadj = np.zeros((steps, bsz, d), dtype=dt)
    s_tc = np.zeros((steps, bsz, d), dtype=dt)
    hs = np.zeros((steps, bsz, d), dtype=dt)
    for t in range(steps):
        _cell_forward(t, r_mask, repay_time, r_gx, r_tm, r_sh, r_wh, r_wd, r_ws, r_wnl, r_bm,
                      h_r, c_r, y_prev, r_hp, r_cp, r_dyn, r_act, r_u, r_cadj, r_tc)
        _cell_forward(t, s_mask, state_time, s_gx, s_tm, s_sh, s_wh, s_wd, s_ws, s_wnl, s_bm,
                      h_s, c_s, h_r.copy(), s_hp, s_cp, s_dyn, s_act, s_u, s_cadj, s_tc)
        hs[t] = h_s
        if complementary:
            n = 0
            for b in range(bsz):
                if s_mask[t, b]:
                    n += 1
            if n:
                a = agg.shape[2]
                x = np.empty((n, d + a), dtype=dt)
                rows = np.empty(n, dtype=np.int64)
                j = 0
                for b in range(bsz):
                    if s_mask[t, b]:
                        x[j, :d] = h_s[b]
                        x[j, d:] = agg[t, b]
                        rows[j] = b
                        j += 1
                for layer in range(len(head_w)):
                    x = np.dot(x, head_w[layer]) + head_b[layer]
                    if layer < len(head_w) - 1:
                        x = np.maximum(x, x - x)  # ReLU, in the arrays' own dtype
                for j in range(n):
                    for k in range(x.shape[1]):
                        y_prev[rows[j], k] = 0.5 + 0.5 * tanh32(0.5 * x[j, k])
    return (r_hp, r_cp, r_dyn, r_act, r_u, r_cadj, r_tc,
            s_hp, s_cp, s_dyn, s_act, s_u, s_cadj, s_tc, hs)


@numba.njit(cache=True, error_model="numpy")
def _cell_backward(t, mask, use_time, dh, dc, wh_t, wd_t, ws_t, wnl, act, u, cadj, tc, sh,
                   da_out, du_out, dz_out):
    """One step of one cell in reverse: from dh, dc (B, D) of its state after step t, write
    the step's gradients at t (pre-activations ``da_out``; with time ``du_out`` and
    ``dz_out``, of u's and of c_adj's pre-activations) and return (dh, dc) of the state
    before it and the gradient of its own input columns ``dyn``. A row the step left alone
    passes dh and dc through and has zero gradients at t."""
    bsz, d = dh.shape
    a, ut, ca, tct, da, du, dz = act[t], u[t], cadj[t], tc[t], da_out[t], du_out[t], dz_out[t]
    dc_prev = np.empty_like(dc)
    for b in range(bsz):
        if not mask[t, b]:
            continue
        for j in range(d):
            i, f, g, o = a[b, j], a[b, d + j], a[b, 2 * d + j], a[b, 3 * d + j]
            dct = dc[b, j] + dh[b, j] * o * (1.0 - tct[b, j] * tct[b, j])
            da[b, j] = dct * g * i * (1.0 - i)
            da[b, d + j] = dct * ca[b, j] * f * (1.0 - f)
            da[b, 2 * d + j] = dct * i * (1.0 - g * g)
            da[b, 3 * d + j] = dh[b, j] * tct[b, j] * o * (1.0 - o)
            dcadj = dct * f
            if use_time:
                z = dcadj * (1.0 - ca[b, j] * ca[b, j])
                dz[b, j] = z
                du[b, j] = z * sh[t, b, j] * (1.0 - ut[b, j] * ut[b, j])
                du[b, d + j] = z * wnl[j] * (1.0 - ut[b, d + j] * ut[b, d + j])
            else:
                dc_prev[b, j] = dcadj
    dh_prev = np.dot(da, wh_t)
    if use_time:
        dc_prev = np.dot(du, ws_t)
    ddyn = np.dot(da, wd_t) if wd_t.shape[1] > 0 else np.zeros((bsz, 0), dtype=dh.dtype)
    for b in range(bsz):
        if not mask[t, b]:  # the step left the state as it was
            dh_prev[b] = dh[b]
            dc_prev[b] = dc[b]
    return dh_prev, dc_prev, ddyn


@numba.njit(cache=True, error_model="numpy")
def _backward(grad_hs, r_mask, s_mask, repay_time, state_time, kept, r_sh, s_sh,
              r_wh, r_wd, r_ws, r_wnl, r_bm, s_wh, s_wd, s_ws, s_wnl, s_bm):
    # kept: per cell (repay, then state) h and c before each step, its own input, the gates'
    # activations, u, c_adj, tanh(c'); then the outputs. The backward reads the last four.
    r_act, r_u, r_cadj, r_tc = kept[3], kept[4], kept[5], kept[6]
    s_act, s_u, s_cadj, s_tc = kept[10], kept[11], kept[12], kept[13]
    steps, bsz, d = grad_hs.shape
    dt = grad_hs.dtype
    r_da = np.zeros((steps, bsz, 4 * d), dtype=dt)
    r_du = np.zeros((steps, bsz, 2 * d), dtype=dt)
    r_dz = np.zeros((steps, bsz, d), dtype=dt)
    s_da = np.zeros((steps, bsz, 4 * d), dtype=dt)
    s_du = np.zeros((steps, bsz, 2 * d), dtype=dt)
    s_dz = np.zeros((steps, bsz, d), dtype=dt)
    dh_s = np.zeros((bsz, d), dtype=dt)
    dc_s = np.zeros((bsz, d), dtype=dt)
    dh_r = np.zeros((bsz, d), dtype=dt)
    dc_r = np.zeros((bsz, d), dtype=dt)
    # The transposed weights, once: the step's products are then with C-contiguous arrays.
    r_wh_t, r_wd_t, r_ws_t = r_wh.T.copy(), r_wd.T.copy(), r_ws.T.copy()
    s_wh_t, s_wd_t, s_ws_t = s_wh.T.copy(), s_wd.T.copy(), s_ws.T.copy()
    for t in range(steps - 1, -1, -1):
        dh_s = dh_s + grad_hs[t]
        dh_s, dc_s, dh_from_state = _cell_backward(
            t, s_mask, state_time, dh_s, dc_s, s_wh_t, s_wd_t, s_ws_t, s_wnl, s_act, s_u,
            s_cadj, s_tc, s_sh, s_da, s_du, s_dz)
        dh_r = dh_r + dh_from_state
        dh_r, dc_r, _ = _cell_backward(
            t, r_mask, repay_time, dh_r, dc_r, r_wh_t, r_wd_t, r_ws_t, r_wnl, r_act, r_u,
            r_cadj, r_tc, r_sh, r_da, r_du, r_dz)
    return r_da, r_du, r_dz, s_da, s_du, s_dz


# ``scorer.fast.tanh32`` is compiled into these functions' cache: recompiled when it changes.
recompile_on_change(_cell_forward, _forward, _cell_backward, _backward)
