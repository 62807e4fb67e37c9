"""``deepcredit report build`` end to end: prediction files in, report.json and index.html out,
the page rendered by a real headless Chromium."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from deploy.cli import main
from tests.training.report.test_report import synthetic
from training.core.predictions import write_predictions


def test_the_page_shows_every_auc_and_loads_every_plot(tmp_path: Path, chromium: str) -> None:
    manifests, rows = synthetic()
    files = []
    for name, manifest in manifests.items():
        files.append(tmp_path / f"{name}.jsonl.gz")
        write_predictions(files[-1], manifest, [r for r in rows if r.model == name])
    out = tmp_path / "report"
    assert main(["report", "build", *map(str, files), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["command"].startswith("deepcredit report build")
    dom = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=5000",
         "--dump-dom", (out / "index.html").as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    body = re.search(r"<body ([^>]*)>", dom)
    assert body is not None, dom[:500]
    loaded = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body.group(1)))
    assert loaded == {"images-loaded": "4", "images": "4"}  # ROC, KS, reliability, bands
    assert "4 of 4 plots loaded" in dom
    for name, m in report["targets"]["default"]["models"].items():
        lo, hi = m["auc_interval"]
        assert f"{m['auc']:.3f} [{lo:.3f}, {hi:.3f}]" in dom, name
    assert dom.count("AUC needs both classes") == 3  # target y: one class, said per model
    assert "no (offline only)" in dom and ">yes<" in dom
