"""Run each Buildkite job as a Kubernetes Job: a dispatcher for the stack runtime.

Select it in the stack config (``[stack] dispatcher = "stacksapi.kubernetes:dispatcher"``, with
a ``[kubernetes]`` table) or build :class:`KubernetesDispatcher` yourself. Needs the
``kubernetes`` extra (lightkube); ``import stacksapi`` and ``stacksapi.stack`` never import this
package. See ``docs/kubernetes.md``.
"""

from __future__ import annotations

from stacksapi._extras import missing_extra

try:  # the extra's modules first, so a missing one is one clear line, not a deep traceback
    import lightkube as _lightkube  # noqa: F401
    import yaml as _yaml  # noqa: F401
except ModuleNotFoundError as exc:
    _error = missing_extra(exc, "stacksapi.kubernetes", ("kubernetes",))
    if _error is None:
        raise
    raise _error from None

from ._compat import split_controller_config
from ._config import DEFAULT_AGENT_IMAGE, KubernetesConfig
from ._dispatcher import KubernetesDispatcher, dispatcher
from ._podcheck import PodProblem, pod_problem
from ._render import (
    LABEL_JOB_UUID,
    LABEL_STACK,
    job_name,
    render_job,
    render_secret,
    secret_name,
    stack_selector,
)

__all__ = [
    "DEFAULT_AGENT_IMAGE",
    "LABEL_JOB_UUID",
    "LABEL_STACK",
    "KubernetesConfig",
    "KubernetesDispatcher",
    "PodProblem",
    "dispatcher",
    "job_name",
    "pod_problem",
    "render_job",
    "render_secret",
    "secret_name",
    "split_controller_config",
    "stack_selector",
]
