"""The dashboard read as a person sees it, in a real browser at 1280x800 and at phone width:
form fields as legible as the page, the stacks table whole, the answer to an action in view."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from stacksapi import DEFAULT_QUEUE_KEY, Client
from stacksapi.emulator import Emulator, EmulatorServer, sample_jobs

from .browser import wait_for

pytestmark = pytest.mark.timeout(300)

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    """Jobs on the default queue and a registered stack that polled it (so budgets show)."""
    emulator = Emulator()
    emulator.create_jobs(sample_jobs(60, [DEFAULT_QUEUE_KEY], seed=3))
    with EmulatorServer(emulator) as running:
        with Client(running.token, base_url=running.base_url) as client:
            client.register_stack("review-stack", queue_key=DEFAULT_QUEUE_KEY)
            client.list_scheduled_jobs("review-stack", queue_key=DEFAULT_QUEUE_KEY)
        yield running


def _open(driver: WebDriver, server: EmulatorServer) -> None:
    driver.get(server.dashboard_login_url())
    wait_for(driver, lambda d: d.find_element(By.ID, "live").text == "live", "live updates")


def _box(driver: WebDriver, css: str) -> dict[str, float]:
    box: dict[str, float] = driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};",
        css,
    )
    return box


def test_form_fields_are_as_legible_as_the_page(driver: WebDriver, server: EmulatorServer) -> None:
    _open(driver, server)
    fields = driver.execute_script(
        "const body = parseFloat(getComputedStyle(document.body).fontSize);"
        "return Array.from(document.querySelectorAll('main input:not([type=hidden]), main select'))"
        ".map(el => { const s = getComputedStyle(el);"
        "  return {name: el.name, size: parseFloat(s.fontSize), body: body,"
        "    inner: el.clientHeight - parseFloat(s.paddingTop) - parseFloat(s.paddingBottom)}; });"
    )
    assert len(fields) >= 8  # the filters and the schedule form
    for field in fields:
        # Smaller than the page's text, or a box shorter than a line, and '__default__' reads
        # ' default' (the underscores fall outside the box).
        assert field["size"] >= field["body"], field
        assert field["inner"] >= 1.1 * field["size"], field


def test_the_stacks_table_fits_its_column_at_1280x800(
    driver: WebDriver, server: EmulatorServer
) -> None:
    _open(driver, server)
    wrap = driver.execute_script(
        "const w = document.querySelector('table.stacks').parentElement;"
        "return [w.scrollWidth, w.clientWidth];"
    )
    assert wrap[0] <= wrap[1], f"the stacks table scrolls sideways: {wrap}"
    header = driver.find_element(By.XPATH, "//table[contains(@class,'stacks')]//th[.='429s']")
    assert header.is_displayed()


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_the_answer_to_an_action_shows_where_it_was_taken(
    driver: WebDriver, server: EmulatorServer, width: str
) -> None:
    if width == "phone":
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    _open(driver, server)
    # The schedule form sits at the bottom of the page on a phone, beside the table on a desktop.
    driver.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
    button = driver.find_element(By.CSS_SELECTOR, "form.schedule button[type=submit]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    wait_for(
        driver,
        lambda d: "scheduled 5 jobs" in d.find_element(By.ID, "flash").text,
        "the answer in view",
    )
    flash = _box(driver, "#flash")  # shown, and where the person is looking
    height = driver.execute_script("return window.innerHeight")
    assert driver.execute_script("return window.scrollY") > 0
    assert 0 <= flash["top"] < flash["bottom"] <= height, (flash, height)
    # Nothing covers it (the sticky header, a table): it is what a person sees at its centre.
    on_top = driver.execute_script(
        "const r = document.getElementById('flash').getBoundingClientRect();"
        "const el = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);"
        "return el !== null && el.closest('#flash') !== null;"
    )
    assert on_top
