"""The model registry: promote, current, rollback, the audit log, refusals, lineage, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deploy.cli import CliError, main
from deploy.commands.models import resolve_model
from scorer.artifact import SCORER_FILE
from scorer.registry import (
    CURRENT_FILE,
    LOG_FILE,
    ModelRegistry,
    Promotion,
    RegistryError,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Three tiny model folders, each the child of the one before (built once: torch is slow)."""
    torch = pytest.importorskip("torch")
    from scorer.card import DataInfo, TargetMetrics
    from training.core.artifact import save_model
    from training.core.model import DeepCredit, ModelConfig

    root = tmp_path_factory.mktemp("models")
    versions: list[str] = []
    for i in range(3):
        torch.manual_seed(i)
        model = DeepCredit(ModelConfig(hidden_size=4, head_sizes=(4,)))
        m = TargetMetrics(auc=0.7 + i / 100, ks=0.3, brier=0.1, n=100, positives=10)
        card = save_model(root, model, None, 0, {
            "model_config": model.config.to_dict(),
            "train_config": {},
            "data": DataInfo(path=f"events-{i}.jsonl", sha256=f"{i}" * 64, users=30 + i,
                             loan_steps=1, activity_steps=1),
            "split": {"train": 20, "validation": 4, "test": 6},
            "metrics": {"validation": {"delinquent": m, "default": m},
                        "test": {"delinquent": m, "default": m}},
            "training": {},
            "parent_version": versions[-1] if versions else None,
        })  # fmt: skip
        versions.append(card.version)
    return root, versions


@pytest.fixture
def models(built: tuple[Path, list[str]], tmp_path: Path) -> tuple[ModelRegistry, list[str]]:
    """A fresh copy of the built folders per test, plus the debris a registry must ignore."""
    root = tmp_path / "models"
    shutil.copytree(built[0], root)
    (root / ".dc-x.partial").mkdir()
    (root / "notes.txt").write_text("not a model")
    (root / "empty").mkdir()
    return ModelRegistry(root), built[1]


def test_versions_are_the_model_folders_oldest_first(models) -> None:
    registry, (a, b, c) = models
    entries = registry.versions()
    assert [e.version for e in entries] == [a, b, c]
    assert [e.parent_version for e in entries] == [None, a, b]
    assert entries[1].data_users == 31 and entries[1].data_path == "events-1.jsonl"
    assert entries[2].hidden_size == 4
    assert entries[2].test_auc("delinquent") == pytest.approx(0.72)
    assert entries[0].validation["default"].positives == 10
    assert not any(e.current for e in entries)


def test_nothing_current_until_promoted(models) -> None:
    registry, _ = models
    assert registry.current() is None
    assert registry.history() == []
    with pytest.raises(RegistryError, match="no model was ever promoted"):
        registry.current_path()


def test_promote_current_history_rollback_round_trip(models) -> None:
    registry, (a, b, c) = models
    first = registry.promote(a, by="alice", reason="first model")
    assert (first.action, first.version, first.previous) == ("promote", a, None)
    registry.promote(b, by="bob", reason="better AUC", metrics={"test_auc": 0.71})
    registry.promote(c, by="ctl", reason="retrained on drift")
    assert registry.current().version == c
    assert registry.current_path() == registry.root / c
    assert [e.version for e in registry.versions() if e.current] == [c]
    pointer = json.loads((registry.root / CURRENT_FILE).read_text())
    assert pointer["version"] == c and pointer["by"] == "ctl"
    assert set(pointer) == {"version", "promoted_at", "by", "reason"}

    back = registry.rollback(by="ops", reason="bad scores")
    assert (back.action, back.version, back.previous) == ("rollback", b, c)
    assert registry.current().version == b
    assert registry.rollback(by="ops", reason="still bad").version == a  # walks further back
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback(by="ops", reason="again")
    assert registry.current().version == a

    history = registry.history()
    assert [(d.action, d.version, d.previous) for d in history] == [
        ("promote", a, None), ("promote", b, a), ("promote", c, b),
        ("rollback", b, c), ("rollback", a, b),
    ]  # fmt: skip
    assert history[1].metrics == {"test_auc": 0.71} and history[1].by == "bob"
    lines = (registry.root / LOG_FILE).read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == [d.action for d in history]
    assert not list(registry.root.glob(f".{CURRENT_FILE}.*"))  # no temporary files left


