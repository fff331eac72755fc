"""In JSON mode every log line is one JSON object, the libraries' (aiokafka, uvicorn) too, and each line
a handler logs carries the unit of work's keys, bound once per record with structlog's context variables."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from flows.conftest import SCHOOL_URN, Flow
from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.contracts import Envelope
from mash_broker.core.logging import configure_logging, get_logger

PERSONAL = ("Zebedee", "Quillfeather", "2016-05-12", "ZZ99 1AA")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Logging configured as `mash up` does when not on a terminal, into a buffer; put back afterwards."""
    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out)
    yield out
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_mash", False)]:
        root.removeHandler(handler)


def lines_of(out: io.StringIO) -> list[dict[str, Any]]:
    text = out.getvalue()
    assert text.strip(), "nothing was logged"
    return [json.loads(line) for line in text.splitlines()]  # every line parses, or this fails


async def test_every_line_is_json_and_a_handlers_lines_carry_the_unit_of_work(
    json_lines: io.StringIO, flow: Flow, notification: Callable[..., Envelope]
) -> None:
    message = notification()
    await flow.send(message.model_dump_json().encode())
    await flow.settle()
    logging.getLogger("aiokafka.conn").warning("Unable connect to node with id %s", 1)  # a library's line
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    get_logger("mash.test").info("outside.any_handler")

    lines = lines_of(json_lines)
    by_event = {line["event"]: line for line in lines}
    assert by_event["Unable connect to node with id 1"]["logger"] == "aiokafka.conn"
    assert by_event["Unable connect to node with id 1"]["level"] == "warning"
    assert "ConnectionResetError" in by_event["Exception in ASGI application"]["exception"]

    decided = by_event["message.decided"]  # the gate's handler
    assert decided["topic"] == POLICE_NOTIFICATIONS
    assert decided["message_id"] == str(message.message_id)
    assert decided["correlation_id"] == str(message.correlation_id)
    assert decided["agency"]
    received = by_event["delivery.received"]  # the school inbox's handler: its topic is bound, not passed
    assert received["topic"] == EDUCATION_DELIVERIES
    assert received["correlation_id"] == str(message.correlation_id)
    assert received["agency"] == f"school:{SCHOOL_URN}"
    assert "topic" not in by_event["outside.any_handler"]  # unbound once the record is handled
    assert not any(p in json_lines.getvalue() for p in PERSONAL)
