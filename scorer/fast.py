"""The model's per-event arithmetic compiled with numba: three TLSTM cells and the heads in one
call, what ``scorer.model.advance`` runs in the live flow.

``scorer.model`` decides what an event does (``scorer.steps.plan_step``: the ledger, the
features, the time gaps, shared with training); ``step`` executes that plan on a user's
(6, D) state in one compiled call, with no numpy call per gate. The arithmetic is
``scorer.tlstm.tlstm_step`` and ``scorer.model.head_logits`` / ``calibrate`` written out as
loops over D (float32 weights and state, float32 accumulation), so it agrees with them and with
the torch forward to float32 rounding (tests/scorer/test_fast.py: a property test against the
numpy reference step, and the parity tests against torch through ``advance``).

Why numba rather than a compiled extension: the serving install needs no compiler and no build
step, the kernel stays Python next to the numpy reference it must equal, and ``cache=True``
keeps the machine code in ``scorer/__pycache__``, so only the first process after a checkout
or an edit compiles (README, "The model in the streaming form", gives the costs).

Weights are packed once per model into one float32 array and one int64 table of offsets
(``Packed``), so a step passes a handful of arguments whatever the number of head layers.

**Reason codes at a post.** Asked for them (``step``'s ``contributions``), the step also
computes the occlusion contributions of ``scorer.reasons.contributions`` from the head input
it has just built: per group of aggregates, the attributed logit minus that logit with the
group set to the reference. Each layer runs on the change from the scored row: the first
layer's pre-activation moves by W1[group rows]^T (reference - aggregates) over the group's few
columns, a later layer's by its weights times the change of its input, over the units whose
activation moved (``_occlusion``). ``scorer.reasons.contributions`` (numpy, every occluded row
through every layer) is the reference it is tested against (tests/scorer/test_fast.py). What
the occlusion costs depends on the model and the input: on how many units move.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

__all__ = [
    "Packed", "contributions", "pack", "recompile_on_change", "step", "step_seconds", "tanh32",
    "tanh_array", "warm_up",
]

log = logging.getLogger(__name__)

# The table: per cell (activity, repay, state) 9 entries, then the head's layer count and per
# layer 4, then the occlusion groups (their count G, the attributed output, then start and stop
# per group), then 9 entries at the end (``_TAIL``).
_CELL = 9  # input size I, w_gates, b_gates, use_time, w_split, w_time, b_time, w_new, b_merge
_HEAD = 3 * _CELL  # layers L, then per layer: rows, cols, w offset, b offset
# The tail: complementary, use_activity, use_repay, calibration offset (-1: none), the size of
# a cell's input buffer and of the head's widest layer, the reference's offset (-1: none), where
# the groups start in the table, the aggregates the head reads (0: none; last).
_TAIL = 9


@dataclass(frozen=True, eq=False)
class Packed:
    """A model's weights laid out for ``step``: ``flat`` float32 (every array, C order, one after
    another) and ``table`` int64 (where each is, the sizes and the model's switches), and the
    hidden size D of the states it steps, and how many loan-level inputs it reads."""

    flat: np.ndarray
    table: np.ndarray
    hidden_size: int
    loan_inputs: int  # the loan-level step's inputs, Y(i-1) not counted


def pack(
    cells: tuple[tuple[np.ndarray | None, ...], ...],
    head: tuple[tuple[np.ndarray, np.ndarray], ...],
    *,
    hidden_size: int,
    complementary: bool,
    use_activity: bool,
    use_repay: bool,
    calibration: np.ndarray | None,
    aggregates: int = 0,
    reference: np.ndarray | None = None,
    groups: tuple[tuple[int, int], ...] = (),
    target: int = 0,
) -> Packed:
    """Pack three cells' arrays (each ``(w_gates, b_gates, w_split, w_time, b_time, w_new,
    b_merge)`` as ``scorer.tlstm.TLSTMWeights`` holds them, time arrays None for a plain LSTM),
    the head layers (W (in, out), b (out,)) and the calibration ((2, 2) or None). ``aggregates``:
    how many running aggregates the head reads after the state-level h (0: it reads h alone).
    For reason codes (``contributions``): ``reference`` (aggregates,) float32, the values a
    group is occluded with, ``groups`` the (start, stop) columns of each group within the
    aggregates, ``target`` the head output attributed (0: P(delinquent)). Raises ValueError
    for a head without 2 outputs or of the wrong width, or groups outside the aggregates."""
    parts: list[np.ndarray] = []
    table: list[int] = []
    size = 0

    def put(a: np.ndarray) -> int:
        nonlocal size
        at = size
        flat = np.ascontiguousarray(a, np.float32).ravel()
        parts.append(flat)
        size += flat.size
        return at

    d = hidden_size
    for cell in cells:
        w_gates, b_gates, w_split, w_time, b_time, w_new, b_merge = cell
        assert w_gates is not None and b_gates is not None
        table += [w_gates.shape[0] - d, put(w_gates), put(b_gates), int(w_split is not None)]
        if w_split is None:
            table += [-1] * 5
        else:
            table += [put(a) for a in (w_split, w_time, b_time, w_new, b_merge)]  # type: ignore[arg-type]
    table.append(len(head))
    for w, b in head:
        table += [w.shape[0], w.shape[1], put(w), put(b)]
    if not head or head[-1][0].shape[1] != 2:
        raise ValueError("the head must end in 2 outputs (P(delinquent), P(default))")
    if head[0][0].shape[0] != d + aggregates:
        raise ValueError(f"the head reads {head[0][0].shape[0]} inputs, not D + aggregates = "
                         f"{d + aggregates}")  # fmt: skip
    cal = -1 if calibration is None else put(calibration)
    ref = -1
    if reference is not None and aggregates:
        if np.shape(reference) != (aggregates,):
            raise ValueError(f"reference must be ({aggregates},), got {np.shape(reference)}")
        ref = put(reference)
    if any(not 0 <= a < b <= aggregates for a, b in groups) or not 0 <= target < 2:
        raise ValueError(f"groups {groups} must lie within the {aggregates} aggregates, "
                         f"target {target} within the 2 outputs")  # fmt: skip
    groups_at = len(table)
    table += [len(groups), target]
    for a, b in groups:
        table += [a, b]
    # Buffers: the repay or state cell's input; the head's input or a layer's output.
    widest = max([d + aggregates] + [w.shape[1] for w, _ in head])
    x_size = max(cells[1][0].shape[0] - d, 2 * d)  # type: ignore[union-attr]
    table += [int(complementary), int(use_activity), int(use_repay), cal, x_size, widest, ref,
              groups_at, aggregates]  # fmt: skip
    flat = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    flat.flags.writeable = False
    t = np.array(table, np.int64)
    t.flags.writeable = False
    return Packed(flat, t, d, table[_CELL] - (2 if complementary else 0))


# tanh as a rational function (the minimax approximation Eigen uses for float), evaluated in
# float64 and rounded once: within a few float32 ulps of tanh (tests/scorer/test_fast.py
# checks a dense grid), and a plain expression, so the loops below vectorise where libm's tanh
# is one call per element.
_CLAMP = 7.90531110763549805
_A1, _A3, _A5, _A7 = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                      5.12229709037114e-08)  # fmt: skip
_A9, _A11, _A13 = -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16
_B0, _B2, _B4, _B6 = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                      1.19825839466702e-06)  # fmt: skip
_HALF = np.float32(0.5)


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def tanh32(x):
    """tanh of a float32 as a float32, within 2.4e-7 (a few float32 ulps; see above)."""
    x = min(max(np.float64(x), -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return np.float32(x * p / q)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _add_rows(a, w, b, rows, cols):
    """``b[:cols] += a[:rows] @ w[:rows, :cols]`` (float32). Eight rows of ``w`` per pass over
    ``b``: one load and store of ``b`` per eight products, where a row at a time is bound by
    them (README, "The model in the streaming form": the kernel's figures)."""
    r = 0
    while r + 8 <= rows:
        a0, a1, a2, a3, a4, a5, a6, a7 = a[r], a[r + 1], a[r + 2], a[r + 3], a[r + 4], \
            a[r + 5], a[r + 6], a[r + 7]  # fmt: skip
        w0, w1, w2, w3, w4, w5, w6, w7 = w[r], w[r + 1], w[r + 2], w[r + 3], w[r + 4], \
            w[r + 5], w[r + 6], w[r + 7]  # fmt: skip
        for j in range(cols):
            b[j] += ((a0 * w0[j] + a1 * w1[j]) + (a2 * w2[j] + a3 * w3[j])) + (
                (a4 * w4[j] + a5 * w5[j]) + (a6 * w6[j] + a7 * w7[j]))
        r += 8
    while r < rows:
        ar = a[r]
        wr = w[r]
        for j in range(cols):
            b[j] += ar * wr[j]
        r += 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _cell(flat, table, k, h, c, x, nx, dt, z, v):
    """One TLSTM step of cell ``k``: ``h`` and ``c`` (D,) in place, input ``x[:nx]``,
    normalised gap ``dt`` (float32); ``z`` (4D) and ``v`` (3D) float32 scratch."""
    d = h.shape[0]
    base = k * _CELL
    ni = table[base]
    og, ob, use_time = table[base + 1], table[base + 2], table[base + 3]
    g4 = 4 * d
    # Views with non-negative indices only, so the loops below compile to vector code.
    w_gates = flat[og : og + (ni + d) * g4].reshape((ni + d, g4))
    b_gates = flat[ob : ob + g4]
    for j in range(g4):
        z[j] = b_gates[j]
    # [x; h] @ w_gates
    _add_rows(x, w_gates, z, min(nx, ni), g4)
    _add_rows(h, w_gates[ni:], z, d, g4)
    # c_adj into v[:D]: split c(t-1) into short and long parts, shrink the short part by dt.
    if use_time:
        w_split = flat[table[base + 4] : table[base + 4] + 2 * d * d].reshape((d, 2 * d))
        w_time = flat[table[base + 5] : table[base + 5] + 3 * d]
        b_time = flat[table[base + 6] : table[base + 6] + 3 * d]
        w_new = flat[table[base + 7] : table[base + 7] + 2 * d]
        b_merge = flat[table[base + 8] : table[base + 8] + d]
        for j in range(3 * d):
            v[j] = dt * w_time[j] + b_time[j]
        _add_rows(c, w_split, v, d, 2 * d)
        for j in range(3 * d):
            v[j] = tanh32(v[j])
        for j in range(d):
            short = v[j] * w_new[j] * v[2 * d + j]
            v[j] = tanh32(short + v[d + j] * w_new[d + j] + b_merge[j])
    else:
        for j in range(d):
            v[j] = c[j]
    # Gates i, f, o as sigmoid(z) = (1 + tanh(z / 2)) / 2, g as tanh(z).
    for j in range(2 * d):
        z[j] = _HALF + _HALF * tanh32(_HALF * z[j])
    for j in range(2 * d, 3 * d):
        z[j] = tanh32(z[j])
    for j in range(3 * d, g4):
        z[j] = _HALF + _HALF * tanh32(_HALF * z[j])
    for j in range(d):
        c_new = z[d + j] * v[j] + z[j] * z[2 * d + j]
        c[j] = c_new
        h[j] = z[3 * d + j] * tanh32(c_new)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _gap(seconds):
    # ``scorer.timegap.normalise_gap`` in float64, rounded once (``scorer.model.gap_input``).
    return np.float32(math.log1p(max(seconds, 0.0) / 3600.0))


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _dense(flat, table, layer, a, b):
    """Head layer ``layer``'s pre-activation: ``b[:cols]`` = a[:rows] @ W + bias."""
    at = _HEAD + 1 + 4 * layer
    rows, cols, ow, ob = table[at], table[at + 1], table[at + 2], table[at + 3]
    w = flat[ow : ow + rows * cols].reshape((rows, cols))
    bias = flat[ob : ob + cols]
    for j in range(cols):
        b[j] = bias[j]
    _add_rows(a, w, b, rows, cols)


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _add_picked_rows(a, picked, n, w, b, cols):
    """``b[:cols] += a[:n] @ w[picked[:n], :cols]``, eight rows per pass (``_add_rows``)."""
    m = 0
    while m + 8 <= n:
        a0, a1, a2, a3, a4, a5, a6, a7 = a[m], a[m + 1], a[m + 2], a[m + 3], a[m + 4], \
            a[m + 5], a[m + 6], a[m + 7]  # fmt: skip
        w0, w1, w2, w3 = w[picked[m]], w[picked[m + 1]], w[picked[m + 2]], w[picked[m + 3]]
        w4, w5, w6, w7 = w[picked[m + 4]], w[picked[m + 5]], w[picked[m + 6]], w[picked[m + 7]]
        for j in range(cols):
            b[j] += ((a0 * w0[j] + a1 * w1[j]) + (a2 * w2[j] + a3 * w3[j])) + (
                (a4 * w4[j] + a5 * w5[j]) + (a6 * w6[j] + a7 * w7[j]))
        m += 8
    while m < n:
        am = a[m]
        wm = w[picked[m]]
        for j in range(cols):
            b[j] += am * wm[j]
        m += 1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _occlusion(flat, table, head_in, base, out):
    """``out[g]`` (float64) = the head's output ``target`` for ``head_in`` minus that output
    with group g's aggregates set to the reference, for each group packed. ``base`` (layers,
    widest): each layer's pre-activation (before ReLU) for ``head_in``.

    Each layer is run on the change from ``head_in``'s, not from scratch: the first layer's
    pre-activation moves by W1[group rows]^T (reference - aggregates), and a later layer's by
    W^T times the change of its input, over the units whose activation changed. A unit that
    ReLU holds at 0 both ways adds nothing and is skipped (about half of a layer's units)."""
    t = table.shape[0] - _TAIL
    widest, ref, groups_at, n_agg = table[t + 5], table[t + 6], table[t + 7], table[t + 8]
    n_groups, target = table[groups_at], table[groups_at + 1]
    d = head_in.shape[0] - n_agg
    layers = table[_HEAD]
    rows, first, ow = table[_HEAD + 1], table[_HEAD + 2], table[_HEAD + 3]
    w1 = flat[ow : ow + rows * first].reshape((rows, first))
    cur = np.empty(widest, np.float32)  # the occluded row's pre-activation of a layer
    nxt = np.empty(widest, np.float32)
    change = np.empty(widest, np.float32)  # of a layer's input, at the units in ``picked``
    picked = np.empty(widest, np.int64)
    for g in range(n_groups):
        start, stop = table[groups_at + 2 + 2 * g], table[groups_at + 3 + 2 * g]
        for j in range(first):
            cur[j] = base[0, j]
        moved = False
        for c in range(start, stop):  # the group's columns, times their distance from the reference
            delta = flat[ref + c] - head_in[d + c]
            if delta != 0.0:
                moved = True
                w1c = w1[d + c]
                for j in range(first):
                    cur[j] += delta * w1c[j]
        if not moved:
            out[g] = 0.0
            continue
        if layers == 1:
            out[g] = np.float64(base[0, target]) - np.float64(cur[target])
            continue
        for layer in range(1, layers):
            at = _HEAD + 1 + 4 * layer
            rows, cols, ow = table[at], table[at + 1], table[at + 2]
            w = flat[ow : ow + rows * cols].reshape((rows, cols))
            n = 0
            for r in range(rows):  # the input units whose activation (ReLU) changed
                x, y = cur[r], base[layer - 1, r]
                x = x if x > 0.0 else np.float32(0.0)
                y = y if y > 0.0 else np.float32(0.0)
                picked[n] = r  # kept only when it changed: no branch to mispredict
                change[n] = x - y
                n += x != y
            if layer == layers - 1:  # the target output's change: base minus occluded is minus it
                moved_by = np.float32(0.0)
                for m in range(n):
                    moved_by += change[m] * w[picked[m], target]
                out[g] = 0.0 - np.float64(moved_by)  # 0.0, not -0.0, when nothing moved
            else:
                for j in range(cols):
                    nxt[j] = base[layer, j]
                _add_picked_rows(change, picked, n, w, nxt, cols)
                cur, nxt = nxt, cur


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _contributions(flat, table, head_in, out):
    t = table.shape[0] - _TAIL
    widest = table[t + 5]
    layers = table[_HEAD]
    base = np.empty((layers, widest), np.float32)
    a = np.empty(widest, np.float32)
    for n in range(head_in.shape[0]):
        _head(flat, table, head_in[n], a, base)
        _occlusion(flat, table, head_in[n], base, out[n])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _head(flat, table, head_in, a, base):
    """The heads on ``head_in``: the outputs (logits) in ``a[:2]``, each layer's pre-activation
    in ``base[layer]``. ReLU between layers, none after the last."""
    layers = table[_HEAD]
    for j in range(head_in.shape[0]):
        a[j] = head_in[j]
    for layer in range(layers):
        b = base[layer]
        _dense(flat, table, layer, a, b)
        last = layer == layers - 1
        for j in range(table[_HEAD + 2 + 4 * layer]):
            v = b[j]
            a[j] = v if last or v > 0.0 else np.float32(0.0)


def contributions(packed: Packed, head_in: np.ndarray) -> np.ndarray:
    """(N, G) float64: per head input (rows of ``head_in`` (N, D + aggregates)) and packed group,
    the attributed output's logit minus that logit with the group set to the reference: what
    ``step`` computes at a post, for any head input. Raises ValueError for weights packed
    without a reference."""
    t = packed.table.shape[0] - _TAIL
    if packed.table[t + 6] < 0:
        raise ValueError("these weights were packed without a reference to occlude with")
    head_in = np.ascontiguousarray(np.atleast_2d(head_in), np.float32)
    if head_in.shape[1] != packed.table[_HEAD + 1]:
        raise ValueError(f"the head reads {packed.table[_HEAD + 1]} inputs, got {head_in.shape[1]}")
    out = np.empty((head_in.shape[0], int(packed.table[packed.table[t + 7]])), np.float64)
    _contributions(packed.flat, packed.table, head_in, out)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _step(flat, table, hc, y_prev, xa, gap_a, xl, gap_l, gap_p, kind, xg, contrib):
    d = hc.shape[1]
    t = table.shape[0] - _TAIL
    complementary, use_activity, use_repay = table[t], table[t + 1], table[t + 2]
    cal, x_size, widest, n_agg = table[t + 3], table[t + 4], table[t + 5], table[t + 8]
    # Scratch per call, not per model: steps of one model may run on several threads.
    z = np.empty(4 * d, np.float32)
    v = np.empty(3 * d, np.float32)
    # kind: bit 0 an activity step, bit 1 a loan-level step, bit 2 a post.
    if kind & 1 and use_activity:
        _cell(flat, table, 0, hc[0], hc[1], xa, xa.shape[0], _gap(gap_a), z, v)
    if not kind & 2:
        return False, 0.0, 0.0
    x = np.empty(x_size, np.float32)
    if use_repay:
        nl = xl.shape[0]
        for j in range(nl):
            x[j] = xl[j]
        if complementary:
            x[nl] = y_prev[0]
            x[nl + 1] = y_prev[1]
            nl += 2
        _cell(flat, table, 1, hc[2], hc[3], x, nl, _gap(gap_l), z, v)
    if not kind & 4:
        return False, 0.0, 0.0
    for j in range(d):
        x[j] = hc[2, j]
        x[d + j] = hc[0, j] if use_activity else np.float32(0.0)
    _cell(flat, table, 2, hc[4], hc[5], x, 2 * d, _gap(gap_p), z, v)
    for j in range(d):
        hc[0, j] = 0.0
        hc[1, j] = 0.0
    # The heads on [h_state; aggregates], each layer's pre-activation kept for the occlusion.
    head_in = np.empty(d + n_agg, np.float32)
    for j in range(d):
        head_in[j] = hc[4, j]
    for j in range(n_agg):  # the wide input: the aggregates after h_state
        head_in[d + j] = xg[j]
    a = np.empty(widest, np.float32)
    base = np.empty((table[_HEAD], widest), np.float32)
    _head(flat, table, head_in, a, base)
    if contrib.shape[0] > 0 and n_agg > 0:  # reason codes asked for
        _occlusion(flat, table, head_in, base, contrib)
    p = np.empty(2, np.float32)
    for k in range(2):
        z = a[k]
        y_prev[k] = _HALF + _HALF * tanh32(_HALF * z)
        if cal >= 0:
            z = z * flat[cal + k] + flat[cal + 2 + k]
        p[k] = _HALF + _HALF * tanh32(_HALF * z)
    return True, float(p[0]), float(p[1])


def step(
    packed: Packed,
    hc: np.ndarray,
    y_prev: np.ndarray,
    activity_x: np.ndarray,
    activity_gap_s: float,
    loan_x: np.ndarray,
    loan_gap_s: float,
    post_gap_s: float,
    kind: int,
    aggregates: np.ndarray | None = None,
    contributions: np.ndarray | None = None,
) -> tuple[bool, float, float]:
    """Advance ``hc`` ((6, D) float32, rows activity h, c; repay h, c; state h, c) and
    ``y_prev`` ((2,) float32, raw) in place by one planned event (``scorer.steps.StepPlan``).
    Returns (True, P(delinquent), P(default)) for a post, calibrated when the model is, else
    (False, 0.0, 0.0).

    ``kind``: bit 0 set when the activity TLSTM steps (input ``activity_x`` float32, gap
    ``activity_gap_s``), bit 1 when the loan-level one does (``loan_x``, ``loan_gap_s``), bit 2
    for a post (the state-level step after ``post_gap_s``, then the heads). Gaps in seconds,
    normalised here as ``scorer.model.gap_input`` does. An input the kind does not use may be
    any float32 array. ``aggregates`` (float32, as many as the model's heads read beside h:
    ``pack``'s ``aggregates``) are read at a post; None or any array when the heads read none.

    ``contributions``: None, or a (G,) float64 array that a post fills with the occlusion
    contributions of its head input (``contributions`` of this module, one per packed group),
    when the heads read aggregates and the weights were packed with a reference; left as it
    was otherwise. Raises ValueError for a post with too few aggregates, or a contributions
    array of another size than the packed groups, a loan-level step with more inputs than the
    weights read, and a state whose ``hc`` is not (6, D) for these weights or ``y_prev`` not
    (2,)."""
    if hc.shape != (6, packed.hidden_size) or y_prev.shape != (2,):
        # The compiled loops index by these shapes unchecked: a state of another hidden size
        # under the same model version (a damaged snapshot) would be read past its end.
        raise ValueError(f"the state must be (6, {packed.hidden_size}) and (2,) for these "
                         f"weights, got {hc.shape} and {y_prev.shape}")  # fmt: skip
    table = packed.table
    n_agg = int(table[-1])
    if aggregates is None:
        aggregates = _NO_AGGREGATES
    out = _NO_CONTRIBUTIONS
    if kind & 2 and loan_x.shape[0] > packed.loan_inputs:  # copied into a buffer that size
        raise ValueError(f"the loan-level step reads {packed.loan_inputs} inputs, got "
                         f"{loan_x.shape[0]}")  # fmt: skip
    if kind & 4:
        if aggregates.shape[0] < n_agg:
            raise ValueError(f"the heads read {n_agg} aggregates, got {aggregates.shape[0]}")
        t = table.shape[0] - _TAIL
        if contributions is not None and table[t + 6] >= 0:
            if contributions.shape != (table[table[t + 7]],):
                raise ValueError(f"contributions must be ({table[table[t + 7]]},), "
                                 f"got {contributions.shape}")  # fmt: skip
            out = contributions
    return _step(packed.flat, table, hc, y_prev, activity_x, activity_gap_s, loan_x,
                 loan_gap_s, post_gap_s, kind, aggregates, out)  # fmt: skip


_NO_AGGREGATES = np.zeros(0, np.float32)
_NO_CONTRIBUTIONS = np.zeros(0, np.float64)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _repeat(flat, table, hc, y_prev, xa, xl, xg, kind, contrib, n):
    for i in range(n):
        _step(flat, table, hc, y_prev, xa, 60.0 + i, xl, 3600.0, 86400.0, kind, xg, contrib)


def step_seconds(packed: Packed, hidden_size: int, kind: int, *, reasons: bool = False,
                 n: int = 20_000, seed: int = 0) -> float:  # fmt: skip
    """Seconds one ``step`` of ``kind`` takes in the kernel alone: ``n`` steps in one compiled
    loop (no Python call, no dispatch), on a state and inputs drawn from N(0, 1). The cells'
    and heads' cost does not depend on the values; the occlusion's does (``reasons``: a post
    with its contributions), through how many units of the heads move, so it is the cost for
    these weights and these inputs. For ``deepcredit bench step``; the first call of a process
    compiles (or loads) the loop."""
    rng = np.random.default_rng(seed)
    t = packed.table.shape[0] - _TAIL

    def draw(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    hc, y_prev = draw(6, hidden_size), draw(2)
    xa = draw(int(packed.table[0]))
    xl = draw(max(packed.loan_inputs, 0))
    xg = draw(int(packed.table[-1]))
    groups = int(packed.table[packed.table[t + 7]]) if reasons and packed.table[t + 6] >= 0 else 0
    contrib = np.zeros(groups, np.float64)
    _repeat(packed.flat, packed.table, hc, y_prev, xa, xl, xg, kind, contrib, 1)
    started = time.perf_counter()
    _repeat(packed.flat, packed.table, hc, y_prev, xa, xl, xg, kind, contrib, n)
    return (time.perf_counter() - started) / n


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _tanh_all(x, out):
    for i in range(x.shape[0]):
        out[i] = tanh32(x[i])


def tanh_array(x: np.ndarray) -> np.ndarray:
    """``tanh32`` of each element of a 1-d float32 array (to test it against ``np.tanh``)."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    _tanh_all(x, out)
    return out


#: This file's source, hashed: what another file's cached code that calls into it was compiled
#: against (``recompile_on_change``).
_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def recompile_on_change(*functions: numba.core.dispatcher.Dispatcher) -> None:
    """Empty the numba cache of ``functions`` (cached functions of another file that call into
    this one: ``scorer.replay``'s loop, training's fused pass) when this file changed since
    their cache was written; each module calls it at import with its own. Why: numba keys a
    cached function on its own file alone, and compiles what it calls into it, so an edit of
    this file left such code running the kernel before the edit (or reading the packed weights
    in an older layout, out of bounds). Each function's cache folder keeps the hash of this
    file its cache was written with, next to the cache. A function that is not cached is left
    alone; a cache that cannot be emptied is logged (numba would run the stale code)."""
    for f in functions:
        cache = getattr(f, "_cache", None)  # numba's FunctionCache (its NullCache: no path)
        folder = getattr(cache, "cache_path", None)
        if folder is None:
            continue
        stamp = Path(folder) / f"{f.py_func.__module__}.{f.py_func.__qualname__}.kernel"
        try:
            if stamp.read_text() == _SOURCE_HASH:
                continue
        except OSError:
            pass  # no stamp yet: a cache from before stamps, or none
        try:
            cache.flush()
            stamp.write_text(_SOURCE_HASH)
        except OSError as exc:
            log.warning("could not empty the numba cache of %s in %s (%s): it may hold code "
                        "compiled against an older scorer/fast.py", f.py_func.__qualname__,
                        folder, exc)  # fmt: skip


def warm_up(packed: Packed, hidden_size: int) -> None:
    """Run one post and one other event on a throwaway state, so the machine code is compiled
    (or loaded from the cache) now rather than at the first event: a flow calls it at start-up.
    """
    hc = np.zeros((6, hidden_size), np.float32)
    y_prev = np.zeros(2, np.float32)
    n_activity = int(packed.table[0])
    n_loan = packed.loan_inputs
    xa, xl = np.zeros(n_activity, np.float32), np.zeros(max(n_loan, 0), np.float32)
    xg = np.zeros(int(packed.table[-1]), np.float32)
    t = packed.table.shape[0] - _TAIL
    out = np.zeros(int(packed.table[packed.table[t + 7]]), np.float64)
    step(packed, hc, y_prev, xa, 1.0, xl, 1.0, 1.0, 1, xg)
    step(packed, hc, y_prev, xa, 1.0, xl, 1.0, 1.0, 6, xg, out)
