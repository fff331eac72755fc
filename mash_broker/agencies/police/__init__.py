"""Police: overnight domestic abuse exports mapped to Operation Encompass notifications (``export``,
``ingest``); its plug-in is ``agency.POLICE``."""

POLICE_NOTIFICATIONS = "police.notification.v1"
POLICE_RECEIPTS = "police.receipt.v1"
POLICE_ACKNOWLEDGEMENTS = "police.acknowledgement.v1"
