"""The report's figures from prediction files, and our models' prediction files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.core.bands import score_bands
from training.core.delong import delong_auc, delong_difference
from training.core.evaluation import TARGETS
from training.core.hmeasure import h_measure
from training.core.predictions import ModelManifest, Prediction
from training.core.stability import psi
from training.report.config import ReportConfig
from training.report.report import build_report


def synthetic(n: int = 600, seed: int = 0) -> tuple[dict[str, ModelManifest], list[Prediction]]:
    """Two models on the same rows (a third of them training rows), a third model on the test
    rows of even users only, and a target whose labels hold one class."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    z = rng.normal(size=n) + 1.5 * y
    manifests = {
        "stream": ModelManifest(name="stream", family="deepcredit", streaming=True),
        "trees": ModelManifest(name="trees", family="gbdt", streaming=False),
        "half": ModelManifest(name="half", family="lr", streaming=False),
    }
    rows = []
    for name, noise in (("stream", 1.0), ("trees", 0.3), ("half", 0.6)):
        p = 1 / (1 + np.exp(-(z + noise * rng.normal(size=n) - 2)))
        for i in range(n):
            split = "train" if i % 3 == 0 else "test"
            if name == "half" and (split == "train" or i % 2):
                continue
            rows.append(Prediction(name, f"u{i // 2}", f"e{i}", "default", int(y[i]),
                                   float(p[i]), split))  # fmt: skip
            rows.append(Prediction(name, f"u{i // 2}", f"e{i}", "y", 0, float(p[i]), split))
    return manifests, rows


def test_every_figure_is_that_of_the_pure_functions() -> None:
    manifests, rows = synthetic()
    report = build_report(manifests, rows, ReportConfig())
    assert [m["can_serve_live"] for m in report["models"]] == [False, True, False]
    body = report["targets"]["default"]
    for name in ("stream", "trees", "half"):
        test = [r for r in rows if r.model == name and r.target == "default" and
                r.split == "test"]  # fmt: skip
        y = np.array([r.label for r in test])
        p = np.array([r.probability for r in test])
        m = body["models"][name]
        assert (m["rows"], m["n"], m["bads"]) == ("test", len(y), y.sum())
        a = delong_auc(y, p)
        assert m["auc"] == pytest.approx(a.auc) and m["auc_interval"] == [a.low, a.high]
        assert m["gini"] == pytest.approx(2 * a.auc - 1)
        assert m["h_measure"] == h_measure(y, p)
        assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
        assert [b["n"] for b in m["bands"]] == [b.n for b in score_bands(y, p)]
        assert m["roc"][0] == [0.0, 0.0] and m["roc"][-1] == [1.0, 1.0]
        assert max(b - g for _, b, g in m["ks_curve"]) == pytest.approx(m["ks"], abs=1e-6)
    train = np.array([r.probability for r in rows if r.model == "stream" and
                      r.target == "default" and r.split == "train"])  # fmt: skip
    test = np.array([r.probability for r in rows if r.model == "stream" and
                     r.target == "default" and r.split == "test"])  # fmt: skip
    assert body["models"]["stream"]["stability"]["psi"] == pytest.approx(psi(train, test))
    assert body["models"]["half"]["stability"] is None  # no training rows in its file
    pairs = {(p["a"], p["b"]): p for p in body["pairs"]}
    assert set(pairs) == {("half", "stream"), ("half", "trees"), ("stream", "trees")}
    assert pairs[("half", "stream")]["rows"] == body["models"]["half"]["n"]  # the common rows
    both = [r for r in rows if r.target == "default" and r.split == "test"]
    ys = np.array([r.label for r in both if r.model == "stream"])
    d = delong_difference(ys, *(np.array([r.probability for r in both if r.model == m])
                                for m in ("stream", "trees")))  # fmt: skip
    assert pairs[("stream", "trees")]["delong"]["difference"] == pytest.approx(d.difference)
    assert pairs[("stream", "trees")]["delong"]["difference"] > 0  # less noise ranks better
    # The user bootstrap: the same point difference (b - a), over the 2-row users of the pair.
    boot = pairs[("stream", "trees")]["user_bootstrap"]
    assert boot["auc"]["difference"] == pytest.approx(d.difference)
    assert boot["bootstrap"]["users"] == len({r.user_id for r in both if r.model == "stream"})
    assert boot["auc"]["interval"][0] <= d.difference <= boot["auc"]["interval"][1]
    assert all("both classes" in m["error"] for m in report["targets"]["y"]["models"].values())
    assert report["targets"]["y"]["pairs"] == []


def test_deepcredit_and_baseline_predictions_of_the_same_posts(
    model_dir: Path, clicks_file: Path
) -> None:
    from training.core.artifact import load_model
    from training.core.config import TrainConfig
    from training.core.eventlog import load_sequences
    from training.core.train import predict, split
    from training.report.predict import baseline_predictions, deepcredit_predictions

    manifest, rows = deepcredit_predictions(model_dir, clicks_file, ("validation", "test"))
    assert manifest.streaming and manifest.family == "deepcredit"
    model, card = load_model(model_dir)
    seq, _ = load_sequences(clicks_file, progress=False)
    parts = split(seq, TrainConfig(**card.train_config))
    at = {(str(u), str(e)): (k, ts) for k, (u, e, ts) in enumerate(zip(
        np.repeat(seq.user_ids, np.diff(seq.loan_offsets)), seq.event_ids, seq.event_ts,
        strict=True))}  # fmt: skip
    for split_name in ("validation", "test"):
        y, p = predict(model, seq, getattr(parts, split_name))
        mine = [r for r in rows if r.split == split_name]
        assert len(mine) == int(np.isfinite(y).sum())
        for k, target in enumerate(TARGETS):
            got = [r for r in mine if r.target == target]
            known = np.isfinite(y[:, k])
            assert [r.label for r in got] == y[known, k].astype(int).tolist()
            assert [r.probability for r in got] == pytest.approx(p[known, k].tolist(), abs=1e-7)
            for r in got:  # each row's event is a labelled post of that user, with that label
                row, _ = at[(r.user_id, r.event_id)]
                assert seq.labels[row, k] == r.label
        last: dict[str, float] = {}
        for r in mine:  # each user's rows in time order
            ts = at[(r.user_id, r.event_id)][1]
            assert ts >= last.get(r.user_id, -np.inf)
            last[r.user_id] = ts
    base_manifest, base_rows = baseline_predictions(
        "lr", clicks_file, ("validation", "test"), train_config=TrainConfig(**card.train_config)
    )
    assert not base_manifest.streaming

    def keys(rs: list[Prediction]) -> list[tuple]:
        return sorted((r.split, r.target, r.user_id, r.event_id, r.label) for r in rs)

    assert keys(base_rows) == keys(rows)
