"""DeepCredit in torch, in the streaming form: small to big, cell (training.core.tlstm) to model.

One forward pass runs a batch of users' whole histories:

1. the activity TLSTM over every non-post event, reset at each post (paper eq. 3);
2. per loan-level step (post, repayment, missed payment), the repayment TLSTM over the loan
   input plus Y(i-1), the model's own last prediction (complementary layer, eq. 5);
3. at each post, the state-level TLSTM over [h_repay; h_activity] (eq. 4) and the heads
   (FCN 256-128-64) giving P(delinquent) and P(default) for that loan. With
   ``ModelConfig.use_aggregates`` (the default) the heads read [h_state; aggregates], the
   running aggregates of ``scorer.aggregates`` at the post: a wide-and-deep head.

The ablations of the paper's Table 1 are switches of ``ModelConfig``.

A model may carry a Platt calibration (``DeepCredit.calibration``): per target,
p = sigmoid(a * logit + b). It changes only the probabilities the model reports
(``probabilities``), never its dynamics: Y(i-1) fed back into the repayment TLSTM stays the raw
sigmoid(logit), and the training loss is on the raw logits.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorer.aggregates import AGGREGATE_FEATURES
from scorer.features import ACTIVITY_FEATURES, LOAN_FEATURES, LoanStep
from training.core.config import ModelConfig
from training.core.dataset import Sequences, UserBatch, user_row_chunks
from training.core.evaluation import TARGETS
from training.core.fused import CellWeights, fused_loan_pass
from training.core.tlstm import CellRun, TLSTMCell, final_states
from training.core.variants import VARIANTS

__all__ = [
    "VARIANTS",
    "DeepCredit",
    "ModelConfig",
    "batch_to_tensors",
    "calibrated_logits",
    "calibration_tensor",
    "probabilities",
    "set_reference",
]


def batch_to_tensors(batch: UserBatch) -> dict[str, Tensor]:
    return {k: torch.from_numpy(v) for k, v in vars(batch).items()}


class Head(nn.Module):
    """FCN from the state-level hidden state (and the aggregates, when wide) to one logit per
    target; ``hidden_size`` is its input width."""

    def __init__(self, hidden_size: int, sizes: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = hidden_size
        for size in sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, len(TARGETS)))
        self.net = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.net(h)  # (B, 2) logits


def set_reference(model: DeepCredit, seq: Sequences, users: np.ndarray) -> None:
    """Set ``model.reference`` to the mean aggregates over the posts of ``users`` (the training
    population: the reference the reason codes are attributed against, ``scorer.reasons``).
    A model without aggregates has none; no post leaves it zero."""
    if not model.config.use_aggregates:
        return
    total = np.zeros(AGGREGATE_FEATURES, np.float64)
    posts = 0
    for rows in user_row_chunks(seq.loan_offsets, users):  # one piece of users at a time
        at = rows[seq.loan_kind[rows] == LoanStep.POST]
        total += seq.loan_agg[at].sum(axis=0, dtype=np.float64)
        posts += len(at)
    if posts:
        model.reference.copy_(torch.from_numpy((total / posts).astype(np.float32)))


class DeepCredit(nn.Module):
    calibration: Tensor | None
    """Platt calibration (2, 2) or None: row 0 the slopes a, row 1 the intercepts b, one column
    per target in ``TARGETS`` order. A plain attribute, not a buffer: it is not in
    ``state_dict()`` (checkpoints load strictly with or without it); the artifact keeps it in
    the model card (``training.core.artifact``)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.calibration = None
        d, t = config.hidden_size, config.use_time
        self.activity = TLSTMCell(ACTIVITY_FEATURES, d, t)
        loan_inputs = LOAN_FEATURES + (len(TARGETS) if config.complementary else 0)  # + Y(i-1)
        self.repay = TLSTMCell(loan_inputs, d, t)
        self.state = TLSTMCell(2 * d, d, t)
        self.head = Head(d + (AGGREGATE_FEATURES if config.use_aggregates else 0),
                         config.head_sizes)  # fmt: skip
        if config.use_aggregates:
            # The training population's mean aggregates (``set_reference``): in the state dict
            # and the card, the reasons' reference.
            self.register_buffer("reference", torch.zeros(AGGREGATE_FEATURES))

    def forward(self, b: dict[str, Tensor], targets: bool = True) -> tuple[Tensor, Tensor | None]:
        """Logits (B, Tl, 2) at every loan-level step (zero but at posts) and the loss:
        mean log loss over labelled posts, summed over the two targets."""
        h_act = self._activity_pass(b)  # (B, Tl, D): h_activity each post reads
        logits = self._loan_pass(b, h_act)  # (B, Tl, 2)
        loss = None
        if targets:
            labels = b["labels"]  # (B, Tl, 2), NaN where unlabelled
            known = ~torch.isnan(labels)
            losses = [
                F.binary_cross_entropy_with_logits(logits[..., k][known[..., k]],
                                                   labels[..., k][known[..., k]])
                for k in range(len(TARGETS))
                if known[..., k].any()
            ]  # fmt: skip
            loss = torch.stack(losses).sum() if losses else None
        return logits, loss

    def _activity_pass(self, b: dict[str, Tensor]) -> Tensor:
        """h_activity for every loan-level step (B, Tl, D): the final state of the subsequence
        a post reads, zero elsewhere. Subsequences run side by side: the activity TLSTM
        restarts at each post, so they do not depend on one another."""
        x, gap, length = b["sub_x"], b["sub_gap"], b["sub_len"]  # (S, L, I), (S, L), (S,)
        post_sub = b["post_sub"]  # (B, Tl)
        d = self.config.hidden_size
        zeros = torch.zeros(*post_sub.shape, d, dtype=x.dtype)
        if not self.config.use_activity or x.shape[0] == 0:
            return zeros
        h, _ = final_states(self.activity, x, gap, length)  # (S, D)
        h_sub = torch.cat((h, torch.zeros(1, d, dtype=x.dtype)))  # (S + 1, D): row S is "none"
        index = torch.where(post_sub >= 0, post_sub, x.shape[0])  # (B, Tl)
        return h_sub[index]  # (B, Tl, D)

    def _loan_pass(self, b: dict[str, Tensor], h_act: Tensor) -> Tensor:
        kind = b["loan_kind"]  # (B, Tl), -1 on padding
        agg = b["loan_agg"] if self.config.use_aggregates else None
        return hierarchy_pass(self, b["loan_x"], b["loan_gap"], b["post_gap"], h_act,
                              repay_mask=kind >= 0, state_mask=kind == LoanStep.POST,
                              aggregates=agg)  # fmt: skip


