"""Fixtures for the dashboard's tests: a served emulator and HTTP clients logged in or not."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from stacksapi.emulator import Emulator, EmulatorServer

from .browser import chrome

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def driver() -> Iterator[WebDriver]:
    """A headless Chromium at 1280x800, closed after the test."""
    browser = chrome()
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(queues=["linux"])


@pytest.fixture
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as running:
        yield running


@pytest.fixture
def anonymous(server: EmulatorServer) -> Iterator[httpx2.Client]:
    """A browser-like client without the login cookie."""
    with httpx2.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def browser(server: EmulatorServer) -> Iterator[httpx2.Client]:
    """A client logged in through a one-time link."""
    with httpx2.Client(base_url=server.url, timeout=10) as client:
        response = client.get(server.dashboard_login_url())
        assert response.status_code == 303, response.text
        yield client


def csrf_of(client: httpx2.Client) -> str:
    """The CSRF token the dashboard put in its forms for this client's session."""
    page = client.get("/")
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None
    return found.group(1)
