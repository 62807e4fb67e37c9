"""The UCI "default of credit card clients" table (Yeh & Lien 2009) in paper 004's input form:
per client a temporal part, six months (April..September 2005, oldest first) of three features
(repayment status, bill amount, amount paid), and a non-temporal part of eight features, with
``y`` (default payment next month). Paper 004, "Dataset pre-processing and partitioning".

The paper lists its eight non-temporal features with half the names lost ("amount of given
credit", "education — graduate school", "education — high school", "marital status", four
blanks) and says age and gender give the attention its context; the eight chosen here:
credit limit, female, education graduate school / university / high school / other (0, 4, 5
and 6: the table's undocumented codes joined to "others"), married, age.

>>> t = read_uci("tests/data/uci-first-300.csv")
>>> t.temporal.shape, t.static.shape, round(float(t.y.mean()), 3)
((300, 6, 3), (300, 8), 0.23)
>>> t.status[0].tolist()  # client 1, April..September
[-2, -2, -1, -1, 2, 2]
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "STATIC_FEATURES",
    "TEMPORAL_FEATURES",
    "UciError",
    "UciTable",
    "flat_features",
    "read_uci",
    "scaled",
]

#: The six months' columns, oldest first: (repayment status, bill amount, amount paid).
_MONTH_COLUMNS = (
    ("X11", "X17", "X23"),
    ("X10", "X16", "X22"),
    ("X9", "X15", "X21"),
    ("X8", "X14", "X20"),
    ("X7", "X13", "X19"),
    ("X6", "X12", "X18"),
)
_COLUMNS = ("ID", *(f"X{k}" for k in range(1, 24)), "Y")

TEMPORAL_FEATURES = ("status", "bill", "paid")
STATIC_FEATURES = ("credit_limit", "female", "education_graduate", "education_university",
                   "education_high_school", "education_other", "married", "age")  # fmt: skip


class UciError(ValueError):
    """The table is not in the UCI layout; the message names the line and column."""


@dataclass(frozen=True)
class UciTable:
    """The clients of the table, in file order.

    ``ids`` (N,) client ids; ``temporal`` (N, 6, 3) float64, months oldest first, features
    ``TEMPORAL_FEATURES`` (status: −2 no consumption, −1 paid in full, 0 revolving, k ≥ 1
    k months late; amounts in NT dollars); ``static`` (N, 8) float64, ``STATIC_FEATURES``
    (credit limit in NT dollars, age in years, the others 0/1); ``y`` (N,) int 0/1.
    """

    ids: np.ndarray
    temporal: np.ndarray
    static: np.ndarray
    y: np.ndarray

    @property
    def status(self) -> np.ndarray:
        """Repayment status (N, 6) int, April..September."""
        return self.temporal[:, :, 0].astype(np.int64)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> UciTable:
        """The clients at ``index`` (an integer array)."""
        return UciTable(self.ids[index], self.temporal[index], self.static[index], self.y[index])


def read_uci(path: str | Path) -> UciTable:
    """The table at ``path`` (CSV with the header ``ID, X1..X23, Y``; other columns ignored).
    Raises UciError for a missing column, a value that is not a number, a status outside
    −2..9 or a ``Y`` other than 0/1, naming the line."""
    rows: list[list[float]] = []
    ids: list[str] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise UciError(f"no column {', '.join(missing)} (the UCI layout: ID, X1..X23, Y)")
        for line, row in enumerate(reader, start=2):
            try:
                values = [float(row[c]) for c in _COLUMNS[1:]]
            except (TypeError, ValueError):
                bad = next(c for c in _COLUMNS[1:] if not _is_number(row.get(c)))
                raise UciError(f"line {line}: column {bad} is not a number: "
                               f"{row.get(bad)!r}") from None  # fmt: skip
            if not (row["ID"] or "").strip():
                raise UciError(f"line {line}: no value in column ID")
            rows.append([float(line), *values])
            ids.append(row["ID"].strip())
    if not rows:
        raise UciError(f"{path}: no clients")
    a = np.array(rows)
    x = {c: a[:, k + 1] for k, c in enumerate(_COLUMNS[1:])}
    lines = a[:, 0].astype(int)
    status = np.stack([x[s] for s, _, _ in _MONTH_COLUMNS], axis=1)
    bad_status = (status != np.round(status)) | (status < -2) | (status > 9)
    if bad_status.any():
        i = int(np.argwhere(bad_status)[0, 0])
        raise UciError(f"line {lines[i]}: a repayment status is not an integer in -2..9")
    y = x["Y"]
    if not np.isin(y, (0.0, 1.0)).all():
        raise UciError(f"line {lines[int(np.flatnonzero(~np.isin(y, (0.0, 1.0)))[0])]}: "
                       "column Y is not 0 or 1")  # fmt: skip
    temporal = np.stack(
        [status, np.stack([x[b] for _, b, _ in _MONTH_COLUMNS], axis=1),
         np.stack([x[p] for _, _, p in _MONTH_COLUMNS], axis=1)], axis=2)  # fmt: skip
    education = x["X3"]
    static = np.stack([
        x["X1"], (x["X2"] == 2).astype(float), (education == 1).astype(float),
        (education == 2).astype(float), (education == 3).astype(float),
        (~np.isin(education, (1, 2, 3))).astype(float), (x["X4"] == 1).astype(float), x["X5"],
    ], axis=1)  # fmt: skip
    return UciTable(np.array(ids), temporal, static, y.astype(np.int64))


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def flat_features(temporal: np.ndarray, static: np.ndarray) -> np.ndarray:
    """What paper 004's benchmark classifiers see ("all temporal data was flattened"): the
    temporal part (N, 6, 3) flattened month by month, oldest first, beside the non-temporal
    part (N, 8): (N, 26)."""
    return np.hstack([temporal.reshape(len(temporal), -1), static])


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def scaled(table: UciTable, fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's and the benchmarks' inputs: temporal (N, 6, 3) and static (N, 8) float32,
    amounts (bill, paid, credit limit) on a signed log scale, then every feature standardised
    with the mean and spread of the clients at ``fit`` (the training folds only). The paper
    does not say how it scaled its inputs; amounts span six orders of magnitude, so logs."""
    t = table.temporal.copy()
    t[:, :, 1:] = _signed_log(t[:, :, 1:])
    s = table.static.copy()
    s[:, 0] = np.log1p(s[:, 0])
    t_mean, t_sd = t[fit].mean(axis=(0, 1)), t[fit].std(axis=(0, 1))
    s_mean, s_sd = s[fit].mean(axis=0), s[fit].std(axis=0)
    t = (t - t_mean) / np.where(t_sd > 0, t_sd, 1.0)
    s = (s - s_mean) / np.where(s_sd > 0, s_sd, 1.0)
    return t.astype(np.float32), s.astype(np.float32)
