"""The public names of ``stacksapi``: code outside the project is written against exactly these.

Adding a name is a deliberate act: update this list in the same commit, and the CHANGELOG.
"""

from __future__ import annotations

import inspect
from typing import Any

import httpx2
import msgspec
import pytest

import stacksapi

PUBLIC = {
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncClientWithResponse",
    "AuthenticationError",
    "BadRequestError",
    "Build",
    "Client",
    "ClientWithResponse",
    "ClusterQueue",
    "DEFAULT_QUEUE_KEY",
    "Job",
    "JobAcquisitionToken",
    "JobAcquisitionTokens",
    "JobState",
    "JobStates",
    "NotFoundError",
    "NotificationError",
    "NotificationsResult",
    "PageInfo",
    "PermissionDeniedError",
    "Pipeline",
    "RateLimit",
    "RateLimitError",
    "RequestValidationError",
    "Reservation",
    "Response",
    "ResponseValidationError",
    "RetryPolicy",
    "ScheduledJob",
    "ScheduledJobsPage",
    "Secret",
    "ServerError",
    "Stack",
    "StackNotification",
    "StackState",
    "StackType",
    "StacksAPIError",
    "Step",
    "TokenInfo",
    "UnprocessableEntityError",
    "__version__",
}


def test_all_is_exactly_the_public_contract() -> None:
    assert set(stacksapi.__all__) == PUBLIC
    assert len(stacksapi.__all__) == len(PUBLIC)  # no duplicates


def test_every_public_name_resolves() -> None:
    for name in stacksapi.__all__:
        assert getattr(stacksapi, name) is not None


def test_public_objects_say_they_are_stacksapi() -> None:
    for name in PUBLIC - {"__version__", "DEFAULT_QUEUE_KEY"}:
        assert getattr(stacksapi, name).__module__.startswith("stacksapi")


# --- signatures: names, order, kind and defaults of every public argument ----------------------

_P = inspect.Parameter
_POS, _KW = _P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY
_CALL = [("retry", _KW, None), ("timeout", _KW, "DEFAULT")]  # every method ends with these

METHODS: dict[str, list[tuple[str, Any, object]]] = {
    "register_stack": [
        ("key", _POS, _P.empty),
        ("queue_key", _KW, _P.empty),
        ("type", _KW, stacksapi.StackType.CUSTOM),
        ("metadata", _KW, None),
    ],
    "deregister_stack": [("key", _POS, _P.empty)],
    "list_scheduled_jobs": [
        ("stack_key", _POS, _P.empty),
        ("queue_key", _KW, _P.empty),
        ("limit", _KW, None),
        ("after", _KW, None),
    ],
    "iter_scheduled_jobs": [
        ("stack_key", _POS, _P.empty),
        ("queue_key", _KW, _P.empty),
        ("page_size", _KW, None),
        ("max_pages", _KW, None),
    ],
    "batch_reserve_jobs": [
        ("stack_key", _POS, _P.empty),
        ("job_uuids", _POS, _P.empty),
        ("reservation_expiry_seconds", _KW, None),
    ],
    "get_job": [("stack_key", _POS, _P.empty), ("job_uuid", _POS, _P.empty)],
    "get_job_states": [("stack_key", _POS, _P.empty), ("job_uuids", _POS, _P.empty)],
    "finish_job": [
        ("stack_key", _POS, _P.empty),
        ("job_uuid", _POS, _P.empty),
        ("detail", _KW, _P.empty),
        ("exit_status", _KW, -1),
        ("signal_reason", _KW, None),
    ],
    "create_stack_notifications": [
        ("stack_key", _POS, _P.empty),
        ("notifications", _POS, _P.empty),
    ],
    "issue_job_acquisition_tokens": [
        ("stack_key", _POS, _P.empty),
        ("job_uuids", _POS, _P.empty),
        ("token_lifetime_seconds", _KW, None),
    ],
    "get_token": [],
}
CONSTRUCTOR = [
    ("token", _POS, None),
    ("base_url", _KW, None),  # None: STACKSAPI_BASE_URL, else https://agent.buildkite.com/v3/
    ("http_client", _KW, None),
    ("timeout", _KW, _P.empty),  # a finite httpx2.Timeout: checked below
    ("retry", _KW, None),
    ("max_retries", _KW, None),
    ("logger", _KW, None),
    ("log_http_payloads", _KW, False),
    ("user_agent_prefix", _KW, None),
    ("allow_insecure_http", _KW, False),
]


def _shape(func: Any) -> list[tuple[str, Any, object]]:
    params = list(inspect.signature(func).parameters.values())[1:]  # without self
    return [(p.name, p.kind, repr(p.default) if p.name == "timeout" else p.default) for p in params]


@pytest.mark.parametrize("cls", [stacksapi.Client, stacksapi.AsyncClient])
def test_client_methods_have_the_documented_arguments(cls: type) -> None:
    public = {n for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}
    assert public == set(METHODS) | {"close" if cls is stacksapi.Client else "aclose"}
    for name, args in METHODS.items():
        assert _shape(getattr(cls, name)) == args + _CALL, name
    is_async = cls is stacksapi.AsyncClient
    for name in set(METHODS) - {"iter_scheduled_jobs"}:
        assert inspect.iscoroutinefunction(getattr(cls, name)) is is_async, name