def calibration_tensor(values: object) -> Tensor:
    """``values`` ((2, 2) array-like: slopes, then intercepts, per target) as the float32 tensor
    ``DeepCredit.calibration`` holds; a wrong shape or a non-finite value is refused."""
    t = torch.as_tensor(values, dtype=torch.float32).detach().clone()
    if t.shape != (2, len(TARGETS)):
        raise ValueError(f"calibration must be (2, {len(TARGETS)}) [slopes; intercepts], "
                         f"got shape {tuple(t.shape)}")  # fmt: skip
    if not torch.isfinite(t).all():
        raise ValueError(f"calibration must be finite, got {t.tolist()}")
    return t


def calibrated_logits(calibration: Tensor | None, logits: Tensor) -> Tensor:
    """a * logits + b per target (last axis of ``logits``); the logits as they are for None."""
    if calibration is None:
        return logits
    cal = calibration_tensor(calibration).to(logits.dtype)
    return logits * cal[0] + cal[1]


def probabilities(model: DeepCredit, logits: Tensor) -> Tensor:
    """The probabilities ``model`` reports for its logits (..., 2): sigmoid of the calibrated
    logits when it carries a calibration, of the raw ones otherwise. Every evaluation path goes
    through here, as the numpy scorer goes through ``scorer.model.calibrate``."""
    return torch.sigmoid(calibrated_logits(model.calibration, logits))


