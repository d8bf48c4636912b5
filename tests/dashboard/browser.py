"""Helpers of the browser tests: headless Chromium from Debian's packages, driven by Selenium,
and the real ``stacksapi emulator serve`` and ``stacksapi run`` processes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("STACKSAPI_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STACKSAPI_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_SECONDS = 60.0
_DASHBOARD_LINE = re.compile(r"dashboard: (http://\S+)")

T = TypeVar("T")


def chrome(width: int = 1280, height: int = 800) -> WebDriver:
    """A headless Chromium; fails (never skips) when the Debian packages are missing."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            pytest.fail(
                f"{path} not found: install Debian's chromium and chromium-driver "
                "(.ci/run does: apt-get install chromium chromium-driver)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    return driver


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    """Wait (generously) until ``condition`` is truthy; elements replaced meanwhile are retried."""
    waiter = WebDriverWait(
        driver,
        WAIT_SECONDS,
        poll_frequency=0.1,
        ignored_exceptions=[StaleElementReferenceException],
    )
    return waiter.until(condition, message=f"waited {WAIT_SECONDS:g} s for {what}")


@dataclass
class Served:
    """A running ``stacksapi emulator serve``: its printed login link and what the test set."""

    process: subprocess.Popen[str]
    login_url: str
    token: str
    admin_token: str
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.login_url.split("/?", 1)[0]

    @property
    def base_url(self) -> str:
        return f"{self.url}/v3/"


def _drain(stream: object, into: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line)


@contextlib.contextmanager
def emulator_serve(*args: str) -> Iterator[Served]:
    """Run the real CLI and read the dashboard address it prints."""
    token, admin = "bkct_browser_test_cluster_token", "bkemu_browser_test_admin_token"
    command = [sys.executable, "-m", "stacksapi.cli", "emulator", "serve", "--token", token]
    process = subprocess.Popen(
        [*command, "--admin-token", admin, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        threading.Thread(target=_drain, args=(process.stdout, output), daemon=True).start()
        deadline = time.monotonic() + WAIT_SECONDS
        login = None
        while login is None and time.monotonic() < deadline and process.poll() is None:
            found = _DASHBOARD_LINE.search("".join(output))
            login = found.group(1) if found else None
            time.sleep(0.05)
        assert login is not None, "serve printed no dashboard address:\n" + "".join(output)
        yield Served(process, login, token, admin, output)
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> int:
    """SIGINT, then wait; kill only when it will not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
