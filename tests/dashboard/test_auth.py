"""Who may see and drive the dashboard: one-time links, the admin token, sessions, CSRF."""

from __future__ import annotations

import httpx2

from stacksapi.emulator import Emulator, EmulatorServer

from .conftest import csrf_of


def test_without_login_every_route_is_refused(
    server: EmulatorServer, anonymous: httpx2.Client, emulator: Emulator
) -> None:
    job = emulator.create_job(queue="linux")
    page = anonymous.get("/")
    assert page.status_code == 401
    assert "Log in to the emulator" in page.text
    assert job not in page.text  # nothing of the state leaks to the login page
    assert anonymous.get(f"/dashboard/jobs/{job}").status_code == 401
    assert anonymous.get("/dashboard/events").status_code == 401
    assert anonymous.get(f"/dashboard/jobs/{job}/events").status_code == 401
    action = anonymous.post(
        "/dashboard/actions/queues/linux/pause",
        data={"csrf": "guess"},
        headers={"Origin": server.url},
    )
    assert action.status_code == 401
    assert not emulator.queue("linux").paused
    assert emulator.job_state(job) == "scheduled"


def test_a_login_link_works_once(server: EmulatorServer, anonymous: httpx2.Client) -> None:
    link = server.dashboard_login_url()
    assert "?login=" in link
    first = anonymous.get(link)
    assert first.status_code == 303
    assert first.headers["location"] == "/"
    cookie = first.headers["set-cookie"]
    assert f"stacksapi_dashboard_{server.port}=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert anonymous.get("/").status_code == 200  # the cookie is the session
    with httpx2.Client(base_url=server.url, timeout=10) as other:
        again = other.get(link)
        assert again.status_code == 401
        assert "already used" in again.text
        assert other.get("/").status_code == 401


def test_the_admin_token_logs_in_and_a_wrong_one_does_not(
    server: EmulatorServer, anonymous: httpx2.Client
) -> None:
    wrong = anonymous.post("/dashboard/login", data={"token": "bkemu_wrong"})
    assert wrong.status_code == 401
    assert "That is not this emulator" in wrong.text
    assert anonymous.get("/").status_code == 401
    right = anonymous.post("/dashboard/login", data={"token": server.admin_token})
    assert right.status_code == 303
    assert anonymous.get("/").status_code == 200


def test_a_cluster_token_is_not_an_admin_login(
    server: EmulatorServer, anonymous: httpx2.Client
) -> None:
    response = anonymous.post("/dashboard/login", data={"token": server.token})
    assert response.status_code == 401


def test_logout_ends_the_session(browser: httpx2.Client) -> None:
    csrf = csrf_of(browser)
    assert browser.post("/dashboard/logout", data={"csrf": csrf}).status_code == 303
    assert browser.get("/").status_code == 401
    assert browser.get("/dashboard/events").status_code == 401


def test_cross_origin_requests_cannot_act_even_with_the_cookie(
    server: EmulatorServer, browser: httpx2.Client, emulator: Emulator
) -> None:
    csrf = csrf_of(browser)
    job = emulator.create_job(queue="linux")
    # Another origin on the same host (same site, so a SameSite cookie alone would go along).
    evil = {"Origin": "http://127.0.0.1:1"}
    refused = browser.post(
        "/dashboard/actions/queues/linux/pause", data={"csrf": csrf}, headers=evil
    )
    assert refused.status_code == 403
    assert refused.json()["message"] == "cross-origin request refused"
    by_referer = browser.post(
        f"/dashboard/actions/jobs/{job}/cancel",
        data={"csrf": csrf},
        headers={"Referer": "http://evil.example/page"},
    )
    assert by_referer.status_code == 403
    mine = {"Origin": server.url}
    no_token = browser.post("/dashboard/actions/queues/linux/pause", data={}, headers=mine)
    assert no_token.status_code == 403
    assert "form token" in no_token.json()["message"]
    stale = browser.post(
        "/dashboard/actions/queues/linux/pause", data={"csrf": csrf + "x"}, headers=mine
    )
    assert stale.status_code == 403
    assert not emulator.queue("linux").paused
    assert emulator.job_state(job) == "scheduled"
    ok = browser.post("/dashboard/actions/queues/linux/pause", data={"csrf": csrf}, headers=mine)
    assert ok.status_code == 303
    assert emulator.queue("linux").paused


def test_cross_origin_login_is_refused(server: EmulatorServer, anonymous: httpx2.Client) -> None:
    response = anonymous.post(
        "/dashboard/login",
        data={"token": server.admin_token},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_two_emulators_on_one_host_keep_separate_sessions(browser: httpx2.Client) -> None:
    with EmulatorServer(Emulator()) as second:
        # Cookies are per host, not per port: the cookie of the first must not open the second.
        cookies = {name: value for name, value in browser.cookies.items()}
        with httpx2.Client(base_url=second.url, cookies=cookies, timeout=10) as client:
            assert client.get("/").status_code == 401


def test_pages_forbid_framing_and_foreign_scripts(browser: httpx2.Client) -> None:
    page = browser.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
