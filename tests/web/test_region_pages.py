"""Isolation on the web pages in a region (issue 15): the demo's two authorities (999 and 998) behind one
stack, each with its own MASH manager (``mash:999``, ``mash:998``) beside the regional one (``mash``).

A police force (``police:examplepolice``) sees only what became of its own notifications, per authority.
An authority's manager sees only their authority's board: its schools' deadlines, its own MASH and advice
queues, the clocks of its messages and deliveries, its figures and the refusals of its own pages. Every page
of the app is tried across the boundary (another authority's board, a school's pages and notifications,
the manager's pages as a Key Adult): each answers 404 and is put on the audited log as
``web.access_refused``; what does not exist (an authority the region has not, an id that names nothing) is
only logged. The clock stands at 11:00 on Tuesday 24 November, past every deadline (998's included, moved
by its INSET day), so every school notification is on its authority's board as unread after the deadline.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from services.require import unavailable
from typer.testing import CliRunner

from mash_broker.app.cli import app as cli
from mash_broker.app.web.accounts import NotAnAuthority, set_password
from mash_broker.core.logging import configure_logging
from mash_broker.core.scope import area_scope
from mash_broker.demo.areas import AREAS_DIR, SCHOOLS
from web.conftest import DEMO, LONDON, PASSWORD, WebStack, chromium_paths
from web.test_pages import client, csrf_of, sign_in

TUESDAY_11 = datetime(2026, 11, 24, 11, 0, tzinfo=LONDON)
REGIONAL, SOUTH, NORTH = "morgan manager", "sol south", "nia north"
ALEX, PAT = "alex.keyadult@example.org", "pat.fictional@example.org"  # 900001 (999), 900003 (998)
# Pages a signed-out visitor may see: sign-in, the accessibility statement, the probes, the stylesheet.
PUBLIC = {"/login", "/login/oidc", "/login/oidc/callback", "/accessibility", "/healthz", "/readyz", "/static",
          "/logout", "/{rest:path}"}  # fmt: skip
# Every other page, and how each is tried across the boundary below.
GUARDED = {"/", "/inbox", "/inbox/{delivery_id}", "/inbox/{delivery_id}/read", "/board", "/board/{code}", "/force"}
FORCE, STRANGER = "pat police", "sam stranger"  # police:examplepolice (the region's force); a force it has not


@pytest.fixture(scope="module")
def region_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    tmp = tmp_path_factory.mktemp("region-web")
    stack = WebStack(tmp, schools=SCHOOLS, areas_dir=AREAS_DIR)
    stack.start()
    try:
        stack.call(stack.ingest(DEMO / "overnight-export.csv"))
        stack.clock.now = TUESDAY_11
        for who, name in (
            ("mash", "Morgan Manager"),
            ("mash:998", "Sol South"),
            ("mash:999", "Nia North"),
            ("900001", "Alex Keyadult"),
            ("900003", "Pat Fictional"),
            ("mash:997", "Gone Away"),
            ("police:examplepolice", "Pat Police"),
            ("police:otherforce", "Sam Stranger"),
        ):
            stack.call(set_password(stack.ledger, who, name, PASSWORD, stack.clock()))
        yield stack
    finally:
        stack.stop()


def scope_of(stack: WebStack, code: str) -> Any:
    return area_scope(stack.call(stack.ledger.events()), code)


def school_deliveries(stack: WebStack, code: str) -> set[str]:
    scope = scope_of(stack, code)
    return {
        d.delivery_id
        for d in stack.call(stack.ledger.all_deliveries())
        if d.recipient.startswith("school:") and d.delivery_id in scope.deliveries
    }


def table(html: str, table_id: str) -> str:
    start = re.search(rf'<table [^>]*id="{table_id}"', html)
    assert start, f"no table {table_id}"
    return html[start.end() :].split("</table>", 1)[0]


def row_ids(html: str, *table_ids: str) -> set[str]:
    return {i for t in table_ids for i in re.findall(r'data-id="([^"]+)"', table(html, t))}


def notifications_counted(html: str) -> int:
    """The first chart's figures: how many Encompass notifications its weeks count."""
    return sum(int(n) for n in re.findall(r" of (\d+)", table(html, "chart-1-figures")))


def refusals(stack: WebStack) -> list[dict[str, Any]]:
    return [e.detail for e in stack.call(stack.ledger.events("web.access_refused"))]


def test_every_guarded_page_is_tried_here(region_stack: WebStack) -> None:
    routes = {getattr(r, "path", "") for r in region_stack.web.server.config.app.routes}
    assert routes - PUBLIC == GUARDED


