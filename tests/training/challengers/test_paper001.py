"""Paper 001 on the UCI table: the CNN-LSTM's loss and its streaming form, the splits, the
ensemble's weights, and ``deepcredit challengers uci --paper 001`` end to end on the 300-client
sample (one epoch, a few trials: the full run is the command's, not the test's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deploy.cli import main
from training.challengers.cnnlstm import CnnLstmScore, CnnLstmStream, composite_loss
from training.challengers.config import Paper001Config, Paper004Config
from training.challengers.paper001 import blend, ensemble_weights, splits
from training.challengers.paper004 import cross_validate
from training.challengers.results import Row, Run, merge_into
from training.challengers.uci import read_uci
from training.core.evaluation import binary_metrics
from training.experiments.challenger_cost import reencode_cost

SAMPLE = Path(__file__).parents[2] / "data" / "uci-first-300.csv"


def _trained_looking(model: CnnLstmScore) -> CnnLstmScore:
    """Batch norm's running statistics away from 0 and 1, so that eval mode is not an
    identity and the streaming check covers it."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def test_the_composite_loss_is_alpha_bce_plus_the_rest_focal() -> None:
    z, y = torch.tensor([2.0, -1.0, 0.3]), torch.tensor([1.0, 1.0, 0.0])
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p_true = torch.where(y == 1, torch.sigmoid(z), 1 - torch.sigmoid(z))
    focal = -((1 - p_true) ** 2) * torch.log(p_true)
    want = (0.7 * bce + 0.3 * focal).mean()
    assert torch.isclose(composite_loss(z, y, 0.7, 2.0), want, atol=1e-6)


def test_the_cnnlstm_streams_one_event_at_a_time_to_the_full_reencode() -> None:
    """The streaming form (a window of convolutions, one LSTM step, running attention sums)
    scores each post as the model re-encoding the whole history does, past the window."""
    torch.manual_seed(0)
    model = _trained_looking(CnnLstmScore(8, filters=(8, 16, 16), lstm_units=8))
    rng = np.random.default_rng(0)
    history, static = rng.normal(size=(3 * model.receptive_field, 3)), rng.normal(size=8)
    stream = CnnLstmStream(model, static)
    for t in range(len(history)):
        got = stream.step(history[t])
        with torch.inference_mode():
            full = model(torch.tensor(history[None, : t + 1], dtype=torch.float32),
                         torch.tensor(static[None], dtype=torch.float32))  # fmt: skip
        assert got == pytest.approx(float(torch.sigmoid(full)), abs=1e-5)


def test_the_convolutions_are_causal_so_an_event_leaves_earlier_steps_alone() -> None:
    torch.manual_seed(0)
    model = _trained_looking(CnnLstmScore(8, filters=(4, 4, 4), lstm_units=4))
    history = torch.randn(1, 6, 3)
    with torch.inference_mode():
        before = model.convolved(history)
        after = model.convolved(torch.cat([history, torch.randn(1, 1, 3)], dim=1))
    assert torch.allclose(before, after[:, :6], atol=1e-6)


def test_the_splits_are_the_papers_and_004s_folds() -> None:
    cfg = Paper001Config(folds=5, seed=0)
    (h,) = splits(1000, "holdout", cfg)
    assert (len(h.train), len(h.val), len(h.test)) == (700, 150, 150)
    assert len(np.unique(np.r_[h.train, h.val, h.test])) == 1000
    table = read_uci(SAMPLE)
    folds = splits(len(table), "folds", cfg)
    cv = cross_validate(table, Paper004Config(folds=5, seed=0), ["logr"])
    for k, s in enumerate(folds):
        assert sorted(s.test.tolist()) == np.flatnonzero(cv.fold == k).tolist()
        assert not set(s.train) & set(s.val) and not (set(s.train) | set(s.val)) & set(s.test)
        assert len(s.val) == round(0.15 / 0.85 * len(s.fit))


def test_the_ensemble_weights_favour_the_informative_member() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    members = {
        "good": np.clip(0.5 * y + rng.normal(0.25, 0.2, 400), 0, 1),
        "noise": rng.uniform(size=400),
        "weak": np.clip(0.1 * y + rng.uniform(size=400), 0, 1),
    }
    weights, auc = ensemble_weights(members, y, trials=30, seed=0)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["good"] > weights["noise"] and weights["good"] > 0.5
    assert auc == pytest.approx(binary_metrics(y, blend(members, weights)).auc)
    assert auc >= binary_metrics(y, members["good"]).auc


def test_challengers_uci_paper_001_writes_both_protocols_beside_other_rows(tmp_path: Path) -> None:
    out = tmp_path / "challengers.json"
    by_004 = "deepcredit challengers uci --paper 004"
    merge_into(out, [Row(paper="004", data="uci", table="table3", model="gb", command=by_004)],
               Run(command=by_004, part="004/uci/tables"))  # fmt: skip
    args = ["challengers", "uci", "--paper", "001", "--table", str(SAMPLE), "--cnnlstm-epochs",
            "1", "--folds", "2", "--trials", "3", "--bootstrap", "10", "--trees", "5",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["paper"], r["model"]) for r in rows if r["paper"] == "004"] == [("004", "gb")]
    for protocol, n in (("holdout", 45), ("folds", 300)):
        table = {r["model"]: r for r in rows if r["paper"] == "001" and r["table"] == protocol}
        assert sorted(table) == sorted(
            ["ensemble", "cnnlstm", "lightgbm", "xgboost", "rf", "gb004"]
        )
        for r in table.values():
            assert r["command"].startswith("deepcredit challengers uci --paper 001")
            assert r["n"] == n
            f = r["figures"]
            assert set(f) >= {"auc", "ks", "brier", "h_measure", "accuracy", "f1", "recall"}
            assert 0 < f["auc"]["value"] < 1 and f["auc"]["low"] < f["auc"]["high"]
        weights = table["ensemble"]["detail"]["weights"]
        assert all(sum(w.values()) == pytest.approx(1.0) for w in weights.values())
        assert table["ensemble"]["detail"]["paper_own_data"]["auc"] == 0.9687
        delong = {r["model"] for r in rows if r["table"] == f"{protocol}-delong"}
        assert delong == {"cnnlstm", "lightgbm", "xgboost", "rf", "gb004"}
        assert result["runs"][f"001/uci/{protocol}"]["data"]["clients"] == 300
    # In 004's folds, 004's GB gives 004's own predictions: the two papers' rows compare.
    folds = {r["model"]: r for r in rows if r["table"] == "folds"}
    cv = cross_validate(read_uci(SAMPLE), Paper004Config(folds=2, seed=0), ["gb"])
    assert folds["gb004"]["figures"]["auc"]["value"] == pytest.approx(
        binary_metrics(read_uci(SAMPLE).y, cv.p["gb"]).auc, abs=1e-5)  # fmt: skip


def test_the_cnnlstm_cost_is_measured_reencoded_and_streamed() -> None:
    r = reencode_cost(lengths=(5, 50), step_users=5, repeats=1, calls=1, model_name="cnnlstm")
    assert [row["history_events"] for row in r["rows"]] == [5, 50]
    for row in r["rows"]:
        assert row["reencode_us_per_post"] > 0 and row["stream_us_per_post"] > 0