def test_promote_after_rollback_then_rollback_again(models) -> None:
    registry, (a, b, c) = models
    registry.promote(a, by="x", reason="1")
    registry.promote(b, by="x", reason="2")
    registry.rollback(by="x", reason="3")  # a
    registry.promote(c, by="x", reason="4")
    assert registry.rollback(by="x", reason="5").version == a


def test_promoting_the_current_version_again_does_not_stack(models) -> None:
    registry, (a, b, _) = models
    registry.promote(a, by="x", reason="1")
    registry.promote(b, by="x", reason="2")
    registry.promote(b, by="x", reason="retry")
    assert len(registry.history()) == 3
    assert registry.rollback(by="x", reason="back").version == a


def test_rollback_without_any_promotion(models) -> None:
    registry, _ = models
    with pytest.raises(RegistryError, match="no model is current"):
        registry.rollback(by="x", reason="y")


def test_recorded_decisions_do_not_move_current(models) -> None:
    registry, (a, b, c) = models
    registry.promote(a, by="x", reason="1")
    registry.promote(b, by="x", reason="2")
    registry.record("reject", c, by="controller", reason="AUC below champion",
                    metrics={"champion": 0.71, "challenger": 0.69})  # fmt: skip
    assert registry.current().version == b
    assert registry.history()[-1].action == "reject"
    assert registry.rollback(by="x", reason="3").version == a
    with pytest.raises(RegistryError):
        registry.record("promote", c, by="x", reason="sneaky")


@pytest.mark.parametrize("by, reason", [("", "why"), ("who", "  ")])
def test_promote_needs_who_and_why(models, by: str, reason: str) -> None:
    registry, (a, _, _) = models
    with pytest.raises(RegistryError, match="say"):
        registry.promote(a, by=by, reason=reason)
    assert registry.current() is None


def test_refuses_unknown_versions(models) -> None:
    registry, _ = models
    for version in ("dc-nope", "empty", ".dc-x.partial", "../models", "notes.txt"):
        with pytest.raises(RegistryError, match="no model"):
            registry.promote(version, by="x", reason="y")
    assert registry.history() == [] and registry.current() is None


def test_refuses_a_folder_without_scorer_weights(models) -> None:
    registry, (a, _, _) = models
    (registry.root / a / SCORER_FILE).unlink()
    with pytest.raises(RegistryError, match=SCORER_FILE):
        registry.promote(a, by="x", reason="y")
    assert registry.history() == []


def test_refuses_damaged_weights(models) -> None:
    registry, (a, _, _) = models
    (registry.root / a / SCORER_FILE).write_bytes(b"not an npz")
    with pytest.raises(RegistryError, match="does not load"):
        registry.promote(a, by="x", reason="y")


def test_refuses_weights_of_another_version(models) -> None:
    registry, (a, b, _) = models
    shutil.copytree(registry.root / a, registry.root / "dc-copy")  # weights and card say a
    with pytest.raises(RegistryError, match=f"holds model {a}, not dc-copy"):
        registry.promote("dc-copy", by="x", reason="y")
    shutil.copy(registry.root / a / SCORER_FILE, registry.root / b / SCORER_FILE)
    with pytest.raises(RegistryError, match=r"card\.json says"):  # load_scorer's own check
        registry.promote(b, by="x", reason="y")
    assert registry.history() == []


def test_rollback_refuses_a_target_that_became_unservable(models) -> None:
    registry, (a, b, _) = models
    registry.promote(a, by="x", reason="1")
    registry.promote(b, by="x", reason="2")
    (registry.root / a / SCORER_FILE).unlink()
    with pytest.raises(RegistryError, match=SCORER_FILE):
        registry.rollback(by="x", reason="3")
    assert registry.current().version == b


def test_current_pointing_to_a_removed_folder_is_an_error(models) -> None:
    registry, (a, _, _) = models
    registry.promote(a, by="x", reason="1")
    shutil.rmtree(registry.root / a)
    with pytest.raises(RegistryError, match="not a model folder any more"):
        registry.current_path()


