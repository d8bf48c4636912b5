"""Rendering the Kubernetes objects for one job: a ``batch/v1`` Job and its token Secret.

Pure functions over plain mappings (what goes on the wire), so golden tests can compare them
byte for byte and every output loads into the client library's typed models. The pod is built
by ``_podspec`` from the job itself (its command, its env with the step's plugins, its agent
tags); this module adds what the dispatcher owns: the token from the Secret by reference (never
in clear in the pod spec), labels and annotations naming the job, build, pipeline and stack
(plus ``default-metadata`` and the step's ``metadata``), ``backoffLimit: 0``, TTL after finish
and an active deadline.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from stacksapi._models import Job
from stacksapi.stack import DispatchError, DispatchRequest

from ._config import KubernetesConfig
from ._patch import PatchError
from ._plugin import PluginError, PluginProhibited, kubernetes_plugin
from ._podspec import PodError, PodInputs, build_pod_spec, tags_of

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
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")  # credentials in a repo URL
_TAG_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


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


def _tag_labels(rules: tuple[str, ...]) -> dict[str, str]:
    """``tag.buildkite.com/<key>`` labels for the job's agent tags that are valid labels."""
    out = {}
    for key, value in tags_of(rules).items():
        if _TAG_NAME.match(key) and (not value or _TAG_NAME.match(value)):
            out[f"tag.buildkite.com/{key}"] = value
    return out


def _our_labels(request: DispatchRequest) -> dict[str, str]:
    """The labels the dispatcher selects by (they win over any other)."""
    job = request.job
    ours = {**stack_selector(request.stack_key), LABEL_JOB_UUID: label_value(job.id)}
    if job.pipeline.slug:
        ours[f"{_P}/pipeline"] = label_value(job.pipeline.slug)
    if job.build.number is not None:
        ours[f"{_P}/build-number"] = str(job.build.number)
    return ours


def _labels(request: DispatchRequest, plugin: Mapping[str, Any]) -> dict[str, str]:
    """The step's labels (agent tags, its ``metadata``), then ours."""
    job = request.job
    metadata = plugin.get("metadata") or {}
    return {"buildkite.com/job-uuid": label_value(job.id), **_tag_labels(job.agent_query_rules),
            **metadata.get("labels", {}), **_our_labels(request)}  # fmt: skip


def _annotations(
    request: DispatchRequest, env: Mapping[str, str], plugin: Mapping[str, Any]
) -> dict[str, str]:
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
    build_url = env.get("BUILDKITE_BUILD_URL")
    buildkite = {
        "build-url": build_url,
        "build-branch": env.get("BUILDKITE_BRANCH"),
        "build-repo": _USERINFO.sub(r"\1", env.get("BUILDKITE_REPO") or ""),
        "pipeline-slug": env.get("BUILDKITE_PIPELINE_SLUG"),
        "step-key": env.get("BUILDKITE_STEP_KEY"),
        "job-url": f"{build_url.split('#')[0]}#{job.id}" if build_url else None,
        "job-priority": str(job.priority),
    }
    metadata = plugin.get("metadata") or {}
    return {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        **metadata.get("annotations", {}),
        **{f"buildkite.com/{k}": v for k, v in buildkite.items() if v},
        **{f"{_P}/{k}": v for k, v in values.items() if v is not None},
    }


def _agent_env(config: KubernetesConfig, request: DispatchRequest) -> list[dict[str, Any]]:
    if request.token is not None:
        ref = {"name": secret_name(config, request.job_uuid), "key": TOKEN_KEY}
    elif config.agent_token_secret is not None:
        ref = {"name": config.agent_token_secret, "key": config.agent_token_secret_key}
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


def _details(request: DispatchRequest, details: Job | None) -> Job:
    given = details if details is not None else request.details  # fetched once by the runtime
    return given if given is not None else Job(id=request.job_uuid)


def render_job(
    config: KubernetesConfig,
    request: DispatchRequest,
    namespace: str,
    details: Job | None = None,
) -> dict[str, Any]:
    """The ``batch/v1`` Job manifest for ``request`` (no token in it: a Secret reference).

    ``details`` is the job as ``get_job`` returns it (its env carries the step's plugins,
    ``BUILDKITE_IMAGE``…; default: ``request.details``, else a job with no env). Raises
    :class:`DispatchError` naming the field when the step's ``kubernetes`` plugin is malformed
    or prohibited, or the pod cannot be built as asked.
    """
    details = _details(request, details)
    env = details.env
    try:
        plugin = kubernetes_plugin(env, prohibited=config.prohibit_kubernetes_plugin)
        inputs = PodInputs(details.command, env, request.job.agent_query_rules, plugin)
        built = build_pod_spec(config, inputs, _agent_env(config, request))
    except PluginProhibited:
        raise DispatchError(
            "this stack prohibits the kubernetes plugin (kubernetes.prohibit_kubernetes_plugin), "
            "and this step uses it; the job was not run with the stack's pod spec instead"
        ) from None
    except PluginError as exc:
        raise DispatchError(f"the step's kubernetes plugin is malformed: {exc}") from None
    except (PodError, PatchError) as exc:
        raise DispatchError(f"cannot build the pod for this job: {exc}") from None
    plugin = plugin or {}
    meta = config.template().get("metadata") or {}
    defaults = config.default_metadata
    labels = {**config.labels, **defaults.get("labels", {}), **_labels(request, plugin)}
    annotations = {**config.annotations, **defaults.get("annotations", {})}
    annotations.update(_annotations(request, env, plugin))
    deadline = plugin.get("jobActiveDeadlineSeconds") or config.active_deadline_seconds
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
            "activeDeadlineSeconds": deadline if deadline > 0 else config.active_deadline_seconds,
            "template": {
                "metadata": {
                    "labels": {**(meta.get("labels") or {}), **labels},
                    "annotations": {
                        **(meta.get("annotations") or {}),
                        **annotations,
                        **built.annotations,
                    },
                },
                "spec": built.spec,
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
        "labels": {**config.labels, **_our_labels(request)},
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
