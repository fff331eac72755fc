"""The demo and the synthetic-week generator, with their synthetic data: not part of the product's runtime."""
