"""Monthly credit-card statement tables (the UCI "default of credit card clients" layout) turned
into the event contract, so real data goes through the same training, evaluation and live flow
as the synthetic benchmark.

The table (Yeh & Lien 2009; seed papers 003 and 004): one row per client with, for the six
months April..September 2005, the repayment status (``X11``..``X6``: −2 no consumption, −1 paid
in full, 0 revolving credit used, k ≥ 1 payment delayed k months), the bill amount
(``X17``..``X12``) and the amount paid (``X23``..``X18``), and ``Y``: whether the client
defaulted on the payment due in October, i.e. on the September bill.

The mapping (the table says what happened each month, not when; these are the choices):

- a client is a user ``c<ID>``;
- each month's bill with an amount above zero is a loan: a **post** on the 5th of its month
  (00:00 UTC) of the bill amount for ``TERM_DAYS`` days (``rate`` 0: the table has no rate),
  **funded** (borrow) a minute later;
- the bill of month m is repaid with the delay the **next** month's status gives: status ≤ 0, a
  **repay** of the next month's paid amount one day before it is due; status k ≥ 1, a
  **miss_payment** of the bill half a day after it falls due (past due, so that labels judged
  at the last event see it late; at noon, so it never ties with a statement at midnight) and
  the repay k·30 days after it is due;
- the September bill's outcome is ``Y``: ``Y`` = 0, repaid (its amount: the paid amount is not
  in the table) one day before due; ``Y`` = 1, a miss_payment half a day after due and no
  repay;
- the data ends at ``horizon_ts``: one day after the September bill is due. Events after it (the
  repays of bills more than a month late) are not written: they were not known then, and their
  loans are judged unrepaid at the horizon, as a lender would have seen them.

So the September bill's *delinquency* label (repaid after due, or not repaid) is ``Y``: the
delinquency head answers ``Y``. Its *default* label (more than 120 days late) is censored at the
horizon, as are those of every bill less than 120 days past due: the table is too short for the
default head. Bills of zero or less (nothing owed, or a credit balance) and the credit limit and
demographic columns have no event: they are not activities.

>>> row = {"ID": "7", "Y": "1", **{f"X{k}": "0" for k in range(1, 24)}}
>>> row |= {"X6": "2", "X12": "500", "X13": "400", "X19": "400"}  # Sept: status 2, bill 500
>>> [(e.activity.value, e.loan_id) for e in client_events(read_row(row, line=2))]
... # doctest: +NORMALIZE_WHITESPACE
[('post', 'c7-200508'), ('borrow', 'c7-200508'), ('miss_payment', 'c7-200508'),
 ('post', 'c7-200509'), ('borrow', 'c7-200509'), ('miss_payment', 'c7-200509')]
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np

from deepcredit.atomic import atomic_writer
from deepcredit.codec import encode
from deepcredit.events import DAY_S, Activity, ClickEvent

__all__ = [
    "MONTHS",
    "RAW_COLUMNS",
    "TERM_DAYS",
    "Client",
    "StatementTableError",
    "client_events",
    "horizon_ts",
    "last_bill_id",
    "read_raw_columns",
    "read_row",
    "read_table",
    "write_events",
]

#: The statement months of the table, oldest first, with their columns: (year, month, repayment
#: status, bill amount, amount paid).
MONTHS = (
    (2005, 4, "X11", "X17", "X23"),
    (2005, 5, "X10", "X16", "X22"),
    (2005, 6, "X9", "X15", "X21"),
    (2005, 7, "X8", "X14", "X20"),
    (2005, 8, "X7", "X13", "X19"),
    (2005, 9, "X6", "X12", "X18"),
)
#: A card bill is due a month after its statement.
TERM_DAYS = 30
_STATEMENT_DAY = 5
_FUNDED_AFTER_S = 60.0
_MISSED_AFTER_S = DAY_S / 2
_COLUMNS = ("ID", "Y", *(c for m in MONTHS for c in m[2:]))
#: Every explanatory column of the table as it is: credit limit, sex, education, marriage, age
#: (``X1``..``X5``), then status, bills and payments (``X6``..``X23``).
RAW_COLUMNS = tuple(f"X{i}" for i in range(1, 24))


class StatementTableError(ValueError):
    """The table is not in the statement layout; the message names the line and column."""


class Client(msgspec.Struct, frozen=True):
    """One row: the client's id, per month (oldest first) the repayment status, bill amount and
    amount paid (NT dollars), and ``y`` (1: defaulted on the September bill)."""

    client_id: str
    status: tuple[int, ...]
    bill: tuple[float, ...]
    paid: tuple[float, ...]
    y: int


def _statement_ts(year: int, month: int) -> float:
    return datetime(year, month, _STATEMENT_DAY, tzinfo=UTC).timestamp()


def horizon_ts() -> float:
    """The end of the data (epoch s): one day after the September bill falls due."""
    year, month = MONTHS[-1][:2]
    return _statement_ts(year, month) + (TERM_DAYS + 1) * DAY_S


def last_bill_id(client_id: str) -> str:
    """The loan id of a client's September bill: the loan whose delinquency label is ``Y``."""
    year, month = MONTHS[-1][:2]
    return f"c{client_id}-{year}{month:02d}"


