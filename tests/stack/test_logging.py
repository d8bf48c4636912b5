"""JSON log lines: one object a line, job uuid and event as fields; bad flags are clear errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from stacksapi.stack import JsonLogFormatter


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(
        "stacksapi.stack", logging.INFO, __file__, 1, "job %s: %s", ("u1", "x"), None
    )
    rec.__dict__.update(extra)
    return rec


def test_a_job_line_carries_its_uuid_and_event_as_fields() -> None:
    line = JsonLogFormatter().format(record(job_uuid="u1", event="dispatched"))
    assert "\n" not in line
    data = json.loads(line)
    assert data["job_uuid"] == "u1"
    assert data["event"] == "dispatched"
    assert data["message"] == "job u1: x"
    assert data["level"] == "INFO"
    assert data["logger"] == "stacksapi.stack"
    assert data["time"].endswith("+00:00")


def test_a_line_without_a_job_has_no_job_field_and_keeps_the_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record()
        rec.exc_info = sys.exc_info()
    data = json.loads(JsonLogFormatter().format(rec))
    assert "job_uuid" not in data
    assert "RuntimeError: boom" in data["exception"]


def test_module_entry_rejects_an_unknown_log_format_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stacksapi.stack", "--config", "x.toml", "--log-format", "xml"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "--log-format" in proc.stderr
    assert "Traceback" not in proc.stderr
