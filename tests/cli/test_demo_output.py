"""What ``stacksapi demo`` shows: the bar counts every job, Ctrl-C says interrupted, 100 columns."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "stacksapi.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE_", "STACKSAPI_"))}
    env.pop("FORCE_COLOR", None)
    env.update(extra)
    return env


@pytest.mark.slow
def test_summary_fits_100_columns_every_column_has_a_header_one_spelling() -> None:
    proc = subprocess.run(
        [*CLI, "demo", "--jobs", "6", "--pause-seconds", "0.5"],
        capture_output=True, text=True, env=_env(COLUMNS="100"), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > 100]
    assert not too_wide, "\n".join(too_wide)
    summary = proc.stdout[proc.stdout.index("\njobs") :]
    rows = [line for line in summary.splitlines() if re.match(r"^│ [0-9a-f]{8} ", line)]
    assert len(rows) == 6, summary  # one line per job: nothing wraps
    # Every table in the summary has a header row naming each column.
    for header in (
        ("job", "pipeline/step", "prio", "expected", "state", "exit", "dispatch", "verdict"),
        ("total", "value"),
        ("endpoint", "calls", "429s"),
        ("result", "check", "detail"),
    ):
        (line,) = [line for line in summary.splitlines() if all(f" {h} " in line for h in header)]
        assert line.startswith("┃"), line
    # The API's spelling (canceled), everywhere.
    assert "cancelled" not in proc.stdout.lower()
    assert "canceled" in proc.stdout


def _read_pty(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


@pytest.mark.slow
def test_the_live_bar_counts_every_job_the_header_announces() -> None:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "demo", "--jobs", "6", "--pause-seconds", "0.5"],
        stdin=child, stdout=child, stderr=child, env=_env(TERM="xterm", COLUMNS="100"),
    )  # fmt: skip
    os.close(child)
    try:
        out = _read_pty(main, proc, 120)
        assert proc.wait(timeout=30) == 0, out
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    assert "stacksapi demo: 6 jobs" in out
    counts = re.findall(r"\b(\d+)/(\d+)\b", out)
    assert counts, out
    assert {total for _done, total in counts} == {"6"}, out
    assert counts[-1] == ("6", "6"), out


@pytest.mark.slow
def test_ctrl_c_reports_interrupted_not_failed_checks() -> None:
    proc = subprocess.Popen(
        [*CLI, "demo", "--jobs", "40", "--concurrency", "2", "--pause-seconds", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(COLUMNS="100"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        for line in proc.stdout:
            seen.append(line)
            if "agent ended" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + rest
    assert proc.returncode == 130, out + err
    assert "interrupted" in out
    assert "FAIL" not in out, out
    assert "WRONG" not in out, out
    assert "demo FAILED" not in out
    assert "Traceback" not in out + err
    # A job that ended (during the stop's drain) is judged like any other: the table never
    # shows a finished job as "-", and the count of jobs that had not ended matches the rows.
    rows = [line.split("│") for line in out.splitlines() if re.match(r"^│ [0-9a-f]{8} ", line)]
    cells = [[c.strip() for c in row[1:-1]] for row in rows]
    assert cells, out
    header = next(line for line in out.splitlines() if "┃ job" in line)
    names = [c.strip() for c in header.split("┃")[1:-1]]
    state, verdict = names.index("state"), names.index("verdict")
    unjudged_but_ended = [c for c in cells if c[verdict] == "-" and c[state] == "finished"]
    assert not unjudged_but_ended, out
    unjudged = sum(1 for c in cells if c[verdict] == "-")
    assert f"{unjudged} of {len(cells)} jobs had not ended" in out, out


@pytest.mark.slow
def test_at_80_columns_the_summary_still_names_each_jobs_pipeline_and_step() -> None:
    """On an 80-column terminal the jobs table drops its borders rather than cut pipeline/step
    to a few letters; it still fits, one line per job, with a header on every column."""
    proc = subprocess.run(
        [*CLI, "demo", "--jobs", "6", "--pause-seconds", "0.5"],
        capture_output=True, text=True, env=_env(COLUMNS="80"), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout[proc.stdout.index("\njobs") :]  # events in a pipe are log lines
    too_wide = [line for line in summary.splitlines() if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)
    header = ("job", "pipeline/step", "prio", "expected", "state", "exit", "dispatch", "verdict")
    assert [line for line in summary.splitlines() if all(h in line.split() for h in header)]
    rows = [line for line in summary.splitlines() if re.match(r"^[│ ]*[0-9a-f]{8} ", line)]
    assert len(rows) == 6, summary
    names = [re.search(r"[0-9a-f]{8}\W+(\S+)", row).group(1) for row in rows]  # type: ignore[union-attr]
    assert all(len(name.rstrip("…")) >= 12 for name in names), summary
