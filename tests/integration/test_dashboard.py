"""The dashboard in a real headless Chromium (Debian's chromium and its
driver, through selenium): a class brought up in another process appears on
the page and becomes ready live, without a reload; a check and a reset run
from the page (confirmed in its dialogs); a screenshot of the class view is
kept as an artifact (LABCTL_ARTIFACTS, default /tmp/labctl-artifacts)."""

from __future__ import annotations

import os
import re
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
    """`predicate`'s first truthy answer within `seconds`. The page is live: a
    node it found can be rebuilt before its text is read (selenium calls it
    stale), which is asked again, not failed."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = predicate(browser)
        except StaleElementReferenceException:
            found = None
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
    # (a check cell is points then marks; "last 2 / 2" of a student's own attempt is not)
    wait_for(page, lambda b: b.find_element("id", "labs").text.count("2 / 2 ✓") == 2, 120,
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


def test_a_students_own_page(page, tmp_path):
    """ana's link (from her hand-out) opens her copy only; her terminal runs
    commands in her VM; "check my work"
    keeps an attempt the instructor sees; a reset from her page shows in the
    instructor's activity; a forged token, and ana's token on the instructor's
    API, are refused."""
    import json
    import urllib.error
    import urllib.request

    base = page.current_url.split("?")[0].rstrip("/")
    labctl("handout", str(LAB), "--out", str(tmp_path), "--page", base)
    readme = (tmp_path / "ana" / "README.txt").read_text()
    link = next(w for w in readme.split() if "/student?token=" in w)
    token = link.split("token=")[1]
    page.get(link)
    wait_for(page, lambda b: "itboard · ana" in b.find_element("id", "which").text, 30,
             "ana's page")
    wait_for(page, lambda b: "node" in b.find_element("id", "vms").text, 30, "her VM")
    assert "rui" not in page.find_element("tag name", "body").text

    def latest(check: str):  # her checks table: the latest result of one check
        return lambda b: b.find_element("css selector", f"tr[data-check='{check}']").text

    click(page, "#check")  # before the work: the practice check fails
    wait_for(page, lambda b: "fail" in latest("answer")(b) and "pass" in latest("hostname")(b),
             120, "her first attempt: answer failing")
    # her terminal: a shell in her VM (a file only her VM has); she fixes the answer
    labctl("exec", "itboard-ana.node", "--", "sh", "-c", "echo ana-was-here > /tmp/who")
    click(page, "button[data-act='terminal']")
    wait_for(page, lambda b: b.find_elements("css selector", ".xterm-helper-textarea"), 30,
             "the terminal")
    wait_for(page, lambda b: "$" in b.find_element("css selector", ".xterm-rows").text, 60,
             "a shell prompt")
    # (UTF-8 from the VM: printf's octal bytes of "é"; typed UTF-8 is a unit test's)
    page.find_element("css selector", ".xterm-helper-textarea").send_keys(
        "cat /tmp/who; echo 42 > ~/answer.txt; printf 'done-%s caf\\303\\251\\n' $((6*7))\n")

    def terminal_text(b) -> str:
        return b.find_element("css selector", ".xterm-rows").text

    wait_for(page, lambda b: "done-42 caf\u00e9" in terminal_text(b)
             and "ana-was-here" in terminal_text(b), 60, "the command's output in her terminal")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.save_screenshot(str(ARTIFACTS / "dashboard-terminal.png"))
    click(page, ".termclose")
    click(page, "#check")  # after the fix, through her terminal: it passes
    wait_for(page, lambda b: "pass" in latest("answer")(b), 120, "her answer passing")
    assert "2 / 2" in page.find_element("id", "attempts").text
    click(page, "button[data-act='reset']")
    confirm(page)
    wait_for(page, lambda b: "reset node: done" in b.find_element("id", "done").text, 600,
             "her VM reset")
    assert page.find_element("id", "error").text == ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.save_screenshot(str(ARTIFACTS / "dashboard-student.png"))

    def status(path: str, **kwargs) -> int:
        request = urllib.request.Request(base + path, **kwargs)
        try:
            return urllib.request.urlopen(request, timeout=30).status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status("/student/api/state?token=forged") == 403
    assert status("/api/reset", method="POST",
                  data=json.dumps({"lab": "itboard", "copy": "rui", "vm": "node"}).encode(),
                  headers={"content-type": "application/json", "x-labctl-token": token}) == 403
    page.get(base + "/")  # the instructor's page (its cookie): her attempt and her reset
    wait_for(page, lambda b: re.search(r"\d+ own check\(s\), last 2 / 2",
                                       b.find_element("id", "labs").text),
             30, "ana's own attempt on the instructor's page")
    wait_for(page, lambda b: "reset itboard-ana: done" in b.find_element("id", "activity").text,
             30, "ana's reset in the instructor's activity")
