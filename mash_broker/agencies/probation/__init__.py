"""Probation: a probation practitioner's contact to the MASH about children in the household of a person
on licence, the quality receipt back, and the MASH's outcome fed back under its own agreement
(``referrer-outcome-probation``) on probation's own delivery topic and inbox. The plug-in is
``agency.PROBATION``; probation sends on the MASH's inbound topic, as agencies without one of their own do.
"""

PROBATION_DELIVERIES = "probation.delivery.v1"
PROBATION_CLASSES = frozenset({"probation"})
