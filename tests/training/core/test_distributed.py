"""Training on two processes (DDP over gloo on loopback) against one process taking the same
batches together: the same weights, the same validation figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from deploy.cli import main
from training.core.config import ModelConfig, TrainConfig
from training.core.distributed import fit_distributed, sequences_folder, step_batches
from training.core.eventlog import load_sequences
from training.core.model import DeepCredit, batch_to_tensors, set_reference
from training.core.train import Shard, evaluate, split


@given(st.integers(0, 40), st.integers(1, 4))
def test_each_process_takes_its_own_batches_of_whole_rounds(n: int, size: int) -> None:
    drawn = list(range(n))
    parts = [Shard(rank, size, bool).mine(drawn) for rank in range(size)]
    assert len({len(p) for p in parts}) == 1  # every process steps as often
    taken = sorted(b for p in parts for b in p)
    assert taken == drawn[: n - n % size]  # each batch once; only a last partial round left


def test_a_round_holds_batches_of_similar_histories(sequences) -> None:  # type: ignore[no-untyped-def]
    seq = sequences
    users = np.arange(seq.users)
    drawn = step_batches(seq, users, 4, 2, np.random.default_rng(0))
    length = np.diff(seq.act_offsets)
    longest = [int(length[g].max()) for g in drawn]
    rounds = list(zip(longest[0::2], longest[1::2], strict=True))
    # Consecutive groups of users ordered by length: a round's two batches never overlap in
    # length with another round's, so rounds sorted by their first are sorted by their second.
    ordered = sorted(rounds)
    assert [b for _, b in ordered] == sorted(b for _, b in ordered)
    assert rounds != ordered  # and the rounds come in a random order


@pytest.fixture(scope="module")
def sequences(clicks_file: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    cache = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        seq, _ = load_sequences(clicks_file, progress=False)
    return seq


def test_two_processes_give_the_weights_of_one_process_averaging_their_batches(
    sequences, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    seq = sequences
    config = TrainConfig(epochs=1, batch_users=4, lr=3e-3, seed=3, processes=2)
    model_config = ModelConfig(hidden_size=8, head_sizes=(16,))
    parts = split(seq, config)
    assert sequences_folder(seq, tmp_path / "unused") != tmp_path / "unused"  # mapped: no copy

    result = fit_distributed(seq, parts, model_config, config, progress=False)

    # One process: the same initial weights and batch order, each step the mean of the losses
    # of the pair of batches the two processes took side by side.
    torch.manual_seed(config.seed)
    model = DeepCredit(model_config)
    set_reference(model, seq, parts.train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    drawn = step_batches(seq, parts.train, config.batch_users, 2, np.random.default_rng(3))
    assert len(drawn) >= 4
    for a, b in zip(drawn[0::2], drawn[1::2], strict=False):
        loss = sum(model(batch_to_tensors(seq.batch(g)))[1] for g in (a, b)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    got, want = result.model.state_dict(), model.state_dict()
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name].numpy(), atol=2e-5,
                                   err_msg=name)  # fmt: skip
    # The validation figures gathered from both processes are those of all the users at once.
    [row] = result.history
    val = evaluate(model, seq, parts.validation)
    for target, metrics in val.items():
        if np.isfinite(metrics.auc):
            assert row[f"val_auc_{target}"] == pytest.approx(metrics.auc, abs=2e-4)
    assert result.epochs_run == 1 and result.best_epoch == 1


def test_train_on_two_processes_saves_a_model(clicks_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    args = ["train", "--events", str(clicks_file), "--out-dir", str(out), "--hidden", "8",
            "--epochs", "1", "--processes", "2", "--batch-users", "8", "--quiet"]  # fmt: skip
    assert main(args) == 0
    [folder] = out.iterdir()
    assert (folder / "card.json").is_file()
    assert '"processes": 2' in (folder / "card.json").read_text()


def test_fewer_than_one_process_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TrainConfig(processes=0)


def test_too_few_users_for_a_batch_per_process_is_a_clear_error(
    clicks_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--events", str(clicks_file), "--out-dir", str(tmp_path), "--hidden", "8",
            "--epochs", "1", "--processes", "2", "--batch-users", "64", "--quiet"]  # fmt: skip
    assert main(args) == 1  # one batch of 64 for two processes: nothing spawned, nothing saved
    assert "make fewer than 2 batches of 64 with a labelled post" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
