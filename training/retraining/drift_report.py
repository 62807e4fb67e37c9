"""A drift report per alert: for each input the input monitor watches, its distribution over the
alert's reference period against its current window, with the population stability index (PSI),
as a page a person opens (``<alert-id>.html``) and the figures as JSON (``<alert-id>.json``).

Where the distributions come from. The monitors keep only a count and a sum per signal (their
state in the flow's recovery snapshots), not the observations, so a distribution cannot come
from them. An alert carries its reference period (``reference_from_ts`` to ``reference_to_ts``:
the monitor's warm-up, the first days the model served) and its current window
(``window_from_ts`` to ``event_ts``) in event time, and the click archive
(``deepcredit.archive``) holds the clicks of both: the report reads them again from there.
The inputs, as ``scorer.monitors.InputMonitor`` sees them from the valid clicks:

- ``activity``: which of the ten activities an event is (the monitor's ten ``share_*``
  signals), one categorical input, PSI over the categories;
- ``amount``: every event's amount (the monitor's ``log_amount``);
- ``gap_hours``: hours since the same user's previous event (``log_gap_hours``; a user's first
  event has none). Each user's previous event may lie before a period, so the archive is read
  from its start up to the current window's end, in one pass; clicks outside both periods are
  read for their user and time only.

PSI of a continuous input is over the reference's deciles (``training.core.stability``):
monotone transforms (the monitor's logs and scaling) leave it unchanged. Inputs are sorted by
PSI, largest first, and read as usual: below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 major.

Why our own statistics and not Evidently (README, "Why these dependencies"): PSI and the page
are a few dozen lines over what the project has (``stability``; the plots are SVG drawn here),
while Evidently would add 51 packages to the training install (pandas, pyarrow, statsmodels,
plotly, a web framework, nltk), send usage telemetry unless ``DO_NOT_TRACK`` is set, and bin
PSI its own way, so the same drift would read differently here and in ``deepcredit report``.

The retraining controller calls ``report_alert`` for every alert it reads: it never raises,
and a report that cannot be made is logged. An archive that has not yet reached the alert's
window (the archiver cuts a segment hourly by default) gives a report of what it holds, marked
incomplete (``complete``), or none when it holds nothing of the window; the alert is then kept
in ``pending/`` and its report made again once the archive has caught up, at the controller's
next alert or by ``deepcredit drift report --pending`` (``remake_pending``).
"""

from __future__ import annotations

import base64
import html
import logging
import math
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import numpy as np

from deepcredit.atomic import write_atomic
from deepcredit.codec import decode_click
from deepcredit.events import Activity, ClickEvent
from deepcredit.records import DriftAlert
from training.core.pages import IMAGES_LOADED_SCRIPT
from training.core.stability import psi_bins, psi_reading, psi_shares
from training.retraining.config import REPORTS_DIR

__all__ = [
    "REPORTS_DIR",
    "DriftReport",
    "DriftReportError",
    "InputDrift",
    "Period",
    "build_report",
    "compare_categorical",
    "compare_continuous",
    "input_samples",
    "make_report",
    "remake_pending",
    "report_alert",
    "write_report",
]

log = logging.getLogger(__name__)

#: Bins of the overlaid histograms (equal widths in log(1 + x)); PSI has its own (deciles).
_PLOT_BINS = 30
_ACTIVITIES = tuple(a.value for a in Activity)
_UNITS = {"activity": "", "amount": "amount", "gap_hours": "hours"}


class DriftReportError(ValueError):
    """No report can be made for this alert; the message says why."""


class _ArchiveBehind(DriftReportError):
    """The archive has not reached a period of the alert yet: later, it may."""


_PENDING = "pending"  # the alerts whose windows the archive has not reached yet


class Period(msgspec.Struct, frozen=True, kw_only=True):
    """An event-time span read from the archive (Unix seconds, both ends included) and the
    valid clicks in it."""

    from_ts: float
    to_ts: float
    events: int


