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
from training.core.dataset import Sequences, UserBatch, user_rows
from training.core.evaluation import TARGETS
from training.core.tlstm import TLSTMCell, final_states
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
    rows = user_rows(seq.loan_offsets, np.asarray(users, dtype=np.int64))
    posts = rows[seq.loan_kind[rows] == LoanStep.POST]
    if len(posts):
        mean = seq.loan_agg[posts].astype(np.float64).mean(axis=0)
        model.reference.copy_(torch.from_numpy(mean.astype(np.float32)))


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
        """Logits (B, Tl, 2) at every loan-level step (meaningful at posts) and the loss:
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
) -> Tensor:
    """Logits (B, T, 2) of the repayment TLSTM fed with Y(i-1) (eq. 5), the state-level TLSTM
    over [h_repay; h_activity] (eq. 4) and the heads, step by step. ``m`` has ``repay``,
    ``state``, ``head`` and ``config``; the masks (B, T) say where each TLSTM steps. Shared by
    the streaming model and the paper-literal re-encode, so the two differ only in their
    inputs. ``aggregates`` (B, T, A), when given, go to the heads beside h_state."""
    cfg = m.config
    bsz, steps, _ = x.shape
    h_r, c_r = m.repay.initial_state(bsz, dtype=x.dtype)  # (B, D) each
    h_s, c_s = m.state.initial_state(bsz, dtype=x.dtype)
    y_prev = torch.zeros(bsz, len(TARGETS), dtype=x.dtype)  # (B, 2)
    # Split the time axis once: indexing h_act[:, t] in the loop would make its backward fill
    # a zero (B, T, D) gradient at every step, quadratic in T.
    h_act_t = h_act.unbind(1)  # T × (B, D)
    out = []
    for t in range(steps):
        repay_now, state_now = repay_mask[:, t, None], state_mask[:, t, None]  # (B, 1)
        if cfg.use_repay:
            inp = torch.cat((x[:, t], y_prev), dim=1) if cfg.complementary else x[:, t]
            h2, c2 = m.repay(inp, repay_gap[:, t], (h_r, c_r))
            h_r, c_r = torch.where(repay_now, h2, h_r), torch.where(repay_now, c2, c_r)
        h2, c2 = m.state(torch.cat((h_r, h_act_t[t]), dim=1), state_gap[:, t], (h_s, c_s))
        h_s, c_s = torch.where(state_now, h2, h_s), torch.where(state_now, c2, c_s)
        head_in = h_s if aggregates is None else torch.cat((h_s, aggregates[:, t]), dim=1)
        logit = m.head(head_in)  # (B, 2)
        out.append(logit)
        # The prediction feeds the next steps as a given, not as a path for gradients; it is
        # the raw one (never calibrated), so a calibration leaves the dynamics as they are.
        y_prev = torch.where(state_now, torch.sigmoid(logit).detach(), y_prev)
    return torch.stack(out, dim=1)  # (B, T, 2)
