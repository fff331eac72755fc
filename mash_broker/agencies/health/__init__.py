"""Health adapter: health visitors, school nurses, health's looked-after team and GP practices.

Pure: ``teams`` (the health directory CSV), ``deadlines`` (initial health assessment due time, the
s47 answered-on-time status). I/O: ``inbox`` (system receipts and person reads, through the shared
``adapters.inbox``), ``tracking`` (the audited events the health clocks key on, and a GP report
checked against its request, inside the gate's transaction). Routing by age is
``consent_gate.health``; the contracts are ``contracts.health``. See docs/architecture.md, "Health".
"""
