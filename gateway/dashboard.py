"""The risk-operations dashboard (``deepcredit dashboard``): one page that reloads itself,
drawn on the server from the topics (``gateway.watch``), charts inline as SVG.

    GET /dashboard       the page: decision mix and approval rate over event time; the current
                         model's score distribution against its reference; realised delinquency
                         and default by week of posting among approved posts; drift alerts
                         (reference, current value, direction, severity, window); the thresholds
                         in force and every change; the models that scored and every model event
    GET /dashboard.json  the same figures as JSON (``Board``), for scripts
    GET /healthz         200 "ok" while the process serves
    GET /                redirects to /dashboard

Its own process and port, not a route of the gateway: the gateway answers scoring requests
within milliseconds, while the dashboard reads every topic from its beginning (the clicks
included, for the loans' outcomes) and draws plots, CPU work that would delay those answers;
and risk operations can watch a flow that runs without a gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import threading
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from deepcredit.audit import ThresholdsChange
from deepcredit.records import Decision, DriftAlert, ModelEvent, Monitor
from deepcredit.thresholds import describe, describe_change
from gateway.charts import decisions_svg, distribution_svg, outcomes_svg
from gateway.config import DashboardConfig
from gateway.panels import (
    DecisionSeries,
    Distribution,
    ModelSpan,
    WeekOutcome,
    decision_series,
    model_spans,
    score_distribution,
    weekly_outcomes,
)
from gateway.watch import View, Watch
from scorer.registry import ModelRegistry, Promotion, RegistryError

__all__ = ["Board", "board", "create_app", "page"]

#: Drift alerts and changes listed on the page, newest first (all of them in the JSON).
_LATEST = 25


class Board(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the page shows, at ``at`` (wall clock, Unix s). ``model_version``: the model
    of the latest score (the one in service); ``clicks_as_of``: the event time the loans'
    labels are known at."""

    at: float
    model_version: str | None
    posts: int
    not_scored: dict[str, int]
    decisions: DecisionSeries
    distribution: Distribution
    drift_reference: dict[str, float]  # signal -> the drift monitors' reference mean
    weeks: list[WeekOutcome]
    clicks_as_of: float | None
    alerts: list[DriftAlert]
    thresholds: dict
    thresholds_text: str
    changes: list[ThresholdsChange]
    models: list[ModelSpan]
    model_events: list[ModelEvent]
    promotions: list[Promotion]
    registry_current: str | None
    problems: list[str]
    loading: list[str]


def board(view: View, cfg: DashboardConfig) -> Board:
    """The page's figures from what the topics hold (``view``) and the registry, if any."""
    scores = view.scores
    latest = max(scores, key=lambda s: s.scored_at, default=None)
    model = None if latest is None else latest.model_version
    drift_ref = {}
    for a in view.alerts:  # the latest score alert per signal, of the model in service
        ref = a.reference_value
        if a.monitor == Monitor.SCORES and a.model_version == model and ref is not None:
            drift_ref[a.signal] = ref
    problems = list(view.problems)
    promotions, current = [], None
    if cfg.registry is not None:
        try:
            registry = ModelRegistry(Path(cfg.registry))
            promotions = registry.history()
            entry = registry.current()
            current = None if entry is None else entry.version
        except (RegistryError, OSError) as exc:
            problems.append(f"model registry {cfg.registry}: {exc}")
    return Board(
        at=view.at, model_version=model, posts=len(scores), not_scored=view.not_scored,
        decisions=decision_series(scores),
        distribution=score_distribution(scores, model, reference_days=cfg.reference_days,
                                        window_days=cfg.window_days),
        drift_reference=drift_ref,
        weeks=weekly_outcomes(scores, view.outcomes), clicks_as_of=view.clicks_as_of,
        alerts=view.alerts, thresholds=msgspec.to_builtins(view.thresholds),
        thresholds_text=describe(view.thresholds), changes=view.changes,
        models=model_spans(scores), model_events=view.model_events, promotions=promotions,
        registry_current=current, problems=problems, loading=view.loading,
    )  # fmt: skip


