"""``KubernetesDispatcher``: each reserved job becomes a Kubernetes Job running the agent.

``dispatch`` creates the job's objects together through a :class:`~._create.Creator` (the Job
suspended, its token Secret owned by it, then the Job released), a few dispatches at a time, first
come first served; a 409 on a finished Job of an earlier dispatch replaces it. A
:class:`~._watch.Watcher` follows this stack's Jobs and pods into a :class:`~._table.JobTable`:

- a Job that completes, fails or is deleted ends the work (``agent_ended``), freeing capacity;
- an agent container that has exited while an ordinary sidecar keeps its pod running ends the
  work with the agent's exit status, and the Job is deleted (native sidecars, where the cluster
  has them, let the pod end by itself: :mod:`._sidecars`);
- a pod stuck pulling an image past ``image_pull_grace``, failing an init container, or pending
  past ``pending_timeout`` is handled by :class:`~._stuck.StuckPods`: before an agent took the
  job, the Job is deleted and the work reported failed with the pod's events; after, a
  notification is posted instead (the agent owns the job);
- ``cancel`` deletes the Job (pods and Secret go with it); a cancel while the objects are being
  created stops the creation at its next step and removes what it made.

``start`` lists this stack's Jobs by label and reports the active ones as already running, so a
restarted (or second) controller never creates a job twice. Metrics join the stack's registry
(:mod:`._metrics`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Collection, Coroutine
from typing import TYPE_CHECKING, Any, Self

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.resources.batch_v1 import Job

from stacksapi import Secret
from stacksapi._models import Job as JobDetails
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
from ._create import Creator, finished, new_dispatch_id
from ._jobsource import ApiJobDetails, JobDetailsSource
from ._kube import Abandoned, KubeAPI, connect, error_reason
from ._leftovers import SUSPENDED_GRACE, clear_cut_short
from ._manifest import dispatch_job
from ._metrics import KubeMetrics
from ._podcheck import container_started, pending_reason
from ._render import job_name, owner_reference, stack_selector
from ._sidecars import agent_outlived, native_sidecars_wanted
from ._stuck import StuckPods
from ._table import JobTable, Tracked, uuid_of, work_result
from ._watch import Watcher

if TYPE_CHECKING:
    from lightkube.config.kubeconfig import KubeConfig

__all__ = ["KubernetesDispatcher", "dispatcher"]

_log = logging.getLogger("stacksapi.kubernetes")
_ADOPTED_BY_PHASE = {"Running": AdoptedState.STARTED, "Pending": AdoptedState.PROVISIONING}


class KubernetesDispatcher:
    """Runs each job as a Kubernetes Job. See the module docstring and docs/kubernetes.md.

    ``kube_config`` overrides where the cluster is found (default: ``config.kubeconfig``, else
    the in-cluster service account, else ``KUBECONFIG``, else ``~/.kube/config``).
    ``job_details`` fetches a job's command and env (its plugins) when a request comes without
    ``details``; with neither, the pod is built as for a step without plugins.
    ``suspended_grace``: how old a suspended Job found at start must be before it is taken for a
    creation cut short and deleted (see :mod:`._leftovers`).
    """

    def __init__(
        self,
        config: KubernetesConfig,
        *,
        stack_key: str,
        kube_config: KubeConfig | None = None,
        job_details: JobDetailsSource | None = None,
        suspended_grace: float = SUSPENDED_GRACE,
    ) -> None:
        self.config = config
        self._job_details = job_details
        self.stack_key = stack_key
        self.selector = stack_selector(stack_key)
        self.metrics = KubeMetrics(stack_key=stack_key)
        self.native_sidecars = False  # decided at start (server version or the setting)
        self._kube_config = kube_config
        self._client: AsyncClient | None = None
        self._api: KubeAPI | None = None
        self._creator: Creator | None = None
        self._sink: DispatchSink | None = None
        self._watcher: Watcher | None = None
        self._table = JobTable(ended=self._ended, pod_changed=self._pod_changed,
                               confirm=self._confirm, sweep=self.sweep)  # fmt: skip
        self._tracked = self._table.work
        self._tasks: set[asyncio.Task[None]] = set()
        self._suspended_grace = suspended_grace  # see _leftovers
        self._stuck: StuckPods | None = None  # built by start, once the API and the sink exist

    @classmethod
    def from_stack_config(cls, config: StackConfig) -> Self:
        """Build from a stack config: its ``[kubernetes]`` table and its stack key."""
        table = config.extensions.get("kubernetes", {})
        source = ApiJobDetails(config.key, config.base_url)
        return cls(KubernetesConfig.from_mapping(table), stack_key=config.key, job_details=source)

    @property
    def api(self) -> KubeAPI:
        if self._api is None:
            raise RuntimeError("KubernetesDispatcher.start() has not run")
        return self._api

    @property
    def namespace(self) -> str:
        return self.api.namespace

    async def check(self) -> list[CheckResult]:
        """For ``stacksapi run --check``: the API answers and the service account may do what
        the dispatcher needs (see :mod:`._preflight`). Starts nothing."""
        from ._preflight import check_kubernetes

        try:
            client = connect(self.config, self._kube_config)
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
        """Connect, list this stack's Jobs (the active ones are returned), start watching.

        Each adopted job comes with what its pod is doing: running (``STARTED``), pending
        (``PROVISIONING``), or no pod seen (``UNKNOWN``: the runtime asks the API).
        """
        self._sink = sink
        self._client = connect(self.config, self._kube_config)
        cfg = self.config
        registry = getattr(getattr(sink, "metrics", None), "registry", None)  # the stack's
        self.metrics = KubeMetrics(stack_key=self.stack_key, registry=registry)
        self._api = KubeAPI(
            self._client,
            self._client.namespace,
            qps=cfg.api_qps,
            burst=cfg.api_burst,
            retries=cfg.api_retries,
            metrics=self.metrics,
        )
        self._creator = Creator(self._api, cfg)
        self._stuck = StuckPods(cfg, self._api, sink, spawn=self._spawn,
                                delete=self._delete_quietly, report=self._report)  # fmt: skip
        server = await self._api.server_version() if cfg.native_sidecars == "auto" else None
        self.native_sidecars = native_sidecars_wanted(cfg.native_sidecars, server)
        jobs, version = await self._api.list_jobs(self.selector)
        self._table.jobs_listed(jobs, version)
        for job in jobs:
            uuid = uuid_of(job)
            if uuid is None or finished(job) is not None or job.metadata is None:
                continue
            if job.spec is not None and job.spec.suspend:  # cut short, or still being created
                ours = functools.partial(self._tracked.__contains__, uuid)  # its dispatch here
                self._spawn(clear_cut_short(self.api, job, self._suspended_grace, ours=ours))
                continue
            tracked = Tracked(uuid, str(job.metadata.name), since=time.monotonic())
            self._tracked[uuid] = tracked
            self._table.bind(tracked, job)
        pods_version = None
        if self._tracked:  # what each adopted Job's pod is doing, for the runtime's watch
            pods, pods_version = await self._api.list_pods(self.selector)
            self._table.pods_listed(pods, pods_version)
        self._watcher = Watcher(self._api, self.selector, self._table,
                                sweep_interval=cfg.check_interval)  # fmt: skip
        self._watcher.start(version, pods_version)
        _log.info("watching Jobs in namespace %s (%d in flight; %s sidecars)", self.namespace,
                  len(self._tracked), "native" if self.native_sidecars else "ordinary")  # fmt: skip
        return [AdoptedJob(t.uuid, _ADOPTED_BY_PHASE.get(_phase(t), AdoptedState.UNKNOWN))
                for t in self._tracked.values()]  # fmt: skip

    # --- dispatch -----------------------------------------------------------------------

    async def dispatch(self, request: DispatchRequest) -> None:
        """Create the Job and its token Secret; raise :class:`DispatchError` when impossible."""
        uuid = request.job_uuid
        if uuid in self._tracked:
            raise DispatchError(f"a Kubernetes Job for job {uuid} is already being watched here")
        name = job_name(self.config, uuid)
        where = f"{self.namespace}/{name}"
        dispatch_id = new_dispatch_id()
        details = await self._details(request)
        manifest = dispatch_job(
            self.config,
            request,
            self.namespace,
            details,  # DispatchError
            native_sidecars=self.native_sidecars,
            dispatch_id=dispatch_id,
        )
        tracked = Tracked(uuid, name, dispatch_id, since=time.monotonic(), creating=True)
        self._tracked[uuid] = tracked
        assert self._creator is not None
        try:
            async with self._creator.slots:
                outcome = await self._create(request, manifest, tracked)
        except Abandoned:
            outcome = None
        except (ApiError, httpx2.HTTPError, DispatchError) as exc:
            if tracked.cancel_reason is None:
                self._tracked.pop(uuid, None)
                if not tracked.adopted:  # leave another dispatch's live Job alone
                    await self._remove(tracked)
                if isinstance(exc, DispatchError):
                    raise
                raise DispatchError(
                    f"cannot create Kubernetes Job {where}: {error_reason(exc)}"
                ) from None
            outcome = None
        except asyncio.CancelledError:  # the caller gave up on this dispatch: leave nothing
            self._tracked.pop(uuid, None)
            self._spawn(self._remove(tracked))
            raise
        finally:
            tracked.creating = False
        if outcome is None:  # cancelled while being created: remove what was made, report
            await self._remove(tracked)
            self._ended(uuid, None)
            return
        verb = {
            "adopted": "already existed; adopted it",
            "replaced": "created (replacing the finished Job of an earlier dispatch)",
        }
        self._notify(uuid, f"Kubernetes Job {where} {verb.get(outcome, 'created')}")  # fmt: skip

    async def _create(
        self, request: DispatchRequest, manifest: dict[str, Any], tracked: Tracked
    ) -> str | None:
        """The creation sequence; ``None`` when a cancel stopped it."""
        assert self._creator is not None

        def stopped() -> bool:
            return tracked.cancel_reason is not None

        if stopped():
            return None
        tracked.created = True  # from here on the Job may exist: a cancel must look for it
        job, outcome = await self._creator.job(manifest, tracked.dispatch_id, stopped)
        self._table.bind(tracked, job)
        tracked.adopted = outcome == "adopted"
        words = {"adopted": "already dispatched by another dispatch; adopted it"}
        _log.info("job %s: Kubernetes Job %s/%s %s", request.job_uuid, self.namespace,
                  tracked.name, words.get(outcome, outcome))  # fmt: skip
        if stopped() or tracked.uuid not in self._tracked:
            return None
        if request.token is not None:
            await self._creator.secret(request, owner_reference(tracked.name, str(tracked.uid)))
        if stopped():
            return None
        if job.spec is not None and job.spec.suspend:
            await self.api.release_job(tracked.name)
        return outcome

    async def _remove(self, tracked: Tracked) -> None:
        """Delete what a dispatch may have created (nothing when it never tried)."""
        if not tracked.created:
            return
        try:
            if tracked.uid is not None:
                await self.api.delete_job(tracked.name)
            else:  # the create's answer was lost: delete the Job only if it is ours
                assert self._creator is not None
                await self._creator.remove_if_ours(tracked.name, tracked.dispatch_id)
        except Exception as exc:
            _log.warning("cannot delete Kubernetes Job %s: %s", tracked.name, error_reason(exc))

    async def _delete_quietly(self, name: str) -> None:
        try:
            await self.api.delete_job(name)
        except Exception as exc:
            _log.warning("cannot delete Kubernetes Job %s: %s", name, error_reason(exc))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- cancel and shutdown ------------------------------------------------------------

    async def cancel(self, job_uuid: str, reason: str) -> None:
        """Delete the Job (its pods and Secret go with it); ``agent_ended`` follows."""
        tracked = self._tracked.get(job_uuid)
        if tracked is None:
            if self._sink is not None:
                self._sink.agent_ended(AgentExit(job_uuid, None, "", f"cancelled: {reason}"))
            return
        tracked.cancel_reason = reason
        if tracked.creating:
            return  # the creation stops at its next step, removes what it made, and reports
        try:
            gone_already = not await self.api.delete_job(tracked.name)
        except Exception as exc:
            _log.error("job %s: cannot delete Kubernetes Job: %s", job_uuid, error_reason(exc))
            gone_already = True  # report it: the stack must not hold the capacity forever
        if gone_already:
            self._ended(job_uuid, None)

    async def refresh_token(self, job_uuid: str, token: Secret) -> bool:
        """A fresh acquisition token for work whose agent has not started (``TokenRefresher``).

        Patched into the job's Secret. True only while the agent container has not started: a
        started one has read its token already (the runtime then re-dispatches the job).
        """
        tracked = self._tracked.get(job_uuid)
        if tracked is None or tracked.creating or tracked.uid is None or self._creator is None:
            return False
        if container_started(tracked.pod, self.config.agent_container):
            return False
        try:
            await self._creator.new_token(job_uuid, token.get_secret_value())
        except (ApiError, httpx2.HTTPError) as exc:
            _log.warning("job %s: cannot refresh its token Secret: %s", job_uuid, error_reason(exc))
            return False
        return True

    async def _details(self, request: DispatchRequest) -> JobDetails | None:
        """The job's command and env: from the request, else fetched (``None``: neither)."""
        if request.details is not None or self._job_details is None:
            return request.details
        try:
            return await self._job_details(request.job_uuid)
        except Exception as exc:
            raise DispatchError(f"cannot read the job's command and plugins: {exc}") from None

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
        if isinstance(self._job_details, ApiJobDetails):
            await self._job_details.aclose()

    # --- what the watches report (through the JobTable) ---------------------------------

    def _pod_changed(self, tracked: Tracked) -> None:
        pod = tracked.pod
        if pod is not None:
            self._remember_agent_exit(tracked, pod)
            phase = pod.status.phase if pod.status is not None else None
            if phase == "Running" and not tracked.running:
                tracked.running = True
                if tracked.dispatch_id:  # dispatched here, not adopted at start
                    self.metrics.pod_running(time.monotonic() - tracked.since)
            done = agent_outlived(pod, self.config.agent_container)
            if done is not None and not tracked.handling and tracked.cancel_reason is None:
                self._agent_done(tracked, done.exitCode)
                return
        self._stuck_pods().check(tracked)

    def _agent_done(self, tracked: Tracked, exit_code: int) -> None:
        """The agent exited but a sidecar keeps the pod: end the work now, and the Job."""
        tracked.handling = True
        _log.info("job %s: the agent exited (%d) but its pod runs on (a sidecar); deleting the "
                  "Kubernetes Job %s", tracked.uuid, exit_code, tracked.name)  # fmt: skip
        self._report(tracked.uuid, AgentExit(tracked.uuid, exit_code, tracked.agent_message))
        self._spawn(self._delete_quietly(tracked.name))

    def _confirm(self, tracked: Tracked) -> None:
        """A list without the Job, of a version that cannot be compared: look it up."""

        async def look() -> None:
            try:
                job = await self.api.get_job(tracked.name)
            except Exception as exc:
                _log.warning(
                    "cannot look up Kubernetes Job %s: %s", tracked.name, error_reason(exc)
                )
                return
            if job is None or job.metadata is None or job.metadata.uid != tracked.uid:
                self._ended(tracked.uuid, None)

        self._spawn(look())

    def sweep(self) -> None:
        pending: dict[str, int] = {}
        stuck = self._stuck_pods()
        for tracked in list(self._tracked.values()):
            stuck.check(tracked)
            if tracked.created and not tracked.creating:
                why = "NoPod" if tracked.pod is None else pending_reason(tracked.pod)
                if why is not None:
                    pending[why] = pending.get(why, 0) + 1
        self.metrics.set_pending(pending)

    def _remember_agent_exit(self, tracked: Tracked, pod: Any) -> None:
        for c in (pod.status.containerStatuses or []) if pod.status is not None else []:
            done = c.state.terminated if c.state is not None else None
            if c.name == self.config.agent_container and done is not None:
                tracked.agent_exit = done.exitCode
                tracked.agent_message = (done.message or done.reason or "").strip()

    def _stuck_pods(self) -> StuckPods:
        if self._stuck is None:
            raise RuntimeError("KubernetesDispatcher.start() has not run")
        return self._stuck

    def _ended(self, uuid: str, job: Job | None) -> None:
        """The Job finished (``job``) or is gone (``None``): report it once."""
        tracked = self._tracked.get(uuid)
        if tracked is None:
            return
        result = work_result(tracked, job, f"{self.namespace}/{tracked.name}")
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


def _phase(tracked: Tracked) -> str:
    pod = tracked.pod
    return str(pod.status.phase or "") if pod is not None and pod.status is not None else ""


def dispatcher(config: StackConfig) -> KubernetesDispatcher:
    """``stack.dispatcher = "stacksapi.kubernetes:dispatcher"``: built from ``[kubernetes]``."""
    return KubernetesDispatcher.from_stack_config(config)
