"""Papers 001, 003 and 004 on the benchmark's events: the posts in the UCI models' input form
are the baselines' posts and see nothing after themselves, the scaling is the training posts',
each system fits per target, the rows judge it against the baselines on the same posts, and
``deepcredit challengers events`` runs end to end, reusing the baselines it cached."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deploy.cli import main
from scorer.features import LoanStep
from training.benchmark.generator import GeneratorConfig, generate
from training.challengers.config import (
    ActganConfig,
    BiLstmConfig,
    CnnLstmConfig,
    Paper001Config,
    Paper003Config,
    ResNetLstmConfig,
)
from training.challengers.eventform import PostArrays, fit_scaler, post_arrays
from training.challengers.events import benchmark_rows, fit_001, fit_003, fit_004
from training.core.dataset import Sequences, build_sequences
from training.core.postfeatures import labelled_post_features
from training.core.predictions import read_predictions

USERS = np.arange(40)
TRAIN, VAL, TEST = np.arange(0, 24), np.arange(24, 32), np.arange(32, 40)


@pytest.fixture(scope="module")
def seq() -> Sequences:
    return build_sequences(generate(GeneratorConfig(users=40, seed=5)))


@pytest.fixture(scope="module")
def parts(seq: Sequences) -> tuple[PostArrays, PostArrays, PostArrays, PostArrays, object]:
    raw = [post_arrays(seq, users, steps=6) for users in (TRAIN, VAL, TEST)]
    scale = fit_scaler(raw[0])
    return raw[0], *(scale(a) for a in raw), scale


def test_the_posts_are_the_baselines_posts_in_their_order(seq: Sequences) -> None:
    posts = post_arrays(seq, TEST[::-1], steps=4)
    x, y = labelled_post_features(seq, TEST[::-1])
    assert np.array_equal(posts.labels, y, equal_nan=True)
    assert len(posts) == len(x) > 0
    # users in the order given, each user's posts in time order
    first = [int(u) for u in dict.fromkeys(posts.users.tolist())]
    assert first == [u for u in TEST[::-1].tolist() if u in set(first)]


def test_a_posts_temporal_part_is_its_users_last_steps_ending_at_the_post(seq: Sequences) -> None:
    steps = 5
    posts = post_arrays(seq, USERS, steps=steps)
    by_event = {str(e): i for i, e in enumerate(seq.event_ids)}
    for r in np.random.default_rng(0).choice(len(posts), 40, replace=False):
        row = by_event[str(posts.event_ids[r])]
        u = int(posts.users[r])
        first = seq.loan_offsets[u]
        assert seq.loan_kind[row] == LoanStep.POST and first <= row < seq.loan_offsets[u + 1]
        window = np.arange(max(first, row - steps + 1), row + 1)  # nothing after the post
        t = posts.temporal[r]
        present = t[:, -1] > 0
        assert present.sum() == len(window) and present[-len(window) :].all()
        np.testing.assert_allclose(t[present, :-2], seq.loan_x[window], atol=1e-6)
        np.testing.assert_allclose(t[present, -2], seq.loan_gap[window], atol=1e-6)
        assert not t[~present].any()
        np.testing.assert_array_equal(posts.labels[r], seq.labels[row])


def test_the_scaling_is_the_training_posts_and_leaves_absent_steps_zero(parts) -> None:
    raw, train, _, test, _ = parts
    np.testing.assert_allclose(train.static.mean(axis=0), 0, atol=1e-4)
    sd = train.static.std(axis=0)
    assert np.all((np.abs(sd - 1) < 1e-3) | (sd == 0))
    present = train.temporal[..., -1] > 0
    np.testing.assert_allclose(train.temporal[present][:, :-1].mean(axis=0), 0, atol=1e-4)
    assert not train.temporal[~present].any()
    assert not test.temporal[test.temporal[..., -1] == 0].any()
    np.testing.assert_array_equal(train.temporal[..., -1], raw.temporal[..., -1])


def _check(fitted, models: set[str], n: int) -> None:
    assert set(fitted.test) == models
    for m, p in fitted.test.items():
        assert p.shape == (n, 2) and np.all((p >= 0) & (p <= 1)), m
        assert set(fitted.detail[m]) == {"delinquent", "default"}


def test_paper_004s_bilstm_fits_each_target_within_its_budget(parts) -> None:
    _, train, val, test, _ = parts
    cfg = BiLstmConfig(hidden=4, epochs=50, patience=50, batch=256, max_minutes=0.0)
    fitted = fit_004(train, val, test, cfg, train_posts=500, progress=lambda _: None)
    _check(fitted, {"bilstm"}, len(test))
    info = fitted.detail["bilstm"]["default"]
    assert info["out_of_time"] and info["epochs_run"] == 1 and info["train_posts"] == 500


def test_paper_001s_ensemble_blends_its_members_with_weights_chosen_on_validation(parts) -> None:
    _, train, val, test, _ = parts
    small = CnnLstmConfig(filters=(4, 4, 4), lstm_units=4, epochs=1)
    cfg = Paper001Config(trials=3, trees=5, forest_rows=300, cnnlstm=small)
    fitted = fit_001(train, val, test, cfg, flat_steps=3, train_posts=400,
                     progress=lambda _: None)  # fmt: skip
    _check(fitted, {"ensemble", "cnnlstm", "lightgbm", "xgboost", "rf"}, len(test))
    for k, target in enumerate(("delinquent", "default")):
        w = fitted.detail["ensemble"][target]["weights"]
        assert abs(sum(w.values()) - 1) < 1e-5
        blended = sum(w[m] * fitted.test[m][:, k] for m in w)
        np.testing.assert_allclose(fitted.test["ensemble"][:, k], blended, atol=1e-9)


def test_paper_003_oversamples_only_its_training_sample_to_the_ratio(parts) -> None:
    # Two steps and six static columns: the GAN's mixtures, one per column, set the test's time.
    narrow = [PostArrays(a.temporal[:, -2:], a.static[:, :6], a.labels, a.users, a.event_ids)
              for a in (parts[0], parts[2], parts[3])]  # fmt: skip
    raw = narrow[0]
    scale = fit_scaler(raw)
    train, val, test = (scale(a) for a in (raw, *narrow[1:]))
    cfg = Paper003Config(focal_alpha=(0.75,), focal_gamma=(2.0,),
                         actgan=ActganConfig(epochs=1, batch=100, embedding=8, generator=(16,),
                                             discriminator=(16,), mixture_rows=200),
                         network=ResNetLstmConfig(filters=(4, 4), lstm_units=4, fused=8,
                                                  epochs=1))  # fmt: skip
    fitted = fit_003(raw, train, val, test, scale, cfg, train_posts=600,
                     progress=lambda _: None)  # fmt: skip
    _check(fitted, {"system", "no_actgan", "resnetlstm", "xgboost", "xgboost_actgan"},
           len(test))  # fmt: skip
    for k, target in enumerate(("delinquent", "default")):
        gan = fitted.detail["system"][target]["actgan"]
        y = train.labels[:, k]
        assert gan["train_posts"] == min(600, int(np.isfinite(y).sum()))
        negatives = gan["train_posts"] - gan["positives"]
        assert abs((gan["positives"] + gan["synthetic"]) / negatives - 0.4) < 1 / negatives


def test_the_rows_judge_every_model_against_the_reference_on_the_same_posts() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((400, 2)) < 0.3).astype(float)
    y[::7, 1] = np.nan
    users = np.repeat(np.arange(80), 5)
    good = np.clip(y + rng.normal(0, 0.4, y.shape), 0.01, 0.99)
    noise = rng.random(y.shape)
    rows = benchmark_rows("004", y, users, {"bilstm": good, "gbdt": noise}, "bilstm",
                          {"bilstm": "BiLSTM"}, bootstrap=50, level=0.9,
                          command="deepcredit x")  # fmt: skip
    diff = {r.group: r for r in rows if r.table == "differences"}
    assert set(diff) == {"delinquent", "default"} and diff["default"].n == int(np.isfinite(
        y[:, 1]).sum())  # fmt: skip
    assert all(r.model == "bilstm-gbdt" and r.figures["auc"].low > 0 for r in diff.values())
    assert {(r.model, r.group) for r in rows if r.table == "benchmark"} == {
        (m, t) for m in ("bilstm", "gbdt") for t in ("delinquent", "default")}  # fmt: skip


def test_challengers_events_paper_004_end_to_end_reuses_the_cached_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, out, cache = tmp_path / "clicks.jsonl", tmp_path / "c.json", tmp_path / "cache"
    assert main(["generate", "--users", "60", "--seed", "2", "--out", str(events), "--quiet"]) == 0
    args = ["challengers", "events", "--paper", "004", "--events", str(events), "--steps", "4",
            "--bilstm-hidden", "4", "--bilstm-epochs", "1", "--train-posts", "800",
            "--bootstrap", "20", "--cache", str(cache), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    first = json.loads(out.read_text())
    assert list(cache.glob("baselines-*.npz"))
    capsys.readouterr()
    assert main([*args, "--predictions", str(tmp_path / "pred")]) == 0
    assert "baselines read from" in capsys.readouterr().out
    second = json.loads(out.read_text())
    manifests, predictions = read_predictions(sorted((tmp_path / "pred").glob("*.jsonl.gz")))
    assert set(manifests) == {"004-bilstm", "gbdt", "lr"}
    assert not manifests["004-bilstm"].streaming
    for r in (r for r in second["rows"] if r["table"] == "benchmark" and r["paper"] == "004"):
        name = "004-bilstm" if r["model"] == "bilstm" else r["model"]
        mine = [p for p in predictions if p.target == r["group"] and p.model == name]
        assert len(mine) == r["n"] and sum(p.label for p in mine) == r["positives"]
    run = second["runs"]["004/benchmark/events"]
    assert run["data"]["temporal"] == [4, 15] and run["config"]["form"]["steps"] == 4
    rows = [r for r in second["rows"] if r["paper"] == "004" and r["data"] == "benchmark"]
    assert {(r["table"], r["model"]) for r in rows} == {
        ("benchmark", "bilstm"), ("benchmark", "gbdt"), ("benchmark", "lr"),
        ("differences", "bilstm-gbdt"), ("differences", "bilstm-lr")}  # fmt: skip
    baseline = {(r["model"], r["group"]): r["figures"]["auc"]["value"] for r in rows
                if r["model"] in ("gbdt", "lr")}  # fmt: skip
    assert baseline == {(r["model"], r["group"]): r["figures"]["auc"]["value"]
                        for r in first["rows"] if r["model"] in ("gbdt", "lr")
                        and r["data"] == "benchmark"}  # fmt: skip
    assert all(r["command"].startswith("deepcredit challengers events --paper 004") for r in rows)


def test_statements_are_paper_002s_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "clicks.jsonl"
    events.write_text("")
    code = main(["challengers", "events", "--paper", "004", "--events", str(events),
                 "--statements"])  # fmt: skip
    assert code == 1 and "challengers uci --paper 004" in capsys.readouterr().err
