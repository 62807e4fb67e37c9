"""The statement-table adapter on the real UCI table's first rows: the September bill's
delinquency label, judged by the same loan rules training uses, is the table's ``Y`` for every
client with a September bill; bad tables are refused with the line and column."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from deepcredit.codec import decode_click
from deepcredit.jsonlines import read_lines
from deepcredit.loans import loan_outcomes
from deploy.cli import main
from training.benchmark.statements import (
    MONTHS,
    horizon_ts,
    last_bill_id,
    read_table,
)

#: The real table's header and first 300 clients (tests/data/README.md).
UCI_300 = Path(__file__).parents[2] / "data" / "uci-first-300.csv"


@pytest.fixture
def table() -> Path:
    return UCI_300


def test_the_september_bills_delinquency_is_y(table: Path, tmp_path: Path) -> None:
    out = tmp_path / "uci.jsonl"
    assert main(["statements", "--table", str(table), "--out", str(out)]) == 0
    events = [decode_click(line) for line in read_lines(str(out))]
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(events))
    assert max(e.ts for e in events) <= horizon_ts()
    outcomes = loan_outcomes(events, as_of=max(e.ts for e in events))
    clients = list(read_table(table))
    with_bill = [c for c in clients if c.bill[-1] > 0]
    assert len(with_bill) > 200 and {c.y for c in with_bill} == {0, 1}
    for c in with_bill:
        o = outcomes[last_bill_id(c.client_id)]
        assert o.delinquent == bool(c.y), c
        # Not repaid: the table ends long before it could be 120 days past due.
        assert o.default is (None if c.y else False)
    # Every positive bill is a funded loan of its amount; a month with status k >= 1 after it
    # makes the bill delinquent.
    for c in clients:
        for k, (year, month, *_) in enumerate(MONTHS[:-1]):
            loan = f"c{c.client_id}-{year}{month:02d}"
            assert (loan in outcomes) == (c.bill[k] > 0)
            if c.bill[k] > 0:
                assert outcomes[loan].delinquent == (c.status[k + 1] >= 1)


def test_a_table_not_in_the_layout_is_refused_with_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = ["ID", "Y", *(c for m in MONTHS for c in m[2:])]
    good = {c: "0" for c in header} | {"ID": "1"}
    for change, message in [
        ({"X8": "abc"}, "line 3: column X8 is not a number: 'abc'"),
        ({"X6": "12"}, "line 3: column X6 (repayment status) is 12, not an integer in -2..9"),
        ({"Y": "2"}, "line 3: column Y is 2, not 0 or 1"),
        ({"ID": "1"}, "line 3: client 1 again"),
    ]:
        path = tmp_path / "bad.csv"
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, header)
            writer.writeheader()
            writer.writerows([good, good | {"ID": "2"} | change])
        assert main(["statements", "--table", str(path), "--out", str(tmp_path / "o.jsonl")]) == 1
        assert message in capsys.readouterr().err
    path.write_text("ID,X6,Y\n1,0,0\n")
    assert main(["statements", "--table", str(path), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "no column X7, X8, X9, X10, X11, X12" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
