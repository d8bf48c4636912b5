"""The CLI never prints a token: not the cluster token, not a job acquisition token.

Against a real emulator over HTTP: ``tokens issue`` masks the issued tokens in JSON and in tables
unless ``--show-secrets`` (which the tests use to prove the tokens were there to leak), ``-vv``
logs carry none, and ``jobs get`` masks secret-looking environment values for generated
environments.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacksapi.cli import cli
from stacksapi.emulator import Emulator, EmulatorServer

from ._capture import capture_logs, leaks

STACK = "cli-secrets"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(rate_limits=False)) as running:
        yield running


def invoke(server: EmulatorServer, *args: str) -> Result:
    env = {"BUILDKITE_CLUSTER_TOKEN": server.token, "STACKSAPI_BASE_URL": server.base_url}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def _issue(server: EmulatorServer, *flags: str) -> tuple[Result, list[str], str]:
    """Reserve two new jobs and issue their tokens with ``flags``; the new tokens, the logs."""
    em = server.emulator
    jobs = [em.create_job(), em.create_job()]
    assert invoke(server, "register", STACK).exit_code == 0
    assert invoke(server, "reserve", "--stack", STACK, *jobs).exit_code == 0
    before = set(em.job_tokens)
    with capture_logs() as logs:
        result = invoke(server, *flags[:1], "tokens", "issue", "--stack", STACK, *jobs, *flags[1:])
    issued = sorted(set(em.job_tokens) - before)
    assert result.exit_code == 0, result.output
    assert len(issued) == 2
    return result, issued, logs.text


@pytest.mark.parametrize("verbosity", ["-v", "-vv"])
@pytest.mark.parametrize("output", ["json", "table"])
def test_tokens_issue_masks_in_every_format(
    server: EmulatorServer, output: str, verbosity: str
) -> None:
    result, issued, logs = _issue(server, verbosity, "-o", output)
    assert not leaks(result.output, server.token, *issued)
    assert not leaks(logs, server.token, *issued)
    if output == "json":
        shown = json.loads(result.stdout)["job_acquisition_tokens"]
        assert len(shown) == 2
        assert all(t["job_acquisition_token"] not in issued for t in shown)


@pytest.mark.parametrize("output", ["json", "table"])
def test_show_secrets_prints_them(server: EmulatorServer, output: str) -> None:
    """The control: the tokens the masking tests look for are the ones the server issued."""
    result, issued, _ = _issue(server, "-v", "-o", output, "--show-secrets")
    assert all(token in result.stdout for token in issued)
    assert server.token not in result.output


def test_errors_do_not_echo_the_token(server: EmulatorServer) -> None:
    wrong = "bkct_wrong_token_for_this_emulator_0123456789"
    with capture_logs() as logs:
        result = CliRunner().invoke(
            cli, ["-vv", "token", "--token", wrong, "--base-url", server.base_url]
        )
    assert result.exit_code == 1
    assert "401" in result.stderr
    assert not leaks(result.output, wrong, server.token)
    assert not leaks(logs.text, wrong, server.token)


_TOKEN_TEXT = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=12
)
_SECRET_NAMES = st.sampled_from(["API_TOKEN", "DB_PASSWORD", "MY_SECRET", "PRIVATE_KEY", "a_token"])
_PLAIN_NAMES = st.sampled_from(["REGION", "GIT_URL", "NOTE", "CI"])
_SEPARATORS = st.sampled_from(["", "_", " ", "=", ":", "/", '"', ",", "@", "\n"])


@st.composite
def _environments(draw: st.DrawFn) -> tuple[dict[str, str], list[str]]:
    """A job environment and the secrets in it: values of secret-named variables, and
    Buildkite-shaped tokens inside ordinary values (URLs, notes)."""
    env: dict[str, str] = {}
    secrets: list[str] = []
    for name in draw(st.lists(_SECRET_NAMES, unique=True, max_size=3)):
        value = draw(_TOKEN_TEXT)
        env[name] = value
        secrets.append(value)
    for name in draw(st.lists(_PLAIN_NAMES, unique=True, max_size=3)):
        prefix = draw(st.sampled_from(["bkct_", "bkjat_", "bkaa_"]))
        token = prefix + draw(_TOKEN_TEXT)
        before, after = draw(st.text(max_size=8)), draw(st.text(max_size=8))
        sep = draw(_SEPARATORS)
        if not sep and before[-1:].isalnum():
            sep = " "  # a token glued to the end of a word is not a token
        env[name] = before + sep + token + draw(_SEPARATORS) + after
        secrets.append(token)
    return env, secrets


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=_environments(), output=st.sampled_from(["json", "table"]))
def test_jobs_get_masks_secret_env_values(
    server: EmulatorServer, case: tuple[dict[str, str], list[str]], output: str
) -> None:
    env, secrets = case
    job = server.emulator.create_job(env=env)
    if STACK not in {s.key for s in server.emulator.list_stacks()}:
        assert invoke(server, "register", STACK).exit_code == 0
    result = invoke(server, "jobs", "get", "--stack", STACK, job, "-o", output)
    assert result.exit_code == 0, result.output
    assert not leaks(result.output, server.token, *secrets)
