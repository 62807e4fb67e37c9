"""The dashboard's charts, drawn on the server as SVG text (matplotlib, the ``ops`` extra):
nothing for the browser to fetch or run, so the page works offline and in any browser.

matplotlib's object interface (``Figure``), not pyplot: pyplot keeps global state, and the
page may be drawn on several threads at once.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import matplotlib

matplotlib.use("Agg")  # no display: draw to memory only
import matplotlib.dates as mdates
from matplotlib.figure import Figure

from gateway.panels import DecisionSeries, Distribution, WeekOutcome

__all__ = ["decisions_svg", "distribution_svg", "outcomes_svg"]

_COLOURS = {"approve": "#2e7d32", "review": "#f9a825", "decline": "#c62828"}


def _svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to put inline in a page (no XML prolog); text stays
    text (the page's font), not glyph outlines: smaller and quicker."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _dates(ts: list[float]) -> list[datetime]:
    return [datetime.fromtimestamp(t, UTC) for t in ts]


def _empty(text: str) -> str:
    fig = Figure(figsize=(7, 1.2))
    fig.text(0.5, 0.5, text, ha="center", va="center", color="#666")
    return _svg(fig)


def decisions_svg(series: DecisionSeries) -> str:
    """Posts per period by decision (stacked bars) and the approval rate (line, right axis)."""
    if not series.buckets:
        return _empty("no scored posts yet")
    fig = Figure(figsize=(9, 3.4))
    fig.subplots_adjust(left=0.08, right=0.92, bottom=0.12, top=0.9)
    ax = fig.add_subplot()
    # Stacked steps, one artist per decision (bars would be one per period and decision).
    starts = [b.start for b in series.buckets]
    edges = _dates([*starts, starts[-1] + series.period_s])
    x = _dates(starts)
    bottom = [0] * len(x)
    for name in ("approve", "review", "decline"):
        top = [a + getattr(b, name) for a, b in zip(bottom, series.buckets, strict=True)]
        ax.stairs(top, edges, baseline=bottom, fill=True, color=_COLOURS[name], label=name)
        bottom = top
    ax.set_ylabel(f"posts per {series.period}")
    rate = ax.twinx()
    shown = [(d, 100 * b.approval_rate) for d, b in zip(x, series.buckets, strict=True)
             if b.approval_rate is not None]  # fmt: skip
    half = series.period_s / 2
    rate.plot([d + timedelta(seconds=half) for d, _ in shown], [r for _, r in shown],
              color="black", marker=".",
              linewidth=1, label="approval rate")  # fmt: skip
    rate.set_ylim(0, 105)
    rate.set_ylabel("approval rate, %")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    handles = ax.get_legend_handles_labels()
    more = rate.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="upper left",
              ncols=4)  # fmt: skip
    ax.set_title(f"Decisions by {series.period} of posting (event time, UTC)", fontsize=10)
    return _svg(fig)


def distribution_svg(dist: Distribution, drift_reference: dict[str, float]) -> str:
    """Each probability's share of posts per bin: reference against current window, with their
    means; ``drift_reference`` (signal -> value): the drift monitors' reference mean of the
    latest alert on that signal, drawn when given."""
    if not dist.signals or not dist.reference_n:
        return _empty("no scored posts of the current model yet")
    fig = Figure(figsize=(9, 3.2))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.95, wspace=0.25)
    for i, s in enumerate(dist.signals):
        ax = fig.add_subplot(1, len(dist.signals), i + 1)
        for label, counts, n, mean, colour in (
            ("reference", s.reference, dist.reference_n, s.reference_mean, "#1565c0"),
            ("current", s.current, dist.current_n, s.current_mean, "#ef6c00"),
        ):
            if not n:
                continue
            shares = [100 * c / n for c in counts]
            ax.stairs(shares, s.edges, color=colour, linewidth=1.5,
                      label=f"{label} ({n:,} posts, mean {mean:.4f})")  # fmt: skip
            ax.axvline(mean, color=colour, linestyle=":", linewidth=1)
        if s.name in drift_reference:
            ref = drift_reference[s.name]
            ax.axvline(ref, color="black", linestyle="--", linewidth=1,
                       label=f"drift monitors' reference {ref:.4f}")  # fmt: skip
        ax.set_xlabel(s.name.replace("p_", "P(") + ")")
        ax.set_ylabel("share of posts, %")
        ax.legend(fontsize=7)
    return _svg(fig)


def outcomes_svg(weeks: list[WeekOutcome]) -> str:
    """Realised delinquency and default rates among approved posts by week of posting (lines),
    over the approved posts labelled that week (bars, right axis)."""
    if not any(w.delinquent_labelled for w in weeks):
        return _empty("no approved loan labelled yet (labels come after the due dates)")
    fig = Figure(figsize=(9, 3.2))
    fig.subplots_adjust(left=0.08, right=0.92, bottom=0.12, top=0.95)
    ax = fig.add_subplot()
    x = _dates([w.week + 3.5 * 86_400 for w in weeks])  # mid-week
    count = ax.twinx()
    count.bar(x, [w.delinquent_labelled for w in weeks], width=6, color="#bbb", alpha=0.5,
              label="approved loans labelled")  # fmt: skip
    count.set_ylabel("loans labelled")
    ax.set_zorder(count.get_zorder() + 1)
    ax.patch.set_visible(False)
    for name, colour in (("delinquent", "#f57c00"), ("default", "#b71c1c")):
        pts = [(d, 100 * r) for d, w in zip(x, weeks, strict=True)
               if (r := getattr(w, f"{name}_rate")) is not None]  # fmt: skip
        ax.plot([d for d, _ in pts], [r for _, r in pts], marker="o", markersize=3,
                color=colour, label=f"realised {name} rate")  # fmt: skip
    ax.set_ylabel("among approved, %")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    handles = ax.get_legend_handles_labels()
    more = count.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="upper left")
    return _svg(fig)
