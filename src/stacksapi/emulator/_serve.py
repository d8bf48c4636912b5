"""``serve()``: run the emulator in the foreground until SIGINT/SIGTERM, preloaded with jobs.

This is what ``stacksapi emulator serve`` calls. It builds an :class:`Emulator`, fills its queues
with realistic jobs drawn from a seed (pipelines, builds, branches, steps, commands that really
run), starts an ``EmulatorServer`` with optional fault injection, hands a :class:`ServeInfo` to
``on_ready`` (the CLI prints the URL and an ``export`` line from it) and blocks until a signal.
"""

from __future__ import annotations

import contextlib
import random
import shlex
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from stacksapi._models import Build, Pipeline, Secret, Step

from ._faults import FaultConfig, parse_fault_spec
from ._jobs import JobSpec

if TYPE_CHECKING:
    from . import Emulator, EmulatorServer

__all__ = ["ServeInfo", "sample_jobs", "serve"]

_MAX_JOBS = 1_000_000


@dataclass(frozen=True, slots=True)
class ServeInfo:
    """What a running ``serve()`` offers: where it listens and the tokens to use it.

    The tokens are :class:`Secret` so that printing this object shows none of them.
    """

    base_url: str
    cluster_token: Secret
    admin_token: Secret
    server: EmulatorServer
    faults: FaultConfig | None

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    @property
    def admin_url(self) -> str:
        """The admin API base, ending in ``/_emulator/`` (not under ``/v3/``)."""
        return self.server.admin_url

    def export_line(self) -> str:
        """A shell line that points a stack at this emulator (holds the cluster token)."""
        token = shlex.quote(self.cluster_token.get_secret_value())
        url = shlex.quote(self.base_url)
        return f"export BUILDKITE_CLUSTER_TOKEN={token} STACKSAPI_BASE_URL={url}"


# --- realistic jobs ---------------------------------------------------------------------------

_PIPELINES = (
    "web-app",
    "api-server",
    "mobile-ios",
    "data-pipeline",
    "docs-site",
    "infrastructure",
    "payments",
    "search-indexer",
)
_BRANCHES = ("main", "main", "main", "feature/login-form", "fix/flaky-spec", "release/2.4")
_STEPS: tuple[tuple[str | None, str], ...] = (
    ("lint", "echo '--- :lint-roller: Linting'; sleep 0.2; echo 'no offences'"),
    ("test", "echo '--- :test_tube: Running tests'; sleep 0.5; echo '128 passed'"),
    ("build", "echo '--- :package: Building'; sleep 0.3; echo 'built artifact.tar.gz'"),
    ("e2e", "echo '--- :chromium: End-to-end'; sleep 1; echo 'all scenarios green'"),
    ("deploy-staging", "echo '--- :rocket: Deploying to staging'; sleep 0.5; echo 'deployed'"),
    (None, "echo 'hello from the emulator'"),
)
_FAILING = "echo '--- :test_tube: Running tests'; sleep 0.3; echo '1 failed' >&2; exit 1"
_MESSAGES = ("Fix typo in README", "Bump dependencies", "Add retry to uploader", "Refactor auth")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def sample_jobs(count: int, queues: Sequence[str], *, seed: int | None = None) -> list[JobSpec]:
    """``count`` plausible jobs spread over ``queues``, the same ones for the same seed.

    Builds hold several steps of one pipeline; about 5% of jobs fail (exit 1) when run, and a
    few carry a higher priority or extra agent query rules.
    """
    if not 0 <= count <= _MAX_JOBS:
        raise ValueError(f"jobs: must be between 0 and {_MAX_JOBS}, got {count}")
    if not queues:
        raise ValueError("queues: at least one queue is needed to create jobs")
    # A stream of its own: the emulator draws job and queue uuids from ``Random(seed)``, and the
    # same stream here would hand a job's uuid to a pipeline or a build.
    rng = random.Random(None if seed is None else f"stacksapi.sample_jobs:{seed}")
    pipelines = [(slug, _uuid(rng)) for slug in _PIPELINES]
    numbers = dict.fromkeys(_PIPELINES, 0)
    specs: list[JobSpec] = []
    while len(specs) < count:
        slug, pipeline_uuid = rng.choice(pipelines)
        numbers[slug] += 1
        number = numbers[slug]
        branch = rng.choice(_BRANCHES)
        build = Build(uuid=_uuid(rng), number=number, branch=branch)
        commit = f"{rng.getrandbits(160):040x}"
        for step_key, command in rng.sample(_STEPS, k=rng.randint(1, 4)):
            if len(specs) >= count:
                break
            queue = rng.choice(queues)
            rules = [f"queue={queue}"]
            if rng.random() < 0.3:
                rules.append("os=linux")
            env = {
                "BUILDKITE_PIPELINE_SLUG": slug,
                "BUILDKITE_BRANCH": branch,
                "BUILDKITE_BUILD_NUMBER": str(number),
                "BUILDKITE_COMMIT": commit,
                "BUILDKITE_MESSAGE": rng.choice(_MESSAGES),
            }
            if step_key is not None:
                env["BUILDKITE_STEP_KEY"] = step_key
            specs.append(
                JobSpec(
                    queue=queue,
                    priority=rng.choice((0, 0, 0, 0, 1, 10)),
                    agent_query_rules=tuple(rules),
                    pipeline=Pipeline(slug=slug, uuid=pipeline_uuid),
                    build=build,
                    step=Step(key=step_key),
                    env=env,
                    command=_FAILING if rng.random() < 0.05 else command,
                )
            )
    return specs


