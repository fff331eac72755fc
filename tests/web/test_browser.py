"""The pages in headless Chromium (Debian's chromium + chromium-driver, driven by selenium; no browser
download). One app and one browser for the module. Screenshots go to tests/output/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from services.require import unavailable

from mash_broker.agencies.police import POLICE_ACKNOWLEDGEMENTS
from mash_broker.contracts import Envelope, PersonRead
from web.conftest import DEMO, PASSWORD, SCREENSHOTS, SCRIPT_SUMMARY, WebStack, chromium_paths
from web.oidc_provider import SAM, oidc_site

pytestmark = pytest.mark.browser

PATHS = chromium_paths()
if PATHS is None:
    unavailable(
        "needs the system Chromium and chromedriver (apt-get install chromium chromium-driver;"
        " ./run test installs them when run as root)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402  # only once we know a browser is there
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    assert PATHS is not None
    options = webdriver.ChromeOptions()
    options.binary_location = PATHS[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=PATHS[1]), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: WebDriver, stack: WebStack, login: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{stack.web.url}/login")
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 15).until(lambda d: not d.current_url.endswith("/login"))


def click_and_wait(driver: WebDriver, element_id: str, then: str) -> None:
    """Click, then wait for the next page's element ``then`` (a form post is a new page load)."""
    driver.find_element(By.ID, element_id).click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, then))


def shot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, max(1000, int(height) + 40))
    driver.save_screenshot(str(SCREENSHOTS / name))
    driver.set_window_size(1280, 1000)


def test_key_adult_sees_exactly_their_schools_notifications_and_opening_one_tells_police(
    web_stack: WebStack,
    browser: WebDriver,
) -> None:
    sign_in(browser, web_stack, "alex.keyadult@example.org")
    assert browser.current_url.endswith("/inbox")
    shown = [tr.get_attribute("data-id") for tr in browser.find_elements(By.CSS_SELECTOR, "#inbox tbody tr[data-id]")]
    ours = [d.delivery_id for d in web_stack.call(web_stack.ledger.deliveries_for("school:900001"))]
    assert shown == ours  # exactly this school's, newest first
    assert len(ours) >= 3
    shot(browser, "inbox.png")

    target = next(d for d in ours if d != _script_delivery(web_stack))
    web_stack.clock.now += timedelta(minutes=20)  # 07:20, within the 30 idle minutes a session lasts
    browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{target}"] a.open').click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "open"))
    assert browser.find_elements(By.ID, "child") == []  # the content only once it is opened
    click_and_wait(browser, "open", "read-by")
    assert browser.find_element(By.ID, "read-by").text.startswith("Alex Keyadult")
    assert browser.find_element(By.ID, "child").text
    shot(browser, "notification.png")

    row = web_stack.call(web_stack.ledger.delivery(target))
    assert row is not None
    assert row.read_by == "Alex Keyadult"
    assert row.read_at == web_stack.clock.now
    events = web_stack.call(web_stack.ledger.events("notification.read"))
    assert any(e.detail["delivery_id"] == target for e in events)
    acks = [Envelope.model_validate_json(r.value) for r in web_stack.call(_outbox(web_stack))]
    reads = [a.payload for a in acks if isinstance(a.payload, PersonRead)]
    assert [(p.reader_name, p.reader_org, str(p.read_message_id)) for p in reads] == [
        ("Alex Keyadult", "school:900001", row.message_id)
    ]
    # and what police see of what they sent (`mash police status`): read, by whom, when
    status = [
        r
        for r in web_stack.call(web_stack.ledger.sender_status("police:examplepolice"))
        if r.message_id == row.message_id and r.recipient == "school:900001"
    ]
    assert [(r.read_by, r.read_at) for r in status] == [("Alex Keyadult", web_stack.clock.now)]


