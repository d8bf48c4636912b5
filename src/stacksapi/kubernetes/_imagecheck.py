"""Image references, pull policies, and the ``imagecheck-N`` init containers.

Before the agent starts, one small init container per distinct image runs ``tini-static
--version`` in that image: a missing or unpullable image then fails the pod while it is still
initialising (and the dispatcher fails the job with the pull events) instead of after the agent
took the job. Pull policies follow agent-stack-k8s: a container's own policy, else the
configured default, else ``IfNotPresent`` for a digest-pinned image and ``Always`` otherwise;
an image the check pulls ``Always`` is not pulled again by its container (``IfNotPresent``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._containers import IMAGECHECK_PREFIX, TINI

__all__ = ["default_pull_policy", "image_checks", "invalid_image"]

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"  # noqa: E501
_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
_PREFERENCE = {"Never": 1, "IfNotPresent": 2, "Always": 3}


def invalid_image(image: object) -> str | None:
    """Why ``image`` is not a valid image reference, or ``None`` when it is."""
    if not isinstance(image, str) or not image:
        return "no image is set"
    if len(image) > 4096 or not _REFERENCE.match(image):
        return f"{image!r} is not a valid image reference"
    return None


def default_pull_policy(image: str) -> str:
    """``IfNotPresent`` for an image pinned by digest, ``Always`` otherwise."""
    return "IfNotPresent" if "@" in image else "Always"


def image_checks(
    containers: Sequence[dict[str, Any]],
    init_containers: Sequence[Mapping[str, Any]],
    *,
    default_policy: str | None,
    check_policy: str | None,
    mount: Mapping[str, Any],
    cpu_limit: str,
    memory_limit: str,
    enabled: bool = True,
) -> list[dict[str, Any]]:
    """The image-check init containers for ``containers`` (whose pull policies are set here).

    An image that an init container in ``init_containers`` already pulls with an equal or
    stronger policy needs no check of its own. Not ``enabled``: only the pull policies are set
    (and an ``Always`` stays ``Always``, since no check pulls the image first).
    """
    wanted: dict[str, str] = {}
    for c in containers:
        image = c["image"]
        fallback = default_pull_policy(image)
        nominal = c.get("imagePullPolicy") or check_policy or default_policy or fallback
        policy = c.get("imagePullPolicy") or default_policy or fallback
        if enabled and nominal == "Always" and policy == "Always":
            policy = "IfNotPresent"  # the check pulls it; no need to pull it twice
        c["imagePullPolicy"] = policy
        known = wanted.get(image)
        if known is None or _PREFERENCE[nominal] > _PREFERENCE[known]:
            wanted[image] = nominal
    if not enabled:
        return []
    for init in init_containers:
        policy = wanted.get(init.get("image", ""))
        strength = _PREFERENCE.get(init.get("imagePullPolicy", ""), 0)
        if policy is not None and strength >= _PREFERENCE[policy]:
            del wanted[init["image"]]
    return [
        {
            "name": f"{IMAGECHECK_PREFIX}{i}",
            "image": image,
            "imagePullPolicy": policy,
            "command": list(TINI),
            "args": ["--version"],
            "volumeMounts": [dict(mount)],
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": cpu_limit, "memory": memory_limit},
            },
        }
        for i, (image, policy) in enumerate(wanted.items())
    ]
