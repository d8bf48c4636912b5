"""The Job manifest exactly as a dispatch sends it, for the dispatcher and for ``render``.

:func:`~._render.render_job` builds the Job from the config and the job; a dispatch then puts
the sidecars in the form the cluster handles (:mod:`._sidecars`), annotates the Job with its
dispatch id (how a 409 tells this dispatch's Job from an earlier one's) and, when the pod reads
a per-job Secret, creates the Job suspended (released once the Secret exists: :mod:`._create`).
One function does all of it, so ``stacksapi kubernetes render`` prints the objects the
dispatcher creates, not an approximation of them.
"""

from __future__ import annotations

from typing import Any

from stacksapi._models import Job as JobDetails
from stacksapi.stack import DispatchRequest

from ._config import KubernetesConfig
from ._containers import is_sidecar
from ._create import DISPATCH_ANNOTATION
from ._render import render_job
from ._sidecars import with_sidecars

__all__ = ["dispatch_job"]


def dispatch_job(
    config: KubernetesConfig,
    request: DispatchRequest,
    namespace: str,
    details: JobDetails | None,
    *,
    native_sidecars: bool,
    dispatch_id: str,
) -> dict[str, Any]:
    """The Job a dispatch creates (raises ``DispatchError`` as :func:`render_job` does)."""
    manifest = render_job(config, request, namespace, details)
    agent = config.agent_container
    manifest = with_sidecars(manifest, native=native_sidecars,
                             sidecar=lambda c: is_sidecar(c, agent))  # fmt: skip
    manifest["metadata"]["annotations"][DISPATCH_ANNOTATION] = dispatch_id
    if request.token is not None:  # a per-job Secret: no pod before it exists
        manifest["spec"]["suspend"] = True  # released once the Secret is there
    return manifest
