"""The demo's region (synthetic): two local authorities served by one force, as package data."""

from pathlib import Path

AREAS_DIR = Path(__file__).resolve().parent
SCHOOLS = AREAS_DIR / "schools.csv"  # the demo's schools, Test Hill Primary (900003) in authority 998
