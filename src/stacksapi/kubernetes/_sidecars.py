"""Sidecars, and a job's end being its agent's end.

A container the pod template adds beside the agent (a cache, a Docker daemon, a proxy) is a
*sidecar*: it runs until stopped. As an ordinary container it keeps the pod ``Running`` after
the agent exits, holding the node's capacity and the Job for hours. Two ways out:

- **native sidecars** (Kubernetes 1.29 and later): the sidecars become ``initContainers`` with
  ``restartPolicy: Always``; the kubelet starts them before the agent and stops them once the
  agent (the only regular container) has exited, so the pod and the Job end by themselves.
  ``kubernetes.native_sidecars``: ``"auto"`` (from the server's ``/version``), ``true``,
  ``false``;
- otherwise the dispatcher watches for :func:`agent_outlived` (the agent terminated while
  another regular container still runs) and ends the Job itself.

Pure functions over manifests and typed pods; shared by rendering and the dispatcher.
"""

from __future__ import annotations

import copy
from typing import Any

from lightkube.models.core_v1 import ContainerStateTerminated
from lightkube.resources.core_v1 import Pod

__all__ = ["NATIVE_SIDECARS_SINCE", "agent_outlived", "native_sidecars_wanted", "with_sidecars"]

NATIVE_SIDECARS_SINCE = (1, 29)  # SidecarContainers is on by default (beta) from 1.29


def native_sidecars_wanted(setting: bool | str, server: tuple[int, int] | None) -> bool:
    """Whether to render native sidecars: ``setting`` when a boolean, else by server version."""
    if isinstance(setting, bool):
        return setting
    return server is not None and server >= NATIVE_SIDECARS_SINCE


def with_sidecars(job: dict[str, Any], agent: str, *, native: bool) -> dict[str, Any]:
    """The Job manifest with every regular container but ``agent`` made a native sidecar.

    They go after the template's own init containers (which run to completion first), in
    their order; without ``native`` (or without sidecars) the manifest is returned as is.
    """
    spec = job["spec"]["template"]["spec"]
    containers = spec.get("containers") or []
    sidecars = [c for c in containers if c.get("name") != agent]
    if not native or not sidecars:
        return job
    out = copy.deepcopy(job)
    pod = out["spec"]["template"]["spec"]
    pod["containers"] = [c for c in pod["containers"] if c.get("name") == agent]
    moved = [{**copy.deepcopy(c), "restartPolicy": "Always"} for c in sidecars]
    pod["initContainers"] = [*(pod.get("initContainers") or []), *moved]
    return out


def agent_outlived(pod: Pod, agent: str) -> ContainerStateTerminated | None:
    """The agent's end when it has terminated but another regular container still runs.

    That pod would stay ``Running`` for as long as its ordinary sidecars do; ``None`` while
    the agent runs, and once every regular container has stopped (the pod ends by itself).
    """
    status = pod.status
    if status is None or status.phase in ("Succeeded", "Failed"):
        return None
    ended: ContainerStateTerminated | None = None
    others_running = False
    for c in status.containerStatuses or []:
        done = c.state.terminated if c.state is not None else None
        if c.name == agent:
            ended = done
        elif done is None:
            others_running = True
    return ended if others_running else None