class InputDrift(msgspec.Struct, frozen=True, kw_only=True):
    """One input's reference against its current window.

    ``bins``: the PSI bins, each ``{"bin", "reference", "current", "psi"}`` (shares, and the
    bin's term of the index): the categories of ``activity``; for a continuous input the
    reference's deciles, ``bin`` reading ``"[lo, hi)"``. ``reference_mean``/``current_mean``
    and the medians: None for the categorical input.
    """

    input: str
    kind: str  # "categorical" or "continuous"
    psi: float
    reading: str  # stable, moderate shift, major shift
    reference_n: int
    current_n: int
    reference_mean: float | None = None
    current_mean: float | None = None
    reference_median: float | None = None
    current_median: float | None = None
    bins: list[dict] = msgspec.field(default_factory=list)


class DriftReport(msgspec.Struct, frozen=True, kw_only=True):
    """The figures of one alert's report (its JSON file), inputs sorted by PSI, largest first.

    ``complete``: the source held every event up to the window's end (``archived_through``,
    the archive's event-time clock, None for an events file).
    """

    alert: DriftAlert
    source: str
    reference: Period
    current: Period
    archived_through: float | None
    complete: bool
    inputs: list[InputDrift]
    made_at: float  # wall clock


class _Seen(msgspec.Struct):
    """A click outside both periods: only its user and time count (for the next gap)."""

    user_id: str
    ts: float


_seen = msgspec.json.Decoder(_Seen)


# -- the figures (pure) -------------------------------------------------------------------------


def input_samples(
    events: Iterable[ClickEvent | _Seen], spans: dict[str, tuple[float, float]]
) -> dict[str, dict[str, list]]:
    """Per span name (``from_ts``, ``to_ts``: both included) the values of each input in it:
    ``{"activity": [str], "amount": [float], "gap_hours": [float]}``. ``events``: every event
    from before the earliest span on, each user's in time order (a user's gap needs their
    previous event, wherever it lies), as the input monitor takes them; outside every span
    anything with a ``user_id`` and a ``ts`` will do.

    >>> def e(u, ts, a="post", x=10.0):
    ...     return ClickEvent(event_id=f"{u}{ts}", user_id=u, ts=ts, activity=Activity(a), amount=x)
    >>> s = input_samples([e("u", 0.0), e("v", 3600.0, "repay", 5.0), e("u", 7200.0)],
    ...                   {"now": (3600.0, 7200.0)})
    >>> s["now"]["activity"], s["now"]["amount"], s["now"]["gap_hours"]
    (['repay', 'post'], [5.0, 10.0], [2.0])
    """
    out: dict[str, dict[str, list]] = {
        name: {"activity": [], "amount": [], "gap_hours": []} for name in spans
    }
    last: dict[str, float] = {}
    for event in events:
        ts = event.ts
        previous = last.get(event.user_id)
        if previous is None or ts > previous:
            last[event.user_id] = ts
        for name, (lo, hi) in spans.items():
            if lo <= ts <= hi:
                sample = out[name]
                sample["activity"].append(event.activity.value)
                sample["amount"].append(event.amount)
                if previous is not None:
                    sample["gap_hours"].append(max(ts - previous, 0.0) / 3600.0)
    return out


def compare_categorical(name: str, reference: list[str], current: list[str],
                        categories: tuple[str, ...] = _ACTIVITIES) -> InputDrift:  # fmt: skip
    """PSI of a categorical input over ``categories``. Raises DriftReportError when a sample is
    empty."""
    if not reference or not current:
        raise DriftReportError(f"no {name} in the {'current window' if reference else 'reference'}")
    e = np.array([reference.count(c) for c in categories], float) / len(reference)
    a = np.array([current.count(c) for c in categories], float) / len(current)
    value = psi_shares(e, a)
    terms = [psi_shares(e[k : k + 1], a[k : k + 1]) for k in range(len(categories))]
    bins = [{"bin": c, "reference": float(e[k]), "current": float(a[k]), "psi": terms[k]}
            for k, c in enumerate(categories)]  # fmt: skip
    return InputDrift(input=name, kind="categorical", psi=value, reading=psi_reading(value),
                      reference_n=len(reference), current_n=len(current), bins=bins)  # fmt: skip


