#!/usr/bin/env bash
# Set up and run the whole test suite: lint, unit, property and integration tests. The
# integration tests start a real Apache Kafka broker on loopback (jars fetched once with mvn)
# and use kcat, an independent Kafka client, and a Prometheus server; the report's page is
# rendered in headless Chromium; all three installed from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
for tool in kcat prometheus chromium; do
    if ! command -v "$tool" >/dev/null; then
        echo "== installing $tool from Debian's packages"
        $SUDO apt-get install -y -q "$tool" >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "$tool" >/dev/null; }
    fi
done
echo "== ruff"
.venv/bin/ruff check .
echo "== import layers (lint-imports: the floors of pyproject.toml)"
.venv/bin/lint-imports --no-cache
echo "== pytest (${DEEPCREDIT_TEST_WORKERS:=2} workers, each with its own broker; whole files per worker)"
exec .venv/bin/python -m pytest -n "$DEEPCREDIT_TEST_WORKERS" --dist loadfile "$@"
