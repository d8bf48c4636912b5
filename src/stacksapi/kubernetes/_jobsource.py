"""Where the dispatcher gets a job's details (command, env, plugins) when the runtime gave none.

The runtime fetches each job once (``GET stacks/{key}/jobs/{uuid}``) and hands it over as
``DispatchRequest.details``. A runtime that does not gets a :class:`JobDetailsSource`: a
function of the job uuid; :class:`ApiJobDetails` is one over its own ``AsyncClient``, built the
way ``stacksapi run`` builds the stack's (``BUILDKITE_CLUSTER_TOKEN``, ``stack.base_url`` or
``STACKSAPI_BASE_URL``), opened at the first use and closed with the dispatcher.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from stacksapi._models import Job

__all__ = ["ApiJobDetails", "JobDetailsSource"]

JobDetailsSource = Callable[[str], Awaitable[Job]]


class ApiJobDetails:
    """Fetch job details through an ``AsyncClient`` of its own (see the module docstring)."""

    def __init__(
        self, stack_key: str, base_url: str | None, environ: Mapping[str, str] | None = None
    ) -> None:
        self.stack_key = stack_key
        self._base_url = base_url
        self._environ = os.environ if environ is None else environ
        self._client: Any = None

    async def __call__(self, job_uuid: str) -> Job:
        if self._client is None:
            from stacksapi import AsyncClient

            env = self._environ
            base_url = self._base_url or env.get("STACKSAPI_BASE_URL") or None
            kwargs: dict[str, Any] = {"base_url": base_url} if base_url else {}
            self._client = AsyncClient(env.get("BUILDKITE_CLUSTER_TOKEN"), **kwargs)
        job: Job = await self._client.get_job(self.stack_key, job_uuid)
        return job

    async def aclose(self) -> None:
        """Close the client (when one was opened)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
