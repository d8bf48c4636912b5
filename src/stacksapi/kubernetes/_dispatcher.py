"""``KubernetesDispatcher``: each reserved job becomes a Kubernetes Job running the agent.

``dispatch`` creates the Job (deterministic name: a second create is a 409, taken as "already
dispatched") and then the per-job Secret with the job acquisition token, owned by the Job so it
is garbage-collected with it. A :class:`~._watch.Watcher` follows this stack's Jobs and pods:

- a Job that completes, fails or is deleted ends the work (``agent_ended``), freeing capacity;
- a pod stuck pulling an image past ``image_pull_grace``, failing an init container, or pending
  past ``pending_timeout``: before an agent took the job, the Job is deleted and the work reported
  failed with the pod's events (the stack then finishes the job with ``stack_error`` and them as
  the detail); after, a notification is posted instead (the agent owns the job);
- ``cancel`` deletes the Job (pods and Secret go with it).

``start`` lists this stack's Jobs by label and reports the active ones as already running, so a
restarted (or second) controller never creates a job twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Self

import httpx2
import msgspec
from lightkube import ApiError, AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Secret

from stacksapi.stack import (
    AdoptedJob,
    AdoptedState,
    AgentExit,
    CheckResult,
    DispatchError,
    DispatchRequest,
    DispatchSink,
    ProvisioningSink,
    StackConfig,
)

from ._config import KubernetesConfig
from ._kube import AlreadyExists, KubeAPI
from ._podcheck import PodProblem, describe_events, pod_problem
from ._render import (
    job_name,
    owner_reference,
    render_job,
    render_secret,
    secret_name,
    stack_selector,
)
from ._watch import Watcher

if TYPE_CHECKING:
    from lightkube.config.kubeconfig import KubeConfig

__all__ = ["KubernetesDispatcher", "dispatcher"]

_log = logging.getLogger("stacksapi.kubernetes")
_UUID_ANNOTATION = "stacksapi/job-uuid"


@dataclasses.dataclass(slots=True)
class _Tracked:
    """One job's Kubernetes work, as this dispatcher knows it."""

    uuid: str
    name: str
    created: bool = False
    cancel_reason: str | None = None
    pod: Pod | None = None
    first_seen: dict[str, float] = dataclasses.field(default_factory=dict)
    handling: bool = False  # a stuck-pod teardown is under way
    noted: set[str] = dataclasses.field(default_factory=set)
    agent_exit: int | None = None
    agent_message: str = ""
    failure: AgentExit | None = None  # set before a stuck pod's Job is deleted


_ADOPTED_BY_PHASE = {"Running": AdoptedState.STARTED, "Pending": AdoptedState.PROVISIONING}


def _finished(job: Job) -> str | None:
    """``Complete`` or ``Failed`` when the Job has ended, else ``None``."""
    status = job.status
    for cond in (status.conditions or []) if status is not None else []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type
    return None


def _uuid_of(obj: Job | Pod) -> str | None:
    meta = obj.metadata
    return (meta.annotations or {}).get(_UUID_ANNOTATION) if meta is not None else None


