"""``deepcredit bench train``: training epochs per hour before and after the speed-up, and the
validation AUC after each epoch, side by side in one run.

Arms, each with its own model (same initial weights), optimizer and batch order:

- ``baseline``: the training forward of commit ac23ed3 (``_BaselineDeepCredit``, kept here
  only to be measured against) at its default batch of 32 users and lr 1e-3;
- ``step_by_step``: today's forward with the loan-level steps as torch operations one step at
  a time (``hierarchy_pass(..., fused=False)``, commit 287545d's forward), same batch and lr;
- ``fast``: today's forward (``training.core.model``: the loan-level steps as one compiled
  autograd node, ``training.core.fused``), same batch and learning rate: the same function
  and the same updates as both above, so the same AUC per epoch up to float rounding;
- ``fast_large_batch`` (when ``large_batch_users`` > 0): today's forward with larger user
  batches and the learning rate scaled by sqrt(batch ratio), the usual rule for Adam.

Epochs run interleaved (epoch 1 of each arm, then epoch 2 of each, ...), so a load change on a
shared machine hits every arm alike; each epoch's training seconds (validation excluded) are
paired across arms and the ratio reported is the median of the per-epoch ratios.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scorer.features import LoanStep
from training.core.dataset import Sequences
from training.core.evaluation import TARGETS
from training.core.eventlog import load_sequences
from training.core.model import DeepCredit, ModelConfig, batch_to_tensors, hierarchy_pass
from training.core.tlstm import TLSTMCell
from training.core.train import TrainConfig, batches, evaluate, split
from training.experiments.config import TrainBenchConfig

__all__ = ["run_train_bench"]


def run_train_bench(config: TrainBenchConfig, *, progress: bool = True) -> dict:
    """Train every arm ``config.epochs`` epochs on the same training users, interleaved.

    Returns {"arms": {name: {batch_users, lr, epoch_seconds, val_auc, epochs_per_hour}},
    "speedup": {name: median over epochs of baseline seconds / arm seconds}, "data", ...}.
    Raises FileNotFoundError for a missing events file."""
    seq, data = load_sequences(config.events, progress=progress)
    if 0 < config.users < seq.users:
        seq = seq.subset(np.arange(config.users))
    train_config = TrainConfig(seed=config.seed, threads=config.threads)
    parts = split(seq, train_config)
    torch.set_num_threads(config.threads)
    model_config = ModelConfig(hidden_size=config.hidden_size)
    arms = {"baseline": (_BaselineDeepCredit, config.batch_users, config.lr),
            "step_by_step": (_StepByStepDeepCredit, config.batch_users, config.lr),
            "fast": (DeepCredit, config.batch_users, config.lr)}  # fmt: skip
    if config.large_batch_users > 0:
        scaled = config.lr * math.sqrt(config.large_batch_users / config.batch_users)
        arms["fast_large_batch"] = (DeepCredit, config.large_batch_users, scaled)
    runs = {name: _Arm(cls, model_config, size, lr, config)
            for name, (cls, size, lr) in arms.items()}  # fmt: skip
    # Compile (or load from the cache) what each arm runs before any epoch is timed: a one-off
    # cost of the first process after a checkout, not of an epoch.
    first = next(iter(batches(seq, parts.train, config.batch_users, None)))
    for arm in runs.values():
        _, loss = arm.model(batch_to_tensors(seq.batch(first)))
        if loss is not None:
            loss.backward()
        arm.model.zero_grad(set_to_none=True)
    for epoch in range(1, config.epochs + 1):
        for name, arm in runs.items():
            seconds = arm.epoch(seq, parts.train)
            val = evaluate(arm.model, seq, parts.validation)
            auc = {t: round(m.auc, 4) for t, m in val.items()}
            arm.val_auc.append(auc)
            if progress:
                print(f"epoch {epoch} {name}: {seconds:.1f} s, validation AUC {auc}", flush=True)
    base = np.asarray(runs["baseline"].seconds)
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "data": {"events": str(data.path), "sha256": data.sha256, "users": seq.users,
                 "train_users": len(parts.train), "validation_users": len(parts.validation),
                 "loan_steps": len(seq.loan_x), "activity_steps": len(seq.act_x)},
        "torch_threads": torch.get_num_threads(),
        "arms": {name: {"batch_users": arm.batch_users, "lr": arm.lr,
                        "epoch_seconds": [round(s, 2) for s in arm.seconds],
                        "median_epoch_seconds": round(float(np.median(arm.seconds)), 2),
                        "epochs_per_hour": round(3600 / float(np.median(arm.seconds)), 2),
                        "train_loss": [round(x, 6) for x in arm.train_loss],
                        "val_auc": arm.val_auc}
                 for name, arm in runs.items()},
        "speedup": {name: round(float(np.median(base / np.asarray(arm.seconds))), 2)
                    for name, arm in runs.items() if name != "baseline"},
    }  # fmt: skip


class _Arm:
    """One way of training: its model, optimizer, batch order and measured epochs."""

    def __init__(self, cls: type[DeepCredit], model_config: ModelConfig, batch_users: int,
                 lr: float, config: TrainBenchConfig) -> None:  # fmt: skip
        torch.manual_seed(config.seed)
        self.model = cls(model_config)
        self.batch_users, self.lr = batch_users, lr
        self.grad_clip = TrainConfig.grad_clip
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr,
                                           weight_decay=TrainConfig.weight_decay)  # fmt: skip
        self.rng = np.random.default_rng(config.seed)
        self.seconds: list[float] = []
        self.val_auc: list[dict[str, float]] = []
        self.train_loss: list[float] = []  # mean over the epoch's batches

    def epoch(self, seq: Sequences, users: np.ndarray) -> float:
        """One pass over ``users`` as ``training.core.train.train_loop`` makes it; seconds."""
        self.model.train()
        started = time.perf_counter()
        losses = []
        for group in list(batches(seq, users, self.batch_users, self.rng)):
            _, loss = self.model(batch_to_tensors(seq.batch(group)))
            if loss is None:
                continue
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            losses.append(loss.item())
        self.train_loss.append(float(np.mean(losses)) if losses else math.nan)
        self.seconds.append(time.perf_counter() - started)
        return self.seconds[-1]


class _StepByStepDeepCredit(DeepCredit):
    """DeepCredit with the loan-level steps run as torch operations one step at a time, the
    reference the fused pass is tested against: the same function."""

    def _loan_pass(self, b: dict[str, Tensor], h_act: Tensor) -> Tensor:
        kind = b["loan_kind"]
        agg = b["loan_agg"] if self.config.use_aggregates else None
        return hierarchy_pass(self, b["loan_x"], b["loan_gap"], b["post_gap"], h_act,
                              repay_mask=kind >= 0, state_mask=kind == LoanStep.POST,
                              aggregates=agg, fused=False)  # fmt: skip


class _BaselineDeepCredit(DeepCredit):
    """DeepCredit with the training forward of commit ac23ed3: the activity pass re-assembled
    all S rows at every step, and the loan pass indexed h_activity[:, t] (whose gradient is a
    full (B, T, D) zero tensor per step). The same function as ``DeepCredit``."""

    def _activity_pass(self, b: dict[str, Tensor]) -> Tensor:
        x, gap, length = b["sub_x"], b["sub_gap"], b["sub_len"]
        post_sub = b["post_sub"]
        d = self.config.hidden_size
        if not self.config.use_activity or x.shape[0] == 0:
            return torch.zeros(*post_sub.shape, d, dtype=x.dtype)
        h, _ = _baseline_final_states(self.activity, x, gap, length)
        h_sub = torch.cat((h, torch.zeros(1, d, dtype=x.dtype)))
        return h_sub[torch.where(post_sub >= 0, post_sub, x.shape[0])]

    def _loan_pass(self, b: dict[str, Tensor], h_act: Tensor) -> Tensor:
        kind = b["loan_kind"]
        x, repay_gap, state_gap = b["loan_x"], b["loan_gap"], b["post_gap"]
        repay_mask, state_mask = kind >= 0, kind == LoanStep.POST
        bsz, steps, _ = x.shape
        h_r, c_r = self.repay.initial_state(bsz, dtype=x.dtype)
        h_s, c_s = self.state.initial_state(bsz, dtype=x.dtype)
        y_prev = torch.zeros(bsz, len(TARGETS), dtype=x.dtype)
        out = []
        for t in range(steps):
            repay_now, state_now = repay_mask[:, t, None], state_mask[:, t, None]
            inp = torch.cat((x[:, t], y_prev), dim=1)
            h2, c2 = self.repay(inp, repay_gap[:, t], (h_r, c_r))
            h_r, c_r = torch.where(repay_now, h2, h_r), torch.where(repay_now, c2, c_r)
            h2, c2 = self.state(torch.cat((h_r, h_act[:, t]), dim=1), state_gap[:, t], (h_s, c_s))
            h_s, c_s = torch.where(state_now, h2, h_s), torch.where(state_now, c2, c_s)
            head_in = (
                torch.cat((h_s, b["loan_agg"][:, t]), 1) if self.config.use_aggregates else h_s
            )
            logit = self.head(head_in)
            out.append(logit)
            y_prev = torch.where(state_now, torch.sigmoid(logit).detach(), y_prev)
        return torch.stack(out, dim=1)


def _baseline_final_states(
    cell: TLSTMCell, x: Tensor, dt: Tensor, length: Tensor
) -> tuple[Tensor, Tensor]:
    order = torch.argsort(length, descending=True, stable=True)
    x, dt, length = x[order], dt[order], length[order]
    h, c = cell.initial_state(x.shape[0], dtype=x.dtype, device=x.device)
    running = (length[None, :] > torch.arange(x.shape[1])[:, None]).sum(1).tolist()
    for t, n in enumerate(running):
        if n == 0:
            break
        h2, c2 = cell(x[:n, t], dt[:n, t], (h[:n], c[:n]))
        h, c = torch.cat((h2, h[n:])), torch.cat((c2, c[n:]))
    back = torch.empty_like(order)
    back[order] = torch.arange(order.numel())
    return h[back], c[back]
