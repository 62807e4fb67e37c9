"""Fixtures of the deployment files' tests."""

from __future__ import annotations

import pytest

from tests.conftest import debian_tool


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path to promtool, which Debian's prometheus package installs with the server."""
    return debian_tool("promtool", "prometheus")
