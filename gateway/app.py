"""The gateway's HTTP application (Starlette): score one loan post through the live flow.

    POST /v1/score     a click event (the event contract), a ``post``: its score (answers in
                       ``deepcredit.gateway_api``: 200, 409, 422, 503, 504)
    GET  /openapi.json the OpenAPI 3.1 document of these paths, schemas from the Structs
    GET  /healthz      200 "ok" while the process serves
    GET  /readyz       200 once the risk topic's tail is read and the flow is ready, else 503
                       with what is missing

A post is validated by the flow's own decoder (``codec.decode_click``), produced as received
to the clicks topic keyed by its canonical user id (as ``deepcredit replay`` keys a line), and
answered with the score the flow writes for its event id (``gateway.risk``). Resending the same
post returns the same answer: from the book of recent answers when the score was seen, by
joining the waiting request while it is in flight; a resend after its answer left the book is
produced again, which the flow skips (its id is among the user's last 32), so it waits and gets
504 (README, "Request/reply scoring", the limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from deepcredit.codec import decode_click
from deepcredit.events import Activity, ClickEvent
from deepcredit.gateway_api import NotAnswered, Refused, ScoreAnswer
from deepcredit.kafka_io import produce
from deepcredit.records import DeadLetter, DeadLetterReason, NotScored
from deepcredit.settings import KafkaSettings, Topics
from gateway.config import GatewayConfig
from gateway.health import FlowHealth
from gateway.risk import AnswerBook, FlowDown, RiskReader, Waiter, answer_of, same_post

__all__ = ["CONFIG_ENV", "create_app", "from_env", "openapi"]

log = logging.getLogger(__name__)

#: The environment variable that carries a ``GatewayConfig`` (as JSON, without the broker and
#: topics, which come from ``DEEPCREDIT_BOOTSTRAP`` and ``DEEPCREDIT_TOPIC_PREFIX``) to every
#: gateway process uvicorn starts.
CONFIG_ENV = "DEEPCREDIT_GATEWAY"
#: A request body this large is refused before it is read (an event is a few hundred bytes;
#: anything up to this size gets the decoder's own answer, ``oversize`` included).
_MAX_BODY = 1 << 20
_READY_WAIT_S = 60.0


def from_env() -> Starlette:
    """The app for the configuration in the environment (``CONFIG_ENV`` and the broker's and
    topics' variables): what each uvicorn worker process calls."""
    options = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    options["flow_urls"] = tuple(options.get("flow_urls", GatewayConfig.flow_urls))
    return create_app(GatewayConfig(kafka=KafkaSettings.from_env(), topics=Topics.from_env(),
                                    **options))  # fmt: skip


def _json(status: int, body: msgspec.Struct) -> Response:
    return Response(msgspec.json.encode(body), status, media_type="application/json")


class _Gateway:
    """One process's state: the producer, the book of answers, the risk reader, the flow's
    health. Built and torn down by the app's lifespan."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        self.book = AnswerBook(cfg.remember)
        self.producer = Producer(cfg.kafka.client_config(**{
            "enable.idempotence": True, "linger.ms": 1}))  # fmt: skip
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._serve_deliveries, daemon=True,
                                        name="producer-poll")  # fmt: skip
        self._poller.start()
        self.reader = RiskReader(cfg.kafka, cfg.topics.risk_scores, cfg.remember,
                                 lambda records: self.loop.call_soon_threadsafe(
                                     self.book.add, records))  # fmt: skip
        self.health = FlowHealth(cfg.flow_urls, cfg.health_poll_s, self.book.fail_all)

    async def start(self) -> None:
        await self.health.start()
        if not await asyncio.to_thread(self.reader.ready.wait, _READY_WAIT_S):
            log.warning("the risk topic's tail not read within %.0f s; answering 503 until it "
                        "is", _READY_WAIT_S)  # fmt: skip

    async def close(self) -> None:
        await self.health.close()
        self.reader.close()
        self._stop.set()
        self._poller.join(5)
        left = self.producer.flush(5)
        if left:
            log.warning("%d posts not acknowledged by the broker at shut-down", left)

    def _serve_deliveries(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def missing(self) -> list[str]:
        """The readiness conditions that do not hold now."""
        out = []
        if not self.reader.ready.is_set() or self.reader.error is not None:
            out.append("risk_topic")
        if self.health.problem is not None:
            out.append("flow")
        return out

    async def score(self, request: Request) -> Response:
        size = int(request.headers.get("content-length") or 0)
        if size > _MAX_BODY:
            return _json(413, Refused(reason="oversize", detail=f"{size} bytes"))
        body = await request.body()
        event = decode_click(body)
        if isinstance(event, DeadLetter):
            return _json(422, Refused(reason=str(event.reason), detail=event.detail))
        if event.activity is not Activity.POST:
            detail = (f"activity {event.activity}: only a loan post is scored; send other "
                      "clicks to the clicks topic")  # fmt: skip
            return _json(422, Refused(reason="not_a_post", event_id=event.event_id, detail=detail))
        known = self.book.get(event.event_id)
        if known is not None:
            return _answer(known, event)
        problem = self._unavailable()
        if problem is not None:
            return _json(503, NotAnswered(status="unavailable", detail=problem,
                                          event_id=event.event_id))  # fmt: skip
        waiter = self.book.waiting.get(event.event_id)
        if waiter is None:
            waiter = self._send(body, event)
        else:
            waiter.requests += 1
        try:
            record = await asyncio.wait_for(asyncio.shield(waiter.score), self.cfg.timeout_s)
        except TimeoutError:
            return self._not_answered(504, "pending", event, waiter,
                                      f"not scored within {self.cfg.timeout_s:g} s; resend the "
                                      "same request to get its answer")  # fmt: skip
        except FlowDown as exc:
            return self._not_answered(503, "unavailable", event, waiter, str(exc))
        finally:
            waiter.requests -= 1
            if waiter.requests == 0 and self.book.waiting.get(event.event_id) is waiter:
                del self.book.waiting[event.event_id]
        return _answer(record, event)

    def _unavailable(self) -> str | None:
        if self.reader.error is not None:
            return f"the gateway's risk-topic reader stopped: {self.reader.error}"
        if not self.reader.ready.is_set():
            return "the gateway is still reading the risk topic's tail"
        if self.health.problem is not None:
            return f"the scoring flow is not ready: {self.health.problem}"
        return None

    def _send(self, body: bytes, event: ClickEvent) -> Waiter:
        waiter = Waiter(score=self.loop.create_future(), accepted=self.loop.create_future())

        def delivered(err: KafkaError | None, msg: Message) -> None:  # the poll thread
            self.loop.call_soon_threadsafe(self._delivered, waiter, err, msg)

        # The key the flow's producers use: the canonical user id (``replay.user_key``).
        try:
            produce(self.producer, self.cfg.topics.clicks, body, event.user_id.encode(),
                    on_delivery=delivered)  # fmt: skip
        except KafkaException as exc:  # the client refused it: no broker will see it
            waiter.score.set_exception(FlowDown(f"the Kafka client refused the post: {exc}"))
        self.book.waiting[event.event_id] = waiter
        return waiter

    @staticmethod
    def _delivered(waiter: Waiter, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            waiter.coordinates = (msg.partition(), msg.offset())
        elif not waiter.score.done():
            waiter.score.set_exception(FlowDown(f"the broker did not take the post: "
                                                f"{err.str()}"))  # fmt: skip

    def _not_answered(
        self, code: int, status: str, event: ClickEvent, waiter: Waiter, detail: str
    ) -> Response:
        p, o = waiter.coordinates or (None, None)
        if p is not None:
            detail = f"accepted at {self.cfg.topics.clicks}[{p}] offset {o}; {detail}"
        answer = NotAnswered(status=status, detail=detail,  # type: ignore[arg-type]
                             event_id=event.event_id, partition=p, offset=o)  # fmt: skip
        return _json(code, answer)


def _answer(record: Any, event: ClickEvent) -> Response:
    if not same_post(record, event):
        detail = (
            f"event id already names the post of user {record.user_id!r}, loan "
            f"{record.loan_id!r} at ts {record.event_ts}; send this one under a new id"
        )
        return _json(409, Refused(reason="conflicting_event_id", event_id=event.event_id,
                                  detail=detail))  # fmt: skip
    if isinstance(record, NotScored):  # the flow dead-lettered it: it will never be scored
        code = 409 if record.reason is DeadLetterReason.CONFLICTING_EVENT_ID else 422
        return _json(code, Refused(reason=str(record.reason), event_id=event.event_id,
                                   detail=f"not scored by the flow: {record.detail}"))  # fmt: skip
    answer: ScoreAnswer = answer_of(record)
    return _json(200, answer)


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the gateway, its schemas generated from the Structs."""
    (event, answer, refused, not_answered), components = msgspec.json.schema_components(
        [ClickEvent, ScoreAnswer, Refused, NotAnswered],
        ref_template="#/components/schemas/{name}")  # fmt: skip

    def reply(text: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": text, "content": {"application/json": {"schema": schema}}}

    return {
        "openapi": "3.1.0",
        "info": {"title": "DeepCredit Stream gateway", "version": "1",
                 "description": "Score one loan post through the live flow (request/reply)."},
        "paths": {
            "/v1/score": {"post": {
                "summary": "Score a loan post",
                "description": "A click event of the event contract whose activity is 'post'. "
                               "Resending the same event returns the same answer.",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": event}}},
                "responses": {
                    "200": reply("the post's score, as written to the risk topic", answer),
                    "409": reply("the event id names another post", refused),
                    "413": reply("the body is far over the event size limit", refused),
                    "422": reply("not a click of the contract (dead-letter reason), not a "
                                 "post, or a post the flow could not score (its not_scored "
                                 "record's reason)", refused),
                    "503": reply("the flow or the broker is down", not_answered),
                    "504": reply("accepted, not scored within the timeout", not_answered),
                },
            }},
            "/healthz": {"get": {"summary": "Liveness",
                                 "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness (risk topic read, flow ready)",
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "not ready"}}}},
        },
        "components": {"schemas": components},
    }  # fmt: skip


def create_app(cfg: GatewayConfig) -> Starlette:
    """The gateway application for ``cfg``: Kafka clients and the flow's health poller start
    with the app (its lifespan) and stop with it."""
    state: dict[str, _Gateway] = {}
    spec = openapi()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gw = state["gw"] = _Gateway(cfg)
        await gw.start()
        try:
            yield
        finally:
            await gw.close()
            del state["gw"]  # the Kafka clients go with it

    async def score(request: Request) -> Response:
        return await state["gw"].score(request)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        missing = state["gw"].missing()
        return JSONResponse({"ready": not missing, "missing": missing}, 503 if missing else 200)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(spec)

    return Starlette(routes=[
        Route("/v1/score", score, methods=["POST"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ], lifespan=lifespan)  # fmt: skip
