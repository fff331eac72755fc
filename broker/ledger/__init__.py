"""The ledger: the durable record of every message, decision, delivery and acknowledgement."""

from broker.ledger.store import Ledger, OutboxRow, Tx

__all__ = ["Ledger", "OutboxRow", "Tx"]
