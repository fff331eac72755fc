"""Synthetic data for the demo and the tests: no real names, dates of birth, NHS numbers or addresses."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
