"""A logged-in page can hand a one-time login to another browser or a phone, so that nobody has
to restart ``serve`` with ``--show-admin-token`` (and lose its state) after the printed link was
used. Guarded like every action; the login page says where the admin token comes from."""

from __future__ import annotations

import httpx2
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from stacksapi.emulator import EmulatorServer

from .browser import wait_for
from .conftest import csrf_of


def test_a_session_mints_a_one_time_login_for_another_browser(
    server: EmulatorServer, browser: httpx2.Client
) -> None:
    answer = browser.post(
        "/dashboard/login-link",
        data={"csrf": csrf_of(browser)},
        headers={"Origin": server.url, "Accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    link = answer.json()["link"]
    assert link.startswith(f"{server.url}/?login=")
    assert link in answer.json()["message"]
    with httpx2.Client(timeout=10) as phone:
        assert phone.get(link).status_code == 303  # logged in...
        assert phone.get(server.dashboard_url).status_code == 200
    with httpx2.Client(timeout=10) as third:
        assert third.get(link).status_code == 401  # ...once


def test_minting_a_login_is_refused_without_a_session_or_from_another_origin(
    server: EmulatorServer, browser: httpx2.Client, anonymous: httpx2.Client
) -> None:
    csrf = csrf_of(browser)
    elsewhere = browser.post(
        "/dashboard/login-link", data={"csrf": csrf}, headers={"Origin": "http://127.0.0.1:1"}
    )
    assert elsewhere.status_code == 403
    assert "link" not in elsewhere.json()
    no_token = browser.post("/dashboard/login-link", headers={"Origin": server.url})
    assert no_token.status_code == 403
    stranger = anonymous.post(
        "/dashboard/login-link", data={"csrf": csrf}, headers={"Origin": server.url}
    )
    assert stranger.status_code == 401
    assert "link" not in stranger.json()


def test_the_login_page_says_how_to_see_the_admin_token(anonymous: httpx2.Client) -> None:
    page = anonymous.get("/").text
    assert "--show-admin-token" in page
    assert "Log in elsewhere" in page  # where a logged-in browser makes a new link


@pytest.mark.timeout(300)
def test_log_in_elsewhere_from_the_page(server: EmulatorServer, driver: WebDriver) -> None:
    driver.get(server.dashboard_login_url())
    wait_for(driver, lambda d: d.find_element(By.ID, "live").text == "live", "live updates")
    driver.find_element(By.CSS_SELECTOR, "[data-testid=login-elsewhere]").click()
    wait_for(driver, lambda d: "/?login=" in d.find_element(By.ID, "flash").text, "a new link")
    link = driver.find_element(By.CSS_SELECTOR, "#flash a").get_attribute("href") or ""
    assert link.startswith(f"{server.url}/?login=")
    with httpx2.Client(timeout=10) as phone:
        assert phone.get(link).status_code == 303
        assert phone.get(server.dashboard_url).status_code == 200
