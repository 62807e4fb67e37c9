"""A single-node Apache Kafka broker in KRaft mode on loopback, started and stopped by us.

Everything it writes (config, data, logs, pid file) lives under one ``home`` folder, one per
port, so several brokers (a demo and a test session) can run side by side.

    broker = LocalBroker(BrokerConfig(home=Path("/tmp/k"), port=19092))
    broker.start(90)      # fetch jars once, format storage once, start, wait until it answers
    broker.status()       # BrokerStatus(running=True, kafka_version='4.3.1', cluster_id=...)
    broker.stop()         # SIGTERM to its own pid, SIGKILL after a grace period
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from deepcredit.errors import DeployError
from deepcredit.waiting import wait_until
from deploy.jars import KAFKA_VERSION, fetch_kafka_jars

__all__ = ["BrokerConfig", "BrokerStatus", "LocalBroker", "default_home"]

_MIN_JAVA = 17
_VERSION_LINE = re.compile(r"Kafka version: (\S+)")


def default_home(port: int) -> Path:
    """``$XDG_STATE_HOME/deepcredit/kafka-<port>``: broker state outside the repository."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "deepcredit" / f"kafka-{port}"


@dataclass(frozen=True)
class BrokerConfig:
    """Where and how to run the broker. The controller listens on ``port + 1`` by default."""

    home: Path
    port: int = field(default=9092, metadata={"help": "broker port; its controller listens on "
                                                      "the next one"})  # fmt: skip
    controller_port: int | None = None
    host: str = "127.0.0.1"
    version: str = KAFKA_VERSION
    cache_dir: Path | None = None
    heap_mb: int = 1024

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def controller(self) -> int:
        return self.controller_port or self.port + 1


@dataclass(frozen=True)
class BrokerStatus:
    """What a look at the broker found. ``answering`` means it replied to a metadata request."""

    running: bool
    answering: bool
    bootstrap: str
    home: Path
    pid: int | None = None
    kafka_version: str | None = None
    cluster_id: str | None = None

    def describe(self) -> str:
        if not self.running:
            return f"Kafka broker at {self.bootstrap}: not running (home {self.home})"
        state = "up" if self.answering else "started but NOT answering"
        return "\n".join(
            [
                f"Kafka broker at {self.bootstrap}: {state}",
                f"  kafka version : {self.kafka_version or 'unknown'}",
                f"  cluster id    : {self.cluster_id or 'unknown'}",
                f"  pid           : {self.pid}",
                f"  home          : {self.home}",
            ]
        )


