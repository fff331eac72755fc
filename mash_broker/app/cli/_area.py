"""`--area CODE` on the MASH manager's commands: one local authority of a region (``MASH_AREAS_DIR``)."""

from __future__ import annotations

from typing import Annotated

import typer

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.cli._common import EXIT_UNUSABLE, err
from mash_broker.contracts import MashError
from mash_broker.core.area_files import region_of
from mash_broker.core.areas import Area
from mash_broker.core.clocks import load_calendar
from mash_broker.core.policy import load_policy
from mash_broker.core.settings import Settings

AreaOption = Annotated[
    str | None,
    typer.Option("--area", help="One local authority of the region (its three-digit code): only what is its own."),
]


def checked_area(cfg: Settings, code: str | None) -> Area | None:
    """The authority ``code`` names (None: the whole deployment); exits 2 naming the problem otherwise."""
    if code is None:
        return None
    try:
        region = region_of(
            cfg,
            load_policy(cfg.policy_file, REGISTRY.policy_kinds),
            load_calendar(cfg.school_calendar, cfg.timezone),
            REGISTRY.policy_kinds,
        )
    except MashError as exc:
        err.print(f"unusable: MASH_AREAS_DIR: {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    if region is None:
        err.print("unusable: --area: no region is configured (MASH_AREAS_DIR is unset)", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    area = region.area(code)
    if area is None:
        err.print(f"unusable: --area: {code!r} is not an authority of region {region.name}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    return area
