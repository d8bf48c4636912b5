"""StackConfig: defaults, TOML loading, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacksapi.stack import DEFAULT_AGENT_COMMAND, ConfigError, StackConfig, SubprocessConfig


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    cfg = StackConfig(key="s1")
    assert cfg.queue_key == "__default__"
    assert cfg.max_in_flight == 10
    assert cfg.poll_interval == 1.0
    assert cfg.issue_tokens is True
    assert cfg.subprocess.command == DEFAULT_AGENT_COMMAND
    assert cfg.renew_margin == cfg.reservation_expiry_seconds / 3


def test_from_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[stack]
key = "local-1"
queue_key = "builders"
max_in_flight = 4
poll_interval = 0.5
tags = { os = "linux" }
metadata = { team = "ci" }

[subprocess]
command = "python -m my_agent --job {job_uuid}"
env = { BUILDKITE_AGENT_ENDPOINT = "http://127.0.0.1:1/v3" }
""",
    )
    cfg = StackConfig.from_toml(path)
    assert cfg.key == "local-1"
    assert cfg.queue_key == "builders"
    assert cfg.max_in_flight == 4
    assert dict(cfg.tags) == {"os": "linux"}
    assert dict(cfg.metadata) == {"team": "ci"}
    assert cfg.subprocess.command == ("python", "-m", "my_agent", "--job", "{job_uuid}")
    assert cfg.subprocess.env["BUILDKITE_AGENT_ENDPOINT"] == "http://127.0.0.1:1/v3"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[stack]\nkey = "a"\nmax_in_flihgt = 3\n', "stack.max_in_flihgt", "did you mean"),
        ('[stack]\nkey = "a"\nmax_in_flight = "3"\n', "stack.max_in_flight", "integer"),
        ('[stack]\nkey = "a"\nmax_in_flight = 0\n', "stack.max_in_flight", "1 to 100000"),
        ('[stack]\nkey = "a"\npoll_interval = -1\n', "stack.poll_interval", "number"),
        ('[stack]\nkey = "a"\nissue_tokens = "yes"\n', "stack.issue_tokens", "true or false"),
        ('[stack]\nkey = "a b"\n', "stack.key", "A-Za-z0-9"),
        ("[stack]\nqueue_key = 'q'\n", "stack.key", "required"),
        ('[stack]\nkey = "a"\n[subprocess]\ncommand = []\n', "subprocess.command", "non-empty"),
        ('[stack]\nkey = "a"\n[subprocess]\ncommand = "x {nope}"\n', "subprocess.command", "nope"),
        ('[stack]\nkey = "a"\n[subprocess]\nbogus = 1\n', "subprocess.bogus", "unknown"),
        ('[stack]\nkey = "a"\n[other]\n', "other", "unknown"),
        ('[stack]\nkey = "a"\npage_size = 5000\n', "stack.page_size", "1000"),
        ('[stack]\nkey = "a"\nreservation_expiry_seconds = 9000\n', "stack.reser", "3600"),
        ("[stack\n", "config", "not valid TOML"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        StackConfig.from_toml(write(tmp_path, text))
    assert info.value.key.startswith(key)
    assert words in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        StackConfig.from_toml(tmp_path / "absent.toml")


def test_tokens_cannot_be_set_through_env_table() -> None:
    with pytest.raises(ConfigError, match="BUILDKITE_AGENT_TOKEN"):
        SubprocessConfig(env={"BUILDKITE_AGENT_TOKEN": "x"})


def test_with_overrides_ignores_none_and_validates() -> None:
    cfg = StackConfig(key="a").with_overrides(max_in_flight=7, poll_interval=None)
    assert cfg.max_in_flight == 7
    assert cfg.poll_interval == 1.0
    with pytest.raises(ConfigError, match="max_in_flight"):
        cfg.with_overrides(max_in_flight=-1)
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.with_overrides(nonsense=1)
    sub = cfg.with_overrides(subprocess={"command": ["true"]})
    assert sub.subprocess.command == ("true",)


def test_with_env() -> None:
    env = {
        "STACKSAPI_STACK_MAX_IN_FLIGHT": "3",
        "STACKSAPI_STACK_ISSUE_TOKENS": "false",
        "STACKSAPI_STACK_QUEUE_KEY": "q2",
    }
    cfg = StackConfig(key="a").with_env(env)
    assert (cfg.max_in_flight, cfg.issue_tokens, cfg.queue_key) == (3, False, "q2")
    with pytest.raises(ConfigError, match=r"stack\.poll_interval"):
        StackConfig(key="a").with_env({"STACKSAPI_STACK_POLL_INTERVAL": "soon"})


def test_config_is_frozen() -> None:
    cfg = StackConfig(key="a", tags={"os": "linux"})
    with pytest.raises(AttributeError):
        cfg.key = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.tags["os"] = "mac"  # type: ignore[index]
