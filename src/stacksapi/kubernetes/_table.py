"""``JobTable``: the jobs a dispatcher tracks, and what the watches last said about their objects.

It is the watch handler. Like an informer's store it keeps the latest Job (by uid) and pod (by
the uid of the Job owning it) the watches reported, so work bound to its Job after an event
(an adopted Job) still sees that event. Two rules keep it from reporting false ends:

- an event counts only for the Job this dispatch created or adopted (same **uid**): the
  deletion of a stale Job with the same name, or its pod, says nothing about the new one;
- a Job is gone only when a watch says ``DELETED`` or when a **list newer than its creation**
  lacks it. A list answered after a create but taken before it does not have the new Job; it
  is no evidence (the watch that follows that list will bring it). ``resourceVersion`` values
  are compared as numbers, which is what Kubernetes servers give; when one is not a number, the
  Job is looked up instead (``confirm``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from stacksapi.stack import AgentExit

from ._create import finished

__all__ = ["UUID_ANNOTATION", "JobTable", "Tracked", "not_older", "uuid_of", "work_result"]

UUID_ANNOTATION = "stacksapi/job-uuid"


@dataclasses.dataclass(slots=True)
class Tracked:
    """One job's Kubernetes work, as this dispatcher knows it."""

    uuid: str
    name: str
    dispatch_id: str = ""
    since: float = 0.0  # monotonic time of the dispatch (or adoption)
    uid: str | None = None  # of the Job this dispatch created or adopted
    version: str | None = None  # its resourceVersion when bound
    created: bool = False
    adopted: bool = False  # the Job is another dispatch's: an error here does not delete it
    creating: bool = False  # the dispatch is still creating its objects
    cancel_reason: str | None = None
    pod: Pod | None = None
    running: bool = False  # its pod was seen running
    first_seen: dict[str, float] = dataclasses.field(default_factory=dict)
    handling: bool = False  # a teardown (stuck pod, agent done) is under way
    noted: set[str] = dataclasses.field(default_factory=set)
    agent_exit: int | None = None
    agent_message: str = ""
    failure: AgentExit | None = None  # what to report once its Job is deleted


def work_result(tracked: Tracked, job: Job | None, where: str) -> AgentExit:
    """How ``tracked``'s work ended, given its finished Job (``None``: the Job is gone)."""
    uuid = tracked.uuid
    if tracked.failure is not None:
        return tracked.failure
    if tracked.cancel_reason is not None:
        return AgentExit(uuid, None, "", f"The agent was stopped: {tracked.cancel_reason}")
    if job is None:
        return AgentExit(uuid, None, "", f"The Kubernetes Job {where} was deleted")
    if finished(job) == "Complete":
        return AgentExit(uuid, 0)
    conds = job.status.conditions or [] if job.status is not None else []
    why = next((f"{c.reason}: {c.message}" for c in conds if c.type == "Failed"), "")
    status = tracked.agent_exit if tracked.agent_exit not in (None, 0) else 1
    detail = "\n".join(x for x in (f"Kubernetes Job {where} failed ({why})",
                                   tracked.agent_message) if x)  # fmt: skip
    return AgentExit(uuid, status, detail)


def uuid_of(obj: Job | Pod) -> str | None:
    meta = obj.metadata
    return (meta.annotations or {}).get(UUID_ANNOTATION) if meta is not None else None


def _uid(obj: Job | Pod) -> str | None:
    return obj.metadata.uid if obj.metadata is not None else None


def _owner(pod: Pod) -> str | None:
    refs = pod.metadata.ownerReferences if pod.metadata is not None else None
    return next((r.uid for r in refs or [] if r.kind == "Job"), None)


def _version(obj: Job | Pod) -> str | None:
    return obj.metadata.resourceVersion if obj.metadata is not None else None


def not_older(listed: str | None, version: str | None) -> bool | None:
    """Is a list at ``listed`` at least as new as ``version``? ``None`` when unknowable."""
    if listed is None or version is None or not listed.isdigit() or not version.isdigit():
        return None
    return int(listed) >= int(version)


class JobTable:
    """See the module docstring. ``ended(uuid, job)``: the Job ended (``None``: gone);
    ``pod_changed(tracked)``: its pod changed; ``confirm(tracked)``: look the Job up."""

    def __init__(
        self,
        *,
        ended: Callable[[str, Job | None], None],
        pod_changed: Callable[[Tracked], None],
        confirm: Callable[[Tracked], None],
        sweep: Callable[[], None],
    ) -> None:
        self.work: dict[str, Tracked] = {}
        self.jobs: dict[str, Job] = {}  # uid -> latest
        self.pods: dict[str, Pod] = {}  # owning Job's uid -> latest
        self._ended, self._pod_changed, self._confirm = ended, pod_changed, confirm
        self.sweep = sweep

    def bind(self, tracked: Tracked, job: Job) -> None:
        """``tracked`` is about ``job`` from now on; replay what the watches said of it."""
        tracked.uid, tracked.version, tracked.created = _uid(job), _version(job), True
        latest = self.jobs.get(tracked.uid or "")
        if latest is not None and finished(latest) is not None:
            self._ended(tracked.uuid, latest)
            return
        pod = self.pods.get(tracked.uid or "")
        if pod is not None:
            tracked.pod = pod
            self._pod_changed(tracked)

    def _bound(self, obj: Job | Pod, uid: str | None) -> Tracked | None:
        uuid = uuid_of(obj)
        tracked = self.work.get(uuid) if uuid is not None else None
        return tracked if tracked is not None and uid and tracked.uid == uid else None

    # --- the watch handler ----------------------------------------------------------------

    def on_job(self, kind: str, job: Job) -> None:
        uid = _uid(job)
        if uid is None:
            return
        if kind == "DELETED":
            self.jobs.pop(uid, None)
        else:
            self.jobs[uid] = job
        tracked = self._bound(job, uid)
        if tracked is not None and (kind == "DELETED" or finished(job) is not None):
            self._ended(tracked.uuid, None if kind == "DELETED" else job)

    def jobs_listed(self, jobs: list[Job], version: str | None) -> None:
        self.jobs = {uid: j for j in jobs if (uid := _uid(j)) is not None}
        for tracked in list(self.work.values()):
            if tracked.uid is None:
                continue
            job = self.jobs.get(tracked.uid)
            if job is not None:
                if finished(job) is not None:
                    self._ended(tracked.uuid, job)
                continue
            newer = not_older(version, tracked.version)
            if newer:
                self._ended(tracked.uuid, None)  # deleted while the watch was down
            elif newer is None:
                self._confirm(tracked)
            # else: the list predates the Job; the watch from the list's version brings it

    def on_pod(self, kind: str, pod: Pod) -> None:
        owner = _owner(pod)
        if owner is None:
            return
        if kind == "DELETED":
            self.pods.pop(owner, None)
        else:
            self.pods[owner] = pod
        tracked = self._bound(pod, owner)
        if tracked is not None:
            tracked.pod = None if kind == "DELETED" else pod
            self._pod_changed(tracked)

    def pods_listed(self, pods: list[Pod], version: str | None) -> None:
        self.pods = {owner: p for p in pods if (owner := _owner(p)) is not None}
        for tracked in self.work.values():
            pod = tracked.pod
            gone = pod is not None and tracked.uid not in self.pods
            if gone and pod is not None and not_older(version, _version(pod)):
                tracked.pod = None  # deleted while the watch was down
        for pod in pods:
            self.on_pod("ADDED", pod)
