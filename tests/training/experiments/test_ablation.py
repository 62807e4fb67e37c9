"""``deepcredit ablate`` writes the Table-1-shaped result the README quotes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.cli import main
from training.experiments.ablation import PAPER_TABLE_1


def test_ablate_writes_rows_beside_the_paper(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    events = tmp_path / "events.jsonl"
    assert main(["generate", "--users", "60", "--seed", "2", "--horizon-days", "400",
                 "--out", str(events), "--quiet"]) == 0  # fmt: skip
    out = tmp_path / "ablation.json"
    args = ["ablate", "--events", str(events), "--out", str(out), "--rows", "tlstm-repay",
            "reencode", "lr", "--hidden", "8", "--epochs", "1"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"benchmark", "rows", "complete", "config", "command", "machine"}
    assert result["complete"] is True
    assert result["benchmark"]["users"] == 60 and result["machine"]["cpus"] >= 1
    assert result["command"].startswith("deepcredit ablate --events")
    assert [r["model"] for r in result["rows"]] == ["tlstm-repay", "reencode", "lr"]
    for row in result["rows"]:
        for key in ("auc_delinquent", "auc_default", "ks_delinquent", "brier_default"):
            assert 0.0 <= row[key] <= 1.0
    assert result["rows"][0]["paper_auc_default"] == PAPER_TABLE_1["tlstm-repay"][1]
    assert [r.get("epochs") for r in result["rows"]] == [1, 1, None]  # neural rows only
    assert all(r["peak_rss_mib"] > 10 for r in result["rows"])
    printed = capsys.readouterr().out
    assert "| TLSTM (repay) |" in printed and f"({PAPER_TABLE_1['tlstm-repay'][0]:.3f})" in printed