def test_a_torn_last_log_line_is_ignored_then_dropped(models) -> None:
    registry, (a, b, _) = models
    registry.promote(a, by="x", reason="1")
    log_file = registry.root / LOG_FILE
    with open(log_file, "ab") as f:
        f.write(b'{"at": 1.0, "action": "prom')  # a crash mid-write
    assert [d.version for d in registry.history()] == [a]
    registry.promote(b, by="x", reason="2")
    assert [d.version for d in registry.history()] == [a, b]
    assert all(json.loads(line) for line in log_file.read_text().splitlines())


def test_a_corrupt_middle_log_line_is_an_error(models) -> None:
    registry, (a, _, _) = models
    registry.promote(a, by="x", reason="1")
    with open(registry.root / LOG_FILE, "ab") as f:
        f.write(b"garbage\n")
    with pytest.raises(RegistryError, match="line 2"):
        registry.history()


def test_log_lines_decode_as_promotions(models) -> None:
    import msgspec

    registry, (a, _, _) = models
    decision = registry.promote(a, by="x", reason="1", metrics={"auc": 0.7})
    line = (registry.root / LOG_FILE).read_bytes().splitlines()[0]
    assert msgspec.json.decode(line, type=Promotion) == decision


def test_current_is_replaced_atomically(models) -> None:
    """A reader polling CURRENT while promotions loop never sees a partial or missing file."""
    registry, (a, b, _) = models
    registry.promote(a, by="x", reason="start")
    path = registry.root / CURRENT_FILE
    stop = threading.Event()
    seen: set[str] = set()
    errors: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                seen.add(json.loads(path.read_bytes())["version"])
            except (OSError, ValueError) as exc:
                errors.append(repr(exc))
            reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(150):
            registry.promote(b if i % 2 == 0 else a, by="x", reason=f"flip {i}")
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert reads > 0 and seen <= {a, b}
    assert len(registry.history()) == 151


def test_lineage_follows_parents(models) -> None:
    registry, (a, b, c) = models
    assert [e.version for e in registry.lineage(c)] == [c, b, a]
    assert [e.version for e in registry.lineage(a)] == [a]
    shutil.rmtree(registry.root / a)
    assert [e.version for e in registry.lineage(c)] == [c, b]  # stops at a missing parent
    with pytest.raises(RegistryError, match="no model"):
        registry.lineage("dc-nope")


def test_lineage_survives_a_cycle(models) -> None:
    registry, (_, b, c) = models
    card_file = registry.root / b / "card.json"
    card = json.loads(card_file.read_text())
    card["parent_version"] = c
    card_file.write_text(json.dumps(card))
    assert [e.version for e in registry.lineage(c)] == [c, b]


def test_unreadable_cards_are_skipped_by_versions(models) -> None:
    registry, (a, b, c) = models
    (registry.root / a / "card.json").write_text("{")
    assert [e.version for e in registry.versions()] == [b, c]


# -- serve --model current ------------------------------------------------------------------


def test_serve_model_current_resolves_through_the_registry(models) -> None:
    registry, (a, b, _) = models
    with pytest.raises(CliError, match="no model was ever promoted"):
        resolve_model(Path("current"), registry.root)
    registry.promote(b, by="x", reason="y")
    assert resolve_model(Path("current"), registry.root) == registry.root / b
    with pytest.raises(CliError, match="no such models folder"):
        resolve_model(Path("current"), registry.root / "missing")
    given = registry.root / a
    assert resolve_model(given, registry.root) == given  # a folder passes through as given


