"""``stacksapi demo --dashboard``: the address at the start, the emulator kept up after the
summary until Ctrl-C, the summary itself unchanged."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import httpx2
import pytest

_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/\?login=\S+)")


def _next_link(stream: object, seen: list[str]) -> str:
    for line in stream:  # type: ignore[attr-defined]
        seen.append(line)
        found = _LINK.search(line)
        if found:
            return found.group(1)
    raise AssertionError("no dashboard link in:\n" + "".join(seen))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_demo_dashboard_serves_during_and_after_the_run() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stacksapi.cli", "demo", "--dashboard", "--json",
         "--jobs", "6", "--pause-seconds", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        first = _next_link(proc.stderr, seen)
        assert seen[-1].startswith("dashboard: ")  # printed before the jobs run
        base = first.split("/?", 1)[0]
        with httpx2.Client(base_url=base, timeout=10) as browser:
            assert browser.get(first).status_code == 303
            page = browser.get("/")
            assert page.status_code == 200
            assert 'data-queue="demo"' in page.text
            second = _next_link(proc.stderr, seen)  # after the summary
            assert "still up" in seen[-1]
            assert proc.poll() is None  # kept up until Ctrl-C
            after = browser.get("/")
            assert after.status_code == 200
            assert "demo-stack" in after.text
            assert 'data-state="finished"' in after.text
        with httpx2.Client(base_url=base, timeout=10) as other:
            assert other.get(second).status_code == 303  # a fresh one-time link
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, "".join(seen) + err
    assert json.loads(out)["ok"] is True  # stdout holds only the summary
    with pytest.raises(httpx2.TransportError):
        httpx2.get(base + "/", timeout=2)
