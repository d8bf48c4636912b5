"""Seeded fault injection for the emulator: 500/503/429, latency and dropped connections.

A :class:`FaultConfig` holds the probabilities (a default for every Stacks API endpoint plus
overrides by endpoint name from :data:`stacksapi._endpoints.ENDPOINTS`), a seed and the counters of
faults injected so far. ``config.middleware()`` gives the starlette ``Middleware`` to hand to
``create_app`` or ``EmulatorServer``. Only Stacks API routes under ``/v3/`` are touched: the admin
API (``/_emulator/``) and the agent routes pass through untouched.

Reproducibility: each endpoint draws from its own random generator seeded from ``(seed, endpoint
name)``, two numbers per request, so the same seed and the same sequence of requests to an endpoint
give the same faults whatever happens on other endpoints.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from starlette.middleware import Middleware

from stacksapi._endpoints import ENDPOINTS, match_endpoint

__all__ = [
    "FAULT_KINDS",
    "ConnectionDroppedError",
    "FaultConfig",
    "FaultMiddleware",
    "FaultRates",
    "parse_fault_spec",
]

FAULT_KINDS = ("500", "503", "429", "drop", "latency")
"""The kinds of injected faults, as counted and as written in a compact spec."""

_API_PREFIX = "/v3/"
_MAX_LATENCY_S = 60.0
_MAX_DRAIN_BYTES = 16 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ConnectionDroppedError(ConnectionError):
    """Raised for a ``drop`` fault when no socket is reachable (in-process ASGI transports)."""


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probabilities (0..1) of each fault for one endpoint, and an added latency range in seconds.

    The four response faults are exclusive (their sum is at most 1); latency is added to every
    request of the endpoint, uniformly drawn from ``latency``.
    """

    error_500: float = 0.0
    error_503: float = 0.0
    rate_limited_429: float = 0.0
    drop: float = 0.0
    latency: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("error_500", "error_503", "rate_limited_429", "drop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"fault rate {name!r} must be a number, got {type(value).__name__}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {name!r} must be between 0 and 1, got {value}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(
                f"fault rates 500+503+429+drop must add up to at most 1, got {self.total:g}"
            )
        lo, hi = self.latency
        if not 0.0 <= lo <= hi <= _MAX_LATENCY_S:
            raise ValueError(
                f"fault latency must be a range 0 <= low <= high <= {_MAX_LATENCY_S:g} s, "
                f"got {lo:g}-{hi:g} s"
            )

    @property
    def total(self) -> float:
        """Probability that a request gets a response fault (latency excluded)."""
        return self.error_500 + self.error_503 + self.rate_limited_429 + self.drop

    @property
    def is_noop(self) -> bool:
        return self.total == 0.0 and self.latency[1] == 0.0


@dataclass(frozen=True, slots=True)
class _Decision:
    kind: str | None
    latency: float


@dataclass
class FaultConfig:
    """What to inject, from which seed, and how much was injected so far.

    ``per_endpoint`` keys are endpoint names (``"get_job"``, ``"list_scheduled_jobs"``...); an
    override replaces ``default`` for that endpoint entirely.
    """

    seed: int = 0
    default: FaultRates = field(default_factory=FaultRates)
    per_endpoint: Mapping[str, FaultRates] = field(default_factory=dict)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _rngs: dict[str, random.Random] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _counts: dict[str, dict[str, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"fault seed must be an int, got {type(self.seed).__name__}")
        unknown = sorted(set(self.per_endpoint) - set(ENDPOINTS))
        if unknown:
            raise ValueError(
                f"unknown endpoint(s) in fault overrides: {', '.join(unknown)} "
                f"(known: {', '.join(sorted(ENDPOINTS))})"
            )
        self.per_endpoint = dict(self.per_endpoint)

    @classmethod
    def parse(cls, spec: str, *, seed: int = 0) -> FaultConfig:
        """Build a config from a compact spec; see :func:`parse_fault_spec`."""
        return parse_fault_spec(spec, seed=seed)

    def rates_for(self, endpoint: str) -> FaultRates:
        """The rates that apply to ``endpoint``."""
        return self.per_endpoint.get(endpoint, self.default)

    def middleware(self) -> Middleware:
        """The starlette middleware applying this config, for ``create_app(middleware=...)``."""
        return Middleware(FaultMiddleware, config=self)

    def decide(self, endpoint: str) -> _Decision:
        """Draw the fate of the next request to ``endpoint`` and count it."""
        rates = self.rates_for(endpoint)
        with self._lock:
            rng = self._rngs.get(endpoint)
            if rng is None:
                rng = self._rngs[endpoint] = random.Random(
                    f"stacksapi-faults:{self.seed}:{endpoint}"
                )
            r_kind, r_latency = rng.random(), rng.random()
            lo, hi = rates.latency
            latency = lo + (hi - lo) * r_latency
            kind: str | None = None
            threshold = 0.0
            for name, p in (
                ("500", rates.error_500),
                ("503", rates.error_503),
                ("429", rates.rate_limited_429),
                ("drop", rates.drop),
            ):
                threshold += p
                if r_kind < threshold:
                    kind = name
                    break
            counts = self._counts.setdefault(endpoint, {})
            if latency > 0.0:
                counts["latency"] = counts.get("latency", 0) + 1
            if kind is not None:
                counts[kind] = counts.get(kind, 0) + 1
        return _Decision(kind, latency)

    def counts(self) -> dict[str, dict[str, int]]:
        """Faults injected so far: ``{endpoint: {kind: n}}`` (only non-zero entries)."""
        with self._lock:
            return {e: dict(c) for e, c in self._counts.items() if c}

    def totals(self) -> dict[str, int]:
        """Faults injected so far by kind, all endpoints together (every kind present)."""
        totals = dict.fromkeys(FAULT_KINDS, 0)
        for per_kind in self.counts().values():
            for kind, n in per_kind.items():
                totals[kind] += n
        return totals

    def reset(self) -> None:
        """Forget the counters and restart every endpoint's sequence from the seed."""
        with self._lock:
            self._rngs.clear()
            self._counts.clear()


# --- the compact spec ------------------------------------------------------------------------

_KIND_FIELDS = {"500": "error_500", "503": "error_503", "429": "rate_limited_429", "drop": "drop"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


def _parse_duration(text: str, item: str) -> float:
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"fault spec {item!r}: latency must look like 50ms, 0.2s or 10-50ms")
    value = float(m.group(1))
    return value if m.group(2) == "s" else value / 1000.0


def _parse_latency(text: str, item: str) -> tuple[float, float]:
    unit = "s" if text.strip().endswith("s") and not text.strip().endswith("ms") else "ms"
    lo_text, sep, hi_text = text.partition("-")
    if not sep:
        value = _parse_duration(text, item)
        return (value, value)
    # "0-50ms": a unit written once applies to both ends.
    if not lo_text.strip().endswith("s"):
        lo_text += unit
    return (_parse_duration(lo_text, item), _parse_duration(hi_text, item))


def parse_fault_spec(spec: str, *, seed: int = 0) -> FaultConfig:
    """Parse ``"500=0.05,503=0.02,429=0.05,drop=0.01,latency=0-50ms"`` into a :class:`FaultConfig`.

    Items are comma-separated ``kind=value``; prefix one with ``endpoint:`` to override that
    endpoint (``"get_job:503=0.5"``); ``seed=N`` sets the seed. Latency takes ``ms`` or ``s``
    (bare numbers are milliseconds). An endpoint override starts from the default rates.
    """
    default: dict[str, Any] = {}
    overrides: dict[str, dict[str, Any]] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise ValueError(f"fault spec {item!r}: expected kind=value")
        key = key.strip().lower()
        if key == "seed":
            try:
                seed = int(value)
            except ValueError:
                raise ValueError(f"fault spec {item!r}: seed must be an integer") from None
            continue
        endpoint, colon, kind = key.rpartition(":")
        target = overrides.setdefault(endpoint, {}) if colon else default
        if colon and endpoint not in ENDPOINTS:
            raise ValueError(
                f"fault spec {item!r}: unknown endpoint {endpoint!r} "
                f"(known: {', '.join(sorted(ENDPOINTS))})"
            )
        if kind == "latency":
            target["latency"] = _parse_latency(value, item)
        elif kind in _KIND_FIELDS:
            try:
                p = float(value)
            except ValueError:
                raise ValueError(f"fault spec {item!r}: {kind} must be a probability") from None
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fault spec {item!r}: {kind} must be between 0 and 1")
            target[_KIND_FIELDS[kind]] = p
        else:
            raise ValueError(
                f"fault spec {item!r}: unknown kind {kind!r} (known: 500, 503, 429, drop, latency)"
            )
    base = FaultRates(**default)
    per_endpoint = {name: FaultRates(**{**default, **o}) for name, o in overrides.items()}
    return FaultConfig(seed=seed, default=base, per_endpoint=per_endpoint)


# --- the middleware ---------------------------------------------------------------------------


def _json_response(
    status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> tuple[Message, Message]:
    payload = json.dumps(body).encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *headers,
        ],
    }
    return start, {"type": "http.response.body", "body": payload, "more_body": False}


def _fault_response(kind: str, endpoint: str) -> tuple[Message, Message]:
    if kind == "500":
        return _json_response(500, {"message": "Internal server error (injected fault)"}, [])
    if kind == "503":
        return _json_response(
            503,
            {"message": "Organization temporarily unavailable (injected fault)"},
            [(b"retry-after", b"1")],
        )
    spec = ENDPOINTS[endpoint]
    body = {
        "message": f"Rate limit exceeded for {spec.scope} (injected fault)",
        "scope": spec.scope,
        "limit": spec.per_second,
        "current": spec.per_second + 1,
        "reset": 1,
    }
    headers = [
        (b"ratelimit-scope", spec.scope.encode()),
        (b"ratelimit-limit", str(spec.per_second).encode()),
        (b"ratelimit-remaining", b"0"),
        (b"ratelimit-reset", b"1"),
        (b"retry-after", b"1"),
    ]
    return _json_response(429, body, headers)


def _is_transport(obj: object) -> bool:
    """A transport of any event loop: asyncio's subclass ``BaseTransport``, uvloop's do not."""
    if isinstance(obj, asyncio.BaseTransport):
        return True
    return callable(getattr(obj, "get_extra_info", None)) and callable(getattr(obj, "close", None))


def _find_transport(send: Any, depth: int = 0) -> Any:
    """Reach the server's socket transport behind ``send`` (uvicorn binds it on its cycle).

    Middleware in between wraps ``send`` in closures, so follow closure cells a few levels.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if _is_transport(transport):
        return transport
    if depth >= 6:
        return None
    for cell in getattr(send, "__closure__", None) or ():
        try:
            inner = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if callable(inner):
            found = _find_transport(inner, depth + 1)
            if found is not None:
                return found
    return None


class FaultMiddleware:
    """Pure ASGI middleware that injects the faults a :class:`FaultConfig` draws."""

    def __init__(self, app: ASGIApp, *, config: FaultConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else scope["path"]
        path = path.split("?", 1)[0]
        if not path.startswith(_API_PREFIX):
            await self.app(scope, receive, send)
            return
        found = match_endpoint(scope["method"], path[len(_API_PREFIX) :])
        if found is None or self.config.rates_for(found[0].name).is_noop:
            await self.app(scope, receive, send)
            return
        endpoint = found[0].name
        decision = self.config.decide(endpoint)
        if decision.latency > 0.0:
            await asyncio.sleep(decision.latency)
        if decision.kind is None:
            await self.app(scope, receive, send)
        elif decision.kind == "drop":
            # Read the body first: closing a socket with unread bytes makes the kernel send a
            # reset, which a client sees as a read error rather than a closed connection.
            await self._drain(receive)
            await self._drop(send)
        else:
            await self._drain(receive)
            for message in _fault_response(decision.kind, endpoint):
                await send(message)

    @staticmethod
    async def _drain(receive: Receive) -> None:
        """Read the request body so the connection stays usable after an early response."""
        seen = 0
        while seen <= _MAX_DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    @staticmethod
    async def _drop(send: Send) -> None:
        transport = _find_transport(send)
        if transport is None:
            raise ConnectionDroppedError("connection dropped (injected fault)")
        abort = getattr(transport, "abort", None)
        if callable(abort):
            abort()
        else:
            transport.close()
        # Let the server see the connection is gone, so it neither answers nor logs an error.
        for _ in range(3):
            await asyncio.sleep(0)