def read_row(row: dict[str, str], *, line: int) -> Client:
    """A table row (column name → text) as a ``Client``. Raises StatementTableError naming the
    line and column of a missing or malformed value (status an integer in −2..9, amounts
    numbers, bills may be negative, payments not, ``Y`` 0 or 1)."""

    def value(column: str) -> float:
        text = row.get(column)
        if text is None or not text.strip():
            raise StatementTableError(f"line {line}: no value in column {column}")
        try:
            return float(text)
        except ValueError:
            raise StatementTableError(f"line {line}: column {column} is not a number: "
                                      f"{text!r}") from None  # fmt: skip

    status = []
    for _, _, s, _, _ in MONTHS:
        v = value(s)
        if v != int(v) or not -2 <= v <= 9:
            raise StatementTableError(f"line {line}: column {s} (repayment status) is {v:g}, "
                                      "not an integer in -2..9")  # fmt: skip
        status.append(int(v))
    paid = tuple(value(m[4]) for m in MONTHS)
    if any(p < 0 for p in paid):
        raise StatementTableError(f"line {line}: a paid amount is negative")
    y = value("Y")
    if y not in (0.0, 1.0):
        raise StatementTableError(f"line {line}: column Y is {y:g}, not 0 or 1")
    client_id = row.get("ID", "").strip()
    if not client_id:
        raise StatementTableError(f"line {line}: no value in column ID")
    return Client(client_id, tuple(status), tuple(value(m[3]) for m in MONTHS), paid, int(y))


def read_table(path: str | Path) -> Iterator[Client]:
    """The clients of a statement table (CSV with a header naming the columns ``ID``, ``X6``..
    ``X23`` and ``Y``; others, such as ``X1``..``X5``, are ignored). Raises StatementTableError
    for a missing column, a malformed value or a repeated client id."""
    seen: set[str] = set()
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = sorted((c for c in _COLUMNS if c not in (reader.fieldnames or ())),
                         key=lambda c: (len(c), c))  # fmt: skip
        if missing:
            raise StatementTableError(f"no column {', '.join(missing)} (the statement layout: "
                                      "ID, X6..X23, Y)")  # fmt: skip
        for line, row in enumerate(reader, start=2):
            client = read_row(row, line=line)
            if client.client_id in seen:
                raise StatementTableError(f"line {line}: client {client.client_id} again")
            seen.add(client.client_id)
            yield client


def client_events(client: Client) -> list[ClickEvent]:
    """One client's events up to ``horizon_ts()``, in time order (the mapping above)."""
    user, end = f"c{client.client_id}", horizon_ts()
    events: list[ClickEvent] = []

    def add(ts: float, activity: Activity, amount: float, loan_id: str, kind: str,
            **loan: object) -> None:  # fmt: skip
        if ts <= end:
            events.append(ClickEvent(event_id=f"{loan_id}-{kind}", user_id=user, ts=ts,
                                     activity=activity, amount=amount, loan_id=loan_id,
                                     **loan))  # type: ignore[arg-type]  # fmt: skip

    last = len(MONTHS) - 1
    for k, (year, month, *_) in enumerate(MONTHS):
        bill = client.bill[k]
        if bill <= 0:
            continue
        loan_id, post = f"c{client.client_id}-{year}{month:02d}", _statement_ts(year, month)
        due = post + TERM_DAYS * DAY_S
        add(post, Activity.POST, bill, loan_id, "post", rate=0.0, term_days=TERM_DAYS)
        add(post + _FUNDED_AFTER_S, Activity.BORROW, bill, loan_id, "borrow")
        if k < last:
            months_late, amount = max(client.status[k + 1], 0), client.paid[k + 1]
        else:
            months_late, amount = (0 if client.y == 0 else None), bill
        if months_late == 0:
            add(due - DAY_S, Activity.REPAY, amount, loan_id, "repay")
            continue
        add(due + _MISSED_AFTER_S, Activity.MISS_PAYMENT, bill, loan_id, "miss")
        if months_late is not None:
            add(due + months_late * 30 * DAY_S, Activity.REPAY, amount, loan_id, "repay")
    events.sort(key=lambda e: e.ts)
    return events


def write_events(clients: Iterable[Client], path: str | Path) -> tuple[int, int]:
    """Write every client's events to ``path`` (JSON lines in the event contract, gzip when it
    ends in ``.gz``), in global time order as ``deepcredit generate`` writes them (ties: table
    order). Written aside and renamed. Returns (clients, events)."""
    streams, n_clients = [], 0
    for client in clients:
        streams.append(client_events(client))
        n_clients += 1
    n_events = 0
    path = Path(path)
    with atomic_writer(path, gzip=path.name.endswith(".gz")) as out:
        for event in heapq.merge(*streams, key=lambda e: e.ts):
            out.write(encode(event) + b"\n")
            n_events += 1
    return n_clients, n_events


def read_raw_columns(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The table as a model on its raw columns sees it: the user id of each client (``c<ID>``,
    as in the events), the ``RAW_COLUMNS`` (N, 23) as float64 and ``Y`` (N,) as int. Raises
    StatementTableError for a missing column or a value that is not a number."""
    users, rows, ys = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("ID", *RAW_COLUMNS, "Y") if c not in (reader.fieldnames or ())]
        if missing:
            raise StatementTableError(f"no column {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                rows.append([float(row[c]) for c in RAW_COLUMNS])
                ys.append(int(float(row["Y"])))
            except (TypeError, ValueError):
                raise StatementTableError(f"line {line}: a raw column or Y is not a "
                                          "number") from None  # fmt: skip
            users.append(f"c{row['ID'].strip()}")
    return users, np.array(rows, dtype=np.float64).reshape(-1, len(RAW_COLUMNS)), np.array(ys)
