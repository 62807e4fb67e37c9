"""Session fixtures: one real Apache Kafka broker for the whole test run, unique topics per test;
a small generated clickstream and a model trained on it."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepcredit.codec import decode_click
from deepcredit.events import ClickEvent
from deepcredit.jsonlines import read_lines
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.topics import ensure_topics, topic_specs
from deploy.broker import BrokerConfig, BrokerStatus, LocalBroker
from deploy.cli import main
from tests.ports import free_port_pair


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerStatus]:
    """A single-node KRaft broker on loopback, started once and stopped at the end."""
    home = tmp_path_factory.mktemp("kafka")
    broker = LocalBroker(BrokerConfig(home=home, port=free_port_pair(), heap_mb=512))
    status = broker.start(timeout_s=120)
    try:
        yield status
    finally:
        broker.stop()


@pytest.fixture
def kafka(kafka_broker: BrokerStatus) -> KafkaSettings:
    return KafkaSettings(kafka_broker.bootstrap)


@pytest.fixture
def topics(kafka: KafkaSettings) -> Topics:
    """Our eight topics under a prefix no other test uses."""
    names = Topics.from_prefix(f"t{uuid.uuid4().hex[:10]}-")
    ensure_topics(kafka, topic_specs(names, partitions=3))
    return names


@pytest.fixture(scope="session")
def kcat() -> str:
    """Path to kcat, an independent Kafka client; installed from Debian's packages if missing."""
    return debian_tool("kcat", "kcat")


@pytest.fixture(scope="session")
def prometheus() -> str:
    """Path to a real Prometheus server; installed from Debian's packages if missing."""
    return debian_tool("prometheus", "prometheus")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path to a real headless browser (Debian's chromium); installed if missing."""
    return debian_tool("chromium", "chromium")


def debian_tool(program: str, package: str) -> str:
    """``program``'s path, installing ``package`` with apt-get first if it is missing (the
    test script does the same up front; this covers a bare ``pytest`` run)."""
    found = shutil.which(program)
    if found is None:
        for cmd in (["apt-get", "install", "-y", "-q", package], ["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", package]):  # fmt: skip
            subprocess.run(cmd, capture_output=True)
            found = shutil.which(program)
            if found:
                break
    if found is None:
        pytest.fail(f"{program} is not installed and 'apt-get install {package}' did not "
                    "install it")  # fmt: skip
    return found


@pytest.fixture(scope="session")
def clicks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~6,000 events of 40 users over 400 days, in global time order: long enough for some
    loans to default (more than 120 days late), so a model trains on both classes."""
    path = tmp_path_factory.mktemp("clicks") / "clicks.jsonl"
    args = ["generate", "--users", "40", "--seed", "11", "--horizon-days", "400", "--quiet"]
    assert main([*args, "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def clicks(clicks_file: Path) -> list[ClickEvent]:
    events = [decode_click(line) for line in read_lines(str(clicks_file))]
    assert all(isinstance(e, ClickEvent) for e in events)
    return events  # type: ignore[return-value]


@pytest.fixture(scope="session")
def model_dir(clicks_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model (D = 8, one epoch) trained on the clicks: real weights, made in seconds."""
    out = tmp_path_factory.mktemp("models")
    args = ["train", "--events", str(clicks_file), "--out-dir", str(out), "--hidden", "8",
            "--epochs", "1", "--quiet"]  # fmt: skip
    assert main(args) == 0
    [folder] = out.iterdir()
    return folder