def test_an_authoritys_manager_sees_only_its_own_board(region_stack: WebStack) -> None:
    html = sign_in(region_stack, SOUTH).get("/board").text
    assert "MASH board: Example South (998)" in html
    south = school_deliveries(region_stack, "998")
    assert south
    assert row_ids(html, "due-today", "late", "unread") == south  # Max's and Harry's at Test Hill Primary
    assert notifications_counted(html) == len(south)
    assert "0</span> in the MASH queue" in html  # 998's own queue is empty; Harry's is the region's
    scope = scope_of(region_stack, "998")
    clocks = {c.clock_id: c.subject_id for c in region_stack.call(region_stack.ledger.clocks_past_warning(TUESDAY_11))}
    shown = row_ids(html, "clocks")
    assert shown
    assert all(clocks[c] in scope.deliveries | scope.messages for c in shown)
    assert 'id="authorities"' not in html


def test_the_other_authoritys_manager_sees_only_theirs(region_stack: WebStack) -> None:
    c = sign_in(region_stack, NORTH)
    html = c.get("/board").text
    north = school_deliveries(region_stack, "999")
    assert row_ids(html, "due-today", "late", "unread") == north
    assert not north & school_deliveries(region_stack, "998")
    queue = {q.message_id[:8] for q in region_stack.call(region_stack.ledger.queue("mash:999"))}
    assert len(queue) == 2  # Oliver (no school given) and Grace (a school not in the directory)
    assert all(m in table(html, "mash-queue") for m in queue)
    harry = {q.message_id[:8] for q in region_stack.call(region_stack.ledger.queue("mash"))}
    assert harry
    assert not any(m in html for m in harry)
    assert c.get("/board/999").status_code == 200  # its own board under its code too


def test_the_regional_manager_sees_the_whole_region_and_each_authoritys_board(region_stack: WebStack) -> None:
    c = sign_in(region_stack, REGIONAL)
    html = c.get("/board").text
    everyone = school_deliveries(region_stack, "998") | school_deliveries(region_stack, "999")
    assert row_ids(html, "due-today", "late", "unread") == everyone
    assert notifications_counted(html) == len(everyone)
    assert 'href="/board/998"' in html
    assert 'href="/board/999"' in html
    south = c.get("/board/998")
    assert south.status_code == 200
    assert row_ids(south.text, "due-today", "late", "unread") == school_deliveries(region_stack, "998")
    assert 'href="/board/998" id="refresh"' in south.text
    assert c.get("/board/997").status_code == 404  # no such authority


def test_every_page_across_the_boundary_is_404_and_audited(region_stack: WebStack) -> None:
    north_delivery = sorted(school_deliveries(region_stack, "999"))[0]
    south_delivery = sorted(school_deliveries(region_stack, "998"))[0]
    before = len(refusals(region_stack))
    south = sign_in(region_stack, SOUTH)
    token = csrf_of(south.get("/board").text)
    assert south.get("/").headers["location"] == "/board"
    tries = [
        south.get("/board/999"),
        south.get("/inbox"),
        south.get(f"/inbox/{north_delivery}"),
        south.post(f"/inbox/{north_delivery}/read", data={"csrf": token}),
        south.get(f"/inbox/{south_delivery}"),  # a manager never opens a school's notification
    ]
    assert [r.status_code for r in tries] == [404] * len(tries)
    pat = sign_in(region_stack, PAT)  # a Key Adult of a 998 school: no MASH board at all
    assert [pat.get(p).status_code for p in ("/board", "/board/998", "/board/999")] == [404, 404, 404]
    assert [pat.get(f"/inbox/{north_delivery}").status_code] == [404]
    new = refusals(region_stack)[before:]
    got = [(r["asked_by_org"], r["action"], r.get("page") or r["delivery_id"], r.get("area")) for r in new]
    assert got == [
        ("mash:998", "open", "/board/999", "999"),
        ("mash:998", "open", "/inbox", None),
        ("mash:998", "open", north_delivery, "999"),
        ("mash:998", "mark_read", north_delivery, "999"),
        ("mash:998", "open", south_delivery, "998"),
        ("school:900003", "open", "/board", None),
        ("school:900003", "open", "/board/998", "998"),
        ("school:900003", "open", "/board/999", "999"),
        ("school:900003", "open", north_delivery, "999"),
    ]
    row = region_stack.call(region_stack.ledger.delivery(north_delivery))
    assert row is not None
    assert row.read_at is None
    # what names nothing is only logged: guessing cannot fill the ledger
    assert south.get("/board/997").status_code == 404
    assert south.get(f"/inbox/{uuid.uuid4()}").status_code == 404
    assert len(refusals(region_stack)) == before + len(got)


