"""``results/challengers.json``: the challengers' figures, one row per (paper, data, table,
model, group), every row with the command that produced it, so each paper's systems, on the
benchmark or on UCI, add their rows to one file without touching the others'.

The file: ``{"rows": [Row, ...], "runs": {"<paper>/<data>/<part>": Run}}``. A command writes
its part (say paper 004's tables on UCI) by replacing the rows of the tables it produced and
its run, and keeping every other row (``merge_into``).

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "c.json"
>>> row = Row(paper="004", data="uci", table="table3", model="bilstm", command="deepcredit x",
...           figures={"auc": Figure(0.78, low=0.77, high=0.79)})
>>> merge_into(path, [row], Run(command="deepcredit x", part="004/uci/tables"))
>>> merge_into(path, [msgspec.structs.replace(row, paper="003")],
...            Run(command="deepcredit y", part="003/uci/tables"))
>>> sorted(r.paper for r in read_results(path).rows)
['003', '004']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from deepcredit.atomic import write_json

__all__ = ["ChallengerResults", "Figure", "Row", "Run", "merge_into", "read_results"]


class Figure(msgspec.Struct, frozen=True, omit_defaults=True):
    """One measure: ``value`` on the pooled out-of-fold (or test) rows; ``low``..``high`` its
    interval (``interval`` says which kind); ``fold_mean`` and ``fold_sd`` across folds; and
    ``paper``, what the paper reports for it where its text gives a number."""

    value: float
    low: float | None = None
    high: float | None = None
    interval: str | None = None
    fold_mean: float | None = None
    fold_sd: float | None = None
    paper: float | None = None


class Row(msgspec.Struct, frozen=True):
    """One model (on one customer group) in one table of one paper on one data set, with the
    command that produced it. ``paper_text``: what the paper says of this row in words, where
    it gives no number; ``detail``: anything else the row needs (test counts, fit times)."""

    paper: str
    data: str
    table: str
    model: str
    command: str
    group: str = "all"
    n: int = 0
    positives: int = 0
    figures: dict[str, Figure] = {}
    paper_text: str = ""
    detail: dict[str, Any] = {}


class Run(msgspec.Struct, frozen=True, omit_defaults=True):
    """One command's run: what it wrote (``part``), with what, where and how long."""

    command: str
    part: str
    written_at: str = ""
    seconds: float = 0.0
    machine: dict[str, Any] = {}
    config: dict[str, Any] = {}
    data: dict[str, Any] = {}
    notes: list[str] = []


class ChallengerResults(msgspec.Struct, omit_defaults=True):
    rows: list[Row] = []
    runs: dict[str, Run] = {}


def read_results(path: str | Path) -> ChallengerResults:
    """The file at ``path``, or an empty one when there is none. Raises msgspec.ValidationError
    when it is not in the format above."""
    path = Path(path)
    if not path.is_file():
        return ChallengerResults()
    return msgspec.json.decode(path.read_bytes(), type=ChallengerResults)


def merge_into(path: str | Path, rows: list[Row], run: Run) -> None:
    """Write ``rows`` and ``run`` into the file at ``path``: the rows of every (paper, data,
    table) among ``rows`` replace the file's rows of those tables, the others stay, in order;
    ``run`` replaces the run of its part. Written aside and renamed."""
    current = read_results(path)
    produced = {(r.paper, r.data, r.table) for r in rows}
    kept = [r for r in current.rows if (r.paper, r.data, r.table) not in produced]
    merged = ChallengerResults(kept + rows, current.runs | {run.part: run})
    write_json(Path(path), msgspec.to_builtins(merged))
