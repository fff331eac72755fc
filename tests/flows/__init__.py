"""Flow tests: the real FastStream app on TestKafkaBroker (in memory), with a SQLite ledger."""
