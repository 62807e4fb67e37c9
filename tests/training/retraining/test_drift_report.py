"""The drift report of an alert: its PSI figures against a hand computation, its page in a real
headless Chromium, and on the broker, an alert on the topic yields its report (the controller's
and ``deepcredit drift report``'s)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import msgspec
import numpy as np
import pytest

from deepcredit.records import DriftAlert, Monitor
from deepcredit.settings import KafkaSettings, Topics
from deploy.cli import main
from training.core.stability import psi_bins
from training.retraining.drift_report import DriftReport, build_report, make_report

HOUR = 3600.0
T0 = 1.5e9  # event time of the first click


def click(user: str, k: int, ts: float, activity: str, amount: float) -> dict:
    return {"event_id": f"{user}-{k}", "user_id": user, "ts": ts, "activity": activity,
            "amount": amount}  # fmt: skip


def stream(shift_at: float = 100 * HOUR) -> tuple[list[dict], DriftAlert]:
    """Two users; a reference period of 40 clicks (20 recharges, 20 withdrawals; amounts 1 to 40),
    10 clicks between the periods, then a current window of 40 clicks (10 recharges, 30
    withdrawals; 20 amounts of 1 and 20 of 6) from ``shift_at`` on, and 5 clicks after the
    alert. Gaps between a user's clicks vary. The alert names both periods."""
    rows: list[dict] = []
    ts = T0
    for k in range(40):
        rows.append(click(f"u{k % 2}", k, ts, ("recharge", "withdraw")[k % 2], float(k + 1)))
        ts += HOUR * (1 + k % 3)
    reference_to = rows[-1]["ts"]
    for k in range(10):  # between the periods: in neither
        rows.append(click(f"u{k % 2}", 100 + k, ts + k * HOUR, "transfer_in", 5000.0))
    ts = T0 + shift_at
    for k in range(40):
        rows.append(click(f"u{k % 2}", 200 + k, ts, "recharge" if k < 10 else "withdraw",
                          1.0 if k % 2 else 6.0))  # fmt: skip
        ts += 0.5 * HOUR * (1 + k % 4)
    end = rows[-1]["ts"]
    for k in range(5):  # after the alert: in neither
        rows.append(click("u0", 300 + k, end + (k + 1) * HOUR, "transfer_in", 5000.0))
    alert = DriftAlert(
        alert_id="inputs-share_withdraw-90", monitor=Monitor.INPUTS, detector="ADWIN",
        signal="share_withdraw", model_version="dc-test", event_ts=end, events_seen=90,
        detected_at=time.time(), value=0.6, detail="share_withdraw up", reference_value=0.5,
        reference_n=40, reference_from_ts=T0, reference_to_ts=reference_to,
        current_value=0.75, window_n=40, window_from_ts=T0 + shift_at, direction="up",
        severity="medium",
    )  # fmt: skip
    return rows, alert


def write_events(path: Path, rows: list[dict]) -> Path:
    path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in rows))
    return path


def test_psi_figures_match_a_hand_computation(tmp_path: Path) -> None:
    rows, alert = stream()
    report = build_report(alert, write_events(tmp_path / "clicks.jsonl", rows))
    assert report.complete and report.archived_through is None  # an events file is complete
    assert (report.reference.events, report.current.events) == (40, 40)
    by = {d.input: d for d in report.inputs}

    # activity: recharges and withdrawals half and half, then a quarter and three quarters; the
    # other eight activities are absent on both sides (floored alike: no term).
    hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert by["activity"].psi == pytest.approx(hand, abs=1e-12)
    assert by["activity"].psi == pytest.approx(0.2747, abs=1e-4)
    assert by["activity"].reading == "major shift"
    shares = {b["bin"]: (b["reference"], b["current"]) for b in by["activity"].bins}
    assert shares["recharge"] == (0.5, 0.25) and shares["withdraw"] == (0.5, 0.75)

    # amount: the reference's deciles of 1..40 hold 4 amounts each (cuts 4.9, 8.8, ...); the
    # current amounts 1 and 6 fill the first two bins half and half, the other eight are empty
    # (share floored at 1e-4).
    assert [b["bin"] for b in by["amount"].bins][:2] == ["[−∞, 4.9)", "[4.9, 8.8)"]
    hand = 2 * (0.5 - 0.1) * math.log(0.5 / 0.1) + 8 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert by["amount"].psi == pytest.approx(hand, abs=1e-12)
    assert by["amount"].psi == pytest.approx(6.8082, abs=1e-4)
    assert by["amount"].reading == "major shift"
    assert (by["amount"].reference_mean, by["amount"].current_mean) == (20.5, 3.5)
    assert sum(b["psi"] for b in by["amount"].bins) == pytest.approx(by["amount"].psi)

    # gaps: each user's clicks in order, the first of each user without one; the current
    # window's first gaps reach back to the clicks between the periods.
    last: dict[str, float] = {}
    gaps: dict[str, list[float]] = {"reference": [], "current": []}
    for r in rows:
        prev = last.get(r["user_id"])
        last[r["user_id"]] = r["ts"]
        for name, (lo, hi) in (("reference", (alert.reference_from_ts, alert.reference_to_ts)),
                               ("current", (alert.window_from_ts, alert.event_ts))):  # fmt: skip
            if prev is not None and lo <= r["ts"] <= hi:
                gaps[name].append((r["ts"] - prev) / HOUR)
    assert len(gaps["reference"]) == 38 and len(gaps["current"]) == 40
    hand_bins = psi_bins(np.array(gaps["reference"]), np.array(gaps["current"]))
    assert by["gap_hours"].psi == pytest.approx(hand_bins.psi)
    assert [d.input for d in report.inputs] == sorted(by, key=lambda i: -by[i].psi)


