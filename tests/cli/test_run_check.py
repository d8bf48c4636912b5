"""``stacksapi run --check``: the effective settings, and the dispatcher tried before registering.

Issue 9 item 8 and issue 12: the check shows the base URL the run would use and whether a token
is set (never the token), only the settings of the chosen dispatcher, and tries the dispatcher:
the subprocess command must resolve on PATH; the Kubernetes API must answer and the service
account may do what the dispatcher needs (SelfSubjectAccessReview). Exit 0 when all is well,
1 when the dispatcher check fails, 2 for a bad configuration. Nothing is registered.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from stacksapi.cli import cli

TOKEN = "bkct_run_check_secret_77"


def check(runner: CliRunner, config: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(cli, ["run", "--config", str(config), "--check"], env=env or {})
    output = result.stdout + result.stderr
    assert TOKEN not in output
    return result.exit_code, output


def test_check_fails_when_the_agent_command_is_not_on_path(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(
        "[stack]\nkey = 'x'\n[subprocess]\ncommand = ['no-such-agent-xyz', 'start']\n"
    )
    code, out = check(runner, config)
    assert code == 1
    assert "no-such-agent-xyz" in out
    assert "not found on PATH" in out


def test_check_shows_the_base_url_and_whether_a_token_is_set(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text("[stack]\nkey = 'x'\n[subprocess]\ncommand = ['sh', '-c', 'true']\n")
    env = {"BUILDKITE_CLUSTER_TOKEN": TOKEN, "STACKSAPI_BASE_URL": "http://127.0.0.1:9/v3/"}
    code, out = check(runner, config, env)
    assert code == 0, out
    assert "http://127.0.0.1:9/v3/" in out
    assert "token" in out
    assert "set" in out
    assert "resolves to" in out
    code, out = check(runner, config, {})
    assert code == 0, out
    assert "https://agent.buildkite.com/v3/" in out
    assert "not set" in out