class LocalBroker:
    """Start, inspect and stop one local broker. Safe to call ``start`` when it already runs."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        home = config.home
        self._pid_file = home / "broker.pid"
        self._properties = home / "config" / "server.properties"
        self._log4j = home / "config" / "log4j2.properties"
        self._logs = home / "logs"
        self._data = home / "data"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public -----------------------------------------------------------------------------

    def start(self, timeout_s: float) -> BrokerStatus:
        """Start the broker (or find it running) and wait until it answers, at most
        ``timeout_s`` seconds (then raises DeployError)."""
        current = self.status()
        if current.running:
            return current if current.answering else self._wait_until_answering(timeout_s)
        java = _find_java()
        cfg = self.config
        for port in (cfg.port, cfg.controller):
            _ensure_port_free(cfg.host, port)
        libs = fetch_kafka_jars(cfg.version, cfg.cache_dir)
        classpath = f"{libs}/*"
        self._write_config()
        if not (self._data / "meta.properties").exists():
            self._format_storage(java, classpath)
        self._logs.mkdir(parents=True, exist_ok=True)
        cmd = [
            java, f"-Xmx{cfg.heap_mb}m", "-Xms256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self._logs}",
            f"-Dlog4j2.configurationFile={self._log4j}",
            "-cp", classpath, "kafka.Kafka", str(self._properties),
        ]  # fmt: skip
        with open(self._logs / "broker.out", "ab") as out:
            # Own session: the broker outlives the CLI that started it and ignores its Ctrl-C.
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self._pid_file.write_text(f"{self._proc.pid}\n")
        return self._wait_until_answering(timeout_s)

    def status(self, timeout_s: float = 5.0) -> BrokerStatus:
        """Is our broker process alive, does it answer, and what version and cluster id?"""
        cfg = self.config
        pid = self._live_pid()
        if pid is None:
            return BrokerStatus(False, False, cfg.bootstrap, cfg.home)
        cluster_id = _cluster_id(cfg.bootstrap, timeout_s)
        return BrokerStatus(
            running=True,
            answering=cluster_id is not None,
            bootstrap=cfg.bootstrap,
            home=cfg.home,
            pid=pid,
            kafka_version=self._running_version(pid),
            cluster_id=cluster_id,
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop our broker by its own pid. Returns False when it was not running."""
        pid = self._live_pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        self._pid_file.unlink(missing_ok=True)
        return True

    # -- internals --------------------------------------------------------------------------

    def _write_config(self) -> None:
        cfg = self.config
        self._properties.parent.mkdir(parents=True, exist_ok=True)
        self._properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{cfg.host}:{cfg.controller}",
                    f"listeners=PLAINTEXT://{cfg.host}:{cfg.port},CONTROLLER://{cfg.host}:{cfg.controller}",
                    f"advertised.listeners=PLAINTEXT://{cfg.host}:{cfg.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self._data}",
                    # One node: internal topics cannot have more than one replica.
                    "offsets.topic.replication.factor=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    # Thresholds changes are transactions (with their audit record): one
                    # partition of transaction state is plenty, and the default 50 take
                    # seconds to create at the first change.
                    "transaction.state.log.num.partitions=1",
                    "num.partitions=1",
                    # Consumers join at once instead of waiting 3 s for others that never come.
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )
        self._log4j.write_bytes(
            resources.files("deploy").joinpath("kafka/log4j2.properties").read_bytes()
        )

    def _format_storage(self, java: str, classpath: str) -> None:
        cmd = [
            java, "-cp", classpath, f"-Dlog4j2.configurationFile={self._log4j}",
            f"-Dkafka.logs.dir={self._logs}", "kafka.tools.StorageTool", "format",
            "-t", _new_cluster_id(), "-c", str(self._properties),
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise DeployError(f"formatting KRaft storage in {self._data} failed:\n{done.stderr}")

    def _wait_until_answering(self, timeout_s: float) -> BrokerStatus:
        def answering() -> BrokerStatus | None:
            if self._proc is not None and self._proc.poll() is not None:
                self._pid_file.unlink(missing_ok=True)
                raise DeployError(
                    f"the Kafka broker exited with code {self._proc.returncode} while starting."
                    f" Last lines of its logs:\n{self._log_tail()}"
                )
            status = self.status(timeout_s=2.0)
            return status if status.answering else None

        try:
            return wait_until(answering, timeout_s, 0.5)
        except TimeoutError:
            raise DeployError(
                f"the Kafka broker did not answer on {self.config.bootstrap} within "
                f"{timeout_s:.0f} s. Last lines of its logs:\n{self._log_tail()}"
            ) from None

    def _live_pid(self) -> int | None:
        """The pid in our pid file, if that process is alive and is our broker."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _is_zombie(pid):
            _reap(pid)
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        ours = b"kafka.Kafka" in cmdline and str(self._properties).encode() in cmdline
        return pid if ours else None

    def _running_version(self, pid: int) -> str | None:
        """The version the live broker logged at start; else the one on its classpath."""
        log = self._logs / "server.log"
        with contextlib.suppress(OSError):
            found = _VERSION_LINE.findall(log.read_text(errors="replace"))
            if found:
                return found[-1]
        with contextlib.suppress(OSError, ValueError, IndexError):
            args = Path(f"/proc/{pid}/cmdline").read_text(errors="replace").split("\0")
            libs = Path(args[args.index("-cp") + 1].rstrip("*"))
            for jar in libs.glob("kafka_2.13-*.jar"):
                return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
        return None

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        def gone() -> bool:
            _reap(pid)
            if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
                _reap(pid)
                return True
            return False

        try:
            return wait_until(gone, timeout_s, 0.2)
        except TimeoutError:
            return False

    def _log_tail(self, lines: int = 30) -> str:
        chunks = []
        for name in ("broker.out", "server.log"):
            path = self._logs / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(chunks) or "(no logs written)"


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise DeployError(
            f"Java {_MIN_JAVA}+ is needed to run Apache Kafka and none was found (JAVA_HOME or "
            "PATH). Install it (Debian: apt-get install openjdk-17-jre-headless) and retry."
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(m.group(1)) if m else 0
    if major == 1 and m and m.group(2):  # "1.8.0" style
        major = int(m.group(2))
    if major < _MIN_JAVA:
        raise DeployError(f"Apache Kafka 4 needs Java {_MIN_JAVA}+, but {java} is: {out.strip()}")
    return java


def _ensure_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DeployError(
                f"port {port} on {host} is already in use ({exc.strerror}). Another broker or "
                "program holds it: stop it, or pick another port with --port."
            ) from None


def _new_cluster_id() -> str:
    """A Kafka Uuid: 16 random bytes, URL-safe base64 without padding, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _cluster_id(bootstrap: str, timeout_s: float) -> str | None:
    # Imported here: 'deepcredit kafka --help' reads BrokerConfig, and must not load the client.
    from confluent_kafka.admin import AdminClient

    # log_level 0: a broker that is still starting is expected, not worth a stderr warning.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        result = admin.describe_cluster(request_timeout=timeout_s).result(timeout=timeout_s + 1)
        return result.cluster_id
    except Exception:  # any failure to answer means "not answering"
        return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _reap(pid: int) -> None:
    """Collect our child's exit status so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
