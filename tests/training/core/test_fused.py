"""The fused loan-level pass (``training.core.fused``) is the torch loop it replaces: the same
logits and the same gradient of every parameter, for every variant, on real batches and on
random masks (a repayment TLSTM that skips steps, posts anywhere, empty batches)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.benchmark.generator import GeneratorConfig, generate
from training.core.dataset import Sequences, build_sequences
from training.core.model import (
    VARIANTS,
    DeepCredit,
    ModelConfig,
    batch_to_tensors,
    hierarchy_pass,
)
from training.core.train import TrainConfig, batches, split


@pytest.fixture(scope="module")
def seq() -> Sequences:
    return build_sequences(list(generate(GeneratorConfig(users=40, seed=5, horizon_days=300))))


def _logits_and_grads(
    model: DeepCredit, batch: dict[str, torch.Tensor], fused: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The model's logits on ``batch`` and the gradient of its loss, with the loan-level pass
    fused or step by step (the rest of the forward as it is)."""
    model.zero_grad(set_to_none=True)
    h_act = model._activity_pass(batch)
    kind = batch["loan_kind"]
    agg = batch["loan_agg"] if model.config.use_aggregates else None
    logits = hierarchy_pass(model, batch["loan_x"], batch["loan_gap"], batch["post_gap"], h_act,
                            repay_mask=kind >= 0, state_mask=kind == 0, aggregates=agg,
                            fused=fused)  # fmt: skip
    labels = batch["labels"]
    known = ~torch.isnan(labels)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], labels[known])
    # A weight on every step's logits too, so the gradient reaches every step's state.
    (loss + 1e-3 * logits.square().sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fused_pass_is_the_step_by_step_pass(seq: Sequences, variant: str) -> None:
    parts = split(seq, TrainConfig())
    group = next(iter(batches(seq, parts.train, 8, None)))
    batch = batch_to_tensors(seq.batch(group))
    torch.manual_seed(1)
    model = DeepCredit(ModelConfig(hidden_size=8, **VARIANTS[variant]))
    ref_logits, ref_grads = _logits_and_grads(model, batch, fused=False)
    logits, grads = _logits_and_grads(model, batch, fused=True)
    # float32, as training runs (the fused pass's tanh is float32's, scorer.fast.tanh32, so a
    # float64 pass would be no more accurate; a second compilation for it would cost more
    # than every other test in this file).
    tol = 2e-5
    torch.testing.assert_close(logits, ref_logits, atol=tol, rtol=tol)
    assert grads.keys() == ref_grads.keys()
    for name, g in ref_grads.items():
        scale = max(float(g.abs().max()), 1e-3)
        torch.testing.assert_close(grads[name] / scale, g / scale, atol=tol, rtol=0.0,
                                   msg=lambda m, n=name: f"{n}: {m}")  # fmt: skip
    # The gradient reaches the time terms of both loan-level cells (when they have them).
    if model.config.use_time:
        assert grads["state.split.weight"].abs().sum() > 0
        assert grads["state.w_time"].abs().sum() > 0
        if model.config.use_repay:
            assert grads["repay.b_merge"].abs().sum() > 0


@settings(max_examples=15, deadline=None)
@given(
    bsz=st.integers(1, 5),
    steps=st.integers(0, 7),
    complementary=st.booleans(),
    wide=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_masks_and_shapes(
    bsz: int, steps: int, complementary: bool, wide: bool, seed: int
) -> None:
    """Any mask pattern: the repayment TLSTM skipping steps (not only a padded tail), posts at
    any repayment step, rows with no post, no step at all."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    cfg = ModelConfig(hidden_size=4, complementary=complementary, use_aggregates=wide)
    model = DeepCredit(cfg)
    n_x = model.repay.input_size - (2 if complementary else 0)
    def normal(*shape: int) -> torch.Tensor:
        return torch.from_numpy(rng.normal(size=shape).astype(np.float32))

    x = normal(bsz, steps, n_x)
    gaps = [normal(bsz, steps).abs() for _ in range(2)]
    h_act = normal(bsz, steps, 4).requires_grad_()
    repay_mask = torch.from_numpy(rng.random((bsz, steps)) < 0.7)
    state_mask = repay_mask & torch.from_numpy(rng.random((bsz, steps)) < 0.5)
    agg = normal(bsz, steps, 37) if wide else None
    out = {}
    for fused in (False, True):
        model.zero_grad(set_to_none=True)
        h_act.grad = None
        logits = hierarchy_pass(model, x, *gaps, h_act, repay_mask=repay_mask,
                                state_mask=state_mask, aggregates=agg, fused=fused)  # fmt: skip
        logits.sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        grad_act = None if h_act.grad is None else h_act.grad.clone()
        out[fused] = (logits.detach(), grads, grad_act)
    torch.testing.assert_close(out[True][0], out[False][0], atol=2e-5, rtol=2e-5)
    # With no step at all, a parameter the reference never reached has no gradient where the
    # fused pass gives it a zero one: the same update.
    for name, p in model.named_parameters():
        fused_g, ref_g = (out[f][1].get(name, torch.zeros_like(p)) for f in (True, False))
        torch.testing.assert_close(fused_g, ref_g, atol=2e-5, rtol=2e-5)
    if out[False][2] is not None:
        torch.testing.assert_close(out[True][2], out[False][2], atol=2e-5, rtol=2e-5)
