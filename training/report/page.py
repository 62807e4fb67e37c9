"""The report as files: ``report.json`` (every figure) and ``index.html`` with its plots (PNG
files beside it, drawn with matplotlib's Agg backend: no display needed).

Per target the page shows the models' summary table, ROC curves, the KS plot of each model,
the reliability diagram, bad rate by score band, the pairwise tests, and each model's band
table. A script on the page counts the plots the browser loaded (``data-images-loaded`` on
the body, and a line at the end), which the tests read from headless Chromium.
"""

from __future__ import annotations

import html
from pathlib import Path

from deepcredit.atomic import write_atomic, write_json
from training.core.pages import IMAGES_LOADED_SCRIPT

__all__ = ["write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.text td, .text th { text-align: left; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
"""


def write_report(report: dict, out: Path) -> list[Path]:
    """``report.json``, the plots and ``index.html`` under ``out`` (created). Returns the
    files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(out / "report.json", report)]
    sections = []
    for target, body in report["targets"].items():
        plots = _plots(target, body, out)
        written += [out / p for p in plots]
        sections.append(_section(target, body, plots, report["models"]))
    page = (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>DeepCredit report</title>"
        f"<style>{_STYLE}</style></head><body>\n<h1>Model report</h1>\n"
        + _models_table(report)
        + "".join(sections)
        + "<p class='note' id='loaded'></p>"
        + IMAGES_LOADED_SCRIPT
        + "</body></html>\n"
    )
    written.append(write_atomic(out / "index.html", page.encode()))
    return written


