"""``stacksapi kubernetes render`` shows the pod of every catalogue step, and why a bad one fails.

The stack's settings are written to a TOML file in agent-stack-k8s's names, the job is given as
``jobs get -o json`` prints it (command, env with ``BUILDKITE_PLUGINS``, agent query rules);
the Job the command prints is the golden one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from click.testing import CliRunner

from stacksapi.cli._main import cli

from .catalogue import MALFORMED, STEPS, Step_, request_for, validate

GOLDEN = Path(__file__).parent / "golden" / "pods"
BASE = {"image": "buildkite/agent:3.80",
        "agent_env": {"BUILDKITE_AGENT_ENDPOINT": "https://agent.buildkite.com/v3"}}  # fmt: skip


def toml_value(value: Any) -> str:
    """A TOML inline value (enough for settings: tables, arrays, strings, numbers, booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def render(tmp_path: Path, step: Step_) -> Any:
    lines = ['[stack]', 'key = "k8s"', 'queue_key = "kubernetes"',
             'dispatcher = "stacksapi.kubernetes:dispatcher"', "[kubernetes]"]  # fmt: skip
    lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in {**BASE, **step.config}.items()]
    config = tmp_path / "stack.toml"
    config.write_text("\n".join(lines) + "\n")
    request, details = request_for(step)
    job = {**msgspec.to_builtins(request.job), **msgspec.to_builtins(details)}
    return CliRunner().invoke(
        cli, ["kubernetes", "render", "--config", str(config), "-", "--namespace", "ci"],
        input=json.dumps(job), env={"STACKSAPI_STACK_KEY": None},
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(STEPS))
def test_render_prints_the_golden_pod(tmp_path: Path, name: str) -> None:
    done = render(tmp_path, STEPS[name])
    assert done.exit_code == 0, done.output
    kube_job = next(yaml.safe_load_all(done.output))
    validate(kube_job)
    # as a dispatch creates it: suspended until its Secret exists, with its dispatch id
    assert kube_job["spec"].pop("suspend") is True
    assert kube_job["metadata"]["annotations"].pop("stacksapi/dispatch-id")
    golden = yaml.safe_load((GOLDEN / f"{name}.yaml").read_text())
    assert kube_job == golden


@pytest.mark.parametrize("name", ["misspelt-field", "agent-command-patched"])
def test_render_says_why_a_malformed_step_would_fail(tmp_path: Path, name: str) -> None:
    settings, field = MALFORMED[name]
    done = render(tmp_path, Step_(plugin=settings))
    assert done.exit_code == 1
    assert "this job would not be dispatched" in done.output
    assert field in done.output