def compare_continuous(name: str, reference: list[float], current: list[float]) -> InputDrift:
    """PSI of a continuous input over the reference's deciles. Raises DriftReportError when a
    sample is empty."""
    if not reference or not current:
        raise DriftReportError(f"no {name} in the {'current window' if reference else 'reference'}")
    ref, cur = np.asarray(reference, float), np.asarray(current, float)
    b = psi_bins(ref, cur)
    edges = [-math.inf, *b.cuts.tolist(), math.inf]
    bins = [{"bin": f"[{_num(lo)}, {_num(hi)})", "reference": float(e), "current": float(a),
             "psi": float(t)}
            for lo, hi, e, a, t in zip(edges[:-1], edges[1:], b.expected, b.actual,
                                       b.contributions, strict=True)]  # fmt: skip
    return InputDrift(input=name, kind="continuous", psi=b.psi, reading=psi_reading(b.psi),
                      reference_n=len(ref), current_n=len(cur),
                      reference_mean=float(ref.mean()), current_mean=float(cur.mean()),
                      reference_median=float(np.median(ref)),
                      current_median=float(np.median(cur)), bins=bins)  # fmt: skip


def _num(x: float) -> str:
    return "−∞" if x == -math.inf else "∞" if x == math.inf else f"{x:.4g}"


# -- reading the archive --------------------------------------------------------------------------


def _events(source: Path, end_ts: float,
            spans: Iterable[tuple[float, float]]) -> Iterator[ClickEvent | _Seen]:  # fmt: skip
    """The clicks of ``source`` (a click archive folder or an events file) with event time <=
    ``end_ts``, each user's in order (one user's clicks are in one partition): in one of
    ``spans``, the valid ones decoded whole (``decode_click``, as the flow does); outside,
    only their user and time, which is all a gap needs, read at a third of the cost."""
    from deepcredit.archive import MANIFEST_FILE, read_window
    from deepcredit.codec import exceeds_depth
    from deepcredit.events import canonical_id
    from deepcredit.jsonlines import read_lines

    if source.is_dir():
        if not (source / MANIFEST_FILE).is_file():
            raise DriftReportError(f"{source} is not a click archive (no {MANIFEST_FILE})")
        lines: Iterable[bytes] = read_window(source, end_ts=math.nextafter(end_ts, math.inf))
    elif source.is_file():
        lines = read_lines(str(source))
    else:
        raise DriftReportError(f"no such click archive or events file: {source}")
    spans = list(spans)
    for line in lines:
        if exceeds_depth(line):
            continue
        try:
            seen = _seen.decode(line)
            user = canonical_id(seen.user_id)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            continue  # a dead letter: the monitors never see it
        if seen.ts > end_ts:
            continue
        if any(lo <= seen.ts <= hi for lo, hi in spans):
            event = decode_click(line)
            if isinstance(event, ClickEvent):
                yield event
        else:
            yield _Seen(user, seen.ts)


#: The reference samples of the latest few (source, reference period): the controller reads
#: several alerts of one monitor, all with the same reference period, and decoding its clicks
#: is most of a report's cost. Valid while the clicks up to the period's end are the same
#: (``_signature``): the archive only grows, and a segment holding earlier event times changes
#: the key.
_REFERENCES: dict[tuple, dict[str, list]] = {}
_CACHED = 4


def _signature(source: Path, to_ts: float) -> tuple:
    """What the clicks of ``source`` up to event time ``to_ts`` are: an archive's segments
    that may hold some (name and line count), an events file's size and change time."""
    from deepcredit.archive import read_segments

    if source.is_dir():
        return tuple((s.file, s.lines) for s in read_segments(source)
                     if s.min_ts is not None and s.min_ts <= to_ts)  # fmt: skip
    stat = source.stat()
    return (stat.st_size, stat.st_mtime_ns)


def build_report(alert: DriftAlert, source: Path) -> DriftReport:
    """The report of ``alert`` from the clicks of ``source`` (a click archive folder or an
    events file). Raises DriftReportError when the alert has no reference period (written
    before alerts carried one) or a period holds no clicks there (the archive started later,
    or has not reached the window yet), ArchiveError on a broken archive."""
    return _build(alert, source)[0]


