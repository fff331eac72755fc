"""The pages' Jinja2 environment: this package's templates and the GOV.UK Design System's components.

The components are the macros of ``govuk-frontend-jinja`` (4.1.0, checked against the fixtures of the
vendored govuk-frontend 6.6.0 for every component the pages use; static/govuk/VERSION), imported as
``govuk_frontend_jinja/components/<name>/macro.html``. Those macros test options a page leaves out
(``{% if params.classes %}``), so the environment's Undefined is falsy in a test while staying strict
everywhere a page would print or loop over a missing value: a misspelt name still fails loudly.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from mash_broker.core import views

TEMPLATES = Path(__file__).resolve().parent / "templates"


class OptionalUndefined(jinja2.StrictUndefined):
    """Strict, except that a missing option is false in a test and compares unequal (what the GOV.UK
    macros need); printing, iterating or calling it still raises."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    __eq__ = jinja2.Undefined.__eq__
    __ne__ = jinja2.Undefined.__ne__
    __hash__ = jinja2.Undefined.__hash__


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
