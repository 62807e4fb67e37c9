"""``deepcredit bench train``: the fast forward is the baseline's function, and the command
measures both arms side by side into its results file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.cli import main
from scorer.features import LoanStep
from training.core.dataset import Sequences, build_sequences
from training.core.eventlog import read_events
from training.core.model import DeepCredit, ModelConfig, batch_to_tensors
from training.experiments.train_speed import _BaselineDeepCredit


def test_fast_forward_equals_the_baseline(clicks_file: Path) -> None:
    """Same weights, same batch: the same logits, loss and gradients, float rounding aside."""
    events = list(read_events(clicks_file))
    some = sorted({e.user_id for e in events})[:8]  # building sequences is the slow part
    seq = build_sequences(e for e in events if e.user_id in some)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small sequential steps: more threads only hand off (README)
    try:
        check_same_function(seq)
    finally:
        torch.set_num_threads(threads)


def check_same_function(seq: Sequences) -> None:
    torch.manual_seed(3)
    fast = DeepCredit(ModelConfig(hidden_size=8))
    base = _BaselineDeepCredit(ModelConfig(hidden_size=8))
    base.load_state_dict(fast.state_dict())
    batch = batch_to_tensors(seq.batch(np.arange(seq.users)))
    assert batch["sub_len"].unique().numel() > 3  # subsequences end at different steps
    (lf, loss_f), (lb, loss_b) = fast(batch), base(batch)
    posts = batch["loan_kind"] == LoanStep.POST  # the logits mean something at posts only
    torch.testing.assert_close(lf[posts], lb[posts], rtol=0, atol=1e-6)
    assert loss_f is not None and loss_b is not None
    loss_f.backward()
    loss_b.backward()
    for (name, pf), pb in zip(fast.named_parameters(), base.parameters(), strict=True):
        torch.testing.assert_close(pf.grad, pb.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_bench_train_writes_both_arms(
    clicks_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "train_speed.json"
    args = ["bench", "train", "--events", str(clicks_file), "--users", "10", "--epochs", "1",
            "--hidden", "4", "--batch-users", "4", "--large-batch-users", "8",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    r = json.loads(out.read_text())
    assert set(r["arms"]) == {"baseline", "step_by_step", "fast", "fast_large_batch"}
    assert r["data"]["users"] == 10
    assert r["arms"]["fast_large_batch"]["lr"] == pytest.approx(1e-3 * 2**0.5)
    assert r["command"].startswith("deepcredit bench train") and r["machine"]["cpus"] >= 1
    # Same function, same updates: the same training loss in the epoch.
    base, fast = r["arms"]["baseline"], r["arms"]["fast"]
    assert fast["train_loss"] == pytest.approx(base["train_loss"], abs=1e-5)
    assert r["arms"]["step_by_step"]["train_loss"] == pytest.approx(base["train_loss"], abs=1e-5)
    assert len(fast["val_auc"]) == len(base["val_auc"]) == 1
    assert all(s > 0 for s in r["speedup"].values())