def hierarchy_pass(
    m: nn.Module,
    x: Tensor,
    repay_gap: Tensor,
    state_gap: Tensor,
    h_act: Tensor,
    *,
    repay_mask: Tensor,
    state_mask: Tensor,
    aggregates: Tensor | None = None,
    fused: bool = True,
) -> Tensor:
    """Logits (B, T, 2) of the repayment TLSTM fed with Y(i-1) (eq. 5), the state-level TLSTM
    over [h_repay; h_activity] (eq. 4) and the heads, step by step; zero where ``state_mask``
    is false. ``m`` has ``repay``,
    ``state``, ``head`` and ``config``; the masks (B, T) say where each TLSTM steps. Shared by
    the streaming model and the paper-literal re-encode, so the two differ only in their
    inputs. ``aggregates`` (B, T, A), when given, go to the heads beside h_state.

    ``fused``: the steps run as one compiled autograd node (``training.core.fused``); False
    runs them as torch operations step by step, the reference it is tested against."""
    cfg = m.config
    bsz, steps, _ = x.shape
    d = cfg.hidden_size
    h_r, c_r = m.repay.initial_state(bsz, dtype=x.dtype)  # (B, D) each
    h_s, c_s = m.state.initial_state(bsz, dtype=x.dtype)
    y_prev = torch.zeros(bsz, len(TARGETS), dtype=x.dtype)  # (B, 2)
    # What every step's cells need but their own state, for all steps at once (``CellRun``),
    # split along time once: indexing [:, t] in the loop would make each backward fill a zero
    # (B, T, ...) gradient, quadratic in T.
    n_x = x.shape[-1]
    repay = CellRun(
        m.repay,
        known=slice(0, n_x),
        dynamic=slice(n_x, n_x + len(TARGETS)) if cfg.complementary else None,
    )
    state = CellRun(m.state, known=slice(d, 2 * d), dynamic=slice(0, d))  # [h_repay; h_act]
    wide = aggregates is not None
    if fused:
        hs = fused_loan_pass(
            CellWeights(repay) if cfg.use_repay else None,
            repay.inputs(x, repay_gap) if cfg.use_repay else None,
            CellWeights(state),
            state.inputs(h_act, state_gap),
            repay_mask,
            state_mask,
            m.head if cfg.complementary else None,
            aggregates,
        )  # (B, T, D)
        return _post_logits(m, hs, state_mask, aggregates)
    r_in = [_steps(p) for p in repay.inputs(x, repay_gap)] if cfg.use_repay else None
    s_gx, s_time, s_shrink = (_steps(p) for p in state.inputs(h_act, state_gap))
    # A padded step is past the end of its row only (a prefix mask): what a row computes
    # there is never read, so the repayment TLSTM may step on it unmasked.
    repay_prefix = bool((repay_mask[:, 1:] <= repay_mask[:, :-1]).all())
    post_steps, post_users = state_mask.t().nonzero(as_tuple=True)  # ordered by step
    post_rows = post_users.split(torch.bincount(post_steps, minlength=steps).tolist())
    hs = []
    for t in range(steps):
        state_now = state_mask[:, t, None]  # (B, 1)
        if r_in is not None:
            gx, tm, sh = (None if p is None else p[t] for p in r_in)
            h2, c2 = repay.step(gx, tm, sh, (h_r, c_r), y_prev if cfg.complementary else None)
            if repay_prefix:
                h_r, c_r = h2, c2
            else:
                repay_now = repay_mask[:, t, None]
                h_r, c_r = torch.where(repay_now, h2, h_r), torch.where(repay_now, c2, c_r)
        h2, c2 = state.step(
            s_gx[t],
            None if s_time is None else s_time[t],
            None if s_shrink is None else s_shrink[t],
            (h_s, c_s),
            h_r,
        )
        h_s, c_s = torch.where(state_now, h2, h_s), torch.where(state_now, c2, c_s)
        hs.append(h_s)
        if cfg.complementary:
            # The prediction feeds the next steps as a given, not as a path for gradients
            # (detached), and it is the raw one (never calibrated), so a calibration leaves
            # the dynamics as they are. Without a gradient to keep, the heads run here with
            # no autograd record; the logits the loss reads come from one pass below.
            # They run on the rows that posted at this step only: the heads are most of a
            # step's arithmetic.
            rows = post_rows[t]
            if len(rows):
                with torch.no_grad():
                    head_in = h_s[rows]
                    if wide:
                        head_in = torch.cat((head_in, aggregates[rows, t]), dim=1)
                    y_prev = y_prev.index_put((rows,), torch.sigmoid(m.head(head_in)))
    h_all = torch.stack(hs, dim=1) if hs else x.new_zeros(bsz, 0, d)  # (B, T, D)
    return _post_logits(m, h_all, state_mask, aggregates)


def _post_logits(
    m: nn.Module, hs: Tensor, state_mask: Tensor, aggregates: Tensor | None
) -> Tensor:
    """The heads over the state-level hidden states ``hs`` (B, T, D) where ``state_mask``
    (B, T) is true, beside ``aggregates`` (B, T, A) when given: logits (B, T, 2). The heads
    matter where the state-level TLSTM stepped; elsewhere they would read a state and
    aggregates no post is scored on, so the logits there are left at zero."""
    h_all = hs[state_mask]  # (P, D)
    head_in = h_all if aggregates is None else torch.cat((h_all, aggregates[state_mask]), dim=1)
    logits = torch.zeros(*state_mask.shape, len(TARGETS), dtype=hs.dtype)
    logits[state_mask] = m.head(head_in)
    return logits  # (B, T, 2)


def _steps(part: Tensor | None) -> tuple[Tensor, ...] | None:
    """A (B, T, ...) tensor as T tensors (B, ...); None stays None."""
    return None if part is None else part.unbind(1)
