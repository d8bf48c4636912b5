"""Wire types of the Stacks API: msgspec Structs and string enums, no I/O.

Attribute names are the wire field names, so a model is the JSON object it came from. Decoding is
lenient where a newer server could differ: unknown fields are ignored, enum-like fields stay plain
``str`` (compare them with the ``StrEnum`` members, which are strings too), and nested objects that
the contract says are "always present" still default to empty ones. The emulator encodes its
responses and decodes its requests with these same types, so both sides agree on one definition.
"""

from __future__ import annotations

import datetime as _dt
import enum
import re
from collections.abc import Mapping
from typing import Any, Self

import msgspec

__all__ = [
    "DEFAULT_QUEUE_KEY",
    "Build",
    "ClusterQueue",
    "FinishJobRequest",
    "Job",
    "JobAcquisitionToken",
    "JobAcquisitionTokens",
    "JobState",
    "JobStates",
    "JobUUIDsRequest",
    "NotificationError",
    "NotificationsRequest",
    "NotificationsResult",
    "PageInfo",
    "Pipeline",
    "RateLimit",
    "RegisterStackRequest",
    "Reservation",
    "ReserveJobsRequest",
    "ScheduledJob",
    "ScheduledJobsPage",
    "Secret",
    "Stack",
    "StackNotification",
    "StackState",
    "StackType",
    "Step",
    "TokenInfo",
    "TokensRequest",
    "decode_hook",
    "encode_hook",
]

DEFAULT_QUEUE_KEY = "__default__"
"""The key that names a cluster's default queue (the Go client's ``_default`` is wrong)."""


class StackType(enum.StrEnum):
    """What kind of stack registers; third-party stacks use ``CUSTOM``."""

    CUSTOM = "custom"
    KUBERNETES = "kubernetes"  # reserved for Buildkite's own Kubernetes stack
    ELASTIC = "elastic"  # reserved for Buildkite's own Elastic CI Stack for AWS


class StackState(enum.StrEnum):
    """Connection state of a registered stack, as Buildkite reports it."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    LOST = "lost"


class JobState(enum.StrEnum):
    """The job states known today. Servers may send others: they arrive as plain strings."""

    PENDING = "pending"
    WAITING = "waiting"
    WAITING_FAILED = "waiting_failed"
    BLOCKED = "blocked"
    BLOCKED_FAILED = "blocked_failed"
    UNBLOCKED = "unblocked"
    UNBLOCKED_FAILED = "unblocked_failed"
    LIMITING = "limiting"
    LIMITED = "limited"
    SCHEDULED = "scheduled"
    RESERVED = "reserved"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELING = "canceling"
    CANCELED = "canceled"
    TIMING_OUT = "timing_out"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    BROKEN = "broken"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """True for states a job never leaves."""
        return self in _TERMINAL_STATES


_TERMINAL_STATES = frozenset(
    {
        JobState.FINISHED,
        JobState.CANCELED,
        JobState.TIMED_OUT,
        JobState.SKIPPED,
        JobState.BROKEN,
        JobState.EXPIRED,
        JobState.WAITING_FAILED,
        JobState.BLOCKED_FAILED,
        JobState.UNBLOCKED_FAILED,
    }
)


MASKED = "**********"
"""How a :class:`Secret` is shown (the CLI masks secrets the same way)."""


class Secret:
    """A string that must not be shown: ``str()`` and ``repr()`` mask it.

    Call :meth:`get_secret_value` at the one place that needs the real value (an agent's
    environment). Two secrets are equal when their values are.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret value must be a str, got {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        """The real value; keep it out of logs and output."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASKED!r})"

    def __str__(self) -> str:
        return MASKED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def decode_hook(type_: type, obj: Any) -> Any:
    """msgspec ``dec_hook``: builds :class:`Secret` values from JSON strings."""
    if type_ is Secret:
        if not isinstance(obj, str):
            raise msgspec.ValidationError(f"Expected `str`, got `{type(obj).__name__}`")
        return Secret(obj)
    raise NotImplementedError(f"no decoder for {type_!r}")


def encode_hook(obj: Any) -> Any:
    """msgspec ``enc_hook``: a :class:`Secret` is written as its value (the wire needs it)."""
    if isinstance(obj, Secret):
        return obj.get_secret_value()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _plain_hook(obj: Any) -> Any:
    """``to_dict`` without ``reveal_secrets``: a :class:`Secret` becomes its mask."""
    if isinstance(obj, Secret):
        return MASKED
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _from_plain_hook(type_: type, obj: Any) -> Any:
    """``from_dict``: a mask is refused as a secret's value, so no masked copy passes for one."""
    if type_ is Secret and obj == MASKED:
        raise ValueError(
            "a masked secret, not its value (make the data with to_dict(reveal_secrets=True))"
        )
    return decode_hook(type_, obj)


def _lists(value: Any) -> Any:
    """``to_builtins`` keeps a model's tuples as tuples; plain data has lists (YAML, equality)."""
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_lists(item) for item in value]
    return value


