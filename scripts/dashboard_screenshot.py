"""Regenerate the dashboard screenshots in ``docs/`` from a real ``stacksapi demo --dashboard`` run.

Starts the demo, logs a headless Chromium in through the address the demo prints, waits until
jobs are running and some have finished, and saves the page at 1280x800 (``docs/dashboard.png``),
at phone width (``docs/dashboard-phone.png``) and one job's timeline (``docs/dashboard-job.png``).
Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``) and the dev environment (``make env``)::

    uv run --no-sync python scripts/dashboard_screenshot.py
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_ADDRESS = re.compile(r"dashboard: (http://\S+)")


def _browser(chromium: str, chromedriver: str) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,800")
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


def _viewport(driver: WebDriver, width: int, height: int, *, mobile: bool = False) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def _count(driver: WebDriver, state: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, f"#jobs tr[data-state='{state}']"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    demo = subprocess.Popen(
        [sys.executable, "-m", "stacksapi.cli", "demo", "--dashboard", "--jobs", str(args.jobs),
         "--concurrency", "6", "--pause-seconds", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip
    driver: WebDriver | None = None
    try:
        assert demo.stdout is not None
        address = None
        for line in demo.stdout:
            found = _ADDRESS.search(line)
            if found:
                address = found.group(1)
                break
        if address is None:
            print("the demo printed no dashboard address", file=sys.stderr)
            return 1
        print(f"demo up; dashboard at {address.split('?')[0]}", flush=True)
        driver = _browser(args.chromium, args.chromedriver)
        _viewport(driver, 1280, 800)
        driver.get(address)
        wait = WebDriverWait(driver, 60, poll_frequency=0.05)
        wait.until(lambda d: _count(d, "running") >= 3 and _count(d, "finished") >= 4)
        time.sleep(0.3)  # let the next update paint
        DOCS.mkdir(exist_ok=True)
        driver.save_screenshot(str(DOCS / "dashboard.png"))
        _viewport(driver, 390, 844, mobile=True)
        time.sleep(0.5)
        driver.save_screenshot(str(DOCS / "dashboard-phone.png"))
        _viewport(driver, 1280, 800)
        wait.until(lambda d: _count(d, "running") == 0 and _count(d, "finished") >= 8)
        finished = driver.find_element(By.CSS_SELECTOR, "#jobs tr[data-state='finished'] a.jobid")
        driver.get(finished.get_attribute("href") or "")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".timeline li"))
        time.sleep(0.5)
        driver.save_screenshot(str(DOCS / "dashboard-job.png"))
        print(
            "wrote docs/dashboard.png, docs/dashboard-phone.png, docs/dashboard-job.png", flush=True
        )
        return 0
    finally:
        if driver is not None:
            driver.quit()
        _stop(demo)


def _stop(demo: subprocess.Popen[str]) -> None:
    """Let the demo finish its run and summary, then Ctrl-C it out of its dashboard hold."""
    assert demo.stdout is not None
    if demo.poll() is None:
        for line in demo.stdout:
            if "still up" in line:
                break
    demo.send_signal(signal.SIGINT)
    try:
        demo.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        demo.kill()
        demo.communicate()


if __name__ == "__main__":
    raise SystemExit(main())
