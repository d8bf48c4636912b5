"""The dashboard in a real browser: log in through the address ``serve`` printed, watch a real
stack run jobs scheduled from the page, open a timeline, pause the queue from the page and see
the stack honour it; the login page without the link; pages elsewhere cannot act."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx2
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from stacksapi.emulator import Emulator, EmulatorServer, sample_jobs

from .browser import Served, emulator_serve, stop, wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def served() -> Iterator[Served]:
    with emulator_serve("--queue", "linux") as running:
        yield running


def _states(driver: WebDriver) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#jobs tr[data-job]")
    return [row.get_attribute("data-state") or "" for row in rows]


def _schedule(driver: WebDriver, count: int, command: str) -> None:
    form = driver.find_element(By.CSS_SELECTOR, "form.schedule")
    for name, value in (("count", str(count)), ("queue", "linux"), ("command", command)):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    _click(driver, "form.schedule button[type=submit]")
    wait_for(
        driver,
        lambda d: f"scheduled {count} job" in d.find_element(By.ID, "flash").text,
        "the page to confirm the jobs were scheduled",
    )


def _click(driver: WebDriver, css: str) -> None:
    """Click an element brought to the middle of the window (clear of the sticky header)."""
    element = driver.find_element(By.CSS_SELECTOR, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _log_in(driver: WebDriver, login_url: str) -> None:
    driver.get(login_url)
    wait_for(driver, lambda d: d.find_element(By.ID, "live").text == "live", "live updates")


@pytest.fixture
def stack_process(served: Served, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """``stacksapi run``: a real stack, running the emulated agent for each job."""
    agent = [sys.executable, "-m", "stacksapi.emulator._agent", "--acquire-job", "{job_uuid}"]
    config = tmp_path / "stack.toml"
    config.write_text(
        "[stack]\n"
        'key = "browser-stack"\nqueue_key = "linux"\nmax_in_flight = 4\n'
        "poll_interval = 0.2\nstate_check_interval = 0.3\nshutdown_grace = 3\n"
        "[subprocess]\n"
        f"command = {agent!r}\n".replace("'", '"')
        + f'env = {{ BUILDKITE_AGENT_ENDPOINT = "{served.base_url}" }}\n'
        + "kill_grace = 1\n"
    )
    log = (tmp_path / "stack.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "stacksapi.cli", "run", "--config", str(config),
         "--token", served.token, "--base-url", served.base_url],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield process
    finally:
        code = stop(process)
        log.close()
        assert code == 0, (tmp_path / "stack.log").read_text()


def test_watch_a_stack_run_pause_it_from_the_page_and_read_a_timeline(
    driver: WebDriver, served: Served, stack_process: subprocess.Popen[str], tmp_path: Path
) -> None:
    _log_in(driver, served.login_url)
    assert driver.find_element(By.CSS_SELECTOR, "[data-queue=linux]")
    wait_for(
        driver,
        lambda d: "browser-stack" in d.find_element(By.ID, "stacks").text,
        "the stack to register",
    )

    # Jobs scheduled from the page appear, and the stack runs them to the end.
    _schedule(driver, 4, "echo hello from the browser test")
    wait_for(driver, lambda d: len(_states(d)) == 4, "four jobs in the table")
    wait_for(driver, lambda d: _states(d) == ["finished"] * 4, "the stack to run all four")
    queue = driver.find_element(By.CSS_SELECTOR, "[data-queue=linux]").text
    assert "4 finished" in queue
    assert "connected" in queue

    # A job's timeline, with the stack's notifications and the agent's output.
    _click(driver, "#jobs tr[data-job] a.jobid")
    timeline = wait_for(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, ".timeline").text,
        "the job's timeline",
    )
    steps = [
        "Scheduled on queue linux",
        "Reserved by stack browser-stack",
        "Job token issued to stack browser-stack",
        "Acquired by an agent",
        "Running",
        "Finished",
    ]
    assert [timeline.index(step) for step in steps] == sorted(timeline.index(s) for s in steps)
    assert "exit status 0" in timeline
    assert "bkjat_…#" in timeline
    notes = driver.find_elements(By.CSS_SELECTOR, ".notifications li")
    assert notes
    assert all("browser-stack" in note.text for note in notes)
    assert "hello from the browser test" in driver.find_element(By.CSS_SELECTOR, ".log").text

    # Pause the queue from the page: the stack sees it and reserves nothing more.
    driver.find_element(By.CSS_SELECTOR, "a.back").click()
    _log_wait = wait_for(driver, lambda d: d.find_element(By.ID, "live").text == "live", "live")
    assert _log_wait
    _click(driver, "[data-testid=dispatch-linux]")
    wait_for(
        driver,
        lambda d: "Dispatch paused" in d.find_element(By.CSS_SELECTOR, "[data-queue=linux]").text,
        "the queue to show paused",
    )
    with httpx2.Client(base_url=served.url, timeout=10) as admin:
        headers = {"Authorization": f"Token {served.admin_token}"}
        assert admin.get("/_emulator/queues/linux", headers=headers).json()["paused"] is True
    stack_log = tmp_path / "stack.log"
    wait_for(
        driver,
        lambda d: "queue dispatch paused" in stack_log.read_text(),
        "the stack to notice the pause",
    )
    _schedule(driver, 2, "echo after the pause")
    wait_for(driver, lambda d: len(_states(d)) == 6, "the new jobs in the table")
    polled_before = _last_polled(served)
    wait_for(driver, lambda d: _last_polled(served) != polled_before, "the stack to poll again")
    wait_for(driver, lambda d: _last_polled(served) != polled_before, "another poll")
    assert _states(driver)[:2] == ["scheduled", "scheduled"]  # listed, polled, not reserved

    # Resume: the stack takes them.
    _click(driver, "[data-testid=dispatch-linux]")
    wait_for(driver, lambda d: _states(d) == ["finished"] * 6, "the stack to run the rest")


def _last_polled(served: Served) -> str:
    headers = {"Authorization": f"Token {served.admin_token}"}
    with httpx2.Client(base_url=served.url, timeout=10) as admin:
        return str(admin.get("/_emulator/queues/linux", headers=headers).json()["last_polled_at"])


def test_without_the_login_link_the_page_asks_for_the_admin_token(
    driver: WebDriver, served: Served
) -> None:
    driver.get(served.url + "/")
    assert "Log in" in driver.title
    assert not driver.find_elements(By.ID, "jobs")
    _log_in(driver, served.login_url)  # the printed link logs in once...
    driver.delete_all_cookies()
    driver.get(served.login_url)  # ...and only once
    wait_for(driver, lambda d: "already used" in d.page_source, "the link to be refused")
    field = driver.find_element(By.NAME, "token")
    field.send_keys("bkemu_not_the_token")
    field.submit()
    wait_for(driver, lambda d: "That is not this emulator" in d.page_source, "a wrong token")
    field = driver.find_element(By.NAME, "token")
    field.send_keys(served.admin_token)
    field.submit()
    wait_for(driver, lambda d: d.find_element(By.ID, "live").text == "live", "the dashboard")
    assert served.admin_token not in driver.page_source
    assert served.token not in driver.page_source


class _Pages(http.server.BaseHTTPRequestHandler):
    pages: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        body = self.pages.get(self.path, "").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def elsewhere() -> Iterator[tuple[int, dict[str, str]]]:
    """Another origin on this host (another port): its pages, set by the test."""
    pages: dict[str, str] = {}
    handler = type("Pages", (_Pages,), {"pages": pages})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], pages
    finally:
        server.shutdown()
        server.server_close()


def _attack(target: str, csrf: str | None) -> str:
    token = f'<input type="hidden" name="csrf" value="{csrf}">' if csrf else ""
    return (
        "<!doctype html><title>innocent</title>"
        f'<form id="f" method="post" action="{target}">{token}</form>'
        "<script>document.getElementById('f').submit()</script>"
    )


def test_a_page_on_another_origin_cannot_act_through_the_cookie(
    driver: WebDriver, elsewhere: tuple[int, dict[str, str]]
) -> None:
    port, pages = elsewhere
    emulator = Emulator(queues=["linux"])
    job = emulator.create_job(queue="linux")
    with EmulatorServer(emulator) as server:
        _log_in(driver, server.dashboard_login_url())
        csrf = driver.find_element(By.NAME, "csrf").get_attribute("value")
        assert csrf
        pause = f"{server.url}/dashboard/actions/queues/linux/pause"
        cancel = f"{server.url}/dashboard/actions/jobs/{job}/cancel"
        pages["/leaked-token"] = _attack(pause, csrf)  # even knowing the form token
        pages["/no-token"] = _attack(cancel, None)
        for page, refusal in (
            # Same site (127.0.0.1), other port: the cookie goes along; the origin check refuses.
            (f"http://127.0.0.1:{port}/leaked-token", "cross-origin request refused"),
            (f"http://127.0.0.1:{port}/no-token", "cross-origin request refused"),
            # Another site: the SameSite=Strict cookie is not even sent.
            (f"http://localhost:{port}/leaked-token", "not logged in"),
        ):
            driver.get(page)
            wait_for(driver, lambda d: '"message"' in d.page_source, f"{page} to be answered")
            assert refusal in driver.page_source
            assert not emulator.queue("linux").paused
            assert emulator.job_state(job) == "scheduled"
        # The same action from the dashboard itself works: the test could fail.
        _log_in(driver, server.dashboard_url)
        _click(driver, "[data-testid=dispatch-linux]")
        wait_for(driver, lambda d: emulator.queue("linux").paused, "the page's own pause")


def test_filters_paging_and_phone_width_without_reloads(driver: WebDriver) -> None:
    emulator = Emulator(queues=["linux", "gpu"])
    emulator.create_jobs(sample_jobs(120, ["linux", "gpu"], seed=2))
    first_gpu = next(j.id for j in emulator.list_jobs(queue="gpu"))
    emulator.cancel_job(first_gpu)
    with EmulatorServer(emulator) as server:
        _log_in(driver, server.dashboard_login_url())
        driver.execute_script("window.notReloaded = true")
        assert len(_states(driver)) == 50
        _click(driver, "#jobs .pager a[data-page='2']")
        wait_for(driver, lambda d: "page 2 of 3" in d.find_element(By.ID, "jobs").text, "page 2")
        assert "page=2" in driver.current_url
        # A count in a queue card filters the table by queue and state.
        _click(driver, "[data-queue=gpu] a[data-filter-state=canceled]")
        wait_for(driver, lambda d: _states(d) == ["canceled"], "the canceled gpu job alone")
        assert driver.find_element(By.CSS_SELECTOR, f"tr[data-job='{first_gpu}']")
        state = driver.find_element(By.CSS_SELECTOR, "#filters select[name=state]")
        assert state.get_attribute("value") == "canceled"
        _click(driver, "#filters a[data-clear]")
        wait_for(driver, lambda d: len(_states(d)) == 50, "the unfiltered first page")
        assert driver.execute_script("return window.notReloaded") is True
        # At phone width nothing sticks out sideways (the table scrolls inside its box).
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
        )
        driver.refresh()
        wait_for(driver, lambda d: d.find_element(By.ID, "live").text == "live", "live updates")
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] == 390
        assert driver.find_element(By.CSS_SELECTOR, "[data-testid=dispatch-linux]").is_displayed()
