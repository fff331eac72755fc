"""WCAG 2.2 AA in headless Chromium, looked at as a person would: axe-core on every page (signed out, as
a Key Adult, as a MASH manager) at 1280 and 320 CSS pixels with no violation allowed, the page no wider
than a 320 px screen, nothing refused by the CSP, text that follows the reader's font size, the sign-in
error pattern, and a Key Adult's whole journey by keyboard alone at 320 px. Screenshots of every page at
both widths go to tests/output/screenshots/ (a11y-<page>-<width>.png)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from services.require import unavailable

from web.conftest import PASSWORD, WebStack, chromium_paths

pytestmark = pytest.mark.browser

PATHS = chromium_paths()
if PATHS is None:
    unavailable(
        "needs the system Chromium and chromedriver (apt-get install chromium chromium-driver;"
        " ./run test installs them when run as root)",
        allow_module_level=True,
    )

from selenium.webdriver.common.by import By  # noqa: E402  # only once we know a browser is there
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

from web.chromium import (  # noqa: E402
    GOVUK_FOCUS,
    axe_violations,
    csp_refusals,
    describe,
    focus_style,
    full_page_shot,
    overflow,
    set_width,
    sign_in,
    viewport_shot,
)

ALEX, MORGAN, NOBODY = "alex.keyadult@example.org", "morgan manager", "nobody@example.org"
WIDTHS = (1280, 320)
Visit = Callable[[WebDriver, WebStack], None]


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    assert PATHS is not None
    from web.chromium import start_chromium

    driver = start_chromium(PATHS)
    try:
        yield driver
    finally:
        driver.quit()


def ours(stack: WebStack) -> list[str]:
    return [d.delivery_id for d in stack.call(stack.ledger.deliveries_for("school:900001"))]


def go(path: str) -> Visit:
    def visit(driver: WebDriver, stack: WebStack) -> None:
        driver.get(stack.web.url + path)

    return visit


def failed_sign_in(driver: WebDriver, stack: WebStack) -> None:
    sign_in(driver, stack, NOBODY, "not the password")


def expired_form(driver: WebDriver, stack: WebStack) -> None:
    """The session's CSRF token no longer matches (as after signing in again elsewhere): the error page."""
    driver.get(f"{stack.web.url}/inbox/{ours(stack)[-1]}")
    driver.execute_script("document.querySelector(\"form[action$='/read'] input[name=csrf]\").value = 'stale';")
    driver.find_element(By.ID, "open").click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "error"))


def unread(driver: WebDriver, stack: WebStack) -> None:
    driver.get(f"{stack.web.url}/inbox/{ours(stack)[-1]}")


def read(driver: WebDriver, stack: WebStack) -> None:
    target = ours(stack)[0]
    driver.get(f"{stack.web.url}/inbox/{target}")
    if driver.find_elements(By.ID, "open"):
        driver.find_element(By.ID, "open").click()
        WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "read-by"))


def another_schools(driver: WebDriver, stack: WebStack) -> None:
    other = stack.call(stack.ledger.deliveries_for("school:900002"))[0].delivery_id
    driver.get(f"{stack.web.url}/inbox/{other}")


# (who is signed in, page name, how to get there): every page and state a person can see.
PAGES: list[tuple[str | None, str, Visit]] = [
    (None, "sign-in", go("/login")),
    (None, "sign-in-error", failed_sign_in),
    (None, "accessibility", go("/accessibility")),
    (None, "not-found", go("/no-such-page")),
    (ALEX, "inbox", go("/inbox")),
    (ALEX, "notification-unread", unread),
    (ALEX, "notification-read", read),
    (ALEX, "not-found-other-school", another_schools),
    (ALEX, "form-expired", expired_form),
    (ALEX, "accessibility-key-adult", go("/accessibility")),
    (MORGAN, "board", go("/board")),
    (MORGAN, "accessibility-mash", go("/accessibility")),
]


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_passes_axe_reflows_and_keeps_the_csp(web_stack: WebStack, browser: WebDriver, width: int) -> None:
    problems: list[str] = []
    signed_in_as: str | None = "?"
    for who, name, visit in PAGES:
        set_width(browser, width)
        if who != signed_in_as:
            browser.delete_all_cookies()
            if who:
                sign_in(browser, web_stack, who)
            signed_in_as = who
        csp_refusals(browser)  # what came before this page
        visit(browser, web_stack)
        problems += [f"{name} @ {width}: {v}" for v in describe(axe_violations(browser))]
        wide, viewport = overflow(browser)
        if width == 320 and wide > viewport:
            problems.append(f"{name} @ 320: the page is {wide} px wide, so it scrolls sideways")
        problems += [f"{name} @ {width}: CSP refused {m}" for m in csp_refusals(browser)]
        if not browser.title.endswith(" · MASH Broker") or browser.title == " · MASH Broker":
            problems.append(f"{name}: the title {browser.title!r} does not name the page")
        if not browser.find_elements(By.CSS_SELECTOR, "footer a[href='/accessibility']"):
            problems.append(f"{name}: no link to the accessibility statement in the footer")
        full_page_shot(browser, f"a11y-{name}-{width}.png", width)
    assert problems == [], "\n".join(problems)


