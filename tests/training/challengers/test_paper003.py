"""Paper 003 on the UCI table: the focal objective's derivatives, the network's shapes, the
ACTGAN table's round trip and oversampling ratio, and ``deepcredit challengers uci --paper 003``
end to end on the 300-client sample (one epoch each: the full run is the command's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.cli import main
from training.challengers.actgan import CrossLayers, from_frame, to_frame, to_generate
from training.challengers.config import MODELS_003, Paper003Config, ResNetLstmConfig
from training.challengers.paper003 import COMPARED, split
from training.challengers.resnetlstm import ResNetLstm, features, focal_grad_hess, focal_loss
from training.challengers.results import Row, Run, merge_into
from training.challengers.uci import read_uci
from training.experiments.challenger_cost import paper003_scorer

SAMPLE = Path(__file__).parents[2] / "data" / "uci-first-300.csv"


@pytest.mark.parametrize(("alpha", "gamma"), [(0.75, 2.0), (0.6, 1.0), (0.5, 0.0)])
def test_the_focal_objective_is_the_focal_loss_derivatives(alpha: float, gamma: float) -> None:
    z = np.linspace(-4, 4, 41)
    for label in (0, 1):
        y = np.full_like(z, label)
        grad, hess = focal_grad_hess(z, y, alpha, gamma)
        h = 1e-5
        up, down = focal_loss(z + h, y, alpha, gamma), focal_loss(z - h, y, alpha, gamma)
        numeric_grad = (up - down) / (2 * h)
        assert grad == pytest.approx(numeric_grad, rel=1e-5, abs=1e-8)
        g_plus, _ = focal_grad_hess(z + h, y, alpha, gamma)
        g_minus, _ = focal_grad_hess(z - h, y, alpha, gamma)
        numeric_hess = np.maximum((g_plus - g_minus) / (2 * h), 1e-6)
        assert hess == pytest.approx(numeric_hess, rel=1e-4, abs=1e-7)
    if gamma == 0:  # α = 0.5, γ = 0: half the cross-entropy, whose derivative is (p − y) / 2
        grad, _ = focal_grad_hess(z, np.ones_like(z), alpha, gamma)
        assert grad == pytest.approx(0.5 * (1 / (1 + np.exp(-z)) - 1))


def test_the_network_maps_months_and_static_features_to_one_logit_each() -> None:
    cfg = ResNetLstmConfig(filters=(4, 8), lstm_units=5, fused=7)
    model = ResNetLstm(3, cfg).eval()
    temporal, static = np.random.default_rng(0).normal(size=(2, 11, 6, 3)), np.zeros((11, 8))
    assert model(torch.tensor(temporal[0], dtype=torch.float32),
                 torch.tensor(static, dtype=torch.float32)).shape == (11,)  # fmt: skip
    assert features(model, temporal[0], static).shape == (11, 7)
    # The months matter: a different history, different features.
    assert not np.allclose(features(model, temporal[0], static),
                           features(model, temporal[1], static))  # fmt: skip


def test_cross_layers_keep_the_width_and_cross_the_features() -> None:
    layers = CrossLayers(4, 3)
    x = torch.randn(5, 4)
    assert layers(x).shape == (5, 4)
    # Degree above one: doubling the input does not double the output.
    assert not torch.allclose(layers(2 * x) - layers.b.sum(0), 2 * (layers(x) - layers.b.sum(0)))


def test_the_gan_table_round_trips_to_the_clients() -> None:
    table = read_uci(SAMPLE)
    back = from_frame(to_frame(table))
    assert np.array_equal(back.temporal, table.temporal)
    assert np.array_equal(back.static, table.static)
    assert np.array_equal(back.y, table.y)


def test_to_generate_reaches_the_ratio() -> None:
    y = np.r_[np.ones(30), np.zeros(170)]
    n = to_generate(y, 0.4)
    assert (30 + n) / 170 >= 0.4 > (30 + n - 1) / 170
    assert to_generate(np.r_[np.ones(80), np.zeros(100)], 0.4) == 0


def test_challengers_uci_paper_003_oversamples_the_training_part_only(tmp_path: Path) -> None:
    out = tmp_path / "challengers.json"
    by_004 = "deepcredit challengers uci --paper 004"
    merge_into(out, [Row(paper="004", data="uci", table="table3", model="gb", command=by_004)],
               Run(command=by_004, part="004/uci/tables"))  # fmt: skip
    args = ["challengers", "uci", "--paper", "003", "--table", str(SAMPLE), "--gan-epochs", "1",
            "--gan-batch", "50", "--gan-mixture-rows", "100", "--resnetlstm-epochs", "1",
            "--focal-alpha", "0.75", "--focal-gamma", "2", "--bootstrap", "10", "--draws", "20",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [(r["paper"], r["model"]) for r in rows if r["paper"] == "004"] == [("004", "gb")]
    table = {r["model"]: r for r in rows if r["paper"] == "003" and r["table"] == "70-30"}
    assert list(table) == list(MODELS_003)
    y = read_uci(SAMPLE).y
    s = split(300, Paper003Config())
    assert not set(s.test) & (set(s.train) | set(s.val))
    for r in table.values():
        assert r["command"].startswith("deepcredit challengers uci --paper 003")
        assert r["n"] == len(s.test) == 90 and r["positives"] == int(y[s.test].sum())
        f = r["figures"]
        assert set(f) >= {"auc", "recall", "f1", "ks", "brier"}
        assert 0 <= f["auc"]["low"] <= f["auc"]["value"] <= f["auc"]["high"] <= 1
    # The synthetic defaults bring the training clients, and only them, to the ratio 0.4.
    made = table["system"]["detail"]["actgan"]["synthetic_defaults"]
    train_y = y[s.train]
    assert made == to_generate(train_y, 0.4) > 0
    assert (train_y.sum() + made) / (train_y == 0).sum() == pytest.approx(0.4, abs=1 / len(s.train))
    assert made != to_generate(y[np.r_[s.train, s.test]], 0.4)
    differences = {r["model"] for r in rows if r["table"] == "70-30-differences"}
    assert differences == {f"{a}-vs-{b}" for a, b in COMPARED}
    assert result["runs"]["003/uci/70-30"]["config"]["actgan"]["ratio"] == 0.4


def test_the_cost_bench_scores_a_whole_history_through_network_and_trees() -> None:
    scorer = paper003_scorer(trees=20)
    assert scorer.booster.num_boosted_rounds() == 20
    static = torch.randn(1, 8)
    with torch.inference_mode():
        short, long = (torch.randn(1, n, 3) for n in (5, 500))
        assert scorer(short, static).shape == scorer(long, static).shape == (1,)
        # The whole history reaches the trees' inputs.
        assert not torch.allclose(scorer.net.fuse(short, static), scorer.net.fuse(long, static))


def test_the_modes_drawn_at_once_follow_the_mixtures_posterior_as_rdts_row_by_row() -> None:
    import pandas as pd
    from ctgan.data_transformer import DataTransformer

    from training.challengers.actgan import SubsampledTransformer

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": np.r_[rng.normal(0, 1, 3000), rng.normal(8, 0.5, 2000)],
                          "label": rng.integers(0, 2, 5000)})  # fmt: skip
    t = SubsampledTransformer(2000, 0)
    t.fit(frame, ["label"])
    info = t._column_transform_info_list[0]
    np.random.seed(1)
    fast = t._transform_continuous(info, frame[["amount"]])
    slow = DataTransformer._transform_continuous(t, info, frame[["amount"]])
    assert fast.shape == slow.shape and np.all(fast[:, 1:].sum(axis=1) == 1)
    fast_mode, slow_mode = fast[:, 1:].argmax(axis=1), slow[:, 1:].argmax(axis=1)
    same = fast_mode == slow_mode
    np.testing.assert_allclose(fast[same, 0], slow[same, 0], atol=1e-12)  # same scaling
    share = lambda m: np.bincount(m, minlength=fast.shape[1] - 1) / len(m)  # noqa: E731
    assert np.abs(share(fast_mode) - share(slow_mode)).max() < 0.03
