"""The demo's job mix: realistic pipelines, priorities and shell commands, each with the outcome
the demo expects, so the run can prove itself at the end.

Most jobs succeed; a few fail with a chosen exit status; one is cancelled while its agent is
still being provisioned; one asks for agent tags this stack does not serve and must stay
scheduled. Commands are short real shell (``sh -c``), so a default run stays well under a minute.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

__all__ = ["DEMO_QUEUE", "DEMO_TAGS", "DemoJob", "Expect", "build_jobs"]

DEMO_QUEUE = "demo"
DEMO_TAGS = {"os": "linux", "arch": "amd64"}
"""The tags the demo's stack serves; the odd job out asks for ``os=windows``."""


class Expect(enum.StrEnum):
    """How a demo job should end."""

    SUCCEED = "succeed"  # finished, exit 0
    FAIL = "fail"  # finished with ``exit_status``
    CANCEL = "cancel"  # cancelled while its agent was being provisioned, never ran
    UNSERVED = "unserved"  # targets tags this stack does not serve: stays scheduled


@dataclass(frozen=True, slots=True)
class DemoJob:
    """One job of the demo: what to schedule and what should come of it."""

    pipeline: str
    step: str
    command: str
    priority: int = 0
    expect: Expect = Expect.SUCCEED
    exit_status: int = 0
    rules: tuple[str, ...] = (f"queue={DEMO_QUEUE}",)
    branch: str = "main"
    build_number: int = 1
    env: dict[str, str] = field(default_factory=dict)


# (pipeline, step, command) that succeed; {n} is a small number for variety.
_GOOD: tuple[tuple[str, str, str], ...] = (
    ("web-frontend", "lint", 'echo "eslint: checking {n} files"; sleep 0.3; echo "0 problems"'),
    (
        "web-frontend",
        "unit-tests",
        'for s in auth cart search; do echo "suite $s: {n} passed"; sleep 0.15; done',
    ),
    (
        "web-frontend",
        "build",
        'echo "bundling"; sleep 0.4; echo "dist/app.{n}.js $(date -u +%H:%M:%S)"',
    ),
    ("payments-api", "test", 'echo "go test ./..."; sleep 0.5; echo "ok  payments  0.{n}s"'),
    ("payments-api", "vet", 'echo "vet: {n} packages"; sleep 0.2'),
    (
        "payments-api",
        "docker-build",
        'echo "step 1/{n}: FROM scratch"; sleep 0.4; echo "image sha256:$(echo {n} | cksum)"',
    ),
    ("docs-site", "spellcheck", 'printf "teh\\nrecieve\\n" | wc -l; echo "{n} words checked"'),
    ("docs-site", "build-html", 'echo "rendering {n} pages"; sleep 0.3; uname -s'),
    ("infra", "terraform-fmt", 'echo "terraform fmt -check"; sleep 0.2; echo "{n} files ok"'),
    ("infra", "plan-staging", 'echo "plan: {n} to add, 0 to change"; sleep 0.5'),
    ("mobile-app", "lint", 'echo "ktlint {n} files"; sleep 0.25'),
    (
        "mobile-app",
        "unit-tests",
        "i=0; while [ $i -lt 3 ]; do i=$((i+1)); sleep 0.1; done; echo ok",
    ),
)

# (pipeline, step, command, exit status) that fail on purpose.
_BAD: tuple[tuple[str, str, str, int], ...] = (
    ("payments-api", "integration", 'echo "FAIL: TestRefund (0.{n}s)" >&2; sleep 0.3; exit 1', 1),
    ("infra", "plan-production", 'echo "Error: drift detected in {n} resources" >&2; exit 3', 3),
    ("mobile-app", "ui-tests", 'echo "emulator did not boot" >&2; sleep 0.2; exit 2', 2),
)


def build_jobs(count: int, *, seed: int = 7) -> list[DemoJob]:
    """``count`` jobs (at least 4): one cancelled, one unserved, about 1 in 8 failing."""
    if count < 4:
        raise ValueError(f"jobs: at least 4 are needed for the demo's mix (got {count})")
    rng = random.Random(seed)
    jobs: list[DemoJob] = [
        DemoJob(
            pipeline="infra",
            step="deploy-canary",
            command='echo "provisioning a large runner"; sleep 5',
            priority=5,
            expect=Expect.CANCEL,
            build_number=41,
        ),
        DemoJob(
            pipeline="desktop-app",
            step="windows-installer",
            command='echo "msbuild installer.sln"',
            rules=(f"queue={DEMO_QUEUE}", "os=windows"),
            expect=Expect.UNSERVED,
            build_number=7,
        ),
    ]
    failures = max(1, (count - 2) // 8)
    for i in range(failures):
        pipeline, step, command, status = _BAD[i % len(_BAD)]
        jobs.append(
            DemoJob(
                pipeline=pipeline,
                step=step,
                command=command.format(n=rng.randint(2, 9)),
                expect=Expect.FAIL,
                exit_status=status,
                build_number=100 + i,
                branch=rng.choice(("main", "feature/refunds", "fix/flaky")),
            )
        )
    for i in range(count - len(jobs)):
        pipeline, step, command = _GOOD[i % len(_GOOD)]
        # A few hotfix builds jump the queue; docs work waits behind everything else.
        priority = 10 if i % 9 == 4 else (-5 if pipeline == "docs-site" else 0)
        jobs.append(
            DemoJob(
                pipeline=pipeline,
                step=step,
                command=command.format(n=rng.randint(2, 99)),
                priority=priority,
                build_number=200 + i // len(_GOOD),
                branch="hotfix/login" if priority == 10 else "main",
            )
        )
    rng.shuffle(jobs)
    return jobs
