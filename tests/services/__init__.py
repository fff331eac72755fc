"""The outside services some tests need, and the rule for when one is missing (``require``)."""
