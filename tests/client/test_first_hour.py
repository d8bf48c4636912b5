"""What a new user meets first, against the emulator over real HTTP: where the client sends its
requests (argument, then ``STACKSAPI_BASE_URL``, then Buildkite), ``max_retries=``, and results
that turn into plain data and back."""

from __future__ import annotations

import json
from typing import Any

import pytest

import stacksapi
from stacksapi import (
    DEFAULT_QUEUE_KEY,
    AsyncClient,
    Client,
    JobAcquisitionTokens,
    RetryPolicy,
    ScheduledJobsPage,
    ServerError,
    Stack,
)
from stacksapi.emulator import EmulatorServer, FaultConfig, FaultRates

_BUILDKITE = "https://agent.buildkite.com/v3/"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("STACKSAPI_BASE_URL", raising=False)
    monkeypatch.delenv("BUILDKITE_CLUSTER_TOKEN", raising=False)
    return monkeypatch


# --- base URL: argument, then STACKSAPI_BASE_URL, then Buildkite --------------------------------


def test_client_reads_base_url_from_the_environment(no_env: pytest.MonkeyPatch) -> None:
    with EmulatorServer() as srv:
        # Exactly what `stacksapi emulator serve` prints for the user to paste.
        no_env.setenv("STACKSAPI_BASE_URL", srv.base_url)
        no_env.setenv("BUILDKITE_CLUSTER_TOKEN", srv.token)
        with Client(retry=RetryPolicy(max_attempts=1)) as client:
            assert client.get_token().is_clustered
            client.register_stack("env-stack", queue_key=DEFAULT_QUEUE_KEY)
        assert srv.emulator.stacks["env-stack"].key == "env-stack"


@pytest.mark.anyio
async def test_async_client_reads_base_url_from_the_environment(
    no_env: pytest.MonkeyPatch,
) -> None:
    with EmulatorServer() as srv:
        no_env.setenv("STACKSAPI_BASE_URL", srv.base_url)
        async with AsyncClient(srv.token, retry=RetryPolicy(max_attempts=1)) as client:
            assert (await client.get_token()).is_clustered


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_base_url_order_argument_then_variable_then_buildkite(
    no_env: pytest.MonkeyPatch, cls: type[Client] | type[AsyncClient]
) -> None:
    assert _base_url(cls("bkct_x")) == _BUILDKITE
    no_env.setenv("STACKSAPI_BASE_URL", "http://127.0.0.1:9/v3")
    assert _base_url(cls("bkct_x")) == "http://127.0.0.1:9/v3/"
    assert _base_url(cls("bkct_x", base_url="http://localhost:7/v3/")) == "http://localhost:7/v3/"
    no_env.setenv("STACKSAPI_BASE_URL", "")  # empty counts as unset
    assert _base_url(cls("bkct_x")) == _BUILDKITE


def test_bad_base_url_variable_names_the_variable(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("STACKSAPI_BASE_URL", "agent.example.com/v3")
    with pytest.raises(stacksapi.RequestValidationError, match="STACKSAPI_BASE_URL"):
        Client("bkct_x")


def _base_url(client: Client | AsyncClient) -> str:
    url = repr(client).split("base_url=", 1)[1].split("'")[1]
    return url


# --- max_retries= -------------------------------------------------------------------------------


def _always_500() -> FaultConfig:
    return FaultConfig(per_endpoint={"get_token": FaultRates(error_500=1.0)})


@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (2, 3)])
def test_max_retries_counts_retries_after_the_first_try(max_retries: int, attempts: int) -> None:
    faults = _always_500()
    with (
        EmulatorServer(middleware=[faults.middleware()]) as srv,
        Client(srv.token, base_url=srv.base_url, max_retries=max_retries) as client,
    ):
        client._sleep = lambda _s: None  # the waits are the retry tests' business
        with pytest.raises(ServerError):
            client.get_token()
    assert faults.counts() == {"get_token": {"500": attempts}}


@pytest.mark.anyio
async def test_async_max_retries() -> None:
    faults = _always_500()
    with EmulatorServer(middleware=[faults.middleware()]) as srv:
        async with AsyncClient(srv.token, base_url=srv.base_url, max_retries=1) as client:

            async def no_wait(_s: float) -> None:
                return None

            client._sleep = no_wait
            with pytest.raises(ServerError):
                await client.get_token()
    assert faults.counts() == {"get_token": {"500": 2}}


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_max_retries_is_checked(cls: type[Client] | type[AsyncClient]) -> None:
    with pytest.raises(ValueError, match=r"max_retries: .*>= 0"):
        cls("bkct_x", max_retries=-1)
    with pytest.raises(TypeError, match="max_retries"):
        cls("bkct_x", max_retries="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="either retry= or max_retries="):
        cls("bkct_x", retry=RetryPolicy(), max_retries=2)


# --- plain data and back ------------------------------------------------------------------------


def test_results_become_plain_data_and_back() -> None:
    with EmulatorServer() as srv, Client(srv.token, base_url=srv.base_url) as client:
        ids = srv.emulator.create_jobs(2, queue=DEFAULT_QUEUE_KEY)
        stack = client.register_stack("plain", queue_key=DEFAULT_QUEUE_KEY, metadata={"a": "b"})
        page = client.list_scheduled_jobs("plain", queue_key=DEFAULT_QUEUE_KEY)
        client.batch_reserve_jobs("plain", ids)
        tokens = client.issue_job_acquisition_tokens("plain", ids)

    plain_stack = stack.to_dict()
    assert plain_stack["key"] == "plain"
    assert plain_stack["metadata"] == {"a": "b"}
    assert Stack.from_dict(json.loads(json.dumps(plain_stack))) == stack

    plain_page = page.to_dict()
    text = json.dumps(plain_page)  # only JSON types: datetimes became ISO 8601 strings
    assert {j["id"] for j in plain_page["jobs"]} == set(ids)
    assert isinstance(plain_page["jobs"][0]["scheduled_at"], str)
    assert ScheduledJobsPage.from_dict(json.loads(text)) == page

    # Secrets stay masked unless asked for; a masked one cannot silently come back as the value.
    masked = tokens.to_dict()
    secret = tokens.job_acquisition_tokens[0].job_acquisition_token.get_secret_value()
    assert secret not in json.dumps(masked)
    with pytest.raises(ValueError, match="job_acquisition_token"):
        JobAcquisitionTokens.from_dict(masked)
    revealed = tokens.to_dict(reveal_secrets=True)
    assert secret in json.dumps(revealed)
    assert JobAcquisitionTokens.from_dict(revealed) == tokens


def test_from_dict_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match=r"jobs\[0\]\.scheduled_at"):
        ScheduledJobsPage.from_dict({"jobs": [{"id": "x", "scheduled_at": "yesterday"}]})
    with pytest.raises(ValueError, match="key"):
        Stack.from_dict({"metadata": {}})
    data: Any = ["not", "a", "dict"]
    with pytest.raises(ValueError, match="object"):
        Stack.from_dict(data)
