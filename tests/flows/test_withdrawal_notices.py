"""A withdrawal notice reaches every inbox that held a copy, not only the school's.

With health teams set (the demo's ``health-teams.csv``), a police notification is shared with the school and
with the school nurse team. When police withdraw it, the gate sends a content-free ``delivery.withdrawn``
notice on each recipient's delivery topic; each recipient's inbox records that the notice reached it (the
copy is hidden from then on). The health inbox used to log the notice as "not for this inbox" and drop it,
so the health copy's notice was never recorded as received. All synthetic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest
from faststream.kafka import TestKafkaBroker
from signing_helpers import Keyring

from flows.conftest import NOW, Flow
from mash_broker.agencies.police.versions import withdrawal_of
from mash_broker.app.bootstrap import build_broker, build_services
from mash_broker.contracts import Envelope
from mash_broker.core.messages import encode
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

SCHOOL_NURSE = "school_nurse:sn-north"  # the demo's team for school 900001


@pytest.fixture
async def health_flow(tmp_path: Path, ledger: Ledger, keyring: Keyring) -> AsyncIterator[Flow]:
    teams = resources.files("mash_broker.demo.data") / "health-teams.csv"
    settings = Settings(data_dir=tmp_path, health_teams=Path(str(teams)))
    broker = build_broker("localhost:9092", embedded=True)
    services = build_services(settings, ledger, broker, lambda: NOW + timedelta(minutes=5))
    async with TestKafkaBroker(broker):
        yield Flow(services=services, ledger=ledger, broker=broker)


async def test_a_withdrawal_notice_is_recorded_by_the_health_inbox_as_by_the_schools(
    health_flow: Flow, notification: Callable[[], Envelope], keyring: Keyring
) -> None:
    flow = health_flow
    sent = notification()
    await flow.send(encode(sent).encode())
    await flow.settle()
    copies = {d.recipient: d for d in await flow.ledger.deliveries_of(str(sent.message_id))}
    assert set(copies) == {"school:900001", SCHOOL_NURSE}
    assert all(d.delivered_at is not None for d in copies.values()), "both copies delivered before the withdrawal"

    (head,) = (await flow.ledger.notification_heads([str(sent.message_id)])).values()
    withdrawal = keyring.sign(withdrawal_of(head, now=NOW + timedelta(minutes=1)))
    await flow.send(encode(withdrawal).encode())
    await flow.settle()

    for recipient, copy in copies.items():
        withdrawn = await flow.ledger.withdrawn_copies_for(recipient)
        assert withdrawn[copy.delivery_id].notice_id is not None, f"a notice went to {recipient}"
        assert withdrawn[copy.delivery_id].notice_received_at is not None, f"{recipient}'s inbox recorded the notice"
    received = [e for e in await flow.ledger.events("delivery.withdrawal_received")]
    assert sorted(e.detail["recipient"] for e in received) == sorted(copies)
