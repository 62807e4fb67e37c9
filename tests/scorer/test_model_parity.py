"""Parity: the numpy scorer fed one event at a time equals the torch batch forward (its
probabilities as ``training.core.model.probabilities`` reports them: calibrated when the model
carries a calibration, see tests/scorer/test_calibration.py)."""

from __future__ import annotations

import functools
from collections import defaultdict

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepcredit.events import ClickEvent
from scorer.features import LoanStep
from scorer.model import ModelWeights, advance
from scorer.user_state import UserState
from tests.strategies import make_events
from training.benchmark.generator import GeneratorConfig, generate
from training.core.dataset import Sequences, build_sequences
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig, batch_to_tensors, probabilities
from training.core.train import TrainConfig, split
from training.core.variants import VARIANTS

TOLERANCE = 1e-5


def stream_scores(weights: ModelWeights, history: list[ClickEvent]) -> np.ndarray:
    state = UserState.new(weights.version, weights.hidden_size)
    scores = [advance(weights, state, e) for e in sorted(history, key=lambda e: e.ts)]
    return np.array([s for s in scores if s is not None], dtype=np.float64).reshape(-1, 2)


def batch_scores(model: DeepCredit, seq: Sequences, users: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        logits, _ = model(batch_to_tensors(seq.batch(users)), targets=False)
        probs = probabilities(model, logits).numpy()
    out = []
    for row, u in enumerate(users):
        l0, l1 = seq.loan_offsets[u], seq.loan_offsets[u + 1]
        out.append(probs[row, : l1 - l0][seq.loan_kind[l0:l1] == LoanStep.POST])
    return out


def export(model: DeepCredit) -> ModelWeights:
    """Through bytes, as the scorer will load it from the model artifact."""
    return ModelWeights.from_bytes(export_scorer(model, "test").to_bytes())


def by_user(events: list[ClickEvent]) -> dict[str, list[ClickEvent]]:
    grouped: dict[str, list[ClickEvent]] = defaultdict(list)
    for e in events:
        grouped[e.user_id].append(e)
    return grouped


@functools.cache
def benchmark_data() -> tuple[list[ClickEvent], Sequences]:
    """Generated once per test session (also for tests/scorer/test_calibration.py)."""
    events = list(generate(GeneratorConfig(users=5300, seed=11, horizon_days=90)))
    return events, build_sequences(events)


@pytest.fixture(scope="module")
def benchmark() -> tuple[list[ClickEvent], Sequences]:
    return benchmark_data()


def test_held_out_users_full_histories(benchmark: tuple[list[ClickEvent], Sequences]) -> None:
    """At least 1,000 held-out users, every post of their whole history."""
    events, seq = benchmark
    test_users = split(seq, TrainConfig()).test
    assert len(test_users) >= 1000
    torch.manual_seed(0)
    model = DeepCredit(ModelConfig(hidden_size=16)).eval()
    weights = export(model)
    histories = by_user(events)
    posts = 0
    for start in range(0, len(test_users), 250):
        users = test_users[start : start + 250]
        for u, expected in zip(users, batch_scores(model, seq, users), strict=True):
            got = stream_scores(weights, histories[str(seq.user_ids[u])])
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
            posts += len(got)
    assert posts > 1000


@pytest.mark.parametrize("calibration", [None, [[0.7, 1.4], [0.9, -1.1]]])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant(
    variant: str, calibration: list | None, benchmark: tuple[list[ClickEvent], Sequences]
) -> None:
    """Every variant, raw and with a Platt calibration (rows: slopes, intercepts)."""
    events, seq = benchmark
    torch.manual_seed(1)
    model = DeepCredit(ModelConfig(hidden_size=8, **VARIANTS[variant])).eval()
    model.calibration = None if calibration is None else torch.tensor(calibration)
    weights = export(model)
    users = np.arange(40)
    histories = by_user(events)
    for u, expected in zip(users, batch_scores(model, seq, users), strict=True):
        got = stream_scores(weights, histories[str(seq.user_ids[u])])
        np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.integers(1, 400), st.sampled_from([4, 8, 32]),
       st.floats(0.5, 3.0))  # fmt: skip
def test_random_histories(seed: int, n: int, hidden: int, scale: float) -> None:
    """Random event mixes (unknown loans, disorder-free but arbitrary gaps) and weights scaled
    away from their initialisation, so saturated gates are exercised too."""
    events = make_events(n, users=1, seed=seed)
    seq = build_sequences(events)
    torch.manual_seed(seed)
    model = DeepCredit(ModelConfig(hidden_size=hidden, head_sizes=(16, 8))).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    [expected] = batch_scores(model, seq, np.array([0]))
    got = stream_scores(export(model), events)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
