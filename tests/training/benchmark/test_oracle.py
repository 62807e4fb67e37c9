"""The oracle side file: the events stay byte for byte what the generator wrote before it
existed, its probabilities are the expectations they claim, and every labelled post has one."""

from __future__ import annotations

import hashlib
import heapq
import math
from pathlib import Path

import numpy as np
import pytest

from deepcredit.events import DAY_S, Activity
from training.benchmark.config import DEFAULT_START_TS, GeneratorConfig
from training.benchmark.generator import AtPost, write_jsonl
from training.benchmark.oracle import outcome_probabilities, read_oracle
from training.benchmark.user import (
    DEFAULT_BIAS,
    DEFAULT_SLOPE,
    DELINQUENT_BIAS,
    LOAN_NOISE_SD,
)
from training.core.dataset import build_sequences
from training.core.eventlog import read_events
from training.experiments.ablation import oracle_predictions

#: SHA-256 of the events file these configs gave at commit ac23ed3, before the oracle existed.
BEFORE = {
    "plain": "005e28c5f787e544a3c0c5e1411211be1e10d601c7c565f31e91e199c0660a5b",
    "shifted": "8c79c184c89289b9fc3d027bb652d8082a3e82e8b1451434f08d9d3736a991d7",
}
CONFIGS = {
    "plain": GeneratorConfig(users=12, seed=5, horizon_days=400),
    "shifted": GeneratorConfig(users=12, seed=5, horizon_days=400,
                               shift_at_ts=DEFAULT_START_TS + 200 * DAY_S, shift_term_risk=2.0),
}  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_events_unchanged_with_and_without_oracle(tmp_path: Path, name: str) -> None:
    config = CONFIGS[name]
    write_jsonl(config, tmp_path / "plain.jsonl", progress=False)
    write_jsonl(config, tmp_path / "with.jsonl", progress=False,
                oracle_path=tmp_path / "oracle.jsonl", at_post=AtPost(2))  # fmt: skip
    assert sha256(tmp_path / "plain.jsonl") == BEFORE[name]
    assert sha256(tmp_path / "with.jsonl") == BEFORE[name]
    records = list(read_oracle(tmp_path / "oracle.jsonl"))
    # Simulating futures of a user draws nothing from the user's own streams.
    write_jsonl(config, tmp_path / "settle-only.jsonl", progress=False,
                oracle_path=tmp_path / "settle-only.oracle.jsonl")  # fmt: skip
    settle_only = list(read_oracle(tmp_path / "settle-only.oracle.jsonl"))
    assert [(r.loan_id, r.p_delinquent, r.p_default) for r in settle_only] == [
        (r.loan_id, r.p_delinquent, r.p_default) for r in records
    ]
    assert all(r.paths_at_post == 0 and r.p_delinquent_at_post is None for r in settle_only)
    assert all(r.paths_at_post == 2 for r in records)
    assert all(0.0 < r.p_default_at_post < r.p_delinquent_at_post < 1.0 for r in records)
    events = list(read_events(tmp_path / "with.jsonl"))
    posts = {e.event_id: e.loan_id for e in events if e.activity is Activity.POST}
    borrowed = {e.loan_id for e in events if e.activity is Activity.BORROW}
    assert records, "a 400-day stream of 12 users settles some loans"
    for r in records:
        assert posts[r.post_event_id] == r.loan_id and r.loan_id in borrowed
        assert 0.0 < r.p_default < r.p_delinquent < 1.0
        assert config.start_ts <= r.settle_ts < config.end_ts


def test_every_labelled_post_has_its_probabilities(tmp_path: Path) -> None:
    config = CONFIGS["plain"]
    write_jsonl(config, tmp_path / "e.jsonl", progress=False,
                oracle_path=tmp_path / "o.jsonl.gz")  # fmt: skip
    seq = build_sequences(read_events(tmp_path / "e.jsonl"))
    y, p = oracle_predictions(seq, np.arange(seq.users), tmp_path / "o.jsonl.gz")
    assert len(y) == int(np.isfinite(seq.labels).any(axis=-1).sum()) > 0
    assert p.shape == y.shape and np.all((p > 0) & (p < 1))
    (tmp_path / "other.jsonl").write_text("")
    with pytest.raises(ValueError, match="no oracle record"):
        oracle_predictions(seq, np.arange(seq.users), tmp_path / "other.jsonl")


def test_the_oracle_as_of_the_post_averages_the_users_simulated_futures(tmp_path: Path) -> None:
    """Its probabilities are the mean of the settlement oracle over independent futures of
    the user from the post on: more futures, a smaller spread around that mean; each future
    its own draw of the settlement risk."""
    from training.benchmark.user import UserSimulator

    config = GeneratorConfig(users=3, seed=1, horizon_days=300)
    by_paths = {}
    for paths in (1, 32):
        records: list = []
        for index in range(config.users):
            for _ in UserSimulator(config, index, records, paths_at_post=paths).events():
                pass
        by_paths[paths] = {r.loan_id: r for r in records}
    one, many = by_paths[1], by_paths[32]
    assert one.keys() == many.keys() and len(one) > 20
    # One future reaches the settlement with a risk of its own, not this user's.
    assert sum(r.p_delinquent_at_post != r.p_delinquent for r in one.values()) > len(one) // 2
    # Averaged over 32 futures, the probabilities as of the post are nearer the settlement's
    # (another future) than one future's are, and agree with one future's on average.
    late_one = np.array([r.p_delinquent_at_post for r in one.values()])
    late_many = np.array([many[k].p_delinquent_at_post for k in one])
    settled = np.array([many[k].p_delinquent for k in one])
    assert np.abs(late_many - settled).mean() < np.abs(late_one - settled).mean()
    assert abs(late_many.mean() - late_one.mean()) < 0.05


