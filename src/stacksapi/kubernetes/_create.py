"""``Creator``: the objects of one dispatch, created together, a few dispatches at a time.

A job's pod must never start before its token Secret exists, and a burst of jobs must not
create every Job before any Secret (each pod would wait N / qps seconds in
``CreateContainerConfigError``, counted against the image-pull grace). So each dispatch runs its
whole sequence while holding one of ``create_concurrency`` slots, taken first come, first served:

1. the Job, **suspended** (no pod yet), annotated with a fresh *dispatch id*;
2. the Secret with the token, owned by that Job (garbage-collected with it);
3. the Job released (``suspend: false``): its pod is created now, and finds its Secret.

A 409 on the Job is told apart by the dispatch id: this dispatch's own Job (a create retried
after a lost answer) is kept; a Job of an earlier dispatch that has finished (it lives on for
its TTL) or is being deleted is *stale*: it is deleted and created anew; a live Job of another
dispatch of the same job (a second controller on one stack key) is adopted.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

import msgspec
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Secret

from stacksapi.stack import DispatchDeferred, DispatchRequest

from ._config import KubernetesConfig
from ._kube import AlreadyExists, KubeAPI
from ._render import TOKEN_KEY, render_secret, secret_name

__all__ = ["DISPATCH_ANNOTATION", "Creator", "dispatch_id_of", "finished", "new_dispatch_id"]

DISPATCH_ANNOTATION = "stacksapi/dispatch-id"
_STALE_WAIT = 60.0  # seconds a stale Job may take to go away before the dispatch is deferred


def new_dispatch_id() -> str:
    return uuidlib.uuid4().hex


def dispatch_id_of(job: Job) -> str | None:
    meta = job.metadata
    return (meta.annotations or {}).get(DISPATCH_ANNOTATION) if meta is not None else None


def finished(job: Job) -> str | None:
    """``Complete`` or ``Failed`` when the Job has ended, else ``None``."""
    status = job.status
    for cond in (status.conditions or []) if status is not None else []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return cond.type
    return None


class Creator:
    """Creates the objects of dispatches (see the module docstring); owns the slots."""

    def __init__(self, api: KubeAPI, config: KubernetesConfig) -> None:
        self.api = api
        self.config = config
        self.slots = asyncio.Semaphore(config.create_concurrency)

    async def job(
        self, manifest: dict[str, Any], dispatch_id: str, give_up: Callable[[], bool]
    ) -> tuple[Job, str]:
        """Create the Job; returns it and ``created``, ``replaced``, ``retried`` or ``adopted``."""
        name = manifest["metadata"]["name"]
        outcome = "created"
        for _ in range(3):
            try:
                job = await self.api.create(msgspec.convert(manifest, Job), give_up=give_up)
            except AlreadyExists:
                pass
            else:
                return job, outcome
            existing = await self.api.get_job(name)
            if existing is None:
                continue  # deleted meanwhile: create again
            if dispatch_id_of(existing) == dispatch_id:
                return existing, "retried"  # our own create, answered late
            meta = existing.metadata
            if finished(existing) is None and (meta is None or meta.deletionTimestamp is None):
                return existing, "adopted"  # live work of another dispatch of this job
            await self._remove_stale(name)
            outcome = "replaced"
        raise DispatchDeferred(f"Kubernetes Job {self.api.namespace}/{name} keeps coming back")

    async def _remove_stale(self, name: str) -> None:
        """Delete a stale Job and wait until it (and what it owns: its Secret) is gone."""
        await self.api.delete_job(name, foreground=True)
        deadline = time.monotonic() + _STALE_WAIT
        delay = 0.1
        while await self.api.get_job(name) is not None:
            if time.monotonic() > deadline:
                raise DispatchDeferred(  # not now: the job goes back to the queue unfailed
                    f"the finished Kubernetes Job {self.api.namespace}/{name} of an earlier "
                    f"dispatch is still being deleted after {_STALE_WAIT:.0f}s"
                )
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    async def secret(self, request: DispatchRequest, owner: dict[str, Any]) -> None:
        """Create the token Secret owned by the Job (or give an existing one the new token)."""
        manifest = render_secret(self.config, request, self.api.namespace, owner)
        try:
            await self.api.create(msgspec.convert(manifest, Secret))
        except AlreadyExists:  # the adopted Job's: the new token replaces the old one
            patch = {"data": manifest["data"], "metadata": {"ownerReferences": [owner]}}
            await self.api.merge_patch_secret(secret_name(self.config, request.job_uuid), patch)

    async def new_token(self, job_uuid: str, token: str) -> None:
        """Put a fresh token in the job's Secret (an agent container not started yet reads it)."""
        data = {TOKEN_KEY: base64.b64encode(token.encode()).decode()}
        await self.api.merge_patch_secret(secret_name(self.config, job_uuid), {"data": data})

    async def remove_if_ours(self, name: str, dispatch_id: str) -> bool:
        """Delete the Job ``name`` if this dispatch created it (a create whose answer was lost)."""
        job = await self.api.get_job(name)
        if job is None or dispatch_id_of(job) != dispatch_id:
            return False
        return await self.api.delete_job(name)
