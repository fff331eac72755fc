"""Education: the school directory (``directory``), each school's inbox (``inbox``) and its plug-in
(``agency.EDUCATION``: a domestic abuse notification routed to the child's school, by its notify-by)."""

EDUCATION_INBOUND = "education.inbound.v1"
EDUCATION_DELIVERIES = "education.delivery.v1"