def _build(alert: DriftAlert, source: Path) -> tuple[DriftReport, dict[str, dict[str, list]]]:
    """``build_report`` and the samples behind it (``input_samples``: for the plots)."""
    from deepcredit.archive import archived_through

    source = Path(source)
    if alert.reference_from_ts is None or alert.reference_to_ts is None:
        raise DriftReportError(f"alert {alert.alert_id} carries no reference period (an alert "
                               "written before alerts had one): no report")  # fmt: skip
    window_from = alert.window_from_ts if alert.window_from_ts is not None else alert.event_ts
    spans = {"reference": (alert.reference_from_ts, alert.reference_to_ts),
             "current": (window_from, alert.event_ts)}  # fmt: skip
    end = max(alert.event_ts, alert.reference_to_ts)
    key = (str(source.resolve()), *spans["reference"], _signature(source, spans["reference"][1]))
    cached = _REFERENCES.get(key)
    read = {"current": spans["current"]} if cached is not None else spans
    samples = input_samples(_events(source, end, read.values()), read)
    if cached is None:
        while len(_REFERENCES) >= _CACHED:
            del _REFERENCES[next(iter(_REFERENCES))]
        _REFERENCES[key] = samples["reference"]
    samples["reference"] = _REFERENCES[key]
    through = archived_through(source) if source.is_dir() else None
    periods = {}
    for name, (lo, hi) in spans.items():
        n = len(samples[name]["activity"])
        if n == 0:
            behind = source.is_dir() and (through is None or through < hi)  # it may come
            raise (_ArchiveBehind if behind else DriftReportError)(
                f"{source} holds no clicks of alert {alert.alert_id}'s {name} period "
                f"({_when(lo)} to {_when(hi)}; archived through "
                f"{'-' if through is None else _when(through)})")  # fmt: skip
        periods[name] = Period(from_ts=lo, to_ts=hi, events=n)
    ref, cur = samples["reference"], samples["current"]
    inputs = [compare_categorical("activity", ref["activity"], cur["activity"]),
              compare_continuous("amount", ref["amount"], cur["amount"])]  # fmt: skip
    if ref["gap_hours"] and cur["gap_hours"]:
        inputs.append(compare_continuous("gap_hours", ref["gap_hours"], cur["gap_hours"]))
    inputs.sort(key=lambda d: -d.psi)
    report = DriftReport(alert=alert, source=str(source), reference=periods["reference"],
                         current=periods["current"], archived_through=through,
                         complete=through is None or through >= alert.event_ts, inputs=inputs,
                         made_at=time.time())  # fmt: skip
    return report, samples


# -- the files ------------------------------------------------------------------------------------


