"""The gateway against the real broker and a real flow process (``deepcredit serve``), through
a real uvicorn on a loopback port and httpx: a post answered with its streamed score, a resend
with the same answer and no second score (also from a gateway started afterwards, warmed from
the risk topic's tail), invalid clicks refused with the dead-letter reason, a post the flow
dead-letters answered from its not_scored record, the OpenAPI document, a post no flow scores
(504), and the flow down (503 within a second).

One flow and one gateway serve the module (their starts are most of the cost); the last test
stops the flow."""

from __future__ import annotations

import dataclasses
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import pytest

from deepcredit.client import GatewayClient, PostRefused
from deepcredit.codec import decode_click, encode_click
from deepcredit.events import Activity, ClickEvent
from deepcredit.gateway_api import Reason, ScoreAnswer
from deepcredit.kafka_io import watermarks
from deepcredit.records import DeadLetter, DeadLetterReason, NotScored
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.topics import TopicSpec, ensure_topics, topic_specs
from deepcredit.waiting import wait_until
from deploy.broker import BrokerStatus
from gateway.app import create_app
from gateway.config import GatewayConfig
from scorer.reasons import STATEMENTS
from tests.ports import free_port
from tests.serving import asgi_server, http_status, serve_process
from tests.streams import read_risk, read_scores, send

pytestmark = pytest.mark.kafka


@dataclasses.dataclass
class Flow:
    kafka: KafkaSettings
    topics: Topics
    url: str
    process: object
    log: Path


