"""Rendering the Kubernetes objects for one job: a ``batch/v1`` Job and its token Secret.

Pure functions over plain mappings (what goes on the wire), so golden tests can compare them
byte for byte and every output loads into the client library's typed models. The Job is the
user's pod template plus what the dispatcher owns: the agent container (``buildkite-agent start``
with ``BUILDKITE_AGENT_ACQUIRE_JOB``), the token from the Secret by reference (never in clear in
the pod spec), labels and annotations naming the job, build, pipeline and stack, ``restartPolicy:
Never``, ``backoffLimit: 0``, TTL after finish and an active deadline.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from typing import Any

from stacksapi.stack import DispatchError, DispatchRequest

from ._config import KubernetesConfig

__all__ = [
    "LABEL_JOB_UUID",
    "LABEL_MANAGED_BY",
    "LABEL_STACK",
    "MANAGED_BY",
    "TOKEN_KEY",
    "job_name",
    "label_value",
    "owner_reference",
    "render_job",
    "render_secret",
    "secret_name",
    "stack_selector",
]

_P = "stacksapi"
LABEL_JOB_UUID = f"{_P}/job-uuid"
LABEL_STACK = f"{_P}/stack-key"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "stacksapi"
TOKEN_KEY = "token"  # noqa: S105 - the key inside the Secret, not a token
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_NAME_BAD = re.compile(r"[^a-z0-9-]")


def label_value(value: str) -> str:
    """``value`` as a valid label value: at most 63 of ``[A-Za-z0-9_.-]``, alphanumeric ends.

    Values that had to change get a short hash of the original, so two different values never
    share a label (the full value is always in an annotation).
    """
    clean = _LABEL_BAD.sub("-", value).strip("-_.")
    if clean == value and len(value) <= 63:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    return f"{clean[:52].rstrip('-_.')}-{digest}".lstrip("-")


def job_name(config: KubernetesConfig, job_uuid: str) -> str:
    """The deterministic Job name for a job uuid: creating it twice is a 409, not a second Job."""
    core = _NAME_BAD.sub("-", job_uuid.lower()).strip("-")
    name = f"{config.job_name_prefix}{core}".strip("-")
    if len(name) > 52 or core != job_uuid:  # pods add "-xxxxx"; keep room, keep names distinct
        digest = hashlib.sha256(job_uuid.encode()).hexdigest()[:10]
        name = f"{name[:41].rstrip('-')}-{digest}"
    return name


def secret_name(config: KubernetesConfig, job_uuid: str) -> str:
    """The name of the per-job Secret holding the job acquisition token."""
    return f"{job_name(config, job_uuid)}-token"


def stack_selector(stack_key: str) -> dict[str, str]:
    """The label selector of every Job (and pod) this stack created."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_STACK: label_value(stack_key)}


def _labels(request: DispatchRequest) -> dict[str, str]:
    job = request.job
    labels = {**stack_selector(request.stack_key), LABEL_JOB_UUID: label_value(job.id)}
    if job.pipeline.slug:
        labels[f"{_P}/pipeline"] = label_value(job.pipeline.slug)
    if job.build.number is not None:
        labels[f"{_P}/build-number"] = str(job.build.number)
    return labels


def _annotations(request: DispatchRequest) -> dict[str, str]:
    job = request.job
    values = {
        "job-uuid": job.id,
        "stack-key": request.stack_key,
        "queue-key": request.queue_key,
        "pipeline-slug": job.pipeline.slug,
        "pipeline-uuid": job.pipeline.uuid,
        "build-uuid": job.build.uuid,
        "build-number": None if job.build.number is None else str(job.build.number),
        "build-branch": job.build.branch,
        "step-key": job.step.key,
    }
    return {f"{_P}/{k}": v for k, v in values.items() if v is not None}


def _agent_env(config: KubernetesConfig, request: DispatchRequest) -> list[dict[str, Any]]:
    if request.token is not None:
        ref = {"name": secret_name(config, request.job_uuid), "key": TOKEN_KEY}
    elif config.agent_token_secret is not None:
        ref = {"name": config.agent_token_secret, "key": TOKEN_KEY}
    else:
        raise DispatchError(
            "no job acquisition token was issued and no agent token Secret is configured "
            "(set kubernetes.agent_token_secret to use an explicit agent token)"
        )
    plain = {
        **config.agent_env,
        **request.extra_env,
        "BUILDKITE_AGENT_ACQUIRE_JOB": request.job_uuid,
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(plain.items())]
    env.append({"name": "BUILDKITE_AGENT_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    return env


def _agent_container(
    config: KubernetesConfig, request: DispatchRequest, given: dict[str, Any] | None
) -> dict[str, Any]:
    """The agent container: the template's one of that name, completed, or a new one."""
    container: dict[str, Any] = {"name": config.agent_container}
    if given:
        container = copy.deepcopy(given)
    container.setdefault("image", config.agent_image)
    container.setdefault("command", list(config.agent_command))
    reserved = {"BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ACQUIRE_JOB"}
    ours = _agent_env(config, request)
    names = {e["name"] for e in ours}
    kept = [e for e in container.get("env", []) if e.get("name") not in reserved | names]
    container["env"] = kept + ours
    return container


def render_job(
    config: KubernetesConfig, request: DispatchRequest, namespace: str
) -> dict[str, Any]:
    """The ``batch/v1`` Job manifest for ``request`` (no token in it: a Secret reference)."""
    template = config.template()
    meta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    labels = {**config.labels, **_labels(request)}
    annotations = {**config.annotations, **_annotations(request)}
    containers = list(spec.get("containers") or [])
    index = next(
        (i for i, c in enumerate(containers) if c.get("name") == config.agent_container), None
    )
    agent = _agent_container(config, request, None if index is None else containers[index])
    if index is None:
        containers.append(agent)
    else:
        containers[index] = agent
    spec["containers"] = containers
    spec["restartPolicy"] = "Never"  # a restarted agent cannot acquire the job again
    name = job_name(config, request.job_uuid)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": config.ttl_seconds_after_finished,
            "activeDeadlineSeconds": config.active_deadline_seconds,
            "template": {
                "metadata": {
                    "labels": {**(meta.get("labels") or {}), **labels},
                    "annotations": {**(meta.get("annotations") or {}), **annotations},
                },
                "spec": spec,
            },
        },
    }


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """An owner reference to a Job: the Secret is garbage-collected with it."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": uid,
        "controller": False,
        "blockOwnerDeletion": False,
    }


def render_secret(
    config: KubernetesConfig,
    request: DispatchRequest,
    namespace: str,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The per-job Secret with the job acquisition token (``owner``: the Job's reference)."""
    if request.token is None:
        raise DispatchError("no job acquisition token to put in a Secret")
    token = request.token.get_secret_value()
    metadata: dict[str, Any] = {
        "name": secret_name(config, request.job_uuid),
        "namespace": namespace,
        "labels": {**config.labels, **_labels(request)},
        "annotations": {f"{_P}/job-uuid": request.job_uuid},
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }
