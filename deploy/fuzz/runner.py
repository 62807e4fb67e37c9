"""Run fuzz targets, each in a process of its own, and report what each found.

For each target: write its seeds into its corpus folder, start ``python -m deploy.fuzz NAME``
for ``seconds`` (or ``runs`` inputs), then read libFuzzer's final statistics and, on a crash,
where it saved the input and the traceback it printed. The traceback is saved beside the input
(``<input>.txt``), so a crash can be replayed with ``reproduce``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from deploy.fuzz.targets import TARGETS

__all__ = ["FuzzResult", "machine", "reproduce", "run_target"]

#: Longer than this on one input is a hang, reported as a crash.
INPUT_TIMEOUT_S = 10
#: What a fuzzing process may take beyond its fuzzing time: starting, instrumenting, loading
#: the corpus, writing a crash. Past it the process is killed and the target counted as hung.
_GRACE_S = 120

#: Where a fuzzing process keeps its temporary files: the seed and manifest targets write every
#: input to a file, in memory when the machine has a memory-backed folder.
_SCRATCH_BASE = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None

_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)
_COVERAGE = re.compile(r"\bcov: (\d+) ft: (\d+)")
_WRITTEN = re.compile(r"Test unit written to (\S+)")
# atheris prints the exception, then its traceback, then a blank line.
_PY_CRASH = re.compile(r"=== Uncaught Python exception: ===\n(.*?)(?:\n\s*\n|\n==\d+==|\Z)",
                       re.DOTALL)  # fmt: skip
_ERROR = re.compile(r"==\d+== ERROR: libFuzzer: (.*)")


@dataclass
class FuzzResult:
    """What one target's fuzzing process did. ``coverage``/``features``: libFuzzer's edge and
    feature counts at the end (None when it printed none); ``corpus_added``: inputs kept for
    new coverage; ``crash``: the saved input, ``crash_reason`` its first line of explanation."""

    target: str
    seconds: float  # wall time of the process, starting and instrumenting included
    executions: int
    exec_per_s: float
    coverage: int | None
    features: int | None
    corpus_added: int
    crashed: bool
    crash: str | None = None
    crash_reason: str | None = None
    traceback: str | None = None
    returncode: int = 0

    def as_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        cov = "?" if self.coverage is None else f"{self.coverage}"
        line = (f"{self.target:<17} {self.executions:>11,} execs {self.exec_per_s:>9,.0f}/s  "
                f"cov {cov:>4} (+{self.corpus_added} inputs)  ")  # fmt: skip
        if not self.crashed:
            return line + "no crash"
        return line + f"CRASH: {self.crash_reason}\n{'':<18}input {self.crash}"


def run_target(
    name: str,
    *,
    seconds: int,
    runs: int | None = None,
    corpus: Path | None = None,
    crashes: Path,
) -> FuzzResult:
    """Fuzz target ``name`` for ``seconds`` (and at most ``runs`` inputs when given) in a new
    process. ``corpus``: the target's corpus folder, kept and grown (default: a temporary one);
    a crashing input goes to ``crashes``/``<name>-crash-<sha1>`` with its traceback beside it.

    KeyError for an unknown target; the target's own failures are in the result, never raised.
    """
    target = TARGETS[name]
    crashes.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"deepcredit-fuzz-{name}-", dir=_SCRATCH_BASE))
    corpus = corpus if corpus is not None else scratch / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds():
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    flags = [f"-max_total_time={seconds}", f"-max_len={target.max_len}",
             f"-timeout={INPUT_TIMEOUT_S}", f"-artifact_prefix={crashes}/{name}-",
             "-print_final_stats=1"]  # fmt: skip
    if runs is not None:
        flags.append(f"-runs={runs}")
    root = Path(__file__).resolve().parents[2]  # the folder holding the deploy package
    env = {
        **os.environ,
        "TMPDIR": str(scratch),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "deploy.fuzz", name, *flags, str(corpus)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace", env=env, timeout=seconds + _GRACE_S)  # fmt: skip
        output, returncode = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + "\n==0== ERROR: libFuzzer: hung\n"
        returncode = -9
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started
    return _result(name, output, returncode, elapsed)


def _text(b: bytes | str | None) -> str:
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return b or ""


def _result(name: str, output: str, returncode: int, elapsed: float) -> FuzzResult:
    """libFuzzer's report of one process, read."""
    stats = {k: int(v) for k, v in _STAT.findall(output)}
    coverage = _COVERAGE.findall(output)
    executions = stats.get("number_of_executed_units", 0)
    result = FuzzResult(
        target=name, seconds=round(elapsed, 1), executions=executions,
        # libFuzzer's rate is whole executions per whole second: 0 for a run under a second.
        exec_per_s=float(stats.get("average_exec_per_sec") or round(executions / elapsed, 1)),
        coverage=int(coverage[-1][0]) if coverage else None,
        features=int(coverage[-1][1]) if coverage else None,
        corpus_added=stats.get("new_units_added", 0), crashed=returncode != 0,
        returncode=returncode,
    )  # fmt: skip
    if not result.crashed:
        return result
    written = _WRITTEN.search(output)
    py = _PY_CRASH.search(output)
    error = _ERROR.search(output)
    if py:
        result.traceback = py.group(1).strip()
        result.crash_reason = result.traceback.splitlines()[0]
    else:
        # Not a Python exception (a hang, memory, the process dying): keep the end of the log.
        result.traceback = "\n".join(output.splitlines()[-40:])
        result.crash_reason = error.group(1) if error else f"exit status {returncode}"
    if written:
        result.crash = written.group(1)
        Path(result.crash + ".txt").write_text(result.traceback + "\n")
    return result


def reproduce(name: str, data: bytes) -> None:
    """Run target ``name`` once on ``data`` in this process: returns when the contract holds,
    raises what the fuzzing process caught otherwise (to replay a saved crash)."""
    TARGETS[name].build()(data)


def machine() -> dict:
    """What the figures were measured on: fuzzing speed is per core, and the load says whether
    the cores were shared."""
    from importlib.metadata import version

    return {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 1),
            "platform": platform.platform(), "python": platform.python_version(),
            "atheris": version("atheris"), "msgspec": version("msgspec")}  # fmt: skip
