"""The event contract over the real broker: our producer, an independent producer (kcat)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, Message, Producer

from deepcredit.codec import decode_click, encode
from deepcredit.events import Activity, ClickEvent
from deepcredit.kafka_io import produce
from deepcredit.records import DeadLetter, DeadLetterReason
from deepcredit.settings import KafkaSettings, Topics
from tests.strategies import make_events

pytestmark = pytest.mark.kafka


def consume(kafka: KafkaSettings, topic: str, n: int, timeout_s: float = 60.0) -> list[Message]:
    consumer = Consumer(
        kafka.client_config(
            **{
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < n and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=1.0):
                assert m.error() is None, m.error()
                messages.append(m)
    finally:
        consumer.close()
    return messages


def test_ten_thousand_events_round_trip(kafka: KafkaSettings, topics: Topics) -> None:
    sent = make_events(10_000, users=200, seed=7)
    producer = Producer(kafka.client_config(**{"linger.ms": 5, "enable.idempotence": True}))
    for event in sent:
        producer.produce(topics.clicks, key=event.user_id.encode(), value=encode(event))
        producer.poll(0)
    assert producer.flush(30) == 0

    messages = consume(kafka, topics.clicks, len(sent))
    assert len(messages) == len(sent)
    received: dict[str, list[ClickEvent]] = defaultdict(list)
    for m in messages:
        event = decode_click(m.value(), key=m.key(), topic=m.topic(), offset=m.offset())
        assert isinstance(event, ClickEvent), event
        assert m.key() == event.user_id.encode()
        received[event.user_id].append(event)
    expected: dict[str, list[ClickEvent]] = defaultdict(list)
    for event in sent:
        expected[event.user_id].append(event)
    # Keyed by user: each user's events come back complete, equal, and in the order sent.
    assert received == expected
    assert {e.activity for e in sent} == set(Activity)


def test_bad_messages_become_dead_letters_with_coordinates(
    kafka: KafkaSettings, topics: Topics
) -> None:
    producer = Producer(kafka.client_config())
    producer.produce(topics.clicks, key=b"u1", value=b'{"event_id": "e1", "activity": "post"')
    producer.produce(topics.clicks, key=b"u1", value=b"\xff\xfe not text")
    assert producer.flush(30) == 0
    messages = consume(kafka, topics.clicks, 2)
    letters = [
        decode_click(
            m.value(), key=m.key(), topic=m.topic(), partition=m.partition(), offset=m.offset()
        )
        for m in messages
    ]
    assert [d.reason for d in letters if isinstance(d, DeadLetter)] == [
        DeadLetterReason.INVALID_JSON,
        DeadLetterReason.INVALID_UTF8,
    ]
    assert [d.offset for d in letters] == [m.offset() for m in messages]


def test_message_from_kcat_decodes(kafka: KafkaSettings, topics: Topics, kcat: str) -> None:
    line = (
        '{"event_id":"kcat-1","user_id":"u-kcat","ts":1700000000.5,"activity":"post",'
        '"amount":2500,"loan_id":"L-9","rate":0.18,"term_days":180}'
    )
    done = subprocess.run(
        [kcat, "-P", "-b", kafka.bootstrap_servers, "-t", topics.clicks, "-k", "u-kcat"],
        input=line.encode() + b"\n",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    [message] = consume(kafka, topics.clicks, 1)
    event = decode_click(message.value())
    assert message.key() == b"u-kcat"
    assert event == ClickEvent(
        event_id="kcat-1",
        user_id="u-kcat",
        ts=1_700_000_000.5,
        activity=Activity.POST,
        amount=2500.0,
        loan_id="L-9",
        rate=0.18,
        term_days=180,
    )


def test_produce_waits_for_room_when_the_local_queue_is_full(
    kafka: KafkaSettings, topics: Topics
) -> None:
    producer = Producer(kafka.client_config(**{"queue.buffering.max.messages": 10}))
    for i in range(500):
        produce(producer, topics.clicks, f"m{i}".encode(), b"k")
    assert producer.flush(30) == 0
    assert [m.value() for m in consume(kafka, topics.clicks, 500)] == [
        f"m{i}".encode() for i in range(500)
    ]
