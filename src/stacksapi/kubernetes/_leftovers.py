"""Suspended Jobs found at start: a creation cut short, or one still being created.

A dispatch creates its Job suspended, then the token Secret, then releases the Job. A suspended
Job found at start is usually what a controller left when it died between the two (no pod ever
ran): delete it, and its job goes back to the queue when its reservation lapses. But with two
controllers on one key (a mistake the stack survives), it can be the other one's Job, a moment
before its release: deleting it would fail that dispatch. So a Job is deleted only once it is
older than the grace (a Job younger than that is waited for) and still the same suspended Job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from lightkube.resources.batch_v1 import Job

from ._kube import KubeAPI, error_reason

__all__ = ["SUSPENDED_GRACE", "clear_cut_short"]

SUSPENDED_GRACE = 60.0
"""Seconds a Job may stay suspended before it counts as cut short (its three requests take far
less, even under client-side throttling)."""

_log = logging.getLogger("stacksapi.kubernetes")


def suspended_for(job: Job, now: dt.datetime) -> float:
    """Seconds since the Job was created (0 when the server did not say, or clocks disagree)."""
    created = job.metadata.creationTimestamp if job.metadata is not None else None
    return max(0.0, (now - created).total_seconds()) if created is not None else 0.0


async def clear_cut_short(
    api: KubeAPI, job: Job, grace: float, *, ours: Callable[[], bool]
) -> None:
    """Delete the suspended ``job`` once it has stayed suspended ``grace`` seconds, unless
    ``ours()``: a dispatch of this process took the Job over in the meantime."""
    assert job.metadata is not None
    name, uid = str(job.metadata.name), job.metadata.uid
    wait = grace - suspended_for(job, dt.datetime.now(dt.UTC))
    try:
        if wait > 0:
            await asyncio.sleep(wait)
        now = await api.get_job(name)  # as it is now, not as it was listed
        if now is None or now.metadata is None or now.metadata.uid != uid:
            return  # gone, or replaced by a newer dispatch
        if now.spec is None or not now.spec.suspend:
            return  # released: another controller with this key was creating it
        if ours():
            return  # a dispatch here adopted it (409 on create) and is releasing it
        _log.info("deleting Kubernetes Job %s: suspended since its creation, no pod ever ran "
                  "(a creation cut short)", name)  # fmt: skip
        await api.delete_job(name)
    except Exception as exc:
        _log.warning("cannot delete the suspended Kubernetes Job %s: %s", name, error_reason(exc))
