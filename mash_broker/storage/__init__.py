"""The ledger: the durable record of every message, decision, delivery and acknowledgement."""

from mash_broker.storage.store import EventHook, Ledger, OutboxRow, Tx

__all__ = ["EventHook", "Ledger", "OutboxRow", "Tx"]