# -- the page -------------------------------------------------------------------------------------


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _when(ts: float | None, seconds: bool = False) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _table(head: Iterable[str], rows: Iterable[Iterable[object]], cls: str, empty: str) -> str:
    rows = list(rows)
    if not rows:
        return f'<p class="empty {cls}">{_e(empty)}</p>'
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1em 2em; color: #222; background: #fff; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.meta { color: #555; font-size: 0.9em; } .problem { background: #fdecea; padding: 0.4em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .counts td { font-size: 1.2em; text-align: right; }
.sev-high { background: #f8d7da; } .sev-medium { background: #fff3cd; }
pre { background: #f7f7f7; padding: 0.5em; font-size: 0.85em; }
svg { max-width: 100%; height: auto; } .empty { color: #777; }
"""


def page(b: Board, refresh_s: float) -> str:
    """The dashboard's HTML page for ``b``, reloading itself every ``refresh_s`` seconds."""
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta http-equiv='refresh' content='{refresh_s:g}'>",
        "<title>DeepCredit Stream: risk operations</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>DeepCredit Stream: risk operations</h1>",
        f"<p class='meta'>as of {_e(_when(b.at, True))} UTC (reloads every {refresh_s:g} s); "
        f"model in service: <b id='model'>{_e(b.model_version or 'none yet')}</b>; thresholds "
        f"<b id='thresholds-version'>v{_e(b.thresholds['version'])}</b>; loans' labels known "
        f"at event time {_e(_when(b.clicks_as_of))}</p>",
    ]
    for p in b.problems:
        out.append(f"<p class='problem'>not read: {_e(p)}</p>")
    if b.loading:
        out.append(f"<p class='problem'>still reading: {_e(', '.join(b.loading))}</p>")
    out += _decisions(b) + _distribution(b) + _outcomes(b) + _alerts(b) + _thresholds(b)
    out += _models(b)
    out.append("</body></html>")
    return "".join(out)


def _decisions(b: Board) -> list[str]:
    t = b.decisions.totals
    total = sum(t.values())
    cells = "".join(f"<td id='count-{d.value}'>{t.get(d.value, 0)}</td>" for d in Decision)
    refused = ", ".join(f"{k}: {v:,}" for k, v in sorted(b.not_scored.items())) or "none"
    return [
        f"<h2>Decisions ({b.posts:,} posts scored; the latest kept)</h2>",
        "<table class='counts'><tr><th>approve</th><th>review</th><th>decline</th>"
        f"<th>approval rate</th></tr><tr>{cells}<td id='approval-rate'>"
        f"{_pct(t.get('approve', 0) / total if total else None)}</td></tr></table>",
        f"<p class='meta'>not scored (dead-lettered or refused posts, by reason): "
        f"<span id='not-scored'>{_e(refused)}</span></p>",
        decisions_svg(b.decisions),
    ]


def _distribution(b: Board) -> list[str]:
    d = b.distribution
    means = "; ".join(f"{s.name}: reference {_num(s.reference_mean)}, current "
                      f"{_num(s.current_mean)}" for s in d.signals)  # fmt: skip
    return [
        "<h2>Score distribution of the model in service against its reference</h2>",
        f"<p class='meta'>reference: its {d.reference_n:,} posts from "
        f"{_e(_when(d.reference_from))} to {_e(_when(d.reference_to))} (its first "
        f"days of event time, the drift monitors' reference period); current: its "
        f"{d.current_n:,} posts from {_e(_when(d.current_from))} to "
        f"{_e(_when(d.current_to))}. Means: {_e(means or '-')}</p>",
        distribution_svg(d, b.drift_reference),
    ]


def _outcomes(b: Board) -> list[str]:
    rows = [(_when(w.week)[:10], f"{w.approved:,}",
             f"{_pct(w.delinquent_rate)} of {w.delinquent_labelled:,}",
             f"{_pct(w.default_rate)} of {w.default_labelled:,}", f"{w.open:,}",
             f"{w.unfunded:,}", f"{w.unknown:,}")
            for w in reversed(b.weeks[-12:])]  # fmt: skip
    return [
        "<h2>Realised bad rate among approved posts, by week of posting</h2>",
        f"<p class='meta'>labels as known at event time {_e(_when(b.clicks_as_of))}: "
        "delinquent once repaid late or unpaid past the due date, default once more than 120 "
        "days late; open loans are not labelled yet and left out</p>",
        outcomes_svg(b.weeks),
        _table(("week of", "approved", "delinquent", "default", "open", "never funded",
                "not in clicks"), rows, "weeks", "no approved post yet"),
    ]  # fmt: skip


def _alerts(b: Board) -> list[str]:
    rows = []
    for a in reversed(b.alerts[-_LATEST:]):
        ref = (
            f"{_num(a.reference_value)} ({a.reference_n:,} obs., "
            f"{_when(a.reference_from_ts)} to {_when(a.reference_to_ts)})"
        )
        cur = f"{_num(a.current_value)} ({a.window_n:,} obs. from {_when(a.window_from_ts)})"
        rows.append((a.severity or "-", _when(a.event_ts), str(a.monitor), a.signal,
                     a.direction or "-", ref, cur, a.model_version, a.detail))  # fmt: skip
    table = _table(("severity", "event time", "monitor", "signal", "direction", "reference",
                    "current", "model", "detail"), rows, "alerts",
                   "no drift alert on the topic")  # fmt: skip
    for sev in ("high", "medium"):  # colour the rows by severity
        table = table.replace(f"<tr><td>{sev}</td>", f"<tr class='sev-{sev}'><td>{sev}</td>")
    return [f"<h2>Drift alerts ({len(b.alerts):,}; newest first)</h2>", table]


def _thresholds(b: Board) -> list[str]:
    changes = "\n".join(describe_change(c) for c in reversed(b.changes[-_LATEST:]))
    empty = ("no change in the audit trail: the built-in defaults, or thresholds set before "
             "the trail existed")  # fmt: skip
    return [
        "<h2>Thresholds</h2>",
        f"<pre id='thresholds'>{_e(b.thresholds_text)}</pre>",
        f"<h3>Changes ({len(b.changes):,}; newest first)</h3>",
        f"<pre id='changes'>{_e(changes)}</pre>"
        if changes
        else f"<p class='empty'>{_e(empty)}</p>",
    ]


def _models(b: Board) -> list[str]:
    spans = [(m.model_version, f"{m.posts:,}", _when(m.first_event_ts), _when(m.last_event_ts),
              _when(m.first_scored_at, True), _when(m.last_scored_at, True))
             for m in b.models]  # fmt: skip
    events = [(_when(e.at, True), f"{e.action} (override)" if e.override else e.action,
               e.version, e.previous or "-", e.by, e.reason)
              for e in reversed(b.model_events[-_LATEST:])]  # fmt: skip
    out = [
        "<h2>Models</h2>",
        _table(("model", "posts scored", "first post", "last post", "first scored (UTC)",
                "last scored (UTC)"), spans, "models", "no post scored yet"),
        "<h3>Model events (promotions, rollbacks and gate verdicts on the model-events "
        "topic)</h3>",
        _table(("when (UTC)", "action", "model", "previous", "by", "why"), events,
               "model-events", "no model event on the topic"),
    ]  # fmt: skip
    if b.promotions or b.registry_current:
        rows = [(_when(p.at, True), p.action, p.version, p.previous or "-", p.by, p.reason)
                for p in reversed(b.promotions[-_LATEST:])]  # fmt: skip
        out += [f"<h3>Registry: current model {_e(b.registry_current or 'none')}</h3>",
                _table(("when (UTC)", "action", "model", "previous", "by", "why"), rows,
                       "promotions", "no promotion in the registry")]  # fmt: skip
    return out


# -- the app --------------------------------------------------------------------------------------


class _Pages:
    """The board and its page, drawn again only when a record came in since, at most once a
    second (and at least once per refresh period, for its clock and the thresholds in force),
    whoever asks: several browsers reloading do not multiply the drawing."""

    def __init__(self, watch: Watch, cfg: DashboardConfig) -> None:
        self.watch, self.cfg = watch, cfg
        self.min_age_s = min(1.0, cfg.refresh_s / 2)
        self._lock = threading.Lock()
        self._board: tuple[int, float, Board] | None = None
        self._page: tuple[Board, str] | None = None

    def board(self) -> Board:
        with self._lock:
            return self._current()

    def page(self) -> str:
        with self._lock:
            b = self._current()
            if self._page is None or self._page[0] is not b:
                self._page = (b, page(b, self.cfg.refresh_s))
            return self._page[1]

    def _current(self) -> Board:
        version, now = self.watch.version, time.monotonic()
        if self._board is not None:
            drawn_version, drawn_at, _ = self._board
            age = now - drawn_at
            if age <= self.cfg.refresh_s and (drawn_version == version or age < self.min_age_s):
                return self._board[2]
        self._board = (version, now, board(self.watch.view(), self.cfg))
        return self._board[2]


def create_app(cfg: DashboardConfig) -> Starlette:
    """The dashboard application: the topics' readers start with the app and stop with it."""
    state: dict[str, _Pages] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watch = Watch(cfg)
        await asyncio.to_thread(watch.start)
        state["pages"] = _Pages(watch, cfg)
        try:
            yield
        finally:
            await asyncio.to_thread(watch.close)

    async def dashboard(request: Request) -> Response:
        return HTMLResponse(await asyncio.to_thread(state["pages"].page))

    async def dashboard_json(request: Request) -> Response:
        b = await asyncio.to_thread(state["pages"].board)
        return Response(msgspec.json.encode(b), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def root(request: Request) -> Response:
        return RedirectResponse("/dashboard")

    return Starlette(routes=[
        Route("/dashboard", dashboard, methods=["GET"]),
        Route("/dashboard.json", dashboard_json, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/", root, methods=["GET"]),
    ], lifespan=lifespan)  # fmt: skip


def serve(cfg: DashboardConfig) -> None:
    """Serve the dashboard until SIGTERM or SIGINT (uvicorn, one process)."""
    import uvicorn

    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, access_log=False,
                log_level="info")  # fmt: skip