def test_the_page_renders_in_headless_chromium(tmp_path: Path, chromium: str) -> None:
    rows, alert = stream()
    report, page, figures = make_report(alert, write_events(tmp_path / "c.jsonl", rows),
                                        tmp_path / "reports")  # fmt: skip
    assert (page.name, figures.name) == (f"{alert.alert_id}.html", f"{alert.alert_id}.json")
    assert msgspec.json.decode(figures.read_bytes(), type=DriftReport) == report
    dom = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    body = re.search(r"<body ([^>]*)>", dom)
    assert body is not None, dom[:500]
    loaded = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body.group(1)))
    assert loaded == {"images-loaded": "3", "images": "3"}  # one plot per input
    assert "3 of 3 plots loaded" in dom
    fields = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", dom))
    assert fields["alert"] == alert.alert_id and fields["severity"] == "medium"
    assert fields["direction"] == "up" and fields["change"] == "+0.25 (+50%)"
    summary = re.search(r"<table id=\"summary\">(.*?)</table>", dom, re.S)
    assert summary is not None
    psis = re.findall(r"<a href=\"#(\w+)\">\w+</a></td><td class=\"psi\">([\d.]+)</td>",
                      summary.group(1))  # fmt: skip
    assert psis == [(d.input, f"{d.psi:.4f}") for d in report.inputs]  # sorted, as computed
    assert 'id="incomplete"' not in dom


@pytest.mark.kafka
def test_an_alert_on_the_topic_yields_its_report(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    from confluent_kafka import Producer

    from deepcredit.codec import encode
    from deepcredit.kafka_io import produce, read_to_end

    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    rows, alert = stream()
    # a second alert whose window lies beyond what is archived yet
    late_rows, late = stream(shift_at=1000 * HOUR)
    late = msgspec.structs.replace(late, alert_id="inputs-share_withdraw-900")
    later = [r for r in late_rows if r["ts"] >= late.window_from_ts]
    producer = Producer(kafka.client_config())
    for r in rows:
        produce(producer, topics.clicks, msgspec.json.encode(r), r["user_id"].encode())
    for record in (b"not an alert", encode(alert), encode(late)):
        produce(producer, topics.drift_alerts, record, b"inputs")
    assert producer.flush(30) == 0
    broker = ["--bootstrap", kafka.bootstrap_servers]
    archive = tmp_path / "archive"
    assert main(["archive", "--folder", str(archive), "--until-end", *broker]) == 0

    models = tmp_path / "models"  # five alerts decide: these two only get their reports
    assert main(["controller", "--archive", str(archive), "--until-end", "--alerts-needed", "5",
                 "--models-dir", str(models), "--group", f"g-{topics.clicks}", "--quiet",
                 *broker]) == 0  # fmt: skip
    reports = models / "drift-reports"
    made = json.loads((reports / "inputs-share_withdraw-90.json").read_text())
    expected = build_report(alert, write_events(tmp_path / "c.jsonl", rows))
    assert made["alert"]["alert_id"] == alert.alert_id and made["complete"]
    assert [(d["input"], d["psi"]) for d in made["inputs"]] == [
        (d.input, pytest.approx(d.psi)) for d in expected.inputs]  # fmt: skip
    assert (reports / "inputs-share_withdraw-90.html").is_file()
    # the late alert waits for the archive
    assert not (reports / "inputs-share_withdraw-900.html").exists()
    assert (reports / "pending" / "inputs-share_withdraw-900.json").is_file()

    # By hand: the latest alert by default, and by id once the archive holds its window.
    out = tmp_path / "by-hand"
    args = ["drift", "report", "--archive", str(archive), "--out", str(out), *broker]
    junk = read_to_end(kafka, topics.drift_alerts)[0]
    assert main([*args, "--offset", f"{junk.partition()}:{junk.offset()}"]) == 1
    assert main([*args, "--alert", alert.alert_id]) == 0
    assert "activity   PSI 0.2747  major shift" in capsys.readouterr().out
    by_hand = json.loads((out / "inputs-share_withdraw-90.json").read_text())
    assert by_hand["inputs"] == made["inputs"]
    for r in later:
        produce(producer, topics.clicks, msgspec.json.encode(r), r["user_id"].encode())
    assert producer.flush(30) == 0
    assert main(["archive", "--folder", str(archive), "--until-end", *broker]) == 0
    assert main([*args, "--out", str(reports), "--pending"]) == 0
    assert "1 pending drift reports made" in capsys.readouterr().out
    assert (reports / "inputs-share_withdraw-900.html").is_file()
    assert not (reports / "pending" / "inputs-share_withdraw-900.json").exists()
    assert main(args) == 0  # --latest: the one detected last
    assert "alert inputs-share_withdraw-900:" in capsys.readouterr().out
