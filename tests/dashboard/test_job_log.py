"""A job's page shows the agent's log as it arrived over the agent endpoints, and says so when
it shows only the end of a long one."""

from __future__ import annotations

import httpx2

from stacksapi.emulator import EmulatorServer


def _run_agent(server: EmulatorServer, job_id: str, chunks: list[str]) -> None:
    """What an agent does over HTTP: acquire, start, send its output, finish."""
    with httpx2.Client(base_url=server.base_url, timeout=30) as agent:
        acquired = agent.post(
            f"jobs/{job_id}/acquire", headers={"Authorization": f"Token {server.token}"}
        )
        assert acquired.status_code == 200, acquired.text
        auth = {"Authorization": f"Token {acquired.json()['access_token']}"}
        assert agent.put(f"jobs/{job_id}/start", headers=auth).status_code == 200
        for chunk in chunks:
            sent = agent.post(f"jobs/{job_id}/log", headers=auth, json={"content": chunk})
            assert sent.is_success, sent.text
        finished = agent.put(f"jobs/{job_id}/finish", headers=auth, json={"exit_status": 0})
        assert finished.status_code == 200, finished.text


def test_a_long_log_says_that_only_its_end_is_shown(
    server: EmulatorServer, browser: httpx2.Client
) -> None:
    job_id = server.emulator.create_job(queue="linux")
    lines = [f"line {n:06d} of the build output\n" for n in range(4000)]  # about 125 KiB
    _run_agent(server, job_id, ["".join(lines[:2000]), "".join(lines[2000:])])
    page = browser.get(f"/dashboard/jobs/{job_id}")
    assert page.status_code == 200
    assert "line 003999" in page.text  # the end is there
    assert "line 000000" not in page.text  # the start is not...
    assert "last 64 KiB of 125 KiB" in page.text  # ...and the page says so


def test_a_short_log_is_shown_whole_and_no_log_is_said_plainly(
    server: EmulatorServer, browser: httpx2.Client
) -> None:
    job_id = server.emulator.create_job(queue="linux")
    _run_agent(server, job_id, ["hello\n", "done\n"])
    page = browser.get(f"/dashboard/jobs/{job_id}").text
    assert "hello\ndone\n" in page
    assert "KiB" not in page
    silent = server.emulator.create_job(queue="linux")
    _run_agent(server, silent, [])
    assert "No output." in browser.get(f"/dashboard/jobs/{silent}").text  # finished: not "yet"
    waiting = server.emulator.create_job(queue="linux")
    assert "No output yet." in browser.get(f"/dashboard/jobs/{waiting}").text