@pytest.fixture(scope="module")
def flow(
    kafka_broker: BrokerStatus, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flow]:
    kafka = KafkaSettings(kafka_broker.bootstrap)
    topics = Topics.from_prefix(f"g{uuid.uuid4().hex[:10]}-")
    unread = TopicSpec(topics.clicks + "-unread", 3)  # a clicks topic no flow reads
    ensure_topics(kafka, [*topic_specs(topics, partitions=3), unread])
    port, log = free_port(), tmp_path_factory.mktemp("gateway") / "serve.log"
    proc = serve_process(kafka, topics, model_dir, "--metrics-port", str(port),
                         "--no-drift-monitors", log=log)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(url + "/readyz") == 200, 60, 0.1, what="the flow ready")
        yield Flow(kafka, topics, url, proc, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@pytest.fixture(scope="module")
def url(flow: Flow) -> Iterator[str]:
    """The module's gateway."""
    with gateway(flow) as base:
        yield base


@contextmanager
def gateway(flow: Flow, **options: object) -> Iterator[str]:
    """A gateway for ``flow`` on a real uvicorn in a thread; yields its base URL."""
    cfg = GatewayConfig(kafka=flow.kafka, topics=flow.topics, flow_urls=(flow.url,),
                        **{"timeout_s": 10.0, "health_poll_s": 0.1, **options})  # fmt: skip
    with asgi_server(create_app(cfg), "gateway") as url:
        yield url


_SEQ = iter(range(10**6))


def post(user: str = "alice", **changes: object) -> ClickEvent:
    n = next(_SEQ)
    event = ClickEvent(event_id=f"p-{uuid.uuid4().hex[:8]}", user_id=user,
                       ts=1.7e9 + n, activity=Activity.POST, amount=500.0 + n,
                       loan_id=f"loan-{n}", rate=0.15, term_days=30)  # fmt: skip
    return msgspec.structs.replace(event, **changes)


def clicks_written(flow: Flow) -> int:
    return sum(high for _, high in watermarks(flow.kafka, flow.topics.clicks).values())


def test_a_post_gets_its_streamed_score_and_a_resend_the_same_answer(flow: Flow, url: str) -> None:
    first, later = post(), post()
    with httpx.Client(base_url=url, timeout=15) as http:
        r = http.post("/v1/score", content=encode_click(first))
        assert r.status_code == 200, r.text
        again = http.post("/v1/score", content=encode_click(first))
        assert (again.status_code, again.content) == (200, r.content)
        # The same user's next post: once it is scored, the flow has read the resend before it.
        with GatewayClient(url) as client:
            assert client.score(later).event_id == later.event_id
    scores = [s for s in read_scores(flow.kafka, flow.topics.risk_scores)
              if s.event_id == first.event_id]  # fmt: skip
    assert len(scores) == 1
    answer = msgspec.json.decode(r.content, type=ScoreAnswer)
    reasons = [Reason(code=c, statement=STATEMENTS[c]) for c in scores[0].reasons]
    expected = msgspec.structs.asdict(scores[0]) | {"decision": str(scores[0].decision),
                                                    "reasons": reasons}  # fmt: skip
    del expected["schema_version"]  # the risk topic's contract; the answer's is its path
    assert msgspec.structs.asdict(answer) == expected
    # A gateway started afterwards knows the answer from the risk topic's tail: it answers
    # the resend alike and sends nothing to the flow.
    sent = clicks_written(flow)
    with gateway(flow) as fresh:
        r2 = httpx.post(fresh + "/v1/score", content=encode_click(first), timeout=15)
    assert (r2.status_code, r2.content) == (200, r.content)
    assert clicks_written(flow) == sent


def test_invalid_clicks_are_refused_with_the_dead_letter_reason(flow: Flow, url: str) -> None:
    bodies = [b"not json", b'{"event_id": "x", "user_id": "u"}', b"\xff\xfe",
              b'{"event_id":"x","user_id":"u","ts":1.7e9,"activity":"post","amount":5}',
              encode_click(post(user=" padded"))]  # fmt: skip
    sent = clicks_written(flow)
    with httpx.Client(base_url=url) as http:
        for body in bodies:
            dead = decode_click(body)
            assert isinstance(dead, DeadLetter)
            r = http.post("/v1/score", content=body)
            assert r.status_code == 422
            assert r.json() == {"reason": str(dead.reason), "detail": dead.detail,
                                "event_id": None}  # fmt: skip
        lend = msgspec.structs.replace(post(), activity=Activity.LEND)
        r = http.post("/v1/score", content=encode_click(lend))
        assert (r.status_code, r.json()["reason"]) == (422, "not_a_post")
        with GatewayClient(url) as client:
            scored = post()
            client.score(scored)
            with pytest.raises(PostRefused) as refused:  # the id reused for another post
                client.score(msgspec.structs.replace(scored, amount=scored.amount + 1,
                                                     loan_id="another"))  # fmt: skip
    assert refused.value.status == 409
    assert refused.value.refused.reason == "conflicting_event_id"
    assert clicks_written(flow) == sent + 1  # only the valid post went to the flow


def test_the_openapi_document_is_served(url: str) -> None:
    spec = httpx.get(url + "/openapi.json").json()
    assert httpx.get(url + "/readyz").json() == {"ready": True, "missing": []}
    assert spec["openapi"].startswith("3.")
    responses = spec["paths"]["/v1/score"]["post"]["responses"]
    assert {"200", "409", "422", "503", "504"} <= set(responses)
    assert {"ClickEvent", "ScoreAnswer", "Refused", "NotAnswered"} <= set(
        spec["components"]["schemas"])  # fmt: skip


def test_a_post_not_scored_in_time_gets_504_with_where_it_was_accepted(flow: Flow) -> None:
    # The gateway sends to a clicks topic no flow reads: accepted, never scored.
    unread = dataclasses.replace(flow.topics, clicks=flow.topics.clicks + "-unread")
    late = post()
    with gateway(dataclasses.replace(flow, topics=unread), timeout_s=0.5) as url:
        start = time.monotonic()
        r = httpx.post(url + "/v1/score", content=encode_click(late), timeout=5)
        took = time.monotonic() - start
    assert r.status_code == 504
    body = r.json()
    assert body["status"] == "pending" and body["event_id"] == late.event_id
    assert body["partition"] in (0, 1, 2) and body["offset"] == 0
    assert 0.5 <= took < 2.0


def test_a_post_the_flow_dead_letters_is_answered_from_its_not_scored_record(
    flow: Flow, url: str
) -> None:
    # A withdrawal sent straight to the clicks topic (not through the gateway, so its book does
    # not know the id) takes an event id; a post under that id then passes the gateway's checks,
    # and the flow dead-letters it as a reused id: its not_scored record is the answer.
    user = f"nsc-{uuid.uuid4().hex[:6]}"
    withdrawal = msgspec.structs.replace(post(user=user), activity=Activity.WITHDRAW,
                                         loan_id=None, rate=None, term_days=None)  # fmt: skip
    send(flow.kafka, flow.topics.clicks, [encode_click(withdrawal)])
    reused = post(user=user, event_id=withdrawal.event_id, ts=withdrawal.ts + 60)
    with httpx.Client(base_url=url, timeout=15) as http:
        r = http.post("/v1/score", content=encode_click(reused))
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "conflicting_event_id"
    assert r.json()["detail"].startswith("not scored by the flow: ")
    records = [x for x in read_risk(flow.kafka, flow.topics.risk_scores)
               if x.event_id == reused.event_id]  # fmt: skip
    assert len(records) == 1 and isinstance(records[0], NotScored)
    assert (records[0].user_id, records[0].loan_id) == (user, reused.loan_id)
    assert records[0].reason is DeadLetterReason.CONFLICTING_EVENT_ID


def test_the_flow_down_answers_503_within_a_second(flow: Flow, url: str) -> None:
    """Stops the module's flow: the last test of the module."""
    with httpx.Client(base_url=url, timeout=5) as http:
        assert http.post("/v1/score", content=encode_click(post())).status_code == 200
        flow.process.kill()  # type: ignore[attr-defined]
        flow.process.wait(10)  # type: ignore[attr-defined]
        for _ in range(2):  # the first before the gateway noticed, the second after
            start = time.monotonic()
            r = http.post("/v1/score", content=encode_click(post()))
            assert time.monotonic() - start < 1.0
            assert r.status_code == 503, r.text
            assert r.json()["status"] == "unavailable"
        assert http.get("/readyz").json() == {"ready": False, "missing": ["flow"]}
