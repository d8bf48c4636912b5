"""A client that disconnects in the middle of its request body is not an emulator error.

Found by the chaos suite (a SIGKILLed stack with a request in flight): the emulator logged an
"internal emulator error" traceback and counted a 500 that it never sent. It now counts the
request as 499 (client closed request) and logs nothing.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from stacksapi.emulator import EmulatorServer


def _send_half_a_body(server: EmulatorServer, path: str, token: str) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"job_uuids": [')
        time.sleep(0.1)  # the server is waiting for the rest of the body


def _wait_for(server: EmulatorServer, endpoint: str) -> dict[int, int]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        counts = server.emulator.counters().get(endpoint)
        if counts:
            return counts
        time.sleep(0.02)
    raise AssertionError(f"{endpoint} was never counted")


def test_stacks_api_request_cut_short_counts_499_and_logs_nothing(
    stacks_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="stacksapi.emulator")
    path = "/v3/stacks/s/jobs/get-states"
    _send_half_a_body(stacks_emulator, path, stacks_emulator.token)
    assert _wait_for(stacks_emulator, "get_job_states") == {499: 1}
    assert not [r for r in caplog.records if r.name == "stacksapi.emulator"]


def test_admin_request_cut_short_logs_nothing(
    stacks_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="stacksapi.emulator")
    _send_half_a_body(stacks_emulator, "/_emulator/jobs", stacks_emulator.admin_token)
    time.sleep(0.3)  # let the server notice the disconnect (nothing to wait on: no counter)
    assert not [r for r in caplog.records if r.name == "stacksapi.emulator"]
    assert stacks_emulator.emulator.jobs == {}
