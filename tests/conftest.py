"""Session-wide fixtures for the outside services some tests need (see docs/testing.md).

Each starts lazily: only a test that asks for it starts it, so ``pytest tests/unit`` starts nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

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


# With pytest-xdist (``./run test`` runs two workers): a module's tests stay together (module fixtures are
# made once), and every module that starts the Apache Kafka cluster runs on one worker, so one cluster serves
# them all. xdist's own ``--dist loadgroup`` cannot do this under pytest 9 (it rewrites node ids, which
# pytest 9 no longer lets it), so the grouping is a scheduler of ours.
KAFKA_GROUP = "apache-kafka-cluster"

# An xdist worker runs with COLUMNS=80 and LINES=24 set, which the CLI's rich consoles read once, when
# they are made: a test that sets COLUMNS for a wide table would get 80 columns. Without them, the
# consoles size as in a single process.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


@cache
def _starts_kafka(path: str) -> bool:
    try:
        source = (Path(__file__).parent.parent / path).read_text(encoding="utf-8")
    except OSError:
        return False
    return "mark.kafka" in source


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByModuleKafkaTogether(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return KAFKA_GROUP if _starts_kafka(path) else path

        def _assign_work_unit(self, node: Any) -> None:
            # The cluster's modules are the longest unit (minutes on one worker): hand them out first, so the
            # other worker runs everything else beside them instead of waiting at the end.
            if KAFKA_GROUP in self.workqueue:
                self.workqueue.move_to_end(KAFKA_GROUP, last=False)
            super()._assign_work_unit(node)

    return ByModuleKafkaTogether(config, log)
