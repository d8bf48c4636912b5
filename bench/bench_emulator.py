"""Emulator throughput and memory, against a bare uvicorn app measured in the same run.

Measures requests per second for list-scheduled-jobs (1000-job pages) and get-job on the
emulator's ASGI app, and on a bare ASGI app that returns the very same bytes, both served by
uvicorn with the same settings in a process pinned to CPU 0. The load comes from several
processes pinned to CPU 1, each driving keep-alive connections with a small raw-socket HTTP/1.1
client (cheaper per request than any HTTP library, so the server is the bottleneck; the script
prints the server's CPU use to show it). Emulator and bare runs alternate, best round kept.
Then the resident memory of an Emulator holding 100,000 realistic jobs, in a fresh process.

Targets: emulator list-scheduled-jobs >= 25% of bare; < 300 MB resident with 100,000 jobs.

    python bench/bench_emulator.py [--seconds 2] [--rounds 3] [--procs 2] [--conns 4]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TOKEN = "bkct_bench_" + "0" * 32
STACK = "bench"
QUEUE = "__default__"
SERVER_CPU = 0
LOAD_CPU = 1
_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def _pin(cpu: int) -> bool:
    try:
        if len(os.sched_getaffinity(0)) < 2:
            return False
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return False
    return True


def _listen() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only disables Nagle on sockets created with it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def _serve(app: Any, sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", ws="none", http="h11"
    )
    print(f"ready {sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


# --- server roles (child processes) -----------------------------------------------------------


def role_emulator(jobs: int) -> None:
    _pin(SERVER_CPU)
    from stacksapi.emulator import Emulator, create_app
    from stacksapi.emulator._serve import sample_jobs

    emulator = Emulator(tokens=[TOKEN], rate_limits=False, seed=1)
    emulator.create_jobs(sample_jobs(jobs, [QUEUE], seed=1))
    _serve(create_app(emulator), _listen())


def role_bare(bodies_file: str) -> None:
    _pin(SERVER_CPU)
    bodies = {
        k.encode(): bytes.fromhex(v) for k, v in json.loads(Path(bodies_file).read_text()).items()
    }
    responses = {
        path: (
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            },
            {"type": "http.response.body", "body": body, "more_body": False},
        )
        for path, body in bodies.items()
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        start, body = responses[scope["raw_path"]]
        await send(start)
        await send(body)

    _serve(app, _listen())


# --- load role ----------------------------------------------------------------------------------


def role_load(port: int, request_hex: str, start_at: float, seconds: float, conns: int) -> None:
    """Drive ``conns`` keep-alive connections until ``start_at + seconds``; print the count."""
    _pin(LOAD_CPU)
    request = bytes.fromhex(request_hex)
    sel = selectors.DefaultSelector()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    state: dict[socket.socket, list[Any]] = {}  # [header bytes, body bytes left or -1]
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        state[s] = [bytearray(), -1]
        sel.register(s, selectors.EVENT_READ)
    time.sleep(max(0.0, start_at - time.time()))
    for s in state:
        s.send(request)
    end = start_at + seconds
    cpu_start = time.process_time()
    done = errors = 0
    while time.time() < end:
        for key, _ in sel.select(timeout=0.1):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            st = state[conn]
            n = conn.recv_into(buf)
            if n == 0:
                raise SystemExit("server closed a connection")
            if st[1] < 0:
                st[0] += view[:n]
                head_end = st[0].find(b"\r\n\r\n")
                if head_end < 0:
                    continue
                head = bytes(st[0][:head_end])
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                m = _CONTENT_LENGTH.search(head)
                if m is None:
                    raise SystemExit("response without content-length")
                st[1] = int(m.group(1)) - (len(st[0]) - head_end - 4)
            else:
                st[1] -= n
            if st[1] == 0:
                done += 1
                st[0], st[1] = bytearray(), -1
                conn.send(request)
    cpu = (time.process_time() - cpu_start) / seconds
    print(json.dumps({"requests": done, "errors": errors, "cpu": cpu}), flush=True)


# --- memory role --------------------------------------------------------------------------------


def role_memory(jobs: int) -> None:
    import psutil

    from stacksapi.emulator import Emulator
    from stacksapi.emulator._serve import sample_jobs

    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    emulator = Emulator(rate_limits=False, seed=2)
    batch = 10_000
    for start in range(0, jobs, batch):
        emulator.create_jobs(sample_jobs(min(batch, jobs - start), [QUEUE], seed=start))
    gc.collect()
    after = process.memory_info().rss
    assert len(emulator.jobs) == jobs
    print(json.dumps({"baseline": before, "loaded": after}), flush=True)


# --- orchestration -------------------------------------------------------------------------------


def _spawn(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        proc.kill()
        raise SystemExit(f"server {args[0]} did not start")
    return proc, int(line[1])


def _request(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {TOKEN}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()


def _measure(
    server: Any, port: int, path: str, opts: argparse.Namespace
) -> tuple[float, float, float]:
    """Requests/s, the server's and the load's CPU use (fractions of one core) for one run."""
    start_at = time.time() + 1.0
    loaders = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--role",
                "load",
                str(port),
                _request(path).hex(),
                repr(start_at),
                str(opts.seconds),
                str(opts.conns),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(opts.procs)
    ]
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = sum(server.cpu_times()[:2])
    time.sleep(opts.seconds)
    cpu1 = sum(server.cpu_times()[:2])
    total = errors = 0
    load_cpu = 0.0
    for loader in loaders:
        out, _ = loader.communicate(timeout=30)
        result = json.loads(out)
        total += result["requests"]
        errors += result["errors"]
        load_cpu += result["cpu"]
    if errors:
        raise SystemExit(f"{errors} non-200 responses on {path}")
    return total / opts.seconds, (cpu1 - cpu0) / opts.seconds, load_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds, best kept")
    parser.add_argument("--procs", type=int, default=2, help="load processes")
    parser.add_argument("--conns", type=int, default=4, help="connections per load process")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs queued for the list test")
    parser.add_argument("--memory-jobs", type=int, default=100_000)
    opts = parser.parse_args()
    if opts.role:
        role, *args = opts.role
        if role == "load":
            role_load(int(args[0]), args[1], float(args[2]), float(args[3]), int(args[4]))
        elif role == "emulator":
            role_emulator(int(args[0]))
        elif role == "bare":
            role_bare(args[0])
        elif role == "memory":
            role_memory(int(args[0]))
        return

    import httpx2
    import psutil

    pinned = _pin(LOAD_CPU)  # the orchestrator stays off the server's CPU
    print(
        f"CPUs: {os.cpu_count()}; pinning {'on (server: CPU 0, load: CPU 1)' if pinned else 'off'}"
    )
    print(f"load: {opts.procs} processes x {opts.conns} keep-alive connections, raw HTTP/1.1")
    load1 = os.getloadavg()[0]
    print(f"system load average before the run: {load1:.2f}")
    if load1 > 0.5:
        print("  (other processes are busy: absolute figures are noisy, ratios less so)")
    emu, emu_port = _spawn("--role", "emulator", str(opts.jobs))
    bare: subprocess.Popen[str] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            base = f"http://127.0.0.1:{emu_port}"
            with httpx2.Client(base_url=base, headers={"Authorization": f"Token {TOKEN}"}) as http:
                body = {"key": STACK, "type": "custom", "queue_key": QUEUE, "metadata": {}}
                http.post("/v3/stacks/register", json=body).raise_for_status()
                list_path = f"/v3/stacks/{STACK}/scheduled-jobs?queue_key={QUEUE}&limit=1000"
                page = http.get(list_path)
                page.raise_for_status()
                job_id = page.json()["jobs"][0]["id"]
                assert len(page.json()["jobs"]) == 1000
                job_path = f"/v3/stacks/{STACK}/jobs/{job_id}"
                job = http.get(job_path)
                job.raise_for_status()
            bodies = {
                list_path.split("?", maxsplit=1)[0]: page.content.hex(),
                job_path: job.content.hex(),
            }
            bodies_file = Path(tmp, "bodies.json")
            bodies_file.write_text(json.dumps(bodies))
            bare, bare_port = _spawn("--role", "bare", str(bodies_file))
            servers = {
                "emulator": (psutil.Process(emu.pid), emu_port),
                "bare": (psutil.Process(bare.pid), bare_port),
            }
            cases = [
                (
                    f"list-scheduled-jobs (1000-job pages, {len(page.content) // 1024} KB)",
                    list_path,
                ),
                (f"get-job ({len(job.content)} B)", job_path),
            ]
            results: dict[tuple[str, str], tuple[float, float, float]] = {}
            for _ in range(opts.rounds):
                for name, path in cases:
                    for which, (server, port) in servers.items():
                        measured = _measure(server, port, path, opts)
                        if measured[0] > results.get((name, which), (0.0, 0.0, 0.0))[0]:
                            results[(name, which)] = measured
        finally:
            for child in (emu, bare):
                if child is not None:
                    child.terminate()
                    child.wait(timeout=10)
    print()
    ok = True
    for name, _path in cases:
        e_rps, e_cpu, e_load = results[(name, "emulator")]
        b_rps, b_cpu, b_load = results[(name, "bare")]
        ratio = e_rps / b_rps
        print(f"{name}")
        print(f"  emulator {e_rps:9.0f} req/s   (CPU: server {e_cpu:4.0%}, load {e_load:4.0%})")
        print(f"  bare     {b_rps:9.0f} req/s   (CPU: server {b_cpu:4.0%}, load {b_load:4.0%})")
        verdict = ""
        if name.startswith("list"):
            passed = ratio >= 0.25
            ok &= passed
            verdict = f"  target >= 25%: {'PASS' if passed else 'FAIL'}"
        print(f"  ratio    {ratio:9.1%}{verdict}")

    mem = subprocess.run(
        [sys.executable, __file__, "--role", "memory", str(opts.memory_jobs)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    m = json.loads(mem.stdout)
    mb = 1024 * 1024
    passed = m["loaded"] < 300 * mb
    ok &= passed
    jobs_bytes = m["loaded"] - m["baseline"]
    print(f"\nresident memory with {opts.memory_jobs:,} jobs: {m['loaded'] / mb:.0f} MB")
    print(f"  interpreter + imports {m['baseline'] / mb:.0f} MB, jobs {jobs_bytes / mb:.0f} MB")
    print(f"  {jobs_bytes / opts.memory_jobs:.0f} B per job")
    print(f"  target < 300 MB: {'PASS' if passed else 'FAIL'}")
    print("\nall targets met" if ok else "\nsome targets missed")


if __name__ == "__main__":
    main()