_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


class _Model(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False, gc=False):
    """Base of every wire model: frozen, keyword-only construction, plain data and back.

    ``gc=False``: a wire model holds only strings, numbers and other wire models (in tuples or
    string dicts), so it can never be part of a reference cycle; leaving it untracked spares the
    garbage collector scanning the thousands of objects a page of jobs decodes into.
    """

    def to_dict(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """This result as plain data: dicts, lists, str, int, float, bool and ``None`` only.

        Field names are the wire names and datetimes become ISO 8601 strings, so the dict can go
        to ``json.dumps`` or a database and come back with :meth:`from_dict`. A :class:`Secret`
        is masked unless ``reveal_secrets`` (then the data holds the token: keep it private).
        """
        hook = encode_hook if reveal_secrets else _plain_hook
        data: dict[str, Any] = _lists(msgspec.to_builtins(self, enc_hook=hook))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build this model from plain data such as :meth:`to_dict` made (or the JSON of the API).

        Raises ``ValueError`` naming the field (``jobs[0].scheduled_at``) when the data does not
        fit; unknown keys are ignored, like in responses.
        """
        try:
            return msgspec.convert(data, cls, dec_hook=_from_plain_hook)
        except msgspec.ValidationError as exc:
            message = str(exc)
            found = _AT.search(message)
            if found is None:
                raise ValueError(f"{cls.__name__}: {message}") from None
            where = found.group("path") or "data"
            raise ValueError(f"{cls.__name__}.{where}: {message[: found.start()]}") from None


# --- register ---------------------------------------------------------------------------------


class Stack(_Model, frozen=True, kw_only=True):
    """A registered stack, as returned by register."""

    id: str = ""
    organization_uuid: str = ""
    key: str
    type: str = StackType.CUSTOM
    cluster_queue_key: str = ""
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    last_connected_on: _dt.datetime | None = None
    state: str = StackState.CONNECTED


class RegisterStackRequest(_Model, frozen=True, kw_only=True):
    """Body of ``POST stacks/register``."""

    key: str
    type: str
    queue_key: str
    metadata: dict[str, str]


# --- scheduled jobs ---------------------------------------------------------------------------


class Pipeline(_Model, frozen=True, kw_only=True):
    """The pipeline a scheduled job belongs to (values may be null)."""

    slug: str | None = None
    uuid: str | None = None


class Build(_Model, frozen=True, kw_only=True):
    """The build a scheduled job belongs to (values may be null)."""

    uuid: str | None = None
    number: int | None = None
    branch: str | None = None


class Step(_Model, frozen=True, kw_only=True):
    """The pipeline step a scheduled job runs (``key`` may be null)."""

    key: str | None = None


class ScheduledJob(_Model, frozen=True, kw_only=True):
    """One job waiting for a stack to run it."""

    id: str
    priority: int = 0
    agent_query_rules: tuple[str, ...] = ()
    scheduled_at: _dt.datetime
    runnable_at: _dt.datetime | None = None
    pipeline: Pipeline = msgspec.field(default_factory=Pipeline)
    build: Build = msgspec.field(default_factory=Build)
    step: Step = msgspec.field(default_factory=Step)


class PageInfo(_Model, frozen=True, kw_only=True):
    """Pagination of a scheduled-jobs page: pass ``end_cursor`` as ``after`` for the next one."""

    has_next_page: bool = False
    end_cursor: str | None = None


class ClusterQueue(_Model, frozen=True, kw_only=True):
    """The queue a page of scheduled jobs came from.

    ``dispatch_paused`` is the documented flag; some servers (and Buildkite's Go client) use
    ``paused``. Either one being true makes ``dispatch_paused`` true after decoding.
    """

    id: str = ""
    dispatch_paused: bool = False
    paused: bool | None = None

    def __post_init__(self) -> None:
        if self.paused and not self.dispatch_paused:
            msgspec.structs.force_setattr(self, "dispatch_paused", True)


class ScheduledJobsPage(_Model, frozen=True, kw_only=True):
    """A page of ``GET stacks/{key}/scheduled-jobs``."""

    jobs: tuple[ScheduledJob, ...] = ()
    page_info: PageInfo = msgspec.field(default_factory=PageInfo)
    cluster_queue: ClusterQueue = msgspec.field(default_factory=ClusterQueue)


# --- reserve, jobs, states ---------------------------------------------------------------------


class ReserveJobsRequest(_Model, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``PUT stacks/{key}/scheduled-jobs/batch-reserve``."""

    job_uuids: list[str]
    reservation_expiry_seconds: int | None = None


class Reservation(_Model, frozen=True, kw_only=True):
    """Which of the asked-for jobs this stack now holds, and which it does not."""

    reserved: tuple[str, ...] = ()
    not_reserved: tuple[str, ...] = ()


class Job(_Model, frozen=True, kw_only=True):
    """What an agent needs to run a job."""

    id: str
    env: dict[str, str] = msgspec.field(default_factory=dict)
    command: str = ""


class JobUUIDsRequest(_Model, frozen=True, kw_only=True):
    """Body of ``POST stacks/{key}/jobs/get-states``."""

    job_uuids: list[str]


class JobStates(_Model, frozen=True, kw_only=True):
    """Job uuid to state. Values are plain strings; known ones equal a :class:`JobState`."""

    states: dict[str, str] = msgspec.field(default_factory=dict)


class FinishJobRequest(_Model, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``POST stacks/{key}/jobs/{uuid}/finish``.

    ``exit_status`` has no default here on purpose: it is always sent, because a server that
    does not see it assumes -1 and a success would read as a failure.
    """

    exit_status: int
    detail: str
    signal_reason: str | None = None


# --- notifications ----------------------------------------------------------------------------


class StackNotification(_Model, frozen=True, omit_defaults=True):
    """A short text shown on a job in Buildkite's build page."""

    job_uuid: str
    detail: str
    timestamp: _dt.datetime | None = None


class NotificationsRequest(_Model, frozen=True, kw_only=True):
    """Body of ``POST stacks/{key}/notifications``."""

    notifications: list[StackNotification]


class NotificationError(_Model, frozen=True, kw_only=True):
    """One failure of a notifications request: the message and the 0-based indexes it applies to."""

    error: str
    indexes: tuple[int, ...] = ()


class NotificationsResult(_Model, frozen=True, kw_only=True):
    """Notifications not in ``errors`` were created."""

    errors: tuple[NotificationError, ...] = ()


# --- job acquisition tokens --------------------------------------------------------------------


class TokensRequest(_Model, frozen=True, kw_only=True, omit_defaults=True):
    """Body of ``POST stacks/{key}/job-acquisition-tokens``."""

    job_uuids: list[str]
    token_lifetime_seconds: int | None = None


class JobAcquisitionToken(_Model, frozen=True, kw_only=True):
    """A token that lets one agent acquire one reserved job. The token is a :class:`Secret`."""

    job_uuid: str
    job_acquisition_token: Secret
    expires_at: _dt.datetime | None = None


class JobAcquisitionTokens(_Model, frozen=True, kw_only=True):
    """Tokens issued, one per job; ``not_issued``: jobs this stack holds no reservation on."""

    job_acquisition_tokens: tuple[JobAcquisitionToken, ...] = ()
    not_issued: tuple[str, ...] = ()


# --- GET token ---------------------------------------------------------------------------------


class TokenInfo(_Model, frozen=True, kw_only=True):
    """What ``GET token`` says of the token in use. No ``cluster_uuid``: it cannot drive a stack."""

    uuid: str | None = None
    description: str | None = None
    token_type: str | None = None
    organization_slug: str | None = None
    organization_uuid: str | None = None
    cluster_uuid: str | None = None
    cluster_name: str | None = None

    @property
    def is_clustered(self) -> bool:
        """True when the token belongs to a cluster (only those can drive a stack)."""
        return bool(self.cluster_uuid)


# --- response metadata -------------------------------------------------------------------------


class RateLimit(_Model, frozen=True, kw_only=True):
    """The ``RateLimit-*`` headers of one response: remaining calls in this window and its reset."""

    scope: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
