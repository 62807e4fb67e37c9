#!/usr/bin/env bash
# Set up and run the whole test suite: lint, unit, property and integration tests. The
# integration tests start a real Apache Kafka broker on loopback (jars fetched once with mvn)
# and use kcat, an independent Kafka client, installed from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
if ! command -v kcat >/dev/null; then
    echo "== installing kcat from Debian's packages"
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get install -y -q kcat >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q kcat >/dev/null; }
fi
echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
