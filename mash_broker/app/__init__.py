"""The composition root and the I/O at the edge: Kafka wiring, the embedded broker, the CLI and the web pages."""
