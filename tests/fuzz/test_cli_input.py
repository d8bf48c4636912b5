"""The CLI given bad flags and bad config files: one clear line on stderr and exit code 2.

Configs are generated two ways: arbitrary text and bytes (TOML syntax errors, bad UTF-8), and
well-formed TOML whose tables hold known keys, misspelt keys and values of every TOML type,
in and out of range. ``run --check`` validates without sending anything, so each case is a pure
function of the file: exit 0 with the printed configuration, or exit 2 with one ``error:`` line.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacksapi.cli import cli
from stacksapi.stack import StackConfig, SubprocessConfig

from ._cases import examples, record
from ._strategies import EDGE_INTS, ODD_TEXT

TOKEN = "bkct_cli_fuzz_secret_0123456789"
ENV = {"BUILDKITE_CLUSTER_TOKEN": TOKEN, "STACKSAPI_BASE_URL": "http://127.0.0.1:9/v3/"}
FUZZ = settings(
    max_examples=examples(100),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_STACK_KEYS = sorted(f for f in StackConfig.__dataclass_fields__ if f not in ("subprocess",))
_SUB_KEYS = sorted(SubprocessConfig.__dataclass_fields__)


def _toml_value(value: Any) -> str:
    """One TOML value (inline tables and arrays for the nested ones)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string, escapes included
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
    return "{ " + items + " }"


_TOML_SCALARS = st.one_of(
    st.booleans(),
    EDGE_INTS,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    ODD_TEXT,
    st.sampled_from(["my-stack", "linux", "custom", "x:y", "http://example.com/v3/", "{job_uuid}"]),
    st.datetimes(timezones=st.just(dt.UTC)),
)
_TOML_VALUES = st.recursive(
    _TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _table(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    misspelt = st.sampled_from(keys).map(lambda k: k[:-1] + "_")
    return st.dictionaries(st.one_of(st.sampled_from(keys), misspelt), _TOML_VALUES, max_size=4)


@st.composite
def _documents(draw: st.DrawFn) -> str:
    stack = draw(_table(_STACK_KEYS))
    if draw(st.booleans()):
        stack.setdefault("key", "fuzz-stack")
    lines = ["[stack]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in stack.items())]
    if draw(st.booleans()):
        sub = draw(_table(_SUB_KEYS))
        lines += ["[subprocess]", *(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in sub.items())]
    if draw(st.booleans()):
        lines += [f"[{json.dumps(draw(ODD_TEXT))}]", "a = 1"]
    return "\n".join(lines) + "\n"


def _check_one_line(code: int, stderr: str, output: str) -> None:
    assert TOKEN not in output
    assert code in (0, 1, 2), (code, stderr)
    if code == 1:  # a valid config whose dispatcher check failed (the agent is not on PATH)
        assert "dispatcher check" in output, output
        assert "FAIL" in output, output
    if code == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith("error: "), stderr


def _run_check(config: Path) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(cli, ["run", "--config", str(config), "--check"], env=ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stderr, result.output


@FUZZ
@given(document=_documents())
def test_generated_toml_configs(tmp_path_factory: pytest.TempPathFactory, document: str) -> None:
    record("cli run --config (well-formed TOML)")
    path = tmp_path_factory.mktemp("cfg") / "stack.toml"
    path.write_text(document, encoding="utf-8")
    code, err, out = _run_check(path)
    _check_one_line(code, err, out)
    if code == 2:
        assert "bad configuration" in err


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), ODD_TEXT.map(lambda s: s.encode())))
def test_arbitrary_config_bytes(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    record("cli run --config (arbitrary bytes)")
    path = tmp_path_factory.mktemp("cfg") / "stack.toml"
    path.write_bytes(b"[stack]\n" + content if content[:1] == b"k" else content)
    code, err, out = _run_check(path)
    _check_one_line(code, err, out)


_ENV_VALUES = st.one_of(
    ODD_TEXT,
    EDGE_INTS.map(str),
    st.floats().map(repr),
    st.sampled_from(["", "yes", "no", "TRUE", "1e400", "-0", "0x10", "1_000", " 5 ", "nan"]),
).map(lambda s: s.replace("\x00", ""))  # an environment value cannot hold NUL


@FUZZ
@given(values=st.dictionaries(st.sampled_from(_STACK_KEYS), _ENV_VALUES, min_size=1, max_size=3))
def test_stack_settings_from_the_environment(
    tmp_path_factory: pytest.TempPathFactory, values: dict[str, str]
) -> None:
    """``STACKSAPI_STACK_<KEY>`` variables override the file: bad ones are exit 2, one line."""
    record("cli run STACKSAPI_STACK_* variables")
    path = tmp_path_factory.mktemp("cfg") / "stack.toml"
    path.write_text("[stack]\nkey = 'fuzz-stack'\n")
    env = {**ENV, **{f"STACKSAPI_STACK_{k.upper()}": v for k, v in values.items()}}
    result = CliRunner().invoke(cli, ["run", "--config", str(path), "--check"], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    _check_one_line(result.exit_code, result.stderr, result.output)


_COMMANDS = [
    ["register", "s"],
    ["deregister", "s"],
    ["jobs", "list", "--stack", "s"],
    ["jobs", "get", "--stack", "s"],
    ["jobs", "states", "--stack", "s"],
    ["reserve", "--stack", "s"],
    ["tokens", "issue", "--stack", "s"],
    ["finish", "--stack", "s"],
    ["notify", "--stack", "s"],
    ["token"],
    ["run"],
]
_FLAG_WORDS = st.one_of(
    st.sampled_from(
        [
            "--nope",
            "-z",
            "--limit",
            "--expiry",
            "--timeout",
            "--max-attempts",
            "--output",
            "-o",
            "--exit-status",
            "--timestamp",
            "--lifetime",
            "-m",
            "--type",
            "--config",
            "--",
            "-",
        ]
    ),
    ODD_TEXT.filter(lambda s: s not in ("-h", "--help", "-V", "--version")),
    EDGE_INTS.map(str),
)


@FUZZ
@given(command=st.sampled_from(_COMMANDS), words=st.lists(_FLAG_WORDS, min_size=1, max_size=4))
def test_bad_flags(command: list[str], words: list[str]) -> None:
    """No token is set, so a command line that parses ends in "no token": exit 2 either way."""
    record(f"cli {' '.join(w for w in command if w not in ('s', '--stack'))} (bad flags)")
    runner = CliRunner()
    env = {"BUILDKITE_CLUSTER_TOKEN": None, "STACKSAPI_BASE_URL": ENV["STACKSAPI_BASE_URL"]}
    result = runner.invoke(cli, [*command, *words], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")


def test_regression_huge_integer_for_a_float_key_is_exit_2(tmp_path: Path) -> None:
    """Found by fuzzing: an integer past 1e308 for a float key escaped as OverflowError (exit 1)."""
    path = tmp_path / "stack.toml"
    path.write_text(f"[stack]\nkey = 'a'\npoll_interval = {10**400}\n")
    code, err, out = _run_check(path)
    _check_one_line(code, err, out)
    assert code == 2
    assert "stack.poll_interval" in err
