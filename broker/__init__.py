"""MASH Broker's composition root and I/O: Kafka wiring, the ledger, the relay, the clocks, the CLI."""