class KubernetesDispatcher:
    """Runs each job as a Kubernetes Job. See the module docstring and docs/kubernetes.md.

    ``kube_config`` overrides where the cluster is found (default: ``config.kubeconfig``, else
    the in-cluster service account, else ``KUBECONFIG``, else ``~/.kube/config``).
    """

    def __init__(
        self,
        config: KubernetesConfig,
        *,
        stack_key: str,
        kube_config: KubeConfig | None = None,
    ) -> None:
        self.config = config
        self.stack_key = stack_key
        self.selector = stack_selector(stack_key)
        self._kube_config = kube_config
        self._client: AsyncClient | None = None
        self._api: KubeAPI | None = None
        self._sink: DispatchSink | None = None
        self._watcher: Watcher | None = None
        self._tracked: dict[str, _Tracked] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_stack_config(cls, config: StackConfig) -> Self:
        """Build from a stack config: its ``[kubernetes]`` table and its stack key."""
        table = config.extensions.get("kubernetes", {})
        return cls(KubernetesConfig.from_mapping(table), stack_key=config.key)

    @property
    def api(self) -> KubeAPI:
        if self._api is None:
            raise RuntimeError("KubernetesDispatcher.start() has not run")
        return self._api

    @property
    def namespace(self) -> str:
        return self.api.namespace

    def _connect(self) -> AsyncClient:
        from lightkube.config.kubeconfig import KubeConfig

        try:
            if self._kube_config is not None:
                found = self._kube_config
            elif self.config.kubeconfig is not None:
                found = KubeConfig.from_file(self.config.kubeconfig)
            else:
                found = KubeConfig.from_env()
            single = found.get(context_name=self.config.context)
        except Exception as exc:
            raise RuntimeError(f"cannot load the Kubernetes configuration: {exc}") from None
        if single is None:
            raise RuntimeError("cannot load the Kubernetes configuration: no current context")
        return AsyncClient(
            config=single,
            namespace=self.config.namespace,
            field_manager="stacksapi",
            trust_env=False,
        )

    async def check(self) -> list[CheckResult]:
        """For ``stacksapi run --check``: the API answers and the service account may do what
        the dispatcher needs (see :mod:`._preflight`). Starts nothing."""
        from ._preflight import check_kubernetes

        try:
            client = self._connect()
        except RuntimeError as exc:
            return [CheckResult(False, str(exc))]
        cfg = self.config
        api = KubeAPI(
            client, client.namespace, qps=cfg.api_qps, burst=cfg.api_burst, retries=cfg.api_retries
        )
        try:
            return await check_kubernetes(client, api, dict(self.selector))
        finally:
            await client.close()

    async def start(self, sink: DispatchSink) -> Collection[AdoptedJob]:
        """Connect, list this stack's Jobs (the active ones are returned), start watching."""
        self._sink = sink
        self._client = self._connect()
        cfg = self.config
        self._api = KubeAPI(
            self._client,
            self._client.namespace,
            qps=cfg.api_qps,
            burst=cfg.api_burst,
            retries=cfg.api_retries,
        )
        jobs, version = await self._api.list_jobs(self.selector)
        for job in jobs:
            uuid = _uuid_of(job)
            if uuid is None or _finished(job) is not None or job.metadata is None:
                continue
            self._tracked[uuid] = _Tracked(uuid, str(job.metadata.name), created=True)
        phases: dict[str, str] = {}
        if self._tracked:  # what each adopted Job's pod is doing, for the runtime's watch
            pods, _ = await self._api.list_pods(self.selector)
            for pod in pods:
                uuid = _uuid_of(pod)
                if uuid in self._tracked and pod.status is not None and pod.status.phase:
                    phases[uuid] = str(pod.status.phase)
        self._watcher = Watcher(self._api, self.selector, self, sweep_interval=cfg.check_interval)
        self._watcher.start(version)
        _log.info(
            "watching Jobs in namespace %s (%d in flight)", self.namespace, len(self._tracked)
        )
        return [AdoptedJob(u, _ADOPTED_BY_PHASE.get(phases.get(u, ""), AdoptedState.UNKNOWN))
                for u in self._tracked]  # fmt: skip

    # --- dispatch -----------------------------------------------------------------------

    async def dispatch(self, request: DispatchRequest) -> None:
        """Create the Job and its token Secret; raise :class:`DispatchError` when impossible."""
        uuid = request.job_uuid
        if uuid in self._tracked:
            raise DispatchError(f"a Kubernetes Job for job {uuid} is already being watched here")
        name = job_name(self.config, uuid)
        where = f"{self.namespace}/{name}"
        manifest = render_job(self.config, request, self.namespace)  # DispatchError if no token
        tracked = self._tracked[uuid] = _Tracked(uuid, name)
        try:
            try:
                created = await self.api.create(msgspec.convert(manifest, Job))
                existing = None
            except AlreadyExists:
                existing = await self.api.get_job(name)
                if existing is None:
                    raise DispatchError(f"Kubernetes Job {where} exists and vanished") from None
                created = existing
                _log.info("job %s: Kubernetes Job %s already dispatched", uuid, where)
            uid = created.metadata.uid if created.metadata is not None else None
            tracked.created = True
            if request.token is not None:
                await self._put_secret(request, owner_reference(name, str(uid)))
        except (ApiError, httpx2.HTTPError) as exc:
            self._tracked.pop(uuid, None)
            if tracked.created:
                await self._delete_quietly(name)
            raise DispatchError(f"cannot create Kubernetes Job {where}: {_reason(exc)}") from None
        except DispatchError:
            self._tracked.pop(uuid, None)
            raise
        verb = "created" if existing is None else "already existed; adopted it"
        self._notify(uuid, f"Kubernetes Job {where} {verb}")
        if existing is not None and _finished(existing) is not None:
            asyncio.get_running_loop().call_soon(self._ended, uuid, existing)

    async def _put_secret(self, request: DispatchRequest, owner: dict[str, Any]) -> None:
        manifest = render_secret(self.config, request, self.namespace, owner)
        try:
            await self.api.create(msgspec.convert(manifest, Secret))
        except AlreadyExists:  # dispatched before: the new token replaces the old one
            patch = {"data": manifest["data"], "metadata": {"ownerReferences": [owner]}}
            await self.api.merge_patch_secret(secret_name(self.config, request.job_uuid), patch)

    async def _delete_quietly(self, name: str) -> None:
        try:
            await self.api.delete_job(name)
        except Exception as exc:
            _log.warning("cannot delete Kubernetes Job %s: %s", name, _reason(exc))

    # --- cancel and shutdown ------------------------------------------------------------

    async def cancel(self, job_uuid: str, reason: str) -> None:
        """Delete the Job (its pods and Secret go with it); ``agent_ended`` follows."""
        tracked = self._tracked.get(job_uuid)
        if tracked is None:
            if self._sink is not None:
                self._sink.agent_ended(AgentExit(job_uuid, None, "", f"cancelled: {reason}"))
            return
        tracked.cancel_reason = reason
        try:
            gone_already = not await self.api.delete_job(tracked.name)
        except Exception as exc:
            _log.error("job %s: cannot delete Kubernetes Job: %s", job_uuid, _reason(exc))
            gone_already = True  # report it: the stack must not hold the capacity forever
        if gone_already:
            self._ended(job_uuid, None)

    async def shutdown(self, grace: float) -> None:
        """Stop watching and close the client; Jobs keep running (a restart adopts them)."""
        del grace
        if self._watcher is not None:
            await self._watcher.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._client is not None:
            await self._client.close()

    # --- what the watcher reports -------------------------------------------------------

    def on_job(self, kind: str, job: Job) -> None:
        uuid = _uuid_of(job)
        if uuid is None or uuid not in self._tracked:
            return
        if kind == "DELETED" or _finished(job) is not None:
            self._ended(uuid, None if kind == "DELETED" else job)

    def jobs_listed(self, jobs: list[Job]) -> None:
        present = {u: j for j in jobs if (u := _uuid_of(j)) is not None}
        for uuid, tracked in list(self._tracked.items()):
            job = present.get(uuid)
            if job is None and tracked.created:
                self._ended(uuid, None)  # deleted while the watch was down
            elif job is not None and _finished(job) is not None:
                self._ended(uuid, job)

    def on_pod(self, kind: str, pod: Pod) -> None:
        uuid = _uuid_of(pod)
        tracked = self._tracked.get(uuid) if uuid is not None else None
        if tracked is None:
            return
        tracked.pod = None if kind == "DELETED" else pod
        self._remember_agent_exit(tracked, pod)
        self._check(tracked)

    def pods_listed(self, pods: list[Pod]) -> None:
        present = {_uuid_of(p) for p in pods}
        for uuid, tracked in self._tracked.items():
            if uuid not in present:
                tracked.pod = None  # deleted while the watch was down
        for pod in pods:
            self.on_pod("ADDED", pod)

    def sweep(self) -> None:
        for tracked in list(self._tracked.values()):
            self._check(tracked)

    def _remember_agent_exit(self, tracked: _Tracked, pod: Pod) -> None:
        for c in (pod.status.containerStatuses or []) if pod.status is not None else []:
            done = c.state.terminated if c.state is not None else None
            if c.name == self.config.agent_container and done is not None:
                tracked.agent_exit = done.exitCode
                tracked.agent_message = (done.message or done.reason or "").strip()

    def _check(self, tracked: _Tracked) -> None:
        if tracked.handling or not tracked.created or tracked.cancel_reason is not None:
            return
        now = time.monotonic()
        cfg = self.config
        if tracked.pod is None:
            since = tracked.first_seen.setdefault("no-pod", now)
            if now - since < cfg.pending_timeout:
                return
            problem = PodProblem("pending", f"has no pod after {now - since:.0f}s")
            about = tracked.name
        else:
            tracked.first_seen.pop("no-pod", None)
            found = pod_problem(
                tracked.pod,
                tracked.first_seen,
                now,
                image_pull_grace=cfg.image_pull_grace,
                pending_timeout=cfg.pending_timeout,
            )
            if found is None:
                return
            problem = found
            about = str(tracked.pod.metadata.name if tracked.pod.metadata else tracked.name)
        if problem.kind in tracked.noted:
            return
        tracked.handling = True
        task = asyncio.create_task(self._stuck(tracked, problem, about))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stuck(self, tracked: _Tracked, problem: PodProblem, about: str) -> None:
        """Fail the work (agent not started) or notify (agent started), quoting the events."""
        uuid, kind = tracked.uuid, "pod" if about != tracked.name else "Job"
        try:
            events = describe_events(await self.api.pod_events(about), self.config.events_quoted)
        except Exception as exc:
            events = f"(events unavailable: {_reason(exc)})"
        headline = f"Kubernetes {kind} {self.namespace}/{about} {problem.summary}"
        sink = self._sink
        if isinstance(sink, ProvisioningSink) and sink.job_started(uuid):
            tracked.noted.add(problem.kind)
            tracked.handling = False
            last = events.splitlines()[-1] if events else ""
            sink.notify(uuid, f"{headline}. {last}".strip())
            return
        _log.warning("job %s: %s; deleting the Job", uuid, headline)
        output = f"Kubernetes events:\n{events}" if events else ""
        tracked.failure = AgentExit(uuid, None, output, headline)  # what the deletion reports
        await self._delete_quietly(tracked.name)
        self._report(uuid, tracked.failure)

    def _ended(self, uuid: str, job: Job | None) -> None:
        """The Job finished (``job``) or is gone (``None``): report it once."""
        tracked = self._tracked.get(uuid)
        if tracked is None:
            return
        where = f"{self.namespace}/{tracked.name}"
        if tracked.failure is not None:
            result = tracked.failure
        elif tracked.cancel_reason is not None:
            result = AgentExit(uuid, None, "", f"The agent was stopped: {tracked.cancel_reason}")
        elif job is None:
            result = AgentExit(uuid, None, "", f"The Kubernetes Job {where} was deleted")
        elif _finished(job) == "Complete":
            result = AgentExit(uuid, 0)
        else:
            conds = job.status.conditions or [] if job.status is not None else []
            why = next((f"{c.reason}: {c.message}" for c in conds if c.type == "Failed"), "")
            status = tracked.agent_exit if tracked.agent_exit not in (None, 0) else 1
            detail = "\n".join(x for x in (f"Kubernetes Job {where} failed ({why})",
                                           tracked.agent_message) if x)  # fmt: skip
            result = AgentExit(uuid, status, detail)
        self._report(uuid, result)

    def _report(self, uuid: str, result: AgentExit) -> None:
        if self._tracked.pop(uuid, None) is None:
            return
        _log.info("job %s: Kubernetes work ended (%s)", uuid, result.error or result.exit_status)
        if self._sink is not None:
            self._sink.agent_ended(result)

    def _notify(self, uuid: str, detail: str) -> None:
        if isinstance(self._sink, ProvisioningSink):
            self._sink.notify(uuid, detail)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApiError) and exc.status is not None:
        return f"{exc.status.code} {exc.status.reason or ''}: {exc.status.message or ''}".strip()
    return str(exc) or type(exc).__name__


def dispatcher(config: StackConfig) -> KubernetesDispatcher:
    """``stack.dispatcher = "stacksapi.kubernetes:dispatcher"``: built from ``[kubernetes]``."""
    return KubernetesDispatcher.from_stack_config(config)
