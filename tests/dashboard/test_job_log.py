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


def test_a_job_page_opens_from_the_short_id_the_tables_and_the_demo_show(
    server: EmulatorServer, browser: httpx2.Client
) -> None:
    one = "0190aaaa-0000-4000-8000-000000000001"
    two = "0190aaaa-0000-4000-8000-000000000002"
    for job_id in (one, two):
        server.emulator.create_job(queue="linux", id=job_id)
    other = server.emulator.create_job(queue="linux")
    found = browser.get(f"/dashboard/jobs/{other[:8]}")
    assert found.status_code == 303
    assert found.headers["location"] == f"/dashboard/jobs/{other}"
    assert other in browser.get(found.headers["location"]).text
    both = browser.get("/dashboard/jobs/0190aaaa")  # like git: ambiguous is said, not guessed
    assert both.status_code == 404
    assert "2 jobs start with" in both.text
    assert one[:8] in both.text
    assert browser.get("/dashboard/jobs/ffffffff").status_code == 404
    assert browser.get(f"/dashboard/jobs/{other[:3]}").status_code == 404  # too short to guess
