"""Session-wide fixtures for the outside services some tests need (see docs/testing.md).

Each starts lazily: only a test that asks for it starts it, so ``pytest tests/unit`` starts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from services import postgres


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL (``postgresql+asyncpg://...``) for the session: ``MASH_TEST_POSTGRES_URL``, or a
    throwaway server started now and removed at the end of the session. Tests make their own schema in it."""
    yield from postgres.session_url()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for server in postgres.started:
        terminalreporter.write_line(f"PostgreSQL for the tests: {server.description}, ready in {server.seconds:.2f} s")
