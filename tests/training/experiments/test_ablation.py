"""``deepcredit ablate`` writes the Table-1-shaped result the README quotes."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from deploy.cli import main
from training.experiments.ablation import LABELS, PAPER_TABLE_1, ROWS


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small benchmark with both classes of both targets among its test users."""
    path = tmp_path_factory.mktemp("ablate") / "events.jsonl"
    assert main(["generate", "--users", "60", "--seed", "2", "--horizon-days", "400",
                 "--out", str(path), "--quiet"]) == 0  # fmt: skip
    return path


def test_every_row_has_a_label_in_the_table() -> None:
    assert set(ROWS) | {"oracle", "oracle-at-post"} == set(LABELS)


def test_the_oracle_rows_at_settlement_and_as_of_the_post(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    events, oracle = tmp_path / "e.jsonl", tmp_path / "oracle.jsonl.gz"
    assert main(["generate", "--users", "60", "--seed", "2", "--horizon-days", "400", "--out",
                 str(events), "--oracle", str(oracle), "--oracle-paths", "2",
                 "--quiet"]) == 0  # fmt: skip
    out = tmp_path / "a.json"
    assert main(["ablate", "--events", str(events), "--oracle", str(oracle), "--rows", "lr",
                 "--out", str(out), "--predictions", str(tmp_path / "p")]) == 0  # fmt: skip
    rows = {r["model"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["lr", "oracle", "oracle-at-post"]
    for name in ("oracle", "oracle-at-post"):
        assert rows[name]["n_delinquent"] == rows["lr"]["n_delinquent"] > 0
        assert 0.5 < rows[name]["auc_delinquent"] <= 1.0
    assert rows["oracle"]["auc_delinquent"] != rows["oracle-at-post"]["auc_delinquent"]
    assert (tmp_path / "p" / "oracle-at-post.jsonl.gz").is_file()


def test_ablate_writes_rows_beside_the_paper(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "ablation.json"
    args = ["ablate", "--events", str(events), "--out", str(out), "--rows", "tlstm-repay",
            "deep-only", "reencode", "lr", "--hidden", "8", "--epochs", "1"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"benchmark", "rows", "complete", "config", "command", "machine"}
    assert result["complete"] is True
    assert result["benchmark"]["users"] == 60 and result["machine"]["cpus"] >= 1
    assert result["command"].startswith("deepcredit ablate --events")
    assert [r["model"] for r in result["rows"]] == ["tlstm-repay", "deep-only", "reencode", "lr"]
    for row in result["rows"]:
        for key in ("auc_delinquent", "auc_default", "ks_delinquent", "brier_default"):
            assert 0.0 <= row[key] <= 1.0
    assert result["rows"][0]["paper_auc_default"] == PAPER_TABLE_1["tlstm-repay"][1]
    assert [r.get("epochs") for r in result["rows"]] == [1, 1, 1, None]  # neural rows only
    for row in result["rows"][:3]:  # the epoch early stopping chose, and what it read
        assert row["chosen_on_validation"]["best_epoch"] == 1
        assert row["chosen_on_validation"]["val_brier_skill"] is not None
    assert all(r["peak_rss_mib"] > 10 for r in result["rows"])
    printed = capsys.readouterr().out
    assert "| TLSTM (repay) |" in printed and f"({PAPER_TABLE_1['tlstm-repay'][0]:.3f})" in printed


def test_rows_run_apart_join_with_differences_to_deepcredit(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.core.predictions import read_predictions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    preds = tmp_path / "predictions"
    common = ["ablate", "--events", str(events), "--hidden", "8", "--heads", "16",
              "--epochs", "1", "--predictions", str(preds)]  # fmt: skip
    a, b, joined = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "joined.json"
    assert main([*common, "--rows", "tlstm-repay", "reencode", "lr", "--out", str(a)]) == 0
    assert json.loads(a.read_text())["deepcredit_minus"] == {}  # no deepcredit row yet
    # The re-encode predicts window by window in an order of its own: no file for it.
    assert sorted(p.name for p in preds.iterdir()) == ["lr.jsonl.gz", "tlstm-repay.jsonl.gz"]
    assert main([*common, "--rows", "deepcredit", "--out", str(b)]) == 0
    assert main([*common, "--merge", str(a), str(b), "--out", str(joined)]) == 0
    result = json.loads(joined.read_text())
    rows = {r["model"]: r for r in result["rows"]}
    assert result["config"]["head_sizes"] == [16]
    assert list(rows) == ["tlstm-repay", "reencode", "lr", "deepcredit"]
    assert [m["rows"] for m in result["merged_from"]] == [["tlstm-repay", "reencode", "lr"],
                                                          ["deepcredit"]]  # fmt: skip
    assert all(m["command"].startswith("deepcredit ablate") for m in result["merged_from"])
    minus = result["deepcredit_minus"]
    assert sorted(minus) == ["lr", "tlstm-repay"]
    for name, by_target in minus.items():
        for target in ("delinquent", "default"):
            auc = by_target[target]["auc"]
            # The same test posts as the rows' own figures: the difference is theirs.
            assert auc["difference"] == pytest.approx(
                rows["deepcredit"][f"auc_{target}"] - rows[name][f"auc_{target}"], abs=2e-4)
            lo, hi = auc["interval"]
            assert lo <= auc["difference"] <= hi and lo < hi
    manifests, predictions = read_predictions(sorted(preds.glob("*.jsonl.gz")))
    assert manifests["deepcredit"].streaming and not manifests["lr"].streaming
    posts = {(p.event_id, p.target) for p in predictions if p.model == "deepcredit"}
    assert posts == {(p.event_id, p.target) for p in predictions if p.model == "lr"}
    # A prediction file of other data or settings is refused, not paired.
    from training.core.predictions import PredictionsError, write_predictions
    from training.experiments.ablation import differences

    lr_manifest = manifests["lr"]
    lr_rows = [p for p in predictions if p.model == "lr"]
    write_predictions(preds / "lr.jsonl.gz", msgspec.structs.replace(lr_manifest, data="x"),
                      lr_rows)  # fmt: skip
    with pytest.raises(PredictionsError, match="other data or settings"):
        differences(preds)
    assert set(differences(preds, models=["deepcredit", "tlstm-repay"])) == {"tlstm-repay"}
    # An unfinished run is refused, not joined.
    unfinished = json.loads(a.read_text()) | {"complete": False}
    a.write_text(json.dumps(unfinished))
    assert main([*common, "--merge", str(a), str(b), "--out", str(joined)]) != 0
    assert "unfinished" in capsys.readouterr().err
    a.write_text(json.dumps(unfinished | {"complete": True}))
    # A result fitted with other settings is refused, not joined.
    other = json.loads(b.read_text())
    other["config"]["hidden_size"] = 4
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(other))
    assert main([*common, "--merge", str(a), str(odd), "--out", str(joined)]) != 0
    assert "other settings" in capsys.readouterr().err
