"""``stacksapi run``: configuration problems are one line and exit 2, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stacksapi.cli import cli

TOKEN = "bkct_run_config_secret_42"


def run(runner: CliRunner, config: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        cli,
        ["run", "--config", str(config), *args],
        env={"BUILDKITE_CLUSTER_TOKEN": TOKEN, "STACKSAPI_BASE_URL": "http://127.0.0.1:9/v3/"},
    )
    assert TOKEN not in result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[stack\nkey = 'x'\n", "is not valid TOML"),
        ("[stack]\nkey = 'x'\nmax_in_flite = 3\n", "did you mean stack.max_in_flight?"),
        ("[stack]\nkey = 'x'\nmax_in_flight = 'many'\n", "stack.max_in_flight: must be an integer"),
        ("[stack]\nkey = 'x'\npoll_interval = -1\n", "stack.poll_interval"),
        ("[stack]\nqueue_key = 'linux'\n", "stack.key: is required"),
        ("[subprocess]\ncommand = 'x'\n", "[stack] table"),
        ("[stack]\nkey = 'x'\n[subprocess]\ncommand = ['a {nope}']\n", "subprocess.command"),
    ],
    ids=[
        "syntax",
        "unknown-key",
        "wrong-type",
        "out-of-range",
        "missing-key",
        "no-stack",
        "bad-template",
    ],
)
def test_bad_config_is_one_line_exit_2(
    runner: CliRunner, tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(text)
    code, _out, err = run(runner, config)
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: bad configuration: ")
    assert expected in line


def test_missing_file_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    code, _out, err = run(runner, tmp_path / "nope.toml")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "cannot read" in line


def test_bad_override_flag_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "stack.toml"
    config.write_text("[stack]\nkey = 'ok'\n")
    code, _out, err = run(runner, config, "--max-in-flight", "0")
    assert code == 2
    assert "stack.max_in_flight" in err


def test_check_prints_the_effective_config(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(
        "[stack]\nkey = 'edge'\nqueue_key = 'linux'\n"
        "[subprocess]\ncommand = ['sh']\n"
        "env = { DEPLOY_TOKEN = 'do-not-print-me', REGION = 'eu' }\n"
    )
    code, out, _err = run(runner, config, "--check", "--max-in-flight", "7", "-o", "json")
    assert code == 2  # -o is not a run option: usage error
    code, out, _err = run(runner, config, "--check", "--max-in-flight", "7")
    assert code == 0
    assert "edge" in out
    assert "stack.max_in_flight" in out
    assert "7" in out
    assert "do-not-print-me" not in out
    assert "REGION=eu" in out


def test_missing_token_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "stack.toml"
    config.write_text("[stack]\nkey = 'ok'\n")
    result = runner.invoke(cli, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "no token" in result.stderr


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_bad_dispatcher_table_is_exit_2(runner: CliRunner, tmp_path: Path, check: bool) -> None:
    """The table of the dispatcher named by stack.dispatcher is checked at load, by --check too."""
    pytest.importorskip("lightkube")
    config = tmp_path / "stack.toml"
    config.write_text(
        "[stack]\nkey = 'k8s'\ndispatcher = 'stacksapi.kubernetes:dispatcher'\n"
        "[kubernetes]\npending_timeout = 0\n"
    )
    code, _out, err = run(runner, config, *(["--check"] if check else []))
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: bad configuration: kubernetes.pending_timeout: must be")


def test_unloadable_dispatcher_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "stack.toml"
    config.write_text("[stack]\nkey = 'x'\ndispatcher = 'no_such_module_here:make'\n")
    code, _out, err = run(runner, config, "--check")
    assert code == 2
    assert "stack.dispatcher: cannot load" in err


def test_drain_makes_the_stop_final_and_a_bad_policy_is_named(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text("[stack]\nkey = 'edge'\n[subprocess]\ncommand = ['sh']\n")  # on PATH
    code, out, _err = run(runner, config, "--check", "--drain")
    assert code == 0
    assert "stack.on_shutdown" in out
    assert "drain" in out
    config.write_text("[stack]\nkey = 'edge'\non_shutdown = 'later'\n")
    code, _out, err = run(runner, config, "--check")
    assert code == 2
    assert "stack.on_shutdown: must be one of leave, drain" in err
