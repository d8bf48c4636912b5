"""Argument checks made before anything is sent, and the cropping of over-long ``detail`` texts.

Each check raises :class:`RequestValidationError` naming the argument and the documented limit.
No I/O; the cropping functions return the warning text instead of logging it.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence

from ._errors import RequestValidationError
from ._models import StackNotification

__all__ = [
    "FINISH_DETAIL_MAX_BYTES",
    "NOTIFICATION_DETAIL_MAX_CHARS",
    "check_int_range",
    "check_job_uuid",
    "check_job_uuids",
    "check_metadata",
    "check_notification",
    "check_optional_str",
    "check_stack_key",
    "check_str",
    "crop_finish_detail",
    "crop_notification_detail",
]

FINISH_DETAIL_MAX_BYTES = 4096
NOTIFICATION_DETAIL_MAX_CHARS = 256
_STACK_KEY = re.compile(r"[A-Za-z0-9_-]{1,80}")


def _hint(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_stack_key(value: object, field: str = "stack_key") -> str:
    """A stack key: 1..80 bytes of ``[A-Za-z0-9_-]``."""
    if isinstance(value, str) and _STACK_KEY.fullmatch(value):
        return value
    if not isinstance(value, str):
        raise RequestValidationError(field, "must be a str", value_hint=type(value).__name__)
    raise RequestValidationError(
        field, "must be 1..80 characters of [A-Za-z0-9_-]", value_hint=_hint(value)
    )


def check_str(value: object, field: str) -> str:
    """A non-empty string."""
    if not isinstance(value, str):
        raise RequestValidationError(field, "must be a str", value_hint=type(value).__name__)
    if not value:
        raise RequestValidationError(field, "must not be empty")
    return value


def check_optional_str(value: object, field: str) -> str | None:
    return None if value is None else check_str(value, field)


def check_job_uuid(value: object, field: str = "job_uuid") -> str:
    return check_str(value, field)


def check_job_uuids(values: object, field: str = "job_uuids") -> list[str]:
    """Any number of job uuids (the client splits them into requests of at most 1000)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | set | frozenset):
        raise RequestValidationError(
            field, "must be a sequence of job uuid strings", value_hint=type(values).__name__
        )
    out = list(values)
    for i, v in enumerate(out):
        check_str(v, f"{field}[{i}]")
    return out


def check_int_range(value: object, field: str, low: int, high: int) -> int:
    """An ``int`` (not a ``bool``) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestValidationError(field, "must be an int", value_hint=type(value).__name__)
    if not low <= value <= high:
        raise RequestValidationError(field, f"must be {low}..{high}", value_hint=str(value))
    return value


def check_metadata(value: object) -> dict[str, str]:
    """Flat string to string; at most 100 keys, keys at most 64 chars, values at most 256."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestValidationError(
            "metadata", "must be a mapping of str to str", value_hint=type(value).__name__
        )
    if len(value) > 100:
        raise RequestValidationError("metadata", "at most 100 keys", value_hint=str(len(value)))
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise RequestValidationError(
                "metadata", "keys must be str", value_hint=type(k).__name__
            )
        if len(k) > 64:
            raise RequestValidationError(
                f"metadata[{k[:20]!r}...]", "keys at most 64 characters", value_hint=str(len(k))
            )
        if not isinstance(v, str):
            raise RequestValidationError(
                f"metadata[{k!r}]", "values must be str (strings only)", value_hint=_hint(v)
            )
        if len(v) > 256:
            raise RequestValidationError(
                f"metadata[{k!r}]", "values at most 256 characters", value_hint=str(len(v))
            )
        out[k] = v
    return out


def check_aware(value: object, field: str) -> _dt.datetime:
    if not isinstance(value, _dt.datetime):
        raise RequestValidationError(field, "must be a datetime", value_hint=type(value).__name__)
    if value.tzinfo is None or value.utcoffset() is None:
        raise RequestValidationError(field, "must be timezone-aware", value_hint=value.isoformat())
    return value


def crop_finish_detail(
    detail: object, field: str = "detail", label: str = "finish_job detail"
) -> tuple[str, str | None]:
    """``detail`` cropped to 4096 UTF-8 bytes with a marker; and a warning when it was cropped.

    ``field`` names it in an error, ``label`` in the warning (the CLI says ``--detail``)."""
    text = check_str(detail, field)
    raw = text.encode("utf-8")
    if len(raw) <= FINISH_DETAIL_MAX_BYTES:
        return text, None
    marker = f"\n[stacksapi: detail cropped from {len(raw)} bytes]"
    keep = FINISH_DETAIL_MAX_BYTES - len(marker.encode("utf-8"))
    cropped = raw[:keep].decode("utf-8", "ignore") + marker  # "ignore" drops a split character
    return cropped, (
        f"{label} was {len(raw)} UTF-8 bytes, over the {FINISH_DETAIL_MAX_BYTES}-byte "
        "limit: cropped"
    )


def crop_notification_detail(detail: object, field: str) -> tuple[str, str | None]:
    """A notification ``detail`` cropped to 256 characters with a marker; and a warning."""
    text = check_str(detail, field)
    if len(text) <= NOTIFICATION_DETAIL_MAX_CHARS:
        return text, None
    marker = " [cropped]"
    cropped = text[: NOTIFICATION_DETAIL_MAX_CHARS - len(marker)] + marker
    return cropped, (
        f"{field} was {len(text)} characters, over the {NOTIFICATION_DETAIL_MAX_CHARS}-character "
        "limit: cropped"
    )


def check_notification(value: object, index: int) -> tuple[StackNotification, str | None]:
    """One notification, checked; the detail cropped when too long."""
    field = f"notifications[{index}]"
    if not isinstance(value, StackNotification):
        raise RequestValidationError(
            field, "must be a StackNotification", value_hint=type(value).__name__
        )
    check_str(value.job_uuid, f"{field}.job_uuid")
    detail, warning = crop_notification_detail(value.detail, f"{field}.detail")
    if value.timestamp is not None:
        check_aware(value.timestamp, f"{field}.timestamp")
    if detail is value.detail:
        return value, warning
    return StackNotification(value.job_uuid, detail, value.timestamp), warning
