"""The ledger: the durable record of every message, decision, delivery and acknowledgement.

``Ledger`` (storage.ledger) opens the engine and transactions and carries the queries of every
area; ``Tx`` (storage.tx) is one transaction's writes. Queries return the frozen records of
``mash_broker.core.records``; nothing outside this package touches the tables (storage.schema).
"""

from mash_broker.core.records import OutboxRow
from mash_broker.storage.ledger import Ledger
from mash_broker.storage.tx import Tx

__all__ = ["Ledger", "OutboxRow", "Tx"]
