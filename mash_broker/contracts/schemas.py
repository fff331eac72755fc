"""JSON Schema for every contract, as `mash contracts export` writes and the repo commits them."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from mash_broker.contracts.clocks import ClockAlert
from mash_broker.contracts.corrections import DeliveryWithdrawn, NotificationWithdrawn
from mash_broker.contracts.envelope import Envelope
from mash_broker.contracts.health import (
    GpReport,
    HealthAssessmentCompleted,
    HealthAssessmentRequest,
    LookedAfterChange,
    S47InfoRequest,
)
from mash_broker.contracts.payloads import (
    ConsentDispensation,
    ConsentRecord,
    Contact,
    Delivery,
    EncompassNotification,
    Outcome,
    PersonRead,
    Quarantined,
    SystemReceipt,
)

CONTRACTS: dict[str, type[BaseModel]] = {
    "envelope": Envelope,
    "notification.encompass": EncompassNotification,
    "notification.encompass.withdrawal": NotificationWithdrawn,
    "delivery.withdrawn": DeliveryWithdrawn,
    "contact": Contact,
    "outcome": Outcome,
    "consent": ConsentRecord,
    "consent.dispensation": ConsentDispensation,
    "ack.system_receipt": SystemReceipt,
    "ack.person_read": PersonRead,
    "delivery": Delivery,
    "quarantined": Quarantined,
    "care.looked_after_change": LookedAfterChange,
    "health.assessment_request": HealthAssessmentRequest,
    "s47.info_request": S47InfoRequest,
    "s47.gp_report": GpReport,
    "health.assessment_completed": HealthAssessmentCompleted,
    "clock.alert": ClockAlert,
}

COMMITTED = Path(__file__).parent / "jsonschema"


def schema_documents() -> dict[str, str]:
    """File name -> JSON text, stable (sorted keys) so the committed copies can be compared."""
    docs = {}
    for name, model in CONTRACTS.items():
        schema = model.model_json_schema()
        schema["$id"] = f"urn:mash-broker:contract:{name}:v1"
        docs[f"{name}.v1.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return docs


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_documents().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
