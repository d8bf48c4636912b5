"""Strategic merge patch of a PodSpec, as ``kubectl patch --type strategic`` applies it.

Maps merge key by key (``null`` deletes a key); lists of named things merge item by item on
their merge key (containers, init containers, volumes and image pull secrets by ``name``, env
by ``name``, volume mounts by ``mountPath``, ports by ``containerPort``…); other lists are
replaced. The directives ``$patch: replace`` and ``$patch: delete`` (on a map or a list item),
``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>`` are understood. Items of a
merged list keep the original's order; new ones are appended in the patch's order.

No Python library applies strategic merge patches without a cluster, so this is a small one of
our own, limited to the fields a PodSpec has.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["MERGE_KEYS", "PatchError", "strategic_merge"]

MERGE_KEYS: Mapping[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "topologySpreadConstraints": "topologyKey",
}
_PATCH = "$patch"
_DELETE_FROM = "$deleteFromPrimitiveList/"
_ORDER = "$setElementOrder/"
_IGNORED = ("$retainKeys",)


class PatchError(ValueError):
    """A patch that cannot apply; ``field`` is the dotted path of the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def strategic_merge(original: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``original`` with ``patch`` applied (neither is changed)."""
    merged = _merge_map(copy.deepcopy(dict(original)), patch, "")
    return merged if merged is not None else {}


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _merge_map(
    target: dict[str, Any], patch: Mapping[str, Any], path: str
) -> dict[str, Any] | None:
    directive = patch.get(_PATCH)
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive is not None:
        raise PatchError(_where(path, _PATCH), f"unknown directive {directive!r}")
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM):
            field = key[len(_DELETE_FROM) :]
            gone = set(map(str, value or []))
            target[field] = [v for v in target.get(field) or [] if str(v) not in gone]
            continue
        if key.startswith(_ORDER) or key in _IGNORED:
            continue
        where = _where(path, key)
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping):
            current = target.get(key)
            merged = _merge_map(dict(current) if isinstance(current, Mapping) else {}, value, where)
            if merged is None:
                target.pop(key, None)
            else:
                target[key] = merged
        elif isinstance(value, list) and key in MERGE_KEYS:
            current = target.get(key)
            target[key] = _merge_list(
                list(current) if isinstance(current, list) else [], value, MERGE_KEYS[key], where
            )
        else:
            target[key] = copy.deepcopy(value)
    return target


def _merge_list(target: list[Any], patch: list[Any], key: str, path: str) -> list[Any]:
    if any(isinstance(i, Mapping) and i.get(_PATCH) == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, Mapping) and _PATCH in i)]
    index = {item.get(key): n for n, item in enumerate(target) if isinstance(item, Mapping)}
    deleted: set[int] = set()
    for n, item in enumerate(patch):
        where = f"{path}[{n}]"
        if not isinstance(item, Mapping):
            raise PatchError(where, f"must be a mapping with {key!r} (a list merged by {key})")
        if item.get(key) is None:
            raise PatchError(_where(where, key), f"is required to merge into {path}")
        at = index.get(item[key])
        if item.get(_PATCH) == "delete":
            if at is not None:
                deleted.add(at)
            continue
        if at is None:
            merged = _merge_map({}, item, where)
            index[item[key]] = len(target)
            target.append(merged)
        else:
            target[at] = _merge_map(dict(target[at]), item, where)
    return [item for n, item in enumerate(target) if n not in deleted and item is not None]
