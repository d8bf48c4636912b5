"""The examples run against the emulator (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

emulator = pytest.importorskip("stacksapi.emulator")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> dict[str, Any]:
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_register_deregister_example(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with emulator.EmulatorServer() as srv:
        srv.emulator.create_jobs(2)
        monkeypatch.setenv("BUILDKITE_CLUSTER_TOKEN", srv.token)
        monkeypatch.setenv("STACKSAPI_BASE_URL", srv.base_url)
        assert _load("register_deregister.py")["main"](["x", "example-stack"]) == 0
        assert srv.emulator.list_stacks() == []  # deregistered
    out = capsys.readouterr().out
    assert "registered example-stack" in out
    assert "2 job(s) waiting" in out
    assert "deregistered example-stack" in out


def test_register_deregister_example_reports_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with emulator.EmulatorServer() as srv:
        monkeypatch.setenv("BUILDKITE_CLUSTER_TOKEN", "bkct_wrong_token_value")
        monkeypatch.setenv("STACKSAPI_BASE_URL", srv.base_url)
        assert _load("register_deregister.py")["main"](["x"]) == 1
    err = capsys.readouterr().err
    assert "401" in err
    assert "bkct_wrong_token_value" not in err


def test_local_run_example(capsys: pytest.CaptureFixture[str]) -> None:
    _load("local_run.py")["main"]()
    out = capsys.readouterr().out
    assert "reserved 5, not reserved 0" in out
    assert out.count(": finished") == 5
    assert "bkjat_" not in out