def test_text_follows_the_readers_font_size(web_stack: WebStack) -> None:
    """A reader who sets a 32 px default font (double Chromium's 16) gets every text twice as large, and
    the board still fits the window. 1600 px wide, so both are past the widest breakpoint (48.0625em:
    the breakpoints are in em, so they follow the font size too)."""
    assert PATHS is not None
    from web.chromium import start_chromium

    sizes = {}
    for default in (16, 32):
        driver = start_chromium(PATHS, prefs={"webkit.webprefs.default_font_size": default})
        try:
            set_width(driver, 1600)
            sign_in(driver, web_stack, MORGAN)
            driver.get(f"{web_stack.web.url}/board")
            sizes[default] = driver.execute_script(
                "return ['p.govuk-body', 'td.govuk-table__cell', 'th.govuk-table__header', '.govuk-tag',"
                " '.app-tile__n', 'h1', '.govuk-footer__link']"
                ".map(s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize));"
            )
            wide, viewport = overflow(driver)
            assert wide <= viewport, f"at a {default} px default font the board is {wide} px wide"
        finally:
            driver.quit()
    assert [round(big / small, 2) for small, big in zip(sizes[16], sizes[32], strict=True)] == [2.0] * 7


def test_a_failed_sign_in_moves_focus_to_the_error_summary_and_keeps_the_email(
    web_stack: WebStack,
    browser: WebDriver,
) -> None:
    set_width(browser, 320)
    sign_in(browser, web_stack, NOBODY, "wrong")
    assert browser.title == "Error: Sign in · MASH Broker"
    focused = browser.switch_to.active_element
    assert "govuk-error-summary" in str(focused.get_attribute("class"))
    assert "There is a problem" in focused.text
    link = focused.find_element(By.CSS_SELECTOR, "a[href='#login']")
    assert "do not match" in link.text
    field = browser.find_element(By.ID, "login")
    assert field.get_attribute("value") == NOBODY
    assert field.get_attribute("aria-invalid") == "true"
    described = str(field.get_attribute("aria-describedby")).split()
    assert "login-error" in described
    assert "do not match" in browser.find_element(By.ID, "login-error").text
    assert browser.find_element(By.ID, "password").get_attribute("value") == ""  # a password is never sent back


def press(driver: WebDriver, key: str) -> WebElement:
    """One key to whatever has focus (no click anywhere); returns what has focus afterwards."""
    driver.switch_to.active_element.send_keys(key)
    return driver.switch_to.active_element


def tab_to(driver: WebDriver, wanted: Callable[[WebElement], bool], seen: list[str], most: int = 40) -> WebElement:
    """Tab until ``wanted`` has focus, checking that everything focused on the way shows the yellow focus."""
    for _ in range(most):
        focused = press(driver, Keys.TAB)
        style = focus_style(driver)
        label = f"{focused.tag_name}#{focused.get_attribute('id') or ''} {focused.text[:40]!r}"
        seen.append(label)
        assert GOVUK_FOCUS in style, f"no visible focus on {label}: {style}"
        if wanted(focused):
            return focused
    raise AssertionError(f"never reached by Tab; focus went through {seen}")


def test_a_key_adult_signs_in_opens_and_records_a_read_by_keyboard_alone_at_320(
    web_stack: WebStack,
    browser: WebDriver,
) -> None:
    set_width(browser, 320)
    browser.delete_all_cookies()
    browser.get(f"{web_stack.web.url}/login")
    seen: list[str] = []
    skip = tab_to(browser, lambda e: True, seen)
    assert skip.text == "Skip to main content"  # the first stop on every page
    tab_to(browser, lambda e: e.get_attribute("id") == "login", seen).send_keys(ALEX)
    tab_to(browser, lambda e: e.get_attribute("id") == "password", seen).send_keys(PASSWORD)
    press(browser, Keys.ENTER)
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "inbox"))
    assert browser.current_url.endswith("/inbox")
    full_page_shot(browser, "journey-1-inbox-320.png", 320)
    viewport_shot(browser, "journey-1-inbox-320-screen.png")

    web_stack.clock.now += timedelta(minutes=5)
    link = tab_to(browser, lambda e: e.tag_name == "a" and e.text.startswith("Open notification"), seen)
    target = browser.execute_script("return document.activeElement.closest('tr').dataset.id")
    reference = link.text.removeprefix("Open notification ")
    press(browser, Keys.ENTER)
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "open"))
    assert browser.title == f"Notification {reference} · MASH Broker"
    assert browser.find_elements(By.ID, "child") == []
    tab_to(browser, lambda e: e.get_attribute("id") == "open", seen)
    press(browser, Keys.ENTER)
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "read-by"))
    assert browser.find_element(By.ID, "read-by").text.startswith("Alex Keyadult")
    wide, viewport = overflow(browser)
    assert wide <= viewport
    full_page_shot(browser, "journey-2-notification-read-320.png", 320)
    browser.execute_script("window.scrollTo(0, 0)")
    viewport_shot(browser, "journey-2-notification-read-320-screen.png")

    row = web_stack.call(web_stack.ledger.delivery(target))
    assert row is not None
    assert (row.read_by, row.read_at) == ("Alex Keyadult", web_stack.clock.now)
