"""Strict shape checks of user-given Kubernetes objects against the client library's models.

A pipeline's ``kubernetes`` plugin and the ``[kubernetes]`` table carry pieces of PodSpecs
(containers, volumes, patches). A typo there must fail that one job (or the load of the config)
with the field named, not reach the API server, and not be dropped silently. :func:`check`
walks a plain value alongside a lightkube model type and raises :class:`ShapeError` with a
dotted path (``podSpec.containers[0].resources.limits.cpu``) for an unknown field (with a
close match when there is one), a wrong type, a missing required field or a bad quantity.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["ShapeError", "check", "check_labels", "check_list", "quantity", "show", "string_map"]

_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY_MAPS = frozenset({"limits", "requests", "overhead", "capacity"})


class ShapeError(ValueError):
    """A value does not have the shape its field needs; ``field`` is the dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def show(value: object, limit: int = 60) -> str:
    """A short ``repr`` of a user value for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _check(value: Any, tp: Any, path: str, *, partial: bool) -> None:
    if tp is Any or tp is object:
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return
        errors: list[ShapeError] = []
        for option in options:
            try:
                _check(value, option, path, partial=partial)
                return
            except ShapeError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ShapeError(path, f"must be one of {_names(options)} (got {show(value)})")
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise ShapeError(path, f"must be a list (got {_kind(value)})")
        item = args[0] if args else Any
        for i, element in enumerate(value):
            _check(element, item, f"{path}[{i}]", partial=partial)
        return
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ShapeError(path, f"must be a mapping (got {_kind(value)})")
        item = args[1] if len(args) == 2 else Any
        quantities = path.rsplit(".", 1)[-1] in _QUANTITY_MAPS
        for key, element in value.items():
            if not isinstance(key, str):
                raise ShapeError(path, f"keys must be strings (got {show(key)})")
            where = _join(path, key)
            if quantities:
                quantity(element, where)
            else:
                _check(element, item, where, partial=partial)
        return
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        _struct(value, tp, path, partial=partial)
        return
    _scalar(value, tp, path)


def _names(options: list[Any]) -> str:
    return " or ".join(getattr(o, "__name__", str(o)) for o in options)


def _scalar(value: Any, tp: Any, path: str) -> None:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    else:  # dates and other leaves travel as strings
        ok = isinstance(value, str | int | float) and not isinstance(value, bool)
    if not ok:
        name = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
        raise ShapeError(path, f"must be {name.get(tp, 'a scalar')} (got {show(value)})")


def quantity(value: Any, path: str) -> None:
    """Check a resource quantity (``500m``, ``2Gi``, ``1``)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ShapeError(path, f"must be a quantity such as 500m or 2Gi (got {show(value)})")
    if not _QUANTITY.match(str(value)):
        raise ShapeError(path, f"is not a quantity such as 500m or 2Gi (got {show(value)})")


@functools.cache
def _fields(tp: type[msgspec.Struct]) -> dict[str, msgspec.structs.FieldInfo]:
    """A model's fields by wire name (resolving the annotations is slow: once per model)."""
    return {f.encode_name: f for f in msgspec.structs.fields(tp)}


def _struct(value: Any, tp: type[msgspec.Struct], path: str, *, partial: bool) -> None:
    if not isinstance(value, Mapping):
        raise ShapeError(path or tp.__name__, f"must be a mapping (got {_kind(value)})")
    fields = _fields(tp)
    for key, element in value.items():
        if partial and isinstance(key, str) and key.startswith("$"):
            continue  # a strategic merge directive ($patch, $deleteFromPrimitiveList/...)
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            close = difflib.get_close_matches(str(key), sorted(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ShapeError(_join(path, str(key)), f"unknown field of {tp.__name__}{hint}")
        _check(element, field.type, _join(path, key), partial=partial)
    if not partial:
        for name, field in fields.items():
            if field.required and value.get(name) is None:
                raise ShapeError(_join(path, name), "is required")


def check(value: Any, model: Any, path: str, *, partial: bool = False) -> Any:
    """Check ``value`` against ``model`` (a lightkube model or a typing type such as
    ``list[str]``); return a deep copy of it. ``partial``: a patch, required fields may lack."""
    _check(value, model, path, partial=partial)
    return copy.deepcopy(value)


def check_list(value: Any, model: type[msgspec.Struct], path: str) -> list[Any]:
    """Check a list of ``model`` objects (``None`` is an empty list)."""
    if value is None:
        return []
    _check(value, list[model], path, partial=False)  # type: ignore[valid-type]
    return list(copy.deepcopy(value))


def string_map(value: Any, path: str) -> dict[str, str]:
    """A mapping of strings to strings (``None`` is empty)."""
    if value is None:
        return {}
    _check(value, dict[str, str], path, partial=False)
    return dict(value)


def check_labels(labels: Mapping[str, str], path: str) -> None:
    """Label keys (``[prefix/]name``) and values as Kubernetes accepts them."""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME.match(name) or (
            prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix))
        ):
            raise ShapeError(f"{path}.{key}", "is not a valid label name")
        if value and not _LABEL_NAME.match(value):
            raise ShapeError(
                f"{path}.{key}",
                f"is not a valid label value (63 of [A-Za-z0-9_.-]; got {show(value)})",
            )
