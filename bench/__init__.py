"""Benchmarks: scripts that print figures. Not tests, and not part of the installed package."""
