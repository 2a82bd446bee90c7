"""The dashboard in a real headless Chromium (Debian's chromium and its
driver, through selenium): a class brought up in another process appears on
the page and becomes ready live, without a reload; a check and a reset run
from the page (confirmed in its dialogs); a screenshot of the class view is
kept as an artifact (LABCTL_ARTIFACTS, default /tmp/labctl-artifacts)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .conftest import LABS, Running, labctl, leftovers, start_dashboard

LAB = LABS / "board.yaml"
ARTIFACTS = Path(os.environ.get("LABCTL_ARTIFACTS", "/tmp/labctl-artifacts"))



@pytest.fixture(scope="module")
def page(settings):
    webdriver = pytest.importorskip("selenium.webdriver")
    labctl("down", "itboard", "--all-copies", check=False)
    server, address, _port = start_dashboard("itboard")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1400,900"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    browser = webdriver.Chrome(options=options, service=service)
    browser.get(address)  # the token once, then its cookie
    yield browser
    browser.quit()
    server.terminate()
    server.wait(10)
    labctl("down", "itboard", "--all-copies")
    for copy in ("ana", "rui"):
        assert leftovers(f"itboard-{copy}", settings) == {}


def wait_for(browser, predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate(browser)
        if found:
            return found
        time.sleep(0.5)
    body = browser.find_element("tag name", "body").text
    raise AssertionError(f"the page never showed {what}:\n{body}")


def click(browser, selector: str) -> None:
    """Click what `selector` finds now: the page is live, so a row can be
    rebuilt between finding a button and clicking it (selenium then calls
    the element stale); find it again rather than click a detached node."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(20):
        try:
            browser.find_element("css selector", selector).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.25)
    raise AssertionError(f"{selector} was rebuilt under every click for 5 s")


def confirm(browser) -> None:
    wait_for(browser, lambda b: _alert(b), 10, "a confirmation")
    browser.switch_to.alert.accept()


def _alert(browser):
    try:
        return browser.switch_to.alert
    except Exception:  # noqa: BLE001 - selenium's NoAlertPresentException
        return None


def test_a_class_appears_and_becomes_ready_live(page):
    wait_for(page, lambda b: b.find_element("id", "live").text == "live", 30,
             "its live connection")
    up = Running("up", str(LAB))
    wait_for(page, lambda b: "itboard" in b.find_element("id", "labs").text, 300,
             "the class appear")
    code, _out, stderr = up.finish(timeout=900)
    assert code == 0, stderr
    wait_for(page, lambda b: b.find_element("id", "labs").text.count("running") >= 2, 60,
             "both copies running")
    wait_for(page, lambda b: "boot-finished" in b.find_element("id", "labs").text or
             "ready" in b.find_element("id", "labs").text, 60, "a ready stage")


def test_check_and_reset_from_the_page(page):
    click(page, "button[data-act='check-all']")
    confirm(page)
    wait_for(page, lambda b: b.find_element("id", "labs").text.count("2 / 2") == 2, 120,
             "both copies checked with 2 of 2 points")
    wait_for(page, lambda b: "full marks 2 of 2" in b.find_element("id", "labs").text, 30,
             "the class at a glance")
    page.find_element("id", "filter").send_keys("an")  # one student's row, among many
    shown = page.execute_script(  # in one step: a live update cannot detach rows mid-read
        "return [...document.querySelectorAll('tr[data-copy]')]"
        ".filter((r) => r.offsetParent !== null).map((r) => r.dataset.copy)")
    assert shown == ["ana"]
    page.find_element("id", "filter").clear()
    page.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
    click(page, "tr[data-copy='ana'] button[data-act='reset']")
    confirm(page)
    wait_for(page, lambda b: "reset itboard ana node: done" in
             b.find_element("id", "activity").text, 600, "the reset done")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-class.png"
    page.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