def _stem(alert_id: str) -> str:
    """The alert id as a file name (ids come from a topic anyone may write to)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", alert_id).lstrip(".") or "alert"


Samples = dict[str, dict[str, list]]  # input_samples' result: span -> input -> values


def write_report(
    report: DriftReport, folder: Path, samples: Samples | None = None
) -> tuple[Path, Path]:
    """``<folder>/<alert-id>.html`` (plots embedded: one file to open or send) and
    ``<folder>/<alert-id>.json`` (``report``'s figures), each written aside and renamed.
    ``samples`` (``input_samples``' reference and current) draws the histograms; without them
    the plots show the PSI bins' shares. Returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = _stem(report.alert.alert_id)
    data = msgspec.json.format(msgspec.json.encode(report)) + b"\n"
    json_path = write_atomic(folder / f"{stem}.json", data)
    page = _page(report, samples)
    html_path = write_atomic(folder / f"{stem}.html", page.encode())
    return html_path, json_path


def make_report(alert: DriftAlert, source: Path, folder: Path) -> tuple[DriftReport, Path, Path]:
    """``build_report`` of ``alert`` from ``source``, written by ``write_report`` into
    ``folder``: the report, the page's path and the JSON's. Raises as ``build_report``, and
    OSError when the files cannot be written."""
    report, samples = _build(alert, Path(source))
    html_path, json_path = write_report(report, Path(folder), samples)
    return report, html_path, json_path


def report_alert(alert: DriftAlert, source: Path, folder: Path) -> Path | None:
    """``make_report`` into ``folder``, for the retraining controller, which calls it on every
    alert it reads; the page's path, or None (logged) when no report can be made. Never raises.

    When ``source``, a click archive, has not reached the end of the alert's window yet (the
    archiver cuts a segment hourly by default), the report made holds what is archived and says
    it is incomplete, and the alert is kept in ``folder/pending/``: each later call first makes
    the reports of the kept alerts the archive has caught up with (as does ``deepcredit drift
    report --pending``)."""
    try:
        remake_pending(source, folder)
    except Exception as exc:  # a report must never stop the controller
        log.warning("pending drift reports not remade: %s", exc)
    return _report_one(alert, Path(source), Path(folder))


def remake_pending(source: Path, folder: Path) -> list[Path]:
    """Make the reports of the alerts kept in ``folder/pending/`` whose windows the archive
    ``source`` now holds whole; their pages' paths. A kept file that is no alert is dropped."""
    from deepcredit.archive import archived_through

    pending = Path(folder) / _PENDING
    files = sorted(pending.glob("*.json")) if pending.is_dir() else []
    if not files:
        return []
    through = archived_through(Path(source)) if Path(source).is_dir() else math.inf
    made = []
    for f in files:
        try:
            alert = msgspec.json.decode(f.read_bytes(), type=DriftAlert)
        except msgspec.DecodeError as exc:
            log.warning("dropping %s: not a drift alert (%s)", f, exc)
            f.unlink()
            continue
        if through is not None and through >= alert.event_ts:
            page = _report_one(alert, Path(source), Path(folder))
            if page is not None:
                made.append(page)
    return made


def _report_one(alert: DriftAlert, source: Path, folder: Path) -> Path | None:
    """``make_report``, logged, never raising; keeps the alert in ``pending/`` while the
    archive lags its window, and drops it from there once its report is complete."""
    kept = folder / _PENDING / f"{_stem(alert.alert_id)}.json"
    try:
        report, page, _ = make_report(alert, source, folder)
    except Exception as exc:  # a report must never stop the controller
        if isinstance(exc, _ArchiveBehind):
            _keep(alert, kept)
        else:  # no later archive will help
            kept.unlink(missing_ok=True)
        log.warning("no drift report for alert %s: %s", alert.alert_id, exc)
        return None
    if report.complete:
        kept.unlink(missing_ok=True)
    else:
        _keep(alert, kept)
        log.warning("the drift report of alert %s is incomplete: the archive holds events "
                    "through %s, the window ends %s; it is made again once the archive holds "
                    "them", alert.alert_id, _when(report.archived_through),
                    _when(alert.event_ts))  # fmt: skip
    log.info("drift report of alert %s: %s", alert.alert_id, page)
    return page


def _keep(alert: DriftAlert, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, msgspec.json.encode(alert))


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


# -- the page -------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.fields td, .fields th { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
.warn { background: #fff3cd; padding: 0.5em 1em; border: 1px solid #e0c36c; }
.stable { color: #1a7f37; } .moderate { color: #9a6700; } .major { color: #cf222e; }
"""

_INPUT_WORDS = {
    "activity": "activity mix: the share of each activity among the events (the input "
                "monitor's share_* signals)",
    "amount": "amount of every event (the input monitor's log_amount)",
    "gap_hours": "hours since the same user's previous event (the input monitor's "
                 "log_gap_hours; a user's first event has none)",
}  # fmt: skip


def _page(report: DriftReport, samples: dict[str, dict[str, list]] | None) -> str:
    a = report.alert
    e = html.escape
    fields = [
        ("alert", a.alert_id), ("monitor", a.monitor.value), ("signal", a.signal),
        ("detector", a.detector), ("model version", a.model_version),
        ("severity", a.severity or "-"), ("direction", a.direction or "-"),
        ("reference value", _value(a.reference_value, f"{a.reference_n:,} observations, "
                                   f"{_when(a.reference_from_ts)} to {_when(a.reference_to_ts)}")),
        ("current value", _value(a.current_value, f"{a.window_n:,} observations, "
                                 f"{_when(a.window_from_ts)} to {_when(a.event_ts)}")),
        ("change", _change(a.reference_value, a.current_value)),
        ("detected", f"event time {_when(a.event_ts)} (after {a.events_seen:,} observations); "
                     f"wall clock {_when(a.detected_at)}"),
        ("detector's statistic", "-" if a.value is None else f"{a.value:.4g}"),
        ("in words", a.detail or "-"),
    ]  # fmt: skip
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in fields)
    warn = "" if report.complete else (
        f"<p class='warn' id='incomplete'>Incomplete: the archive holds events through "
        f"{_when(report.archived_through)}, the alert's window ends {_when(a.event_ts)}. "
        f"Make the report again once the archiver has caught up: <code>deepcredit drift report "
        f"--alert {e(a.alert_id)}</code>.</p>")  # fmt: skip
    summary = "".join(
        f"<tr><td><a href='#{d.input}'>{d.input}</a></td><td class='psi'>{d.psi:.4f}</td>"
        f"<td class='{d.reading.split()[0]}'>{d.reading}</td><td>{d.reference_n:,}</td>"
        f"<td>{d.current_n:,}</td><td>{_opt(d.reference_mean)} / {_opt(d.current_mean)}</td>"
        f"<td>{_opt(d.reference_median)} / {_opt(d.current_median)}</td></tr>"
        for d in report.inputs)  # fmt: skip
    sections = "".join(_input_section(d, samples) for d in report.inputs)
    r, c = report.reference, report.current
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>Drift report: {e(a.alert_id)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>Drift report: {e(a.alert_id)}</h1>{warn}"
        f"<h2>The alert</h2><table class='fields'>{rows}</table>"
        "<h2>Inputs, by population stability index</h2>"
        f"<p class='note'>Reference: {r.events:,} clicks from {_when(r.from_ts)} to "
        f"{_when(r.to_ts)} (the alert's reference period); current: {c.events:,} clicks from "
        f"{_when(c.from_ts)} to {_when(c.to_ts)} (its current window); read from "
        f"<code>{e(report.source)}</code>. PSI = Σ (current − reference) ln(current / "
        "reference) over the reference's deciles (a continuous input) or the categories; "
        "shares floored at 0.0001. Reading: below 0.1 stable, 0.1 to 0.25 a moderate shift, "
        "above 0.25 a major shift.</p>"
        "<table id='summary'><tr><th>input</th><th>PSI</th><th>reading</th>"
        "<th>reference clicks</th><th>current clicks</th><th>mean ref / current</th>"
        f"<th>median ref / current</th></tr>{summary}</table>{sections}"
        f"<p class='note'>Made {_when(report.made_at)} UTC. Times are event times, UTC.</p>"
        f"<p class='note' id='loaded'></p>{IMAGES_LOADED_SCRIPT}</body></html>\n"
    )


def _value(x: float | None, about: str) -> str:
    return "-" if x is None else f"{x:.4g} ({about})"


def _change(reference: float | None, current: float | None) -> str:
    if reference is None or current is None:
        return "-"
    change = f"{current - reference:+.4g}"
    return change + (f" ({(current - reference) / reference:+.0%})" if reference else "")


def _opt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _input_section(d: InputDrift, samples: Samples | None) -> str:
    rows = "".join(f"<tr><td>{html.escape(b['bin'])}</td><td>{b['reference']:.2%}</td>"
                   f"<td>{b['current']:.2%}</td><td>{b['psi']:+.4f}</td></tr>"
                   for b in d.bins)  # fmt: skip
    svg = base64.b64encode(_plot(d, samples)).decode()
    return (
        f"<h3 id='{d.input}'>{d.input}: PSI {d.psi:.4f}, {d.reading}</h3>"
        f"<p class='note'>{html.escape(_INPUT_WORDS.get(d.input, d.input))}</p>"
        f"<img src='data:image/svg+xml;base64,{svg}' alt='{d.input}: reference against current'>"
        "<details><summary>PSI by bin</summary><table><tr><th>bin</th><th>reference</th>"
        f"<th>current</th><th>term of the PSI</th></tr>{rows}</table></details>"
    )


_W, _H = 640, 270  # the plot's size in pixels
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 28, 62  # margins: axis labels, title, tick labels
_COLOURS = {"reference": "#1f77b4", "current": "#ff7f0e"}


def _plot(d: InputDrift, samples: Samples | None) -> bytes:
    """The input's reference and current distributions overlaid, as an SVG document: the
    shares per activity side by side (or per PSI bin without ``samples``), or for a continuous
    input both histograms (density over equal widths in log(1 + x)) one over the other.
    Drawn here, not with matplotlib: the controller makes a page per alert, and three
    matplotlib figures cost more than reading the archive."""
    if d.kind == "categorical" or samples is None:
        names = [b["bin"] for b in d.bins]
        heights = {side: [b[side] for b in d.bins] for side in _COLOURS}
        ylabel, xlabel, ticks = "share", "", [(k + 0.5, n) for k, n in enumerate(names)]
        grouped = True
    else:
        values = {side: np.log1p(np.asarray(samples[side][d.input], float)) for side in _COLOURS}
        lo = min(v.min() for v in values.values())
        hi = max(v.max() for v in values.values())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, _PLOT_BINS + 1)
        heights = {side: np.histogram(v, bins=edges, density=True)[0].tolist()
                   for side, v in values.items()}  # fmt: skip
        names = [""] * _PLOT_BINS
        span = edges[-1] - edges[0]
        ticks = [((x - edges[0]) / span * _PLOT_BINS, f"{x:.3g}")
                 for x in np.linspace(edges[0], edges[-1], 6)]  # fmt: skip
        ylabel, xlabel = "density", f"log(1 + {_UNITS.get(d.input, d.input)})"
        grouped = False
    top = max(max(h) for h in heights.values()) or 1.0
    w, h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    slot = w / len(names)

    def y(v: float) -> float:
        return _TOP + h * (1 - v / top)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' "
             f"font-family='sans-serif' font-size='11'>",
             "<rect width='100%' height='100%' fill='white'/>",
             f"<text x='{_W / 2}' y='16' text-anchor='middle' font-size='13'>"
             f"{html.escape(d.input)}: PSI {d.psi:.3f} ({d.reading})</text>"]  # fmt: skip
    for k in range(5):  # y grid and ticks
        v = top * k / 4
        parts.append(f"<line x1='{_LEFT}' x2='{_W - _RIGHT}' y1='{y(v):.1f}' y2='{y(v):.1f}' "
                     f"stroke='#eee'/><text x='{_LEFT - 4}' y='{y(v) + 4:.1f}' "
                     f"text-anchor='end'>{v:.3g}</text>")  # fmt: skip
    for i, (side, colour) in enumerate(_COLOURS.items()):
        width = slot * (0.4 if grouped else 1.0)
        for k, v in enumerate(heights[side]):
            x = _LEFT + k * slot + (slot * (0.1 + 0.4 * i) if grouped else 0.0)
            parts.append(f"<rect x='{x:.1f}' y='{y(v):.1f}' width='{width:.1f}' "
                         f"height='{_TOP + h - y(v):.1f}' fill='{colour}' "
                         f"fill-opacity='{0.9 if grouped else 0.5}'/>")  # fmt: skip
        n = d.reference_n if side == "reference" else d.current_n
        ly = _TOP + 6 + 15 * i
        parts.append(f"<rect x='{_W - _RIGHT - 150}' y='{ly}' width='10' height='10' "
                     f"fill='{colour}'/><text x='{_W - _RIGHT - 135}' y='{ly + 9}'>{side} "
                     f"(n={n:,})</text>")  # fmt: skip
    base = _TOP + h
    axes = f"x1='{_LEFT}' x2='{_W - _RIGHT}' y1='{base}' y2='{base}'"
    parts.append(f"<line {axes} stroke='#333'/><line x1='{_LEFT}' x2='{_LEFT}' y1='{_TOP}' "
                 f"y2='{base}' stroke='#333'/>")  # fmt: skip
    for at, label in ticks:
        x = _LEFT + at * slot
        anchor = (f"text-anchor='end' transform='rotate(-30 {x:.1f} {base + 14})'" if grouped
                  else "text-anchor='middle'")  # fmt: skip
        parts.append(f"<text x='{x:.1f}' y='{base + 14}' {anchor}>{html.escape(label)}</text>")
    parts.append(f"<text x='{_LEFT + w / 2}' y='{_H - 6}' text-anchor='middle'>"
                 f"{html.escape(xlabel)}</text><text x='14' y='{_TOP + h / 2}' "
                 f"text-anchor='middle' transform='rotate(-90 14 {_TOP + h / 2})'>{ylabel}"
                 "</text></svg>")  # fmt: skip
    return "".join(parts).encode()
