"""The ledger contract: one abstract suite, inherited by every storage backend (SQLite, PostgreSQL)."""
