"""Dataset builder (streaming form, labels, split) and the hierarchical model on small data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepcredit.events import Activity
from deepcredit.loans import loan_outcomes
from scorer.features import LoanStep
from training.benchmark.generator import GeneratorConfig, generate
from training.core.dataset import Sequences, build_sequences, split_users
from training.core.model import DeepCredit, ModelConfig, batch_to_tensors
from training.core.train import TrainConfig, evaluate, fit, split


@pytest.fixture(scope="module")
def events() -> list:
    return list(generate(GeneratorConfig(users=60, seed=3, horizon_days=400)))


@pytest.fixture(scope="module")
def seq(events: list) -> Sequences:
    return build_sequences(events)


def test_every_post_is_a_loan_level_step_with_its_label(events: list, seq: Sequences) -> None:
    posts = [e for e in events if e.activity is Activity.POST]
    is_post = seq.loan_kind == LoanStep.POST
    assert is_post.sum() == len(posts)
    outcomes = loan_outcomes(events, as_of=max(e.ts for e in events))
    by_event = {e.event_id: outcomes[e.loan_id] for e in posts}
    for eid, label in zip(seq.event_ids[is_post], seq.labels[is_post], strict=True):
        o = by_event[str(eid)]
        expected = [np.nan, np.nan] if not o.funded else [
            np.nan if o.delinquent is None else float(o.delinquent),
            np.nan if o.default is None else float(o.default),
        ]  # fmt: skip
        np.testing.assert_array_equal(label, np.array(expected, dtype=np.float32))
    assert np.isnan(seq.labels[~is_post]).all()  # outcome steps carry no label


def test_labels_never_enter_the_inputs(events: list, seq: Sequences) -> None:
    """Cutting the log after a post changes labels, never the post's inputs."""
    cut_ts = sorted(e.ts for e in events)[len(events) // 2]
    early = build_sequences([e for e in events if e.ts <= cut_ts])
    for u, user in enumerate(early.user_ids):
        full_u = int(np.flatnonzero(seq.user_ids == user)[0])
        a, b = early.loan_offsets[u], early.loan_offsets[u + 1]
        c = seq.loan_offsets[full_u]
        np.testing.assert_array_equal(early.loan_x[a:b], seq.loan_x[c : c + b - a])


def test_split_is_stable_and_near_the_fraction(seq: Sequences) -> None:
    ids = np.array([f"user-{i}" for i in range(5000)])
    mask = split_users(ids, 0.2, salt="s")
    assert abs(mask.mean() - 0.2) < 0.03
    np.testing.assert_array_equal(mask[:100], split_users(ids[:100], 0.2, salt="s"))
    parts = split(seq, TrainConfig())
    together = np.concatenate([parts.train, parts.validation, parts.test])
    assert sorted(together) == list(range(seq.users))


def test_save_load_and_subset(seq: Sequences, tmp_path: Path) -> None:
    seq.save(tmp_path / "s.npz")
    again = Sequences.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(again.loan_x, seq.loan_x)
    sub = seq.subset(np.array([2, 0]))
    assert list(sub.user_ids) == [seq.user_ids[2], seq.user_ids[0]]
    n0 = seq.loan_offsets[1] - seq.loan_offsets[0]
    np.testing.assert_array_equal(sub.loan_x[-n0:], seq.loan_x[:n0])


def test_batch_layout_matches_the_user_rows(seq: Sequences) -> None:
    batch = seq.batch(np.array([0, 1, 2]))
    for row in range(3):
        l0, l1 = seq.loan_offsets[row], seq.loan_offsets[row + 1]
        np.testing.assert_array_equal(batch.loan_x[row, : l1 - l0], seq.loan_x[l0:l1])
        assert (batch.loan_kind[row, l1 - l0 :] == -1).all()
        for j in np.flatnonzero(batch.post_sub[row] >= 0):
            sub = batch.post_sub[row, j]
            last = seq.act_offsets[row] + seq.act_idx[l0 + j]
            n = batch.sub_len[sub]
            np.testing.assert_array_equal(batch.sub_x[sub, n - 1], seq.act_x[last])


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(hidden_size=8, head_sizes=(16,)),
        ModelConfig(hidden_size=8, head_sizes=(16,), use_time=False, complementary=False),
        ModelConfig(hidden_size=8, head_sizes=(16,), use_activity=False),
        ModelConfig(hidden_size=8, head_sizes=(16,), use_repay=False),
    ],
)
def test_model_forward_backward(seq: Sequences, config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = DeepCredit(config)
    logits, loss = model(batch_to_tensors(seq.batch(np.arange(6))))
    assert logits.shape[:2] == (6, int(np.diff(seq.loan_offsets)[:6].max()))
    assert loss is not None and torch.isfinite(loss)
    loss.backward()
    used = [p for p in model.parameters() if p.grad is not None]
    assert used and all(torch.isfinite(p.grad).all() for p in used)


def test_a_user_is_scored_the_same_alone_or_in_a_batch(seq: Sequences) -> None:
    torch.manual_seed(0)
    model = DeepCredit(ModelConfig(hidden_size=8, head_sizes=(16,))).eval()
    with torch.no_grad():
        together, _ = model(batch_to_tensors(seq.batch(np.array([0, 1, 2]))), targets=False)
        alone, _ = model(batch_to_tensors(seq.batch(np.array([1]))), targets=False)
    n = int(seq.loan_offsets[2] - seq.loan_offsets[1])
    torch.testing.assert_close(together[1, :n], alone[0, :n], atol=1e-6, rtol=1e-5)


def test_fit_runs_epochs_and_reports_valid_metrics(seq: Sequences) -> None:
    parts = split(seq, TrainConfig(test_fraction=0.3, validation_fraction=0.2))
    result = fit(seq, parts, ModelConfig(hidden_size=8, head_sizes=(16,)),
                 TrainConfig(epochs=2, batch_users=8, lr=3e-3), progress=False)  # fmt: skip
    metrics = evaluate(result.model, seq, np.concatenate([parts.train, parts.test]))
    assert result.epochs_run >= 1 and len(result.history) == result.epochs_run
    assert all(0.0 <= m.auc <= 1.0 and 0.0 <= m.brier <= 1.0 for m in metrics.values())


def test_repeated_events_count_once(events: list, seq: Sequences) -> None:
    again = build_sequences(events + events[: len(events) // 3])
    np.testing.assert_array_equal(again.loan_x, seq.loan_x)
    np.testing.assert_array_equal(again.labels, seq.labels)


def test_a_model_written_before_the_aggregates_switch_loads_without_aggregates() -> None:
    """A card's model_config without ``use_aggregates`` and a scorer file with three flags (what
    the code before the wide heads wrote) read as a model whose heads read h_state alone."""
    import io

    import numpy as np

    from scorer.model import ModelWeights
    from training.core.export import export_scorer
    from training.core.model import DeepCredit, ModelConfig

    old = ModelConfig(hidden_size=4, use_aggregates=False).to_dict()
    del old["use_aggregates"]
    assert ModelConfig.from_dict(old) == ModelConfig(hidden_size=4, use_aggregates=False)
    data = export_scorer(DeepCredit(ModelConfig.from_dict(old)), "old").to_bytes()
    with np.load(io.BytesIO(data)) as a:
        arrays = {k: a[k] for k in a.files}
    arrays["flags"] = arrays["flags"][:3]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    w = ModelWeights.from_bytes(buffer.getvalue())
    assert not w.aggregates and w.reference is None and w.head[0][0].shape[0] == 4
