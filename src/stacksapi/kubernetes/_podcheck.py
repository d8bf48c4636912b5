"""Is a pod stuck? A sans-IO verdict on one pod's status, given how long each state has lasted.

A pod can wait forever without failing: an image that cannot be pulled backs off and retries, a
pod that fits no node stays ``Pending``. :func:`pod_problem` turns such states into a
:class:`PodProblem` once they have lasted past their grace period (``first_seen`` remembers when
each was first observed, in the caller's clock), and reports failed init containers at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from lightkube.models.core_v1 import ContainerStatus
from lightkube.resources.core_v1 import Pod

__all__ = ["PodProblem", "container_started", "describe_events", "pending_reason", "pod_problem"]

_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"})
_PULL_FATAL = frozenset({"InvalidImageName", "ErrImageNeverPull"})
_CONFIG = frozenset({"CreateContainerConfigError", "CreateContainerError"})


@dataclasses.dataclass(frozen=True, slots=True)
class PodProblem:
    """Why a pod will not run its agent. ``kind``: image-pull, init-failed, config, pending."""

    kind: str
    summary: str


def _statuses(pod: Pod) -> Iterable[tuple[str, ContainerStatus]]:
    status = pod.status
    if status is None:
        return
    for c in status.initContainerStatuses or []:
        yield "init container", c
    for c in status.containerStatuses or []:
        yield "container", c


def _waiting(pod: Pod, first_seen: dict[str, float], now: float, grace: float) -> PodProblem | None:
    seen: set[str] = set()
    for role, c in _statuses(pod):
        waiting = c.state.waiting if c.state is not None else None
        reason = (waiting.reason or "") if waiting is not None else ""
        if reason not in _PULL | _PULL_FATAL | _CONFIG:
            continue
        key = f"waiting:{c.name}"
        seen.add(key)
        since = first_seen.setdefault(key, now)
        if reason in _PULL_FATAL or now - since >= grace:
            kind = "config" if reason in _CONFIG else "image-pull"
            what = "could not start" if kind == "config" else f"could not pull image {c.image!r}"
            message = f": {waiting.message}" if waiting is not None and waiting.message else ""
            return PodProblem(
                kind, f"{role} {c.name} {what} for {now - since:.0f}s ({reason}{message})"
            )
    for key in [k for k in first_seen if k.startswith("waiting:") and k not in seen]:
        del first_seen[key]
    return None


def _init_failed(pod: Pod) -> PodProblem | None:
    status = pod.status
    init = (pod.spec.initContainers or []) if pod.spec is not None else []
    sidecars = {c.name for c in init if c.restartPolicy == "Always"}  # native: stopped at the end
    for c in (status.initContainerStatuses or []) if status is not None else []:
        state = c.state
        if state is None:
            continue
        done = state.terminated
        if done is not None and done.exitCode != 0 and c.name not in sidecars:
            why = f", {done.reason}" if done.reason else ""
            msg = f": {done.message.strip()}" if done.message else ""
            return PodProblem(
                "init-failed", f"init container {c.name} failed (exit {done.exitCode}{why}){msg}"
            )
        if state.waiting is not None and state.waiting.reason == "CrashLoopBackOff":
            return PodProblem("init-failed", f"init container {c.name} keeps failing")
    return None


def _scheduling(pod: Pod) -> str:
    status = pod.status
    for cond in (status.conditions or []) if status is not None else []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return f" ({cond.reason or 'unscheduled'}: {cond.message or ''})".replace(": )", ")")
    return ""


def pod_problem(
    pod: Pod,
    first_seen: dict[str, float],
    now: float,
    *,
    image_pull_grace: float,
    pending_timeout: float,
) -> PodProblem | None:
    """The problem with ``pod`` now, or ``None``. Updates ``first_seen`` (key -> first time)."""
    problem = _init_failed(pod) or _waiting(pod, first_seen, now, image_pull_grace)
    if problem is not None:
        return problem
    phase = pod.status.phase if pod.status is not None else None
    if phase in (None, "Pending"):
        since = first_seen.setdefault("pending", now)
        if now - since >= pending_timeout:
            return PodProblem("pending", f"pod pending for {now - since:.0f}s{_scheduling(pod)}")
    else:
        first_seen.pop("pending", None)
    return None


def container_started(pod: Pod | None, name: str) -> bool:
    """Whether the container ``name`` has started (running or ended): it has read its env."""
    statuses = (pod.status.containerStatuses or []) if pod and pod.status else []
    return any(c.name == name and c.state is not None and (c.state.running or c.state.terminated)
               for c in statuses)  # fmt: skip


def pending_reason(pod: Pod) -> str | None:
    """Why a pod is not running yet (for metrics), or ``None`` once it runs or has ended.

    The scheduler's reason (``Unschedulable``), else the first waiting container's
    (``ErrImagePull``, ``CreateContainerConfigError``, ``ContainerCreating``...), else
    ``Pending``.
    """
    status = pod.status
    if status is not None and status.phase not in (None, "Pending"):
        return None
    for cond in (status.conditions or []) if status is not None else []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return cond.reason or "Unschedulable"
    for _, c in _statuses(pod):
        waiting = c.state.waiting if c.state is not None else None
        if waiting is not None and waiting.reason:
            return waiting.reason
    return "Pending"


def describe_events(events: Iterable[Any], limit: int) -> str:
    """Kubernetes events as lines for a finish detail: ``Warning Failed: message (x3)``."""
    lines = []
    for e in events:
        count = f" (x{e.count})" if getattr(e, "count", None) and e.count > 1 else ""
        message = " ".join((e.message or "").split())
        lines.append(f"{e.type or 'Normal'} {e.reason or '-'}: {message}{count}")
    return "\n".join(lines[-limit:])
