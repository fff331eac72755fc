"""Real-wire fixtures: one embedded tansu broker for the whole session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mash_broker.app.embedded import EmbeddedBroker, free_port

__all__ = ["free_port"]


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One running EmbeddedBroker for the session, stopped at the end."""
    broker = EmbeddedBroker(tmp_path_factory.mktemp("embedded-broker"))
    with broker:
        yield broker


@pytest.fixture(scope="session")
def embedded_bootstrap(embedded_broker: EmbeddedBroker) -> str:
    """``127.0.0.1:PORT`` of the session's embedded broker."""
    assert embedded_broker.bootstrap is not None
    return embedded_broker.bootstrap


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses (tansu keeps topics for the whole session)."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"test.{stem}.{uuid.uuid4().hex[:8]}"