def test_serve_parses_model_current() -> None:
    from deploy.cli import _parser

    args = _parser().parse_args(["serve", "--model", "current", "--models-dir", "m"])
    assert (str(args.model), args.models_dir) == ("current", Path("m"))
    args = _parser().parse_args(["serve", "--model", "current"])
    assert args.models_dir == Path("artifacts/models")


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def on_broker(kafka, topics, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The options that point promote and rollback at the session's broker and this test's
    topics (they announce every decision on model-events and models-audit)."""
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    return ["--bootstrap", kafka.bootstrap_servers]


@pytest.mark.kafka
def test_cli_list_promote_current_rollback_history(models, capsys, on_broker, tmp_path) -> None:
    registry, (a, b, c) = models
    d = ["--models-dir", str(registry.root)]
    assert main(["models", "list", *d]) == 0
    out = capsys.readouterr().out
    assert a in out and c in out and "no model is current" in out
    assert "0.720/0.720" in out and "30" in out

    assert main(["models", "promote", a, "--by", "alice", "--reason", "first", *d,
                 *on_broker]) == 0  # fmt: skip
    assert main(["models", "promote", b, "--by", "bob", "--reason", "better", *d,
                 *on_broker]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"{b} is now current (was {a})" in out
    assert "no posts in" in out  # no clicks on the topic: nothing to compare on

    assert main(["models", "list", *d]) == 0
    rows = {line[2:].split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]
            if line[2:].startswith("dc-")}  # fmt: skip
    assert rows[b].startswith("* ") and rows[a].startswith("  ")
    assert rows[b][2:].split()[3] == a  # its parent

    assert main(["models", "current", *d]) == 0
    out = capsys.readouterr().out
    assert f"current model {b}" in out and "by bob: better" in out
    assert f"lineage {b} <- {a}" in out

    assert main(["models", "rollback", "--by", "ops", "--reason", "bad", "--out",
                 str(tmp_path / "back"), "--flow-stopped", *d, *on_broker]) == 0  # fmt: skip
    assert f"{a} is now current (was {b})" in capsys.readouterr().out

    assert main(["models", "history", *d]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines] == ["promote", "promote", "rollback"]
    assert lines[-1].endswith("by ops: bad")


def test_cli_errors_are_one_line_and_exit_1(models, capsys, tmp_path: Path) -> None:
    registry, (a, _, _) = models
    d = ["--models-dir", str(registry.root)]
    cases = [
        (["models", "current", *d], "no model was ever promoted"),
        (["models", "promote", "dc-nope", "--by", "x", "--reason", "y", *d], "not promoted"),
        (["models", "rollback", "--by", "x", "--reason", "y", "--out", "o", *d],
         "not rolled back"),
        (["models", "list", "--models-dir", str(tmp_path / "none")], "no such models folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("deepcredit: error: ") and message in err
        assert err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:  # argparse: --by and --reason are required
        main(["models", "promote", a, *d])
    assert exc.value.code == 2


def test_cli_empty_registry(tmp_path: Path, capsys) -> None:
    d = ["--models-dir", str(tmp_path)]
    assert main(["models", "list", *d]) == 0
    assert "no models in" in capsys.readouterr().out
    assert main(["models", "history", *d]) == 0
    assert "no promotions" in capsys.readouterr().out


# -- no torch on the serving host -------------------------------------------------------------


@pytest.mark.kafka
def test_registry_and_models_cli_need_no_torch(models, on_broker) -> None:
    registry, (a, _, _) = models
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import scorer.registry\n"
        "from deploy.cli import main\n"
        f"d = ['--models-dir', {str(registry.root)!r}]\n"
        f"k = {on_broker!r}\n"
        f"assert main(['models', 'promote', {a!r}, '--by', 'x', '--reason', 'y', *d, *k]) == 0\n"
        "assert main(['models', 'list', *d]) == 0\n"
        "assert 'torch' not in {m.split('.')[0] for m, v in sys.modules.items() if v}\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert registry.current().version == a


def test_a_model_the_gate_rejected_is_promoted_only_with_an_override(models) -> None:
    registry, (a, b, c) = models
    registry.promote(a, by="x", reason="first")
    registry.record("reject", b, by="retrain-controller", reason="AUC gain below 0.005")
    assert registry.gate_rejection(b).reason == "AUC gain below 0.005"
    assert registry.gate_rejection(c) is None  # never judged: no override needed
    with pytest.raises(RegistryError, match="the retraining gate rejected"):
        registry.promote(b, by="x", reason="looks fine")
    with pytest.raises(RegistryError, match="--override"):
        registry.check(b)
    assert registry.current().version == a and len(registry.history()) == 2
    done = registry.promote(b, by="ops", reason="the gate's users are too few", override=True)
    assert done.override and registry.history()[-1] == done
    assert registry.gate_rejection(b) is None  # promoted since
    assert registry.rollback_target() == a
    with pytest.raises(RegistryError, match=f"not {c}"):
        registry.rollback(by="x", reason="y", expect=c)
    assert registry.rollback(by="x", reason="y", expect=a).version == a
