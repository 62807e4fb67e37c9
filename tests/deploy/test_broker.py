"""The local broker: lifecycle through the CLI, what status reports, and clear errors."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from deepcredit.settings import KafkaSettings, Topics
from deepcredit.topics import ensure_topics, topic_specs
from deploy.broker import BrokerConfig, BrokerStatus, LocalBroker
from deploy.cli import main
from deploy.jars import KAFKA_VERSION
from tests.ports import free_port_pair

pytestmark = pytest.mark.kafka


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def test_status_reports_the_running_version_and_the_live_cluster_id(
    kafka_broker: BrokerStatus,
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    live = admin.describe_cluster(request_timeout=10).result(timeout=15)
    assert kafka_broker.answering
    assert kafka_broker.kafka_version == KAFKA_VERSION
    assert kafka_broker.cluster_id == live.cluster_id
    assert [n.port for n in live.nodes] == [int(kafka_broker.bootstrap.rsplit(":", 1)[1])]


def test_cli_up_status_down(tmp_path: Path) -> None:
    port = str(free_port_pair())
    home = str(tmp_path / "broker")
    up = cli("kafka", "up", "--port", port, "--home", home, "--partitions", "2")
    try:
        assert up.returncode == 0, up.stderr
        assert f"127.0.0.1:{port}: up" in up.stdout
        assert f"kafka version : {KAFKA_VERSION}" in up.stdout
        for name in Topics().names():
            assert f"topic {name}" in up.stdout and "created" in up.stdout

        again = cli("kafka", "up", "--port", port, "--home", home)
        assert again.returncode == 0, again.stderr
        assert "exists" in again.stdout and "created" not in again.stdout

        status = cli("kafka", "status", "--port", port, "--home", home)
        assert status.returncode == 0
        cluster_id = next(
            line.split(":", 1)[1].strip()
            for line in status.stdout.splitlines()
            if "cluster id" in line
        )
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        live = admin.describe_cluster(request_timeout=10).result(timeout=15)
        assert cluster_id == live.cluster_id
    finally:
        down = cli("kafka", "down", "--port", port, "--home", home)
    assert down.returncode == 0 and "stopped" in down.stdout
    after = cli("kafka", "status", "--port", port, "--home", home)
    assert after.returncode == 3 and "not running" in after.stdout
    assert cli("kafka", "down", "--port", port, "--home", home).stdout.endswith(
        "was not running\n"
    )


def test_topics_have_their_settings_and_creation_is_idempotent(
    kafka: KafkaSettings, topics: Topics
) -> None:
    again = ensure_topics(kafka, topic_specs(topics, partitions=3))
    assert set(again.values()) == {"exists"}
    admin = AdminClient(kafka.client_config())
    meta = admin.list_topics(timeout=10).topics
    assert len(meta[topics.clicks].partitions) == 3
    assert len(meta[topics.thresholds].partitions) == 1
    resource = ConfigResource(ConfigResource.Type.TOPIC, topics.thresholds)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["cleanup.policy"].value == "compact"
    # Every thresholds change and every model decision, kept: neither compacted nor expired.
    for name in (topics.thresholds_audit, topics.models_audit):
        audit = ConfigResource(ConfigResource.Type.TOPIC, name)
        config = admin.describe_configs([audit])[audit].result(timeout=10)
        assert config["cleanup.policy"].value == "delete"
        assert (config["retention.ms"].value, config["retention.bytes"].value) == ("-1", "-1")
        assert len(meta[name].partitions) == 1


def test_port_in_use_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc = main(["kafka", "up", "--port", str(port), "--home", str(tmp_path)])
    assert rc == 1
    assert f"port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err


def test_missing_java_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path)  # nothing on it
    done = cli("kafka", "up", "--port", str(free_port_pair()), "--home", str(tmp_path), env=env)
    assert done.returncode == 1
    assert "Java 17+ is needed" in done.stderr and "Traceback" not in done.stderr


def test_missing_maven_is_a_clear_error_when_jars_are_not_cached(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = shutil.which("java")
    assert java is not None
    (bin_dir / "java").symlink_to(os.path.realpath(java))
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env.update(PATH=str(bin_dir), XDG_CACHE_HOME=str(tmp_path / "empty-cache"))
    done = cli("kafka", "up", "--port", str(free_port_pair()), "--home", str(tmp_path), env=env)
    assert done.returncode == 1
    assert "mvn (Apache Maven) is not on PATH" in done.stderr


def test_a_stale_pid_file_never_stops_someone_elses_process(tmp_path: Path) -> None:
    broker = LocalBroker(BrokerConfig(home=tmp_path, port=free_port_pair()))
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "broker.pid").write_text(f"{bystander.pid}\n")
        assert not broker.status().running
        assert broker.stop() is False
        assert bystander.poll() is None  # still alive
    finally:
        bystander.kill()
        bystander.wait()