def _fmt(x: float | None, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _by_users(pair: dict) -> str:
    """The AUC difference's interval from the bootstrap over users, or a dash without one."""
    boot = pair.get("user_bootstrap")
    if boot is None:
        return "–"
    lo, hi = boot["auc"]["interval"]
    return f"[{lo:+.4f}, {hi:+.4f}] ({boot['bootstrap']['users']:,} users)"


def _models_table(report: dict) -> str:
    s = report["settings"]
    rows = "".join(
        f"<tr><td>{html.escape(m['name'])}</td><td>{html.escape(m['family'])}</td>"
        f"<td>{'yes' if m['can_serve_live'] else 'no (offline only)'}</td>"
        f"<td>{html.escape(m['description'])}</td><td>{html.escape(m['source'])}</td>"
        f"<td>{html.escape(m['data'])}</td></tr>"
        for m in report["models"]
    )
    return (
        "<h2>Models</h2><table class='text'><tr><th>model</th><th>family</th>"
        "<th>can serve live</th>"
        f"<th>what it is</th><th>source</th><th>data</th></tr>{rows}</table>"
        f"<p class='note'>Intervals at {s['level']:.0%} (DeLong: rows taken as independent; "
        "one user's loans are not, so the true interval is wider). Score bands: "
        f"{s['bands']} equal-count bands, 1 the riskiest. McNemar at cut-off "
        f"{s['mcnemar_cutoff']}. H-measure severity ratio {s['h_severity_ratio']}. A model "
        "can serve live only with a streaming form (one state step per event).</p>"
    )


def _section(target: str, body: dict, plots: list[str], models: list[dict]) -> str:
    head = ("<tr><th>model</th><th>rows</th><th>n</th><th>bad rate</th><th>AUC [interval]"
            "</th><th>Gini</th><th>KS</th><th>Brier</th><th>H</th><th>mean predicted</th>"
            "<th>PSI train/val → test</th></tr>")  # fmt: skip
    lines = []
    for name, m in body["models"].items():
        if "error" in m:
            lines.append(f"<tr><td>{html.escape(name)}</td><td colspan='10'>"
                         f"{html.escape(m['error'])}</td></tr>")  # fmt: skip
            continue
        st = m["stability"]
        stab = f"{st['psi']:.3f} ({st['reading']})" if st else "no train/validation rows"
        lo, hi = m["auc_interval"]
        lines.append(
            f"<tr><td>{html.escape(name)}</td><td>{m['rows']}</td><td>{m['n']:,}</td>"
            f"<td>{m['bad_rate']:.2%}</td>"
            f"<td class='auc'>{m['auc']:.3f} [{lo:.3f}, {hi:.3f}]</td><td>{m['gini']:.3f}</td>"
            f"<td>{m['ks']:.3f}</td><td>{m['brier']:.4f}</td><td>{m['h_measure']:.3f}</td>"
            f"<td>{m['calibration_in_the_large']['mean_predicted']:.4f}</td><td>{stab}</td></tr>"
        )
    pairs = "".join(
        f"<tr><td>{html.escape(p['b'])} − {html.escape(p['a'])}</td><td>{p['rows']:,}</td>"
        f"<td>{p['delong']['difference']:+.4f} [{p['delong']['low']:+.4f}, "
        f"{p['delong']['high']:+.4f}]</td><td>{p['delong']['p_value']:.3g}</td>"
        f"<td>{_by_users(p)}</td>"
        f"<td>{p['mcnemar']['only_a_right']:,} / {p['mcnemar']['only_b_right']:,}</td>"
        f"<td>{p['mcnemar']['statistic']:.2f}</td><td>{p['mcnemar']['p_value']:.3g}</td></tr>"
        for p in body["pairs"]
    )
    pair_table = (
        "<h3>Pairwise tests (rows both models predict)</h3><table><tr><th>AUC b − a</th>"
        "<th>rows</th><th>difference [interval]</th><th>p (DeLong)</th>"
        "<th>interval, bootstrap over users</th>"
        "<th>McNemar: only a right / only b right</th><th>χ²</th><th>p (McNemar)</th></tr>"
        f"{pairs}</table>" if pairs else ""
    )  # fmt: skip
    images = "".join(f"<img src='{p}' alt='{p}'>" for p in plots)
    bands = "".join(_bands_table(name, m) for name, m in body["models"].items()
                    if "bands" in m)  # fmt: skip
    return (f"<h2>Target: {html.escape(target)}</h2><table>{head}{''.join(lines)}</table>"
            f"{pair_table}{images}<h3>Score bands</h3>{bands}")  # fmt: skip


def _bands_table(name: str, m: dict) -> str:
    rows = "".join(
        f"<tr><td>{b['band']}</td><td>{b['p_low']:.4f} – {b['p_high']:.4f}</td><td>{b['n']:,}"
        f"</td><td>{b['bads']:,}</td><td>{b['bad_rate']:.2%}</td><td>{b['mean_predicted']:.2%}"
        f"</td><td>{b['captured']:.1%}</td><td>{b['population']:.1%}</td></tr>"
        for b in m["bands"]
    )
    return (f"<details><summary>{html.escape(name)}</summary><table><tr><th>band</th>"
            "<th>probability</th><th>rows</th><th>bads</th><th>bad rate</th>"
            "<th>mean predicted</th><th>bads captured (cumulative)</th>"
            f"<th>rows (cumulative)</th></tr>{rows}</table></details>")  # fmt: skip


def _plots(target: str, body: dict, out: Path) -> list[str]:
    """Draw the target's plots into ``out``; their file names."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = {n: m for n, m in body["models"].items() if "error" not in m}
    if not models:
        return []
    names = []

    def save(fig, stem: str) -> None:
        name = f"{stem}-{target}.png"
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        names.append(name)

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for n, m in models.items():
        x, y = zip(*m["roc"], strict=True)
        ax.plot(x, y, label=f"{n} (AUC {m['auc']:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="false-positive rate (goods declined)", ylabel="true-positive rate (bads caught)",
           title=f"ROC, {target}")  # fmt: skip
    ax.legend(fontsize=8)
    save(fig, "roc")

    cols = min(len(models), 3)
    rows = -(-len(models) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, (n, m) in zip(axes.flat, models.items(), strict=False):
        _, bads, goods = (np.array(c) for c in zip(*m["ks_curve"], strict=True))
        # x: the share of rows at or above each cut-off, so the riskiest come first whatever
        # the scale of the probabilities
        share = m["bad_rate"] * bads + (1 - m["bad_rate"]) * goods
        ax.plot(share, bads, label="bads")
        ax.plot(share, goods, label="goods")
        at = int(np.argmax(bads - goods))
        ax.vlines(share[at], goods[at], bads[at], color="grey", ls=":")
        ax.set(
            xlabel="share of rows at or above the cut-off",
            ylabel="cumulative share",
            title=f"{n}: KS {m['ks']:.3f} at p ≥ {m['ks_cutoff']:.3f}",
        )
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(models) :]:
        ax.axis("off")
    save(fig, "ks")

    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = 0.0
    for n, m in models.items():
        pred = [b["mean_predicted"] for b in m["bands"]]
        seen = [b["bad_rate"] for b in m["bands"]]
        top = max(top, *pred, *seen)
        ax.plot(pred, seen, marker="o", label=n)
    ax.plot([0, top], [0, top], ls=":", color="grey", label="perfect calibration")
    ax.set(xlabel="mean predicted probability (band)", ylabel="observed bad rate (band)",
           title=f"Reliability, {target}")  # fmt: skip
    ax.legend(fontsize=8)
    save(fig, "reliability")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.8 / len(models)
    for k, (n, m) in enumerate(models.items()):
        bands = [b["band"] for b in m["bands"]]
        ax.bar([b + (k - (len(models) - 1) / 2) * width for b in bands],
               [b["bad_rate"] for b in m["bands"]], width=width, label=n)  # fmt: skip
    ax.set(xlabel="score band (1 = riskiest)", ylabel="bad rate",
           title=f"Bad rate by score band, {target}")  # fmt: skip
    ax.legend(fontsize=8)
    save(fig, "bands")
    return names
