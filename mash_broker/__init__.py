"""MASH Broker: contracts, a consent gate and an audited log between agencies, over Kafka."""
