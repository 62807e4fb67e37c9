"""Paper 004 on the UCI table: the input form read right, its measures and groups, the BiLSTM's
missing incremental form, and ``deepcredit challengers uci|cost`` end to end on the 300-client
sample (two folds of two epochs: the full run is the command's, not the test's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy.cli import main
from training.challengers.bilstm import BiLstmScore
from training.challengers.paper004 import classification_figures, customer_groups
from training.challengers.results import Row, Run, merge_into
from training.challengers.uci import UciError, read_uci, scaled
from training.experiments.challenger_cost import reencode_cost

SAMPLE = Path(__file__).parents[2] / "data" / "uci-first-300.csv"


def test_read_uci_gives_the_months_oldest_first_and_the_eight_static_features() -> None:
    t = read_uci(SAMPLE)
    # Client 2: X6..X11 = -1 2 0 0 0 2 (September..April), bills X12..X17, paid X18..X23.
    assert t.ids[1] == "2"
    assert t.temporal[1, :, 0].tolist() == [2, 0, 0, 0, 2, -1]
    assert t.temporal[1, -1, 1:].tolist() == [2682, 0]
    assert t.temporal[1, 0, 1:].tolist() == [3261, 2000]
    # Client 1: credit 20000, female, university, married, age 24.
    assert t.static[0].tolist() == [20000, 1, 0, 1, 0, 0, 1, 24]
    temporal, static = scaled(t, np.arange(200))
    assert temporal.dtype == np.float32
    assert np.allclose(temporal[:200].mean(axis=(0, 1)), 0, atol=1e-5)
    assert np.allclose(static[:200, 0].std(), 1, atol=1e-4)


def test_read_uci_names_what_is_wrong(tmp_path: Path) -> None:
    lines = SAMPLE.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], lines[1].replace(",2,2,-1,", ",12,2,-1,", 1)]) + "\n")
    with pytest.raises(UciError, match="line 2: a repayment status"):
        read_uci(bad)
    bad.write_text(lines[0].replace(",X5,", ",X99,") + "\n" + lines[1] + "\n")
    with pytest.raises(UciError, match="no column X5"):
        read_uci(bad)


def test_best_accuracy_is_the_best_cutoff_and_the_rest_match_their_definitions() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(0.3 * y + rng.normal(0.35, 0.2, 300), 0, 1), 2)  # ties on purpose
    f = classification_figures(y, p)
    brute = max(float(((p >= c) == (y == 1)).mean()) for c in [*np.unique(p), 2.0])
    assert f["best_accuracy"] == pytest.approx(brute)
    flagged = p >= 0.5
    assert f["sensitivity"] == pytest.approx(flagged[y == 1].mean())
    assert f["balanced_accuracy"] == pytest.approx((f["sensitivity"] + f["specificity"]) / 2)


def test_customer_groups_nest_as_the_paper_and_partition_as_the_issue() -> None:
    g = customer_groups(read_uci(SAMPLE))
    assert not (g["missed_last_month"] & ~g["missed_last_2_months"]).any()
    assert not (g["three_or_more_consecutive"] & ~g["two_consecutive"]).any()
    parts = ["no_missed_payment", "one_missed", "two_missed", "three_or_more_missed"]
    assert (sum(g[k].astype(int) for k in parts) == 1).all()
    assert g["missed_last_month"].sum() > 0 and g["two_missed"].sum() > 0


def test_the_bilstm_has_no_incremental_form() -> None:
    """One event appended changes the outputs of every earlier month, in both directions of
    the second layer (its forward direction reads the first layer's backward states): a post
    must re-encode the history."""
    torch.manual_seed(0)
    m = BiLstmScore(3, 8, hidden=4).eval()
    history = torch.randn(1, 6, 3)
    longer = torch.cat([history, torch.randn(1, 1, 3)], dim=1)
    with torch.inference_mode():
        before, _ = m.lstm(history)
        after, _ = m.lstm(longer)
    for month in range(6):
        for half in (slice(0, 4), slice(4, 8)):
            assert not torch.allclose(before[0, month, half], after[0, month, half], atol=1e-5)


def test_challengers_uci_writes_every_table_with_its_command_and_keeps_other_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "challengers.json"
    merge_into(
        out,
        [
            Row(
                paper="003",
                data="uci",
                table="comparison",
                model="actgan",
                command="deepcredit challengers uci --paper 003",
            )
        ],
        Run(command="deepcredit challengers uci --paper 003", part="003/uci/tables"),
    )
    args = ["challengers", "uci", "--paper", "004", "--table", str(SAMPLE), "--bilstm-epochs",
            "2", "--folds", "2", "--bootstrap", "10", "--cache", str(tmp_path / "c")]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["paper"] for r in rows].count("003") == 1
    table3 = {r["model"]: r for r in rows if r["table"] == "table3"}
    assert sorted(table3) == sorted(["bilstm", "gb", "bnn", "rf", "svm", "logr"])
    for r in rows:
        assert r["command"].startswith("deepcredit challengers uci --paper")
    for r in table3.values():
        f = r["figures"]
        assert set(f) >= {"accuracy", "balanced_accuracy", "auc", "ks", "brier", "h_measure"}
        assert f["auc"]["low"] <= f["auc"]["value"] <= f["auc"]["high"]
        assert 0 < f["auc"]["value"] < 1 and f["auc"]["fold_sd"] > 0
        assert len(r["detail"]["fit"]) == 2
    # Two epochs on 150 clients say nothing of the BiLSTM; the status columns carry signal.
    assert table3["logr"]["figures"]["auc"]["value"] > 0.6
    assert table3["bilstm"]["figures"]["specificity"]["paper"] == 0.95
    groups = {r["group"] for r in rows if r["table"] == "table2"}
    assert {"all", "missed_last_month", "no_missed_payment"} <= groups
    table4 = {r["model"] for r in rows if r["table"] == "table4"}
    assert table4 == {"gb", "bnn", "rf", "svm", "logr"}
    assert result["runs"]["004/uci/tables"]["data"]["clients"] == 300
    # Each model's folds were kept: fitting again reads them.
    capsys.readouterr()
    assert main([*args, "--models", "gb", "--fit-only", "--only-folds", "2"]) == 0
    assert "fold 2/2 gb: read from" in capsys.readouterr().out


def test_the_reencode_cost_is_measured_per_history_length() -> None:
    # The figures themselves belong in results/ (deepcredit challengers cost), not in a timed
    # test on a shared machine: here, one row per length, each with its paired runs.
    r = reencode_cost(lengths=(5, 500), step_users=5, repeats=2, calls=1)
    assert [row["history_events"] for row in r["rows"]] == [5, 500]
    for row in r["rows"]:
        assert row["reencode_us_per_post"] > 0 and row["step_us_per_post"] > 0
        assert len(row["reencode_over_step_runs"]) == len(row["reencode_us_runs"]) == 2
