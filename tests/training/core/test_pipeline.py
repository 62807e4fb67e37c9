"""``deepcredit train`` and ``deepcredit evaluate`` end to end on a tiny benchmark."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from deploy.cli import main
from scorer.artifact import ArtifactError, load_scorer
from training.core.artifact import load_model
from training.core.export import export_scorer


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "events.jsonl.gz"
    args = ["generate", "--users", "80", "--seed", "4", "--horizon-days", "500"]
    assert main([*args, "--out", str(path), "--quiet"]) == 0
    return path


def train(events: Path, out: Path, capsys: pytest.CaptureFixture) -> Path:
    args = ["train", "--events", str(events), "--out-dir", str(out), "--hidden", "8",
            "--heads", "16-8", "--epochs", "2", "--batch-users", "16", "--seed", "1",
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    [model_dir] = list(out.iterdir())
    assert f"saved {model_dir}" in capsys.readouterr().out
    return model_dir


def test_train_saves_an_artifact_that_evaluate_reproduces(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model_dir = train(events, tmp_path / "a", capsys)
    card = load_model(model_dir)[1]
    assert card.version == model_dir.name and card.data.users == 80
    assert card.model_config["head_sizes"] == [16, 8]
    assert load_model(model_dir)[0].config.head_sizes == (16, 8)
    assert set(card.metrics) == {"validation", "test"}
    assert card.training["epochs_run"] >= 1 and card.training["peak_rss_mib"] > 0
    assert sum(card.split.values()) == 80
    # Early stopping read the Brier skill of every epoch; the reliability table of each test
    # target holds every labelled test post, and its bad rates add up to the positives.
    assert all("val_brier_skill" in row for row in card.training["history"])
    assert card.reliability is not None
    assert set(card.reliability["test"]) == set(card.metrics["test"])
    for target, bands in card.reliability["test"].items():
        m = card.metrics["test"][target]
        assert sum(b["n"] for b in bands) == m.n
        assert sum(b["n"] * b["bad_rate"] for b in bands) == pytest.approx(m.positives)
        assert [b["band"] for b in bands] == list(range(1, len(bands) + 1))
        assert all(a["p_low"] >= b["p_high"] for a, b in itertools.pairwise(bands))

    # The torch-free scorer file holds the same weights under the same version.
    served = load_scorer(model_dir)
    expected = export_scorer(load_model(model_dir)[0], card.version)
    assert served.version == card.version
    assert served.to_bytes() == expected.to_bytes()

    assert main(["evaluate", "--model", str(model_dir), "--events", str(events)]) == 0
    evaluated = capsys.readouterr().out
    for target, m in card.metrics["test"].items():
        assert f"{target:<10} AUC {m.auc:.4f}  KS {m.ks:.4f}  Brier {m.brier:.4f}" in evaluated

    # Same seed, same data: the same model (the cached sequences are reused).
    again_dir = train(events, tmp_path / "b", capsys)
    assert load_model(again_dir)[1].metrics == card.metrics


def test_train_on_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--events", "/no/such.jsonl"]) == 1
    assert "no such events file" in capsys.readouterr().err


def test_a_folder_without_the_scorer_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "card.json").write_text('{"version": "x"}')
    with pytest.raises(ArtifactError, match=r"scorer\.npz"):
        load_scorer(tmp_path)
    with pytest.raises(ArtifactError, match="no such model folder"):
        load_scorer(tmp_path / "missing")


def test_the_same_weights_saved_twice_in_one_second_get_two_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deterministic retraining on the same data writes the same weights: it must not collide
    with the first (it did, as 'Directory not empty', when both fell in one second)."""
    from scorer.card import DataInfo
    from training.core import artifact
    from training.core.model import DeepCredit, ModelConfig

    monkeypatch.setattr(artifact.time, "time", lambda: 1.8e9)
    model = DeepCredit(ModelConfig(hidden_size=4))
    fields = {"model_config": model.config.to_dict(), "train_config": {},
              "data": DataInfo("x", "0" * 64, 0, 0, 0), "split": {}, "metrics": {},
              "training": {}}  # fmt: skip
    first = artifact.save_model(tmp_path, model, None, 0, fields)
    second = artifact.save_model(tmp_path, model, None, 0, fields)
    assert second.version == f"{first.version}-2"
    assert load_scorer(tmp_path / second.version).version == second.version
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.version, second.version]