def test_key_adult_signs_in_through_an_oidc_provider(web_stack: WebStack, browser: WebDriver) -> None:
    """The provider is another site (localhost; the pages are on 127.0.0.1) and the person clicks on its
    page, so the way back starts cross-site: the session cookie (SameSite=Strict) must still hold on
    the inbox."""
    with oidc_site(web_stack) as site:
        site.provider.email = SAM  # in the directory for 900001, with no password
        site.provider.interactive = True
        browser.delete_all_cookies()
        browser.get(f"{site.web.url}/login")
        browser.find_element(By.ID, "sign-in-oidc").click()
        WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "continue"))
        assert browser.current_url.startswith(site.provider.issuer + "/authorize?")
        browser.find_element(By.ID, "continue").click()
        # Ends on the inbox, or (had the session cookie not held) on the sign-in form.
        WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "inbox") or d.find_elements(By.ID, "login"))
        assert browser.current_url == f"{site.web.url}/inbox"
        rows = browser.find_elements(By.CSS_SELECTOR, "#inbox tbody tr[data-id]")
        ours = web_stack.call(web_stack.ledger.deliveries_for("school:900001"))
        assert [tr.get_attribute("data-id") for tr in rows] == [d.delivery_id for d in ours]
        browser.get(f"{site.web.url}/board")  # a Key Adult, however signed in, is not MASH
        assert browser.find_element(By.ID, "not-found").text == "Not found"


def test_second_schools_key_adult_cannot_reach_it_by_url(web_stack: WebStack, browser: WebDriver) -> None:
    theirs = web_stack.call(web_stack.ledger.deliveries_for("school:900001"))[0].delivery_id
    sign_in(browser, web_stack, "jo.testperson@example.org")
    shown = {tr.get_attribute("data-id") for tr in browser.find_elements(By.CSS_SELECTOR, "#inbox tbody tr[data-id]")}
    assert theirs not in shown
    browser.get(f"{web_stack.web.url}/inbox/{theirs}")
    assert browser.find_element(By.ID, "not-found").text == "Not found"
    assert "Ava" not in browser.page_source


def test_summary_with_script_is_shown_as_text(web_stack: WebStack, browser: WebDriver) -> None:
    sign_in(browser, web_stack, "alex.keyadult@example.org")
    target = _script_delivery(web_stack)
    browser.get(f"{web_stack.web.url}/inbox/{target}")
    if browser.find_elements(By.ID, "open"):
        click_and_wait(browser, "open", "summary")
    assert browser.find_element(By.ID, "summary").text == SCRIPT_SUMMARY
    assert browser.title != "pwned"
    assert browser.find_elements(By.CSS_SELECTOR, "#summary script, #summary b") == []


def test_board_shows_a_late_notification_as_late(web_stack: WebStack, browser: WebDriver) -> None:
    web_stack.clock.now = web_stack.clock.now.replace(hour=10, minute=30)
    web_stack.call(web_stack.ingest(DEMO / "late-export.csv"))  # a Sunday-night incident reported at 10:15
    late = [
        d
        for d in web_stack.call(web_stack.ledger.deliveries_for("school:900004"))
        if d.delivered_at and d.notify_by and d.delivered_at > d.notify_by
    ]
    assert late
    sign_in(browser, web_stack, "morgan manager")
    assert browser.current_url.endswith("/board")
    row = browser.find_element(By.CSS_SELECTOR, f'#late tr[data-id="{late[0].delivery_id}"]')
    assert "late" in row.text
    assert int(browser.find_element(By.ID, "n-unread").text) >= 1
    assert "overdue" in browser.find_element(By.CSS_SELECTOR, "#unread tbody tr").text
    assert browser.find_elements(By.CSS_SELECTOR, "svg rect")  # the weekly charts, drawn server-side
    # the Encompass read clocks of the notifications unread at 10.00 are past their deadline
    assert any(
        "encompass read" in tr.text and "over by" in tr.text
        for tr in browser.find_elements(By.CSS_SELECTOR, "#clocks tbody tr")
    )
    assert "Ruby" not in browser.page_source  # the board names no child
    shot(browser, "board.png")


def _script_delivery(stack: WebStack) -> str:
    rows = stack.call(stack.ledger.deliveries_for("school:900001"))
    return next(r.delivery_id for r in rows if "EXP/2026/1099" in r.envelope)


async def _outbox(stack: WebStack) -> list[object]:
    from sqlalchemy import select

    from mash_broker.storage import schema as t
    from mash_broker.storage.rows import outbox_row as _outbox_row

    async with stack.ledger.reader() as tx:
        rows = (
            (await tx.conn.execute(select(t.outbox).where(t.outbox.c.topic == POLICE_ACKNOWLEDGEMENTS)))
            .mappings()
            .all()
        )
    return [_outbox_row(r) for r in rows]