@pytest.mark.parametrize("cls", [stacksapi.ClientWithResponse, stacksapi.AsyncClientWithResponse])
def test_with_response_mirrors_every_single_response_method(cls: type) -> None:
    public = {n for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}
    assert public == set(METHODS) - {"iter_scheduled_jobs"}  # an iterator has no one response
    for name in public:
        assert _shape(getattr(cls, name)) == METHODS[name] + _CALL, name


@pytest.mark.parametrize("cls", [stacksapi.Client, stacksapi.AsyncClient])
def test_constructor_arguments(cls: type) -> None:
    init = vars(cls)["__init__"]
    shape = _shape(init)
    assert [(n, k) for n, k, _ in shape] == [(n, k) for n, k, _ in CONSTRUCTOR]
    for (name, _, default), (_, _, expected) in zip(shape, CONSTRUCTOR, strict=True):
        if name != "timeout":
            assert default == expected, name
    timeout = inspect.signature(init).parameters["timeout"].default
    assert isinstance(timeout, httpx2.Timeout)
    assert None not in (timeout.connect, timeout.read, timeout.write, timeout.pool)


def test_retry_policy_fields() -> None:
    fields = inspect.signature(stacksapi.RetryPolicy).parameters
    assert list(fields) == [
        "max_attempts",
        "initial_delay",
        "max_delay",
        "jitter",
        "max_retry_after",
    ]
    assert all(p.kind is _KW for p in fields.values())
    assert fields["max_attempts"].default == 5
    assert fields["max_retry_after"].default == 60.0


def test_error_attributes() -> None:
    common: dict[str, Any] = {
        "status_code": 429,
        "method": "GET",
        "url": "u",
        "headers": {},
        "body": None,
    }
    error = stacksapi.RateLimitError(
        "m", **common, retry_after=1.0, scope="s", limit=10, current=11, reset=1.0
    )
    for name in ("message", *common, "retry_after", "scope", "limit", "current", "reset"):
        assert hasattr(error, name), name
    assert isinstance(error, stacksapi.APIStatusError)
    assert issubclass(stacksapi.APITimeoutError, stacksapi.APIConnectionError)
    assert issubclass(stacksapi.RequestValidationError, ValueError)
    invalid = stacksapi.ResponseValidationError(
        "m", method="GET", url="u", status_code=200, body=b"x"
    )
    assert invalid.body == b"x"


def test_emulator_public_names() -> None:
    import stacksapi.emulator as emulator

    assert {
        "Emulator",
        "EmulatorServer",
        "EmulatorError",
        "FaultConfig",
        "JobSpec",
        "ManualClock",
        "create_app",
        "serve",
    } <= set(emulator.__all__)
    for name in emulator.__all__:
        assert getattr(emulator, name) is not None


_MODELS = PUBLIC - {
    "__version__",
    "DEFAULT_QUEUE_KEY",
    "AsyncClient",
    "AsyncClientWithResponse",
    "Client",
    "ClientWithResponse",
    "Response",
    "RetryPolicy",
    "Secret",
}


def test_every_model_turns_into_plain_data_and_back() -> None:
    models = [
        getattr(stacksapi, n)
        for n in _MODELS
        if isinstance(getattr(stacksapi, n), type)
        and issubclass(getattr(stacksapi, n), msgspec.Struct)
    ]
    assert len(models) >= 15
    for model in models:
        assert callable(model.to_dict), model
        assert callable(model.from_dict), model
    assert list(inspect.signature(stacksapi.Stack.to_dict).parameters) == ["self", "reveal_secrets"]


def test_runtime_and_model_have_names_that_cannot_be_mistaken() -> None:
    import stacksapi.stack as runtime

    assert "StackRunner" in runtime.__all__
    assert runtime.Stack is runtime.StackRunner  # the former name, kept as an alias
    assert runtime.StackRunner.__name__ == "StackRunner"
    assert stacksapi.Stack.__name__ == "Stack"  # the API model
    assert issubclass(stacksapi.Stack, msgspec.Struct)


STACK_PUBLIC = {
    "ACQUIRE_REFUSED", "DEFAULT_AGENT_COMMAND", "AdoptedJob", "AdoptedState", "AgentExit",
    "AsyncStacksClient",
    "CheckResult", "CheckableDispatcher", "check_dispatcher", "ConfigError", "DispatchDeferred",
    "DispatchError", "DispatchRequest", "DispatchSink",
    "Dispatcher", "EventCallback", "EventKind", "JsonLogFormatter", "ProvisioningSink", "Stack",
    "StackConfig", "StackEvent", "StackExit", "StackMetrics", "StackRunner", "SubprocessConfig",
    "SubprocessDispatcher", "TokenRefresher", "rule_matches", "run_stack", "serves_job",
}  # fmt: skip


def test_the_stack_runtime_public_names() -> None:
    import stacksapi.stack

    assert set(stacksapi.stack.__all__) == STACK_PUBLIC
    for name in stacksapi.stack.__all__:
        value = getattr(stacksapi.stack, name)
        if isinstance(value, type):
            assert value.__module__.startswith("stacksapi")
