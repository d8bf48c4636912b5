"""The clients given bad arguments: a ``StacksAPIError`` (``RequestValidationError`` before
anything is sent), never a ``TypeError``, ``AttributeError`` or other crash.

Arguments are any JSON value, arbitrary objects, NaN, bytes and 1,001-item lists; whatever passes
validation reaches a scripted loopback server that answers 400 (a documented error too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client._server import Reply, ScriptedServer
from stacksapi import Client, RequestValidationError, RetryPolicy, StacksAPIError

from ._cases import examples, record
from ._strategies import JSON_VALUES

ARGS = st.one_of(
    JSON_VALUES,
    st.builds(object),
    st.just(float("nan")),
    st.just(b"bytes"),
    st.lists(st.text(max_size=3), min_size=1001, max_size=1001),
)

Call = Callable[[Client, Any, Any], object]
CALLS: dict[str, Call] = {
    "register_stack": lambda c, a, b: c.register_stack(a, queue_key=b),
    "register_stack metadata": lambda c, a, b: c.register_stack(
        "s", queue_key="q", metadata=a, type=b
    ),
    "list_scheduled_jobs": lambda c, a, b: c.list_scheduled_jobs(a, queue_key="q", limit=b),
    "list_scheduled_jobs cursor": lambda c, a, b: c.list_scheduled_jobs("s", queue_key=a, after=b),
    "iter_scheduled_jobs": lambda c, a, b: list(
        c.iter_scheduled_jobs("s", queue_key="q", page_size=a, max_pages=b)
    ),
    "batch_reserve_jobs": lambda c, a, b: c.batch_reserve_jobs(
        "s", a, reservation_expiry_seconds=b
    ),
    "get_job": lambda c, a, b: c.get_job(a, b),
    "get_job_states": lambda c, a, b: c.get_job_states(a, b),
    "finish_job": lambda c, a, b: c.finish_job("s", "u", detail=a, exit_status=b),
    "finish_job signal": lambda c, a, b: c.finish_job("s", a, detail="d", signal_reason=b),
    "create_stack_notifications": lambda c, a, b: c.create_stack_notifications(a, [b]),
    "create_stack_notifications list": lambda c, a, b: c.create_stack_notifications("s", a),
    "issue_job_acquisition_tokens": lambda c, a, b: c.issue_job_acquisition_tokens(
        "s", a, token_lifetime_seconds=b
    ),
    "per-call timeout and retry": lambda c, a, b: c.get_token(timeout=a, retry=b),
}


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    server = ScriptedServer()
    server.fallback = lambda _: Reply(400, b'{"message": "refused by the test server"}')
    server.start()
    with Client(
        "bkct_argument_fuzz_0123456789",
        base_url=server.base_url,
        retry=RetryPolicy(max_attempts=1),
        timeout=15,
    ) as c:
        yield c
    server.stop()


def _error(call: Callable[[], object]) -> StacksAPIError | None:
    try:
        call()
    except StacksAPIError as exc:
        return exc
    return None


@settings(
    max_examples=examples(150),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(name=st.sampled_from(sorted(CALLS)), first=ARGS, second=ARGS)
def test_bad_arguments_raise_documented_errors(
    client: Client, name: str, first: Any, second: Any
) -> None:
    record(f"client arguments: {name}")
    error = _error(lambda: CALLS[name](client, first, second))
    # No error: nothing to send (an empty uuid list). Otherwise a documented error, and a
    # refusal before sending names the field and the rule.
    if isinstance(error, RequestValidationError):
        assert error.field
        assert error.limit
        assert str(error).startswith(error.field)