def test_each_board_shows_the_refusals_of_its_own_pages_only(region_stack: WebStack) -> None:
    north_delivery = sorted(school_deliveries(region_stack, "999"))[0]
    alex = sign_in(region_stack, ALEX)
    assert alex.get("/board/998").status_code == 404  # a 999 school's Key Adult at 998's board
    assert sign_in(region_stack, SOUTH).get(f"/inbox/{north_delivery}").status_code == 404
    south = table(sign_in(region_stack, SOUTH).get("/board").text, "refused")
    north = table(sign_in(region_stack, NORTH).get("/board").text, "refused")
    assert "school:900001" in south
    assert "the page /board/998" in south
    assert north_delivery[:8] not in south
    assert north_delivery[:8] in north
    assert "mash:998" in north
    assert "the page /board/998" not in north
    regional = table(sign_in(region_stack, REGIONAL).get("/board").text, "refused")
    assert "the page /board/998" in regional
    assert north_delivery[:8] in regional


def test_a_manager_of_an_authority_the_region_has_not_cannot_sign_in(region_stack: WebStack) -> None:
    c = client(region_stack)
    page = c.get("/login")
    r = c.post("/login", data={"login": "gone away", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert r.status_code == 401
    with pytest.raises(NotAnAuthority):
        region_stack.call(set_password(region_stack.ledger, "mash:99x", "Bad Code", PASSWORD, TUESDAY_11))


def test_set_password_names_an_authority_of_the_region(tmp_path: Path) -> None:
    env = {"MASH_DATA_DIR": str(tmp_path), "MASH_AREAS_DIR": str(AREAS_DIR), "MASH_LOG_LEVEL": "WARNING"}
    runner = CliRunner()
    try:
        done = runner.invoke(cli, ["web", "set-password", "mash:998", "Sol South"], input=PASSWORD + "\n", env=env)
        assert done.exit_code == 0, done.output
        assert "MASH manager of authority 998" in done.stdout
        refused = runner.invoke(cli, ["web", "set-password", "mash:997", "Sol South"], input=PASSWORD + "\n", env=env)
        assert refused.exit_code == 2, refused.output
        assert "mash:997: not an authority of region example-region (998, 999)" in refused.stderr
        unset = {k: v for k, v in env.items() if k != "MASH_AREAS_DIR"}
        refused = runner.invoke(cli, ["web", "set-password", "mash:998", "Sol South"], input=PASSWORD + "\n", env=unset)
        assert refused.exit_code == 2, refused.output
        assert "no region (MASH_AREAS_DIR is unset)" in refused.stderr
    finally:
        configure_logging("INFO")


def test_set_password_names_a_force_of_the_region(tmp_path: Path) -> None:
    env = {"MASH_DATA_DIR": str(tmp_path), "MASH_AREAS_DIR": str(AREAS_DIR), "MASH_LOG_LEVEL": "WARNING"}
    runner = CliRunner()
    try:
        done = runner.invoke(cli, ["web", "set-password", "police:examplepolice", "Pat Police"], input=PASSWORD + "\n",
                             env=env)  # fmt: skip
        assert done.exit_code == 0, done.output
        assert "(police force police:examplepolice); they sign in as pat police" in done.stdout
        unset = {k: v for k, v in env.items() if k != "MASH_AREAS_DIR"}
        for who, where, says in (
            (
                "police:otherforce",
                env,
                "police:otherforce: not a force of region example-region (police:examplepolice)",
            ),
            ("police:Bad Force", unset, "a police force's account is police:<force>"),
        ):
            refused = runner.invoke(cli, ["web", "set-password", who, "Sam"], input=PASSWORD + "\n", env=where)
            assert refused.exit_code == 2, refused.output
            assert says in refused.stderr
    finally:
        configure_logging("INFO")


@pytest.mark.browser
def test_the_region_boards_pass_axe_and_reflow(region_stack: WebStack) -> None:
    """The regional board (with its authorities' links), an authority's board and a force's page keep the
    pages' standard."""
    paths = chromium_paths()
    if paths is None:
        unavailable("needs the system Chromium and chromedriver (apt-get install chromium chromium-driver)")
    from web.chromium import axe_violations, describe, overflow, set_width, start_chromium
    from web.chromium import sign_in as browser_sign_in

    driver = start_chromium(paths)
    problems: list[str] = []
    try:
        for who, path in ((REGIONAL, "/board"), (REGIONAL, "/board/998"), (SOUTH, "/board"), (FORCE, "/force")):
            driver.delete_all_cookies()
            browser_sign_in(driver, region_stack, who)
            for width in (1280, 320):
                set_width(driver, width)
                driver.get(region_stack.web.url + path)
                problems += [f"{who} {path} @ {width}: {v}" for v in describe(axe_violations(driver))]
                wide, viewport = overflow(driver)
                if width == 320 and wide > viewport:
                    problems.append(f"{who} {path} @ 320: {wide} px wide")
    finally:
        driver.quit()
    assert problems == []


# -- a police force's own page -------------------------------------------------------------------------


def force_rows(html: str) -> dict[str, str]:
    """The force's per-recipient table: data-id -> the row's text."""
    body = table(html, "force-notifications")
    return dict(re.findall(r'<tr data-id="([^"]+)".*?>(.*?)</tr>', body, re.S))


def test_a_force_sees_what_became_of_its_notifications_in_each_authority(region_stack: WebStack) -> None:
    c = sign_in(region_stack, FORCE)
    assert c.get("/").headers["location"] == "/force"
    html = c.get("/force").text
    assert "Notifications from police:examplepolice" in html
    ledger = region_stack.ledger
    deliveries = {d.delivery_id: d for d in region_stack.call(ledger.all_deliveries())}
    referred = {str(e.message_id) for e in region_stack.call(ledger.events("share.referred"))}
    withheld = {str(e.message_id) for e in region_stack.call(ledger.events("share.withheld"))}
    rows = force_rows(html)
    assert set(rows) == set(deliveries) | referred | withheld
    for did, d in deliveries.items():
        scope_998 = d.delivery_id in scope_of(region_stack, "998").deliveries
        assert ("Example South (998)" if scope_998 else "Example North (999)") in rows[did], did
        assert d.recipient in rows[did]
    for mid in referred:
        assert "queue mash" in rows[mid]
    by_message: dict[str, dict[str, str]] = {}
    for did, d in deliveries.items():
        by_message.setdefault(d.message_id, {})[d.recipient] = did
    lily = next(m for m in by_message.values() if {"mash:998", "school:900001"} <= set(m))  # cross-border
    assert "Example North (999)" in rows[lily["school:900001"]]  # her school's authority
    assert "Example South (998)" in rows[lily["mash:998"]]  # her home authority's MASH
    figures = table(html, "force-authorities")
    assert re.findall(r'<tr data-id="([^"]+)"', figures) == ["998", "999", "region"]
    south = re.search(r'<tr data-id="998".*?</tr>', figures, re.S)
    assert south is not None
    cells = [int(n) for n in re.findall(r"</span>(\d+)</td>", south.group(0))]
    to_mash, mash_received = cells[5], cells[6]
    assert to_mash == mash_received > 0  # 998's MASH received its police notifications in its inbox
    for personal in ("Lily", "Max", "Harry", "2017-01-20", "ZZ99"):
        assert personal not in html, personal


def test_a_force_is_refused_every_other_page_and_others_its_page(region_stack: WebStack) -> None:
    delivery = sorted(school_deliveries(region_stack, "999"))[0]
    before = len(refusals(region_stack))
    police = sign_in(region_stack, FORCE)
    token = csrf_of(police.get("/force").text)
    tries = [
        police.get("/board"),
        police.get("/board/998"),
        police.get("/inbox"),
        police.get(f"/inbox/{delivery}"),
        police.post(f"/inbox/{delivery}/read", data={"csrf": token}),
        sign_in(region_stack, SOUTH).get("/force"),
        sign_in(region_stack, REGIONAL).get("/force"),
        sign_in(region_stack, PAT).get("/force"),
    ]
    assert [r.status_code for r in tries] == [404] * len(tries)
    new = refusals(region_stack)[before:]
    got = [(r["asked_by_org"], r["action"], r.get("page") or r["delivery_id"], r["recipient"]) for r in new]
    assert got == [
        ("police:examplepolice", "open", "/board", "mash"),
        ("police:examplepolice", "open", "/board/998", "mash:998"),
        ("police:examplepolice", "open", "/inbox", "school"),
        ("police:examplepolice", "open", delivery, "school:900001"),
        ("police:examplepolice", "mark_read", delivery, "school:900001"),
        ("mash:998", "open", "/force", "police"),
        ("mash", "open", "/force", "police"),
        ("school:900003", "open", "/force", "police"),
    ]
    row = region_stack.call(region_stack.ledger.delivery(delivery))
    assert row is not None
    assert row.read_at is None


def test_a_force_the_region_does_not_name_cannot_sign_in(region_stack: WebStack) -> None:
    c = client(region_stack)
    page = c.get("/login")
    r = c.post("/login", data={"login": STRANGER, "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert r.status_code == 401
