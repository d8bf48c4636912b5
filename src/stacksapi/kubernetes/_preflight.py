"""Trying the Kubernetes dispatcher before the stack starts (``stacksapi run --check``).

Two questions, asked the way the dispatcher will ask them: does the API server answer (a list
of this stack's Jobs in the namespace, through the same rate-limited, retrying client), and may
the service account do what the dispatcher does? Each permission is asked of the server with a
``SelfSubjectAccessReview`` (what ``kubectl auth can-i`` does), never assumed from the Role
shipped in ``deploy/``.
"""

from __future__ import annotations

from lightkube import AsyncClient
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview

from stacksapi.stack import CheckResult

from ._kube import KubeAPI

__all__ = ["NEEDED", "check_kubernetes"]

NEEDED: tuple[tuple[str, str, str], ...] = (
    *(("batch", "jobs", verb) for verb in ("create", "get", "list", "watch", "delete")),
    *(("", "pods", verb) for verb in ("get", "list", "watch")),
    *(("", "events", verb) for verb in ("list",)),
    *(("", "secrets", verb) for verb in ("create", "patch")),
)
"""(API group, resource, verb) the dispatcher uses, as ``deploy/rbac.yaml`` grants them."""


async def check_kubernetes(
    client: AsyncClient, api: KubeAPI, selector: dict[str, str]
) -> list[CheckResult]:
    """The API answers in ``api.namespace``, and each permission in :data:`NEEDED` is granted."""
    namespace = api.namespace
    try:
        jobs, _version = await api.list_jobs(selector)
    except Exception as exc:
        return [CheckResult(False, f"the Kubernetes API does not answer: {_short(exc)}")]
    results = [CheckResult(True, f"the Kubernetes API answers (namespace {namespace}, "
                                 f"{len(jobs)} Jobs of this stack)")]  # fmt: skip
    for group, resource, verb in NEEDED:
        attributes = ResourceAttributes(
            group=group, resource=resource, verb=verb, namespace=namespace
        )
        review = SelfSubjectAccessReview(
            spec=SelfSubjectAccessReviewSpec(resourceAttributes=attributes)
        )
        try:
            answer = await client.create(review)
        except Exception as exc:
            results.append(CheckResult(False, f"cannot ask whether it may {verb} {resource}: "
                                              f"{_short(exc)}"))  # fmt: skip
            continue
        allowed = answer.status is not None and answer.status.allowed
        results.append(
            CheckResult(True, f"the service account may {verb} {resource} in {namespace}")
            if allowed
            else CheckResult(False, f"the service account may not {verb} {resource} in "
                                    f"{namespace}: grant it in the Role (see deploy/rbac.yaml)")
        )  # fmt: skip
    return results


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
