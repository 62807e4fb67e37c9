#!/usr/bin/env bash
# Create .venv with the project and its dev tools. Idempotent; pip's cache serves repeats.
# Needs Python 3.11 or 3.12 (python3, or set PYTHON). Prints what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))'; then
    echo "deepcredit: Python 3.11 or 3.12 is needed; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
echo "== installing deepcredit-stream and its dependencies into .venv (torch is large: first time takes minutes)"
.venv/bin/python -m pip install --quiet --progress-bar off -e '.[dev]'
