"""Sidecars, and a job's end being its agent's end.

A container the pod template adds beside the agent (a cache, a Docker daemon, a proxy) is a
*sidecar*: it runs until stopped. As an ordinary container it keeps the pod ``Running`` after
the agent exits, holding the node's capacity and the Job for hours. Two ways out:

- **native sidecars** (Kubernetes 1.29 and later): the sidecars become ``initContainers`` with
  ``restartPolicy: Always``; the kubelet starts them before the agent and stops them once the
  regular containers have exited, so the pod and the Job end by themselves.
  ``kubernetes.native_sidecars``: ``"auto"`` (from the server's ``/version``), ``true``,
  ``false``;
- otherwise native sidecars a template declares are made ordinary containers (an older server
  would not stop them, or would refuse them), and the dispatcher watches for
  :func:`agent_outlived` (the agent terminated while another regular container still runs) and
  ends the Job itself.

Which regular containers are sidecars is the renderer's business (``sidecar``: today every
template container but the agent's). Pure functions over manifests and typed pods.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
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


def _native(container: dict[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def with_sidecars(
    job: dict[str, Any], *, native: bool, sidecar: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The Job manifest with its sidecars in the form the cluster handles.

    ``native``: the regular containers ``sidecar`` picks become native sidecars, after the
    template's own init containers (which run to completion first), in their order. Otherwise
    native sidecars become ordinary containers. The manifest is returned as is when nothing
    moves.
    """
    pod = job["spec"]["template"]["spec"]
    containers, init = pod.get("containers") or [], pod.get("initContainers") or []
    if native:
        kept = [c for c in containers if not sidecar(c)]
        init = [*init, *({**c, "restartPolicy": "Always"} for c in containers if sidecar(c))]
    else:
        kept = [*containers, *({k: v for k, v in c.items() if k != "restartPolicy"}
                               for c in init if _native(c))]  # fmt: skip
        init = [c for c in init if not _native(c)]
    if len(kept) == len(containers):
        return job  # nothing moves
    out = copy.deepcopy(job)
    spec = out["spec"]["template"]["spec"]
    spec["containers"] = copy.deepcopy(kept)
    spec["initContainers"] = copy.deepcopy(init)
    if not init:
        del spec["initContainers"]
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
