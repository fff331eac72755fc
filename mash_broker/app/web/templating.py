"""The pages' Jinja2 environment: this package's templates and the GOV.UK Design System's components.

The components are the macros of ``govuk-frontend-jinja`` (4.1.0, checked against the fixtures of the
vendored govuk-frontend 6.6.0 for every component the pages use; static/govuk/VERSION), imported as
``govuk_frontend_jinja/components/<name>/macro.html``. Those macros test options a page leaves out
(``{% if params.classes %}``), so the environment's Undefined is falsy in a test while staying strict
everywhere a page would print or loop over a missing value: a misspelt name still fails loudly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from mash_broker.core import views

TEMPLATES = Path(__file__).resolve().parent / "templates"


class OptionalUndefined(jinja2.Undefined):
    """Strict where it matters: printing, iterating, measuring or searching a missing value raises (as
    ``StrictUndefined`` does), but a missing option is false in a test and compares unequal (what the
    GOV.UK macros need)."""

    __slots__ = ()

    def __str__(self) -> str:
        self._fail_with_undefined_error()

    def __iter__(self) -> Iterator[Any]:
        self._fail_with_undefined_error()

    def __len__(self) -> int:
        self._fail_with_undefined_error()

    def __contains__(self, item: object) -> bool:
        self._fail_with_undefined_error()


def environment(tz: ZoneInfo) -> jinja2.Environment:
    """The environment every page renders in: autoescape on, times shown in ``tz``."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(TEMPLATES),
                jinja2.PrefixLoader({"govuk_frontend_jinja": jinja2.PackageLoader("govuk_frontend_jinja")}),
            ]
        ),
        autoescape=True,
        undefined=OptionalUndefined,
    )
    env.filters["local"] = lambda ts: local(ts, tz)
    return env


def local(ts: datetime | str | None, tz: ZoneInfo) -> str:
    """A stored time (a datetime or its ISO text) as the pages show it, in local time; empty for none."""
    if isinstance(ts, datetime):
        return views.local(ts, tz)
    return views.local(datetime.fromisoformat(ts), tz) if ts else ""
