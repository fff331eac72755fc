"""The audited log: a Merkle tree (RFC 6962/9162) over the ledger's events, signed checkpoints, proofs.

Modules: ``merkle`` (pure hashing and proofs), ``entries`` (canonical bytes of entries and checkpoints),
``keys`` (Ed25519 key store), ``checkpoints`` (writing signed tree heads), ``verify`` (checking the
whole log), ``proofs`` (inclusion proofs and exports a third party checks offline).

This package imports nothing at load time: the ledger imports ``broker.audit.entries`` to hash each
event as it is written, and the I/O modules here import the ledger.
"""
