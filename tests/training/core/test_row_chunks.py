"""Passes over every training user's rows a piece at a time (``dataset.user_row_chunks``) give
what one pass over all of them gives: the rows, the trainability counts, the reasons'
reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scorer.features import LoanStep
from training.benchmark.generator import GeneratorConfig, generate
from training.core import dataset
from training.core.dataset import Sequences, build_sequences, user_row_chunks, user_rows
from training.core.model import DeepCredit, ModelConfig, set_reference
from training.core.train import TrainConfig, check_trainable, split


@given(
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=30),
    data=st.data(),
    rows=st.integers(1, 40),
)
def test_pieces_are_whole_users_in_order_and_bounded(lengths: list[int], data, rows: int) -> None:
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    users = np.array(data.draw(st.lists(st.integers(0, len(lengths) - 1), unique=True)),
                     dtype=np.int64)  # fmt: skip
    pieces = list(user_row_chunks(offsets, users, rows))
    got = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    np.testing.assert_array_equal(got, user_rows(offsets, users))
    # Whole users: every piece starts and ends where a user's rows do (users without rows
    # may fall in any piece, or make one of their own).
    ends = np.concatenate(([0], np.cumsum([lengths[u] for u in users]))).tolist()
    at = 0
    for piece in pieces:
        start, at = at, at + len(piece)
        assert start in ends and at in ends
        first, last = len(ends) - 1 - ends[::-1].index(start), ends.index(at)  # closest users
        assert len(piece) <= rows or last - first == 1  # over the bound only for one user
    assert at == ends[-1]


@pytest.fixture(scope="module")
def seq() -> Sequences:
    return build_sequences(list(generate(GeneratorConfig(users=40, seed=5, horizon_days=300))))


def test_small_pieces_give_the_reference_and_the_counts_of_one_pass(
    seq: Sequences, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = split(seq, TrainConfig())
    rows = user_rows(seq.loan_offsets, parts.train)
    posts = rows[seq.loan_kind[rows] == LoanStep.POST]
    assert len(posts) > 10
    whole = seq.loan_agg[posts].astype(np.float64).mean(axis=0)
    warnings = check_trainable(seq, parts, strict=False, min_validation=10**6)
    monkeypatch.setattr(dataset, "ROWS_PER_CHUNK", 3)
    assert len(list(user_row_chunks(seq.loan_offsets, parts.train))) > 5  # many pieces
    model = DeepCredit(ModelConfig(hidden_size=4, head_sizes=(4,)))
    set_reference(model, seq, parts.train)
    np.testing.assert_allclose(model.reference.numpy(), whole, rtol=1e-6, atol=1e-7)
    # The warnings carry every count: labelled posts and positives of each target.
    assert check_trainable(seq, parts, strict=False, min_validation=10**6) == warnings
    assert warnings and all(" labelled posts" in w for w in warnings)
