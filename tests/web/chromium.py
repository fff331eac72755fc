"""Headless Chromium for the web tests, and what the accessibility tests look with: axe-core, the page's
width, the focused element's style, the browser's console. Imported only once Chromium is known to be
there (selenium is imported here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from web.conftest import PASSWORD, SCREENSHOTS, WebStack

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"  # axe-core 4.14.1 (vendor/VERSION)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
GOVUK_FOCUS = "255, 221, 0"  # the Design System's focus colour, #ffdd00


def start_chromium(paths: tuple[str, str], *, prefs: dict[str, Any] | None = None) -> WebDriver:
    """Debian's Chromium through the system chromedriver (no browser download), console kept for reading."""
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if prefs:
        options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
    driver.set_page_load_timeout(30)
    return driver


def set_width(driver: WebDriver, width: int, height: int = 900) -> None:
    """The viewport as a phone (320) or a desktop (1280) has it: CSS pixels, scale 1."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def sign_in(driver: WebDriver, stack: WebStack, login: str, password: str = PASSWORD) -> None:
    driver.delete_all_cookies()
    driver.get(f"{stack.web.url}/login")
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(password)
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 15).until(staleness_of(page))  # the answer is a new page, even a refusal
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def axe_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's violations on the page for the WCAG 2.0, 2.1 and 2.2 A and AA rules. Injected through
    WebDriver, so the pages' CSP (no script at all) stays as it is."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})"
        ".then(r => done(r.violations)).catch(e => done({error: String(e)}));",
        AXE_TAGS,
    )
    assert isinstance(result, list), result
    return result


def describe(violations: list[dict[str, Any]]) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at " + ", ".join(str(n["target"]) for n in v["nodes"][:3])
        for v in violations
    ]


def overflow(driver: WebDriver) -> tuple[int, int]:
    """(document scrollWidth, viewport width): a page that reflows has the first no wider than the second."""
    width, viewport = driver.execute_script(
        "return [Math.max(document.documentElement.scrollWidth, document.body.scrollWidth), window.innerWidth];"
    )
    return int(width), int(viewport)


def focus_style(driver: WebDriver) -> str:
    """The focused element's outline, background, box shadow and border colours, joined."""
    return str(
        driver.execute_script(
            "const s = getComputedStyle(document.activeElement);"
            "return [s.outlineStyle, s.outlineColor, s.backgroundColor, s.boxShadow, s.borderColor].join(' | ');"
        )
    )


def csp_refusals(driver: WebDriver) -> list[str]:
    """What the browser refused under the Content Security Policy since the last call."""
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def full_page_shot(driver: WebDriver, name: str, width: int) -> Path:
    """The whole page at ``width`` to tests/output/screenshots/``name``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    set_width(driver, width, max(600, height))
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    set_width(driver, width)
    return path


def viewport_shot(driver: WebDriver, name: str) -> Path:
    """What fits the screen now (the README's screenshots: small files) to tests/output/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    return path
