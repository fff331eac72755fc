"""Health: health visitors, school nurses, health's looked-after team and GP practices.

Pure: ``teams`` (the health directory CSV), ``routing`` (which team serves a child, by age),
``deadlines`` (initial health assessment due time, the s47 answered-on-time status). I/O: ``inbox``
(system receipts and person reads, through the shared ``core.inbox``), ``tracking`` (the audited events
the health clocks key on, and a GP report checked against its request, inside the gate's transaction).
The plug-in is ``agency.HEALTH``; the contracts are ``contracts.health``. See docs/architecture.md, "Health".
"""

HEALTH_INBOUND = "health.inbound.v1"
HEALTH_DELIVERIES = "health.delivery.v1"
# Recipient classes served by the health delivery topic.
HEALTH_CLASSES = frozenset({"health_visitor", "school_nurse", "gp", "health"})