def test_a_future_depends_on_the_state_at_the_post_not_on_draws_already_made() -> None:
    """The time of the user's next shock, drawn earlier and waiting on the agenda, is no part
    of the state at the post: moving it does not move a future. A future leaves the user's own
    loans as they were, and two loans posted in one visit get futures of their own."""
    from training.benchmark import user as simulator

    config = GeneratorConfig(users=1, seed=3, horizon_days=500)
    sim = simulator.UserSimulator(config, 0, oracle=[])
    events = sim.events()
    for event in events:
        funded = [item for _, _, kind, item in sim._agenda if kind == simulator._FUND]
        if event.activity is Activity.POST and any(x.loan_id == event.loan_id for x in funded):
            break
    loan = next(x for x in funded if x.loan_id == event.loan_id)
    loans = {id(p[2] if isinstance(p, tuple) else p): p[2] if isinstance(p, tuple) else p
             for _, _, _, p in sim._agenda if p is not None}  # fmt: skip
    before = {k: (x.late, x.defaulted) for k, x in loans.items() if x is not None}

    def future(path: int, number: int) -> float:
        record = sim._twin(path, number, event.ts)._run_until_settled(loan.loan_id)
        assert record is not None
        return record.p_delinquent

    first = [future(path, loan.number) for path in range(3)]
    assert len(set(first)) == 3  # each path its own future
    shocks = [i for i, item in enumerate(sim._agenda) if item[2] == simulator._SHOCK]
    assert shocks
    for i in shocks:  # a shock an hour after the post, before the loan settles
        _, seq, kind, payload = sim._agenda[i]
        sim._agenda[i] = (event.ts + 3600.0, seq, kind, payload)
    heapq.heapify(sim._agenda)
    assert [future(path, loan.number) for path in range(3)] == first
    assert future(0, loan.number + 1) != first[0]  # another loan's streams
    assert {k: (x.late, x.defaulted) for k, x in loans.items() if x is not None} == before


def test_only_the_users_named_get_the_oracle_as_of_the_post(tmp_path: Path) -> None:
    config = CONFIGS["plain"]
    write_jsonl(config, tmp_path / "e.jsonl", progress=False, oracle_path=tmp_path / "o.jsonl",
                at_post=AtPost(1, frozenset({"u000003", "u000007"})))  # fmt: skip
    records = list(read_oracle(tmp_path / "o.jsonl"))
    assert {r.user_id for r in records if r.paths_at_post} == {"u000003", "u000007"}
    seq = build_sequences(read_events(tmp_path / "e.jsonl"))
    users = np.arange(seq.users)
    named = users[np.isin(seq.user_ids, ["u000003", "u000007"])]
    y, p = oracle_predictions(seq, named, tmp_path / "o.jsonl", at_post=True)
    assert len(y) > 0 and np.all((p > 0) & (p < 1))
    with pytest.raises(ValueError, match="as of the post"):
        oracle_predictions(seq, users, tmp_path / "o.jsonl", at_post=True)


@pytest.mark.parametrize("risk", [-4.0, -1.0, 0.0, 1.5, 4.0])
def test_quadrature_matches_monte_carlo(risk: float) -> None:
    """The settle draw, repeated: late with σ(bias + z), then default with σ(...) given late."""
    rng = np.random.default_rng(0)
    n = 400_000
    z = risk + LOAN_NOISE_SD * rng.standard_normal(n)
    late = rng.random(n) < 1 / (1 + np.exp(-(DELINQUENT_BIAS + z)))
    default = late & (rng.random(n) < 1 / (1 + np.exp(-(DEFAULT_BIAS + DEFAULT_SLOPE * z))))
    p_late, p_default = outcome_probabilities(risk, LOAN_NOISE_SD, DELINQUENT_BIAS,
                                              DEFAULT_BIAS, DEFAULT_SLOPE)  # fmt: skip
    for p, draws in ((p_late, late), (p_default, default)):
        se = math.sqrt(max(p * (1 - p), 1e-12) / n)
        assert abs(p - draws.mean()) < 5 * se + 1e-6


def test_quadrature_without_noise_is_the_logistic() -> None:
    p_late, p_default = outcome_probabilities(0.3, 0.0, -1.0, -2.0, 1.0)
    assert p_late == pytest.approx(1 / (1 + math.exp(0.7)), abs=1e-12)
    assert p_default == pytest.approx(p_late / (1 + math.exp(1.7)), abs=1e-12)