def _write_events(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _user(u: int, *, funded: bool, late_days: float | None) -> list[dict]:
    """One user's post (and borrow, and repay ``late_days`` after the due date) of a 30-day
    loan, a day apart per user."""
    t0, uid = 1.6e9 + u * 86_400.0, f"u{u:03d}"
    post = {"event_id": f"{uid}-p", "user_id": uid, "ts": t0, "activity": "post",
            "amount": 100.0, "loan_id": f"{uid}-l", "rate": 0.1, "term_days": 30}  # fmt: skip
    events = [post]
    if funded:
        events.append({**post, "event_id": f"{uid}-b", "ts": t0 + 60, "activity": "borrow"})
        if late_days is not None:
            events.append({**post, "event_id": f"{uid}-r", "activity": "repay",
                           "ts": t0 + (30 + late_days) * 86_400.0})  # fmt: skip
    return [{k: v for k, v in e.items() if k not in ("rate", "term_days")
             or e["activity"] == "post"} for e in events]  # fmt: skip


@pytest.mark.parametrize(
    ("funded", "late_days", "why"),
    [(False, None, "no labelled posts"), (True, -1.0, "one class only")],
    ids=["no-funded-posts", "one-class"],
)
def test_training_on_degenerate_data_stops_with_a_clear_error_and_saves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, funded: bool, late_days: float | None, why: str
) -> None:
    events = _write_events(tmp_path / "e.jsonl", [e for u in range(200)
                                                  for e in _user(u, funded=funded,
                                                                 late_days=late_days)])  # fmt: skip
    out = tmp_path / "models"
    assert main(["train", "--events", str(events), "--out-dir", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"cannot train on {events}" in err and why in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_a_card_with_an_undefined_metric_is_strict_json_and_reads_back(tmp_path: Path) -> None:
    import math

    from scorer.card import DataInfo, ModelCard, TargetMetrics, encode_card, read_card

    nan = TargetMetrics(auc=math.nan, ks=math.nan, brier=0.01, n=10, positives=0)
    card = ModelCard(version="v", created_at=0.0, model_config={}, train_config={},
                     data=DataInfo("-", "-", 0, 0, 0), split={}, metrics={"test": {"default": nan}},
                     training={"loss": math.inf})  # fmt: skip
    (tmp_path / "card.json").write_bytes(encode_card(card))
    text = (tmp_path / "card.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    back = read_card(tmp_path).metrics["test"]["default"]
    assert math.isnan(back.auc) and back.brier == 0.01 and back.positives == 0


def test_tune_searches_on_validation_users_and_writes_every_trial(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from training.core.tune import HEAD_SIZES, SPACE

    out = tmp_path / "tune.json"
    args = ["tune", "--events", str(events), "--trials", "2", "--epochs", "1", "--seed", "3",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert f"written to {out}" in capsys.readouterr().out
    assert len(result["trials"]) == 2 and result["command"].startswith("deepcredit tune")
    done = [t for t in result["trials"] if t["state"] == "complete"]
    assert done and result["best"]["value"] == max(t["value"] for t in done)
    # The search starts from the defaults of 'deepcredit train'.
    assert result["trials"][0]["params"] == {"hidden_size": 32, "head_sizes": "256-128-64",
                                             "lr": 1e-3, "batch_users": 32}  # fmt: skip
    for t in result["trials"]:
        assert set(t["params"]) == set(SPACE)
        assert t["params"]["hidden_size"] in SPACE["hidden_size"][1]
        assert 3e-4 <= t["params"]["lr"] <= 3e-3
    best = result["best"]
    assert best["model_config"]["hidden_size"] == best["params"]["hidden_size"]
    assert tuple(best["model_config"]["head_sizes"]) == HEAD_SIZES[best["params"]["head_sizes"]]
    assert best["train_config"]["stop_on"] == "brier_skill"
    assert sum(result["split"].values()) == 80


def test_tune_commands_sharing_a_journal_search_one_study(events: Path, tmp_path: Path) -> None:
    journal = tmp_path / "study.journal"
    common = ["tune", "--events", str(events), "--trials", "1", "--epochs", "1", "--quiet",
              "--journal", str(journal)]  # fmt: skip
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert main([*common, "--sampler-seed", "0", "--out", str(first)]) == 0
    assert main([*common, "--sampler-seed", "1", "--out", str(second)]) == 0
    earlier = json.loads(first.read_text())["trials"]
    both = json.loads(second.read_text())["trials"]
    # The second search holds the first's trial and one of its own, numbered after it.
    assert [t["number"] for t in earlier] == [0] and [t["number"] for t in both] == [0, 1]
    assert both[0]["params"] == earlier[0]["params"]  # the defaults, enqueued once
    assert both[1]["params"] != both[0]["params"]  # a point its sampler drew
    assert all(t["seconds"] is not None for t in both)
    # A search of other settings does not join the study; a shared journal needs its own seed.
    assert main([*common, "--sampler-seed", "2", "--patience", "9", "--out", str(second)]) != 0
    assert main([*common, "--out", str(second)]) != 0
    assert [t["number"] for t in json.loads(second.read_text())["trials"]] == [0, 1]


def test_a_point_outside_the_search_space_is_refused() -> None:
    from training.core.config import ModelConfig, TrainConfig
    from training.core.tune import configs_of, point_of

    model, train = ModelConfig(), TrainConfig()
    assert configs_of(point_of(model, train), model, train) == (model, train)
    with pytest.raises(ValueError, match="hidden_size 12"):
        point_of(ModelConfig(hidden_size=12), train)


def test_heads_refuses_what_is_not_layer_widths(capsys: pytest.CaptureFixture) -> None:
    for bad in ("", "64-", "0-8", "wide"):
        with pytest.raises(SystemExit):
            main(["train", "--events", "x.jsonl", "--heads", bad])
        assert "argument --heads" in capsys.readouterr().err
