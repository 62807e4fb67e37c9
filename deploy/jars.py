"""Apache Kafka's broker jars, fetched once from Maven Central with mvn into a cache.

The cache lives outside the repository (``$XDG_CACHE_HOME/deepcredit/kafka/<version>``) and a
marker file makes a half-finished download look like no download, so the next run retries.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from deepcredit.errors import DeployError

__all__ = ["KAFKA_VERSION", "default_cache_dir", "fetch_kafka_jars"]

KAFKA_VERSION = "4.3.1"
_COMPLETE = ".complete"
_DOWNLOADED = re.compile(r"^(?:\[INFO\] )?Downloaded from \S+: (\S+)")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepcredit" / "kafka"


def fetch_kafka_jars(
    version: str = KAFKA_VERSION, cache_dir: Path | None = None, *, quiet: bool = False
) -> Path:
    """Return the folder of jars for ``version``, downloading them first if not cached."""
    libs = (cache_dir or default_cache_dir()) / version / "libs"
    if (libs / _COMPLETE).exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DeployError(
            "mvn (Apache Maven) is not on PATH; it is needed once to fetch the Apache Kafka "
            "jars from Maven Central. Install it (Debian: apt-get install maven) and retry."
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    say = (lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"Fetching Apache Kafka {version} from Maven Central into {libs.parent} (once) ...")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=libs.parent, prefix="fetch-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_bytes(resources.files("deploy").joinpath("kafka/pom.xml").read_bytes())
        out = Path(tmp) / "libs"
        cmd = [
            mvn, "-B", "-f", str(pom), f"-Dkafka.version={version}",
            "dependency:copy-dependencies", f"-DoutputDirectory={out}", "-DincludeScope=runtime",
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp
        )
        assert proc.stdout is not None
        log: list[str] = []
        downloads = 0
        for line in proc.stdout:
            log.append(line)
            if _DOWNLOADED.match(line):
                downloads += 1
                if downloads % 20 == 0:
                    say(f"  ... {downloads} files downloaded ({time.monotonic() - started:.0f} s)")
        if proc.wait() != 0 or not any(out.glob(f"kafka_2.13-{version}.jar")):
            tail = "".join(log[-25:])
            raise DeployError(f"mvn could not fetch Apache Kafka {version}:\n{tail}")
        (out / _COMPLETE).write_text(f"{version}\n")
        if libs.exists():  # a partial copy from an interrupted run
            shutil.rmtree(libs)
        out.rename(libs)
    say(f"Fetched {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - started:.0f} s.")
    return libs