# --- serving ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop``; a second signal gets the previous (default) behaviour."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in watched}

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        restore()

    for s in watched:
        signal.signal(s, on_signal)
    try:
        yield
    finally:
        restore()


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tokens: Iterable[str] = (),
    jobs: int = 0,
    queues: Sequence[str] = (),
    rate_limits: bool | Mapping[str, int] = True,
    seed: int | None = None,
    faults: FaultConfig | str | None = None,
    on_ready: Callable[[ServeInfo], None] | None = None,
    admin_token: str | None = None,
    log_level: str = "warning",
    stop: threading.Event | None = None,
) -> None:
    """Run an emulator until SIGINT/SIGTERM (or ``stop`` is set), then shut down cleanly.

    ``jobs`` realistic jobs are created across ``queues`` (the default queue when empty) from
    ``seed``. ``faults`` is a :class:`FaultConfig` or a compact spec such as
    ``"500=0.05,429=0.05,latency=0-50ms"`` (seeded with ``seed``). Signals are caught only when
    called from the main thread; elsewhere pass ``stop``.
    """
    from . import Emulator, EmulatorServer

    if not 0 <= port <= 65535:
        raise ValueError(f"port: must be between 0 and 65535, got {port}")
    if isinstance(faults, str):
        fault_config: FaultConfig | None = parse_fault_spec(faults, seed=seed or 0)
    else:
        fault_config = faults
    token_list = [t for t in tokens if t]
    emulator = Emulator(
        tokens=token_list or None,
        admin_token=admin_token,
        rate_limits=rate_limits,
        seed=seed,
        queues=list(queues),
    )
    if jobs:
        emulator.create_jobs(sample_jobs(jobs, list(queues) or [emulator.default_queue], seed=seed))
    middleware: list[Any] = [fault_config.middleware()] if fault_config is not None else []
    stop = stop or threading.Event()
    with (
        _stop_on_signals(stop),
        EmulatorServer(
            emulator, host=host, port=port, middleware=middleware, log_level=log_level
        ) as server,
    ):
        if on_ready is not None:
            on_ready(
                ServeInfo(
                    base_url=server.base_url,
                    cluster_token=Secret(emulator.token),
                    admin_token=Secret(emulator.admin_token),
                    server=server,
                    faults=fault_config,
                )
            )
        while not stop.wait(0.2):
            pass
