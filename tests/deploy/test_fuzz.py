"""Fuzzing: every decoder of outside bytes, fuzzed a few seconds in CI, keeps its contract; every
seed input keeps it too, deterministically; and the harness finds, saves and reports a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.cli import main
from deploy.fuzz.runner import _result, reproduce, run_target
from deploy.fuzz.targets import FUZZED, TARGETS, ContractViolation

#: Fuzzing time per target in CI: ten targets, each process also takes a second or two to
#: start and instrument, so the whole file stays under a minute.
SECONDS = 2


@pytest.mark.parametrize("name", FUZZED)
def test_every_seed_keeps_the_contract(name: str) -> None:
    # The seeds hold the inputs of the project's failing cases: each is a regression test here.
    check = TARGETS[name].build()
    for seed in TARGETS[name].seeds():
        check(seed)


@pytest.mark.parametrize("name", FUZZED)
def test_fuzzing_finds_no_crash(name: str, tmp_path: Path) -> None:
    result = run_target(name, seconds=SECONDS, crashes=tmp_path)
    assert not result.crashed, f"{result.traceback}\ninput saved as {result.crash}"
    assert result.executions > len(TARGETS[name].seeds())
    assert result.coverage is not None and result.coverage > 0


def test_a_crash_is_found_saved_with_its_traceback_and_fails_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fuzz.json"
    args = ["fuzz", "--target", "canary", "--seconds", "30", "--crashes", str(tmp_path / "c"),
            "--out", str(out)]  # fmt: skip
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "CRASH: ContractViolation: the canary: found on purpose" in printed
    assert "1 targets" in printed and "1 crashed" in printed
    report = json.loads(out.read_text())
    assert report["crashes"] == 1 and report["command"].startswith("deepcredit fuzz --target")
    (canary,) = report["targets"]
    crash = Path(canary["crash"])
    assert crash.parent == tmp_path / "c" and crash.name.startswith("canary-crash-")
    assert crash.read_bytes()[:4] == b"FUZZ"
    assert "raise ContractViolation" in Path(f"{crash}.txt").read_text()
    with pytest.raises(ContractViolation):
        reproduce("canary", crash.read_bytes())
    assert main(["fuzz", "--target", "canary", "--replay", str(crash)]) == 1


def test_a_hang_is_reported_as_a_crash_with_the_end_of_the_log(tmp_path: Path) -> None:
    unit = tmp_path / "user-state-timeout-abc"
    unit.write_bytes(b"\x95")
    log = "\n".join([
        "#1024\tpulse  cov: 12 ft: 30 corp: 4/1kb",
        "ALARM: working on the last Unit for 11 seconds",
        "==42== ERROR: libFuzzer: timeout after 11 seconds",
        f"Test unit written to {unit}",
        "stat::number_of_executed_units: 1500",
        "stat::average_exec_per_sec: 0",
    ])  # fmt: skip
    result = _result("user-state", log, 70, elapsed=15.0)
    assert result.crashed and result.crash == str(unit) and result.executions == 1500
    assert result.crash_reason == "timeout after 11 seconds" and result.exec_per_s == 100.0
    assert (result.coverage, result.features) == (12, 30)
    assert "ALARM" in Path(f"{unit}.txt").read_text()
