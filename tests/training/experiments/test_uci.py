"""``deepcredit uci`` on the first 300 clients of the real table: every model judged on the
same held-out users' September bills, whose labels are the table's Y."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from deploy.cli import main
from training.core.dataset import TEST_SALT, split_users
from training.core.train import TrainConfig

TABLE = Path(__file__).parents[2] / "data" / "uci-first-300.csv"


def test_every_model_is_judged_on_the_held_out_september_bills(tmp_path: Path) -> None:
    out = tmp_path / "uci.json"
    args = ["uci", "--table", str(TABLE), "--work", str(tmp_path / "work"), "--out", str(out),
            "--hidden", "8", "--epochs", "1", "--draws", "50", "--quiet"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())

    # The users compared: the test users (by the same hash as training) with a September bill.
    with TABLE.open() as f:
        rows = list(csv.DictReader(f))
    users = np.array([f"c{r['ID']}" for r in rows])
    test = split_users(users, TrainConfig().test_fraction, salt=TEST_SALT)
    billed = np.array([float(r["X12"]) > 0 for r in rows])
    y = np.array([int(r["Y"]) for r in rows])
    assert result["users"]["test"] == int(test.sum())
    assert result["users"]["compared"] == int((test & billed).sum())
    assert result["users"]["positives"] == int(y[test & billed].sum())
    assert result["head"] == "delinquent"

    names = {"deepcredit", "gbdt_events", "lr_events", "gbdt_raw_columns", "lr_raw_columns"}
    assert set(result["metrics"]) == names
    assert set(result["deepcredit_minus"]) == names - {"deepcredit"}
    for name, d in result["deepcredit_minus"].items():
        for metric in ("auc", "ks", "brier"):
            mine, theirs = result["metrics"]["deepcredit"][metric], result["metrics"][name][metric]
            assert d[metric]["difference"] == pytest.approx(mine - theirs)
            lo, hi = d[metric]["interval"]
            assert lo <= hi
        assert d["bootstrap"]["draws"] + d["bootstrap"]["skipped"] == 50
    assert result["command"].startswith("deepcredit uci")
