"""A Python client of the request/reply gateway (``deepcredit gateway``), for services that
want "score this post now" (synchronous, httpx).

>>> from deepcredit.events import Activity, ClickEvent
>>> post = ClickEvent(event_id="e1", user_id="u1", ts=1.7e9, activity=Activity.POST,
...                   amount=1000.0, loan_id="l1", rate=0.12, term_days=30)
>>> with GatewayClient("http://127.0.0.1:8080") as gw:  # doctest: +SKIP
...     answer = gw.score(post)
...     answer.decision, answer.p_default
('approve', 0.04)

Every failure is a ``GatewayError``: ``Refused`` (409, 422: the post will not be scored as
sent), ``NotScoredYet`` (504: accepted, not scored in time; send the same post again later, it
is answered from the first copy's score), ``Unavailable`` (503: the flow or the broker is down;
safe to resend), or ``GatewayError`` itself (anything else, a connection error included).
"""

from __future__ import annotations

from types import TracebackType

import httpx
import msgspec

from deepcredit.codec import encode_click
from deepcredit.events import ClickEvent
from deepcredit.gateway_api import NotAnswered, Refused, ScoreAnswer

__all__ = ["GatewayClient", "GatewayError", "NotScoredYet", "PostRefused", "Unavailable"]

_answer = msgspec.json.Decoder(ScoreAnswer)
_refused = msgspec.json.Decoder(Refused)
_not_answered = msgspec.json.Decoder(NotAnswered)


class GatewayError(RuntimeError):
    """The gateway gave no score. ``status``: the HTTP status (None: no answer at all)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PostRefused(GatewayError):
    """409 or 422: ``refused.reason`` says why (a dead-letter reason, ``not_a_post``,
    ``conflicting_event_id``)."""

    def __init__(self, refused: Refused, status: int) -> None:
        super().__init__(f"{refused.reason}: {refused.detail}", status)
        self.refused = refused


class NotScoredYet(GatewayError):
    """504: accepted at ``answer.partition``/``answer.offset`` of the clicks topic, not scored
    within the gateway's timeout."""

    def __init__(self, answer: NotAnswered, status: int = 504) -> None:
        super().__init__(answer.detail, status)
        self.answer = answer


class Unavailable(NotScoredYet):
    """503: the flow or the broker is down."""

    def __init__(self, answer: NotAnswered) -> None:
        super().__init__(answer, 503)


class GatewayClient:
    """Talks to one gateway at ``base_url`` (e.g. ``http://127.0.0.1:8080``). ``timeout_s``
    bounds each HTTP exchange; keep it above the gateway's own ``--timeout-seconds`` so its
    504 arrives first. One connection pool; close it (or use ``with``)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s)

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        self._http.close()

    def score(self, post: ClickEvent | bytes) -> ScoreAnswer:
        """The score of ``post`` (a ``ClickEvent``, or a message's bytes as they would go on
        the clicks topic). Raises ``PostRefused``, ``NotScoredYet``, ``Unavailable`` or
        ``GatewayError`` (see the module)."""
        body = post if isinstance(post, bytes) else encode_click(post)
        try:
            r = self._http.post("/v1/score", content=body,
                                headers={"content-type": "application/json"})  # fmt: skip
        except httpx.HTTPError as exc:
            raise GatewayError(f"no answer from the gateway: {type(exc).__name__} {exc}") from exc
        try:
            if r.status_code == 200:
                return _answer.decode(r.content)
            if r.status_code in (409, 413, 422):
                raise PostRefused(_refused.decode(r.content), r.status_code)
            if r.status_code == 503:
                raise Unavailable(_not_answered.decode(r.content))
            if r.status_code == 504:
                raise NotScoredYet(_not_answered.decode(r.content))
        except msgspec.DecodeError:
            pass
        raise GatewayError(f"gateway answered {r.status_code}: {r.text[:300]}", r.status_code)

    def ready(self) -> bool:
        """Whether the gateway says it can score now (its risk-topic reader and the flow)."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False
