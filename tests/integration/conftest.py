"""Real-wire fixtures: one embedded tansu broker and one Apache Kafka cluster for the whole session.

The Kafka cluster (``kafka_cluster``, three KRaft nodes, SASL_SSL and mutual TLS, ACLs) is shared by
test_kafka_cluster.py and test_kafka_product.py; it starts only when a test asks for it. Every SCRAM user
either module needs is created when its storage is formatted (cheaper than one ConfigCommand JVM each).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from services.kafka_cluster import kafka_cluster_fixture

from mash_broker.app.embedded import EmbeddedBroker, free_port

__all__ = ["free_port"]

# test_kafka_cluster.py: a SCRAM user made at format time and a client certificate (CN=app-mtls -> User:app-mtls).
ALICE, ALICE_PASSWORD = "alice", uuid.uuid4().hex
MTLS_CLIENT = "app-mtls"
# test_kafka_product.py: the gate's, a police force's and a school system's SCRAM users.
GATE_USER, GATE_PASSWORD = "mash-gate", uuid.uuid4().hex
POLICE_USER, POLICE_PASSWORD = "police-examplepolice", uuid.uuid4().hex
SCHOOL_USER, SCHOOL_PASSWORD = "school-system", uuid.uuid4().hex

kafka_cluster = kafka_cluster_fixture(
    scram_users={
        ALICE: ALICE_PASSWORD,
        GATE_USER: GATE_PASSWORD,
        POLICE_USER: POLICE_PASSWORD,
        SCHOOL_USER: SCHOOL_PASSWORD,
    },
    client_names=(MTLS_CLIENT,),
)


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


# The product's fixtures on the cluster (a fresh PostgreSQL ledger, the cluster with the product's ACLs), for
# every module on it; imported last, because kafka_support imports the users above.
from .kafka_support import cluster, ledger_url, prepared  # noqa: E402

__all__ += ["cluster", "ledger_url", "prepared"]
