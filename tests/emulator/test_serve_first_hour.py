"""``stacksapi emulator serve`` as a user meets it, through the real command: how to reach the admin
API, an ``export`` line that works whatever ``--host`` is, and seeded uuids that never collide."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest

from stacksapi import DEFAULT_QUEUE_KEY, Client
from stacksapi.emulator._serve import ServeInfo, serve

CLI = [sys.executable, "-m", "stacksapi.cli", "emulator", "serve"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE_", "STACKSAPI_"))}
    env.update(extra)
    return env


@contextmanager
def _serving(*args: str, **env: str) -> Iterator[list[str]]:
    """Run ``emulator serve ARGS``; yield its banner lines (through the ``export`` line)."""
    proc = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(**env)
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("export "):
                break
        assert lines, proc.stderr and proc.stderr.read()
        assert lines[-1].startswith("export "), lines
        yield lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _exported(lines: list[str]) -> dict[str, str]:
    return dict(w.split("=", 1) for w in shlex.split(lines[-1])[1:])


def _admin_line(lines: list[str]) -> str:
    found = [line for line in lines if "admin token" in line]
    assert len(found) == 1, lines
    return found[0]


def _admin_token_works(base_url: str, token: str) -> bool:
    admin = base_url.removesuffix("v3/") + "_emulator/"
    with httpx2.Client(headers={"Authorization": f"Token {token}"}, timeout=10) as http:
        return http.get(admin + "queues").status_code == 200


def test_serve_says_how_to_reach_the_admin_api_with_the_token_masked() -> None:
    with _serving() as lines:
        line = _admin_line(lines)
        assert "--show-admin-token" in line
        assert "--admin-token" in line
        assert "STACKSAPI_EMULATOR_ADMIN_TOKEN" in line
        assert "_emulator/" in "\n".join(lines)
        # Only the masked form (prefix and fingerprint) is printed, never a usable admin token.
        shown = [w for w in " ".join(lines).split() if "bkemu_" in w]
        assert len(shown) == 1
        assert re.fullmatch(r"bkemu_…#[0-9a-f]{8}", shown[0]), shown


def test_serve_shows_the_admin_token_when_asked() -> None:
    with _serving("--show-admin-token") as lines:
        line = _admin_line(lines)
        token = next(w for w in line.split() if w.startswith("bkemu_"))
        assert _admin_token_works(_exported(lines)["STACKSAPI_BASE_URL"], token)


def test_serve_says_where_a_given_admin_token_came_from() -> None:
    token = "bkemu_from_the_environment_0123"
    with _serving(STACKSAPI_EMULATOR_ADMIN_TOKEN=token) as lines:
        line = _admin_line(lines)
        assert token not in "\n".join(lines)
        assert "from STACKSAPI_EMULATOR_ADMIN_TOKEN" in line
        assert _admin_token_works(_exported(lines)["STACKSAPI_BASE_URL"], token)
    with _serving("--admin-token", token) as lines:
        assert "from --admin-token" in _admin_line(lines)


def test_export_line_works_when_serving_on_every_interface() -> None:
    with _serving("--host", "0.0.0.0") as lines:
        words = _exported(lines)
        assert words["STACKSAPI_BASE_URL"].startswith("http://127.0.0.1:")
        assert "0.0.0.0" in lines[0]  # the banner still says what it is bound to
        client = Client(words["BUILDKITE_CLUSTER_TOKEN"], base_url=words["STACKSAPI_BASE_URL"])
        with client:
            assert client.get_token().is_clustered


def test_seeded_emulator_never_reuses_a_job_uuid_for_another_object() -> None:
    """Over HTTP: job uuids differ from every pipeline, build, queue and stack uuid."""
    stop = threading.Event()
    ready: list[ServeInfo] = []
    thread = threading.Thread(
        target=serve,
        kwargs={
            "jobs": 60,
            "seed": 1,
            "rate_limits": False,
            "on_ready": ready.append,
            "stop": stop,
        },
        daemon=True,
    )
    thread.start()
    try:
        for _ in range(200):
            if ready:
                break
            threading.Event().wait(0.05)
        info = ready[0]
        with Client(info.cluster_token.get_secret_value(), base_url=info.base_url) as client:
            stack = client.register_stack("uuids", queue_key=DEFAULT_QUEUE_KEY)
            page = client.list_scheduled_jobs("uuids", queue_key=DEFAULT_QUEUE_KEY, limit=1000)
    finally:
        stop.set()
        thread.join(timeout=15)
    jobs = {j.id for j in page.jobs}
    assert len(jobs) == 60
    others = {j.pipeline.uuid for j in page.jobs} | {j.build.uuid for j in page.jobs}
    others |= {page.cluster_queue.id, stack.id, stack.organization_uuid}
    assert jobs.isdisjoint(others)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_server_urls_on_a_wildcard_host_point_at_loopback(host: str) -> None:
    from stacksapi.emulator import EmulatorServer

    server = EmulatorServer(host=host)
    try:
        server.start()
    except OSError:
        pytest.skip(f"cannot bind {host} here")
    try:
        with Client(server.token, base_url=server.base_url) as client:
            assert client.get_token().is_clustered
        assert server.host == host
    finally:
        server.stop()


@pytest.mark.parametrize(("host", "shown"), [("0.0.0.0", "0.0.0.0"), ("::", "[::]")])
def test_the_banner_names_the_wildcard_it_is_bound_to_readably(host: str, shown: str) -> None:
    from stacksapi.emulator import EmulatorServer

    try:  # is there an IPv6 stack here at all?
        EmulatorServer(host=host).start().stop()
    except OSError:
        pytest.skip(f"cannot bind {host} here")
    with _serving("--host", host) as lines:
        assert lines[0].endswith(f"(bound to {shown}: every interface)"), lines[0]
