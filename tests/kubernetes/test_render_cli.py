"""``stacksapi kubernetes render`` as a real process, with jobs from the emulator.

The job comes from what ``stacksapi jobs get -o json`` printed, from stdin, or by uuid from the
live server (then with its pipeline and build, as the stack would see it). The output is the
Job and Secret the dispatcher would create, with the token masked; every object validates
strictly against the Kubernetes schemas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from stacksapi import Build, Client, Pipeline
from stacksapi._models import DEFAULT_QUEUE_KEY, MASKED
from stacksapi.emulator import EmulatorServer
from stacksapi.emulator._jobs import JobSpec

CLI = [sys.executable, "-m", "stacksapi.cli"]
KEY = "render-stack"


def cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE_", "STACKSAPI_"))}
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=60,
        env={**clean, **env}, check=False,
    )  # fmt: skip


def write_config(tmp_path: Path, extra: str = "", stack_extra: str = "") -> Path:
    path = tmp_path / "stack.toml"
    path.write_text(
        f'[stack]\nkey = "{KEY}"\nqueue_key = "{DEFAULT_QUEUE_KEY}"\n{stack_extra}'
        'dispatcher = "stacksapi.kubernetes:dispatcher"\n'
        '[kubernetes]\nnamespace = "builds"\nagent_image = "buildkite/agent:3.90"\n'
        'labels = { team = "platform" }\n'
        'pod_template = """\nspec:\n  containers:\n  - name: agent\n'
        '    resources: {requests: {cpu: "2"}}\n"""\n' + extra
    )
    return path


def validate(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, latest_version(), strict=True)


def first(text: str) -> Any:
    return next(yaml.safe_load_all(text))


@pytest.fixture
def job(stacks_emulator: EmulatorServer) -> str:
    with Client(stacks_emulator.token, base_url=stacks_emulator.base_url) as client:
        client.register_stack(KEY, queue_key=DEFAULT_QUEUE_KEY)
    spec = JobSpec(
        pipeline=Pipeline(slug="web-app", uuid="0190f1e2-0000-7000-8000-00000000beef"),
        build=Build(number=42, branch="main"),
        env={"BUILDKITE_PIPELINE_SLUG": "web-app"},
        command="make test",
    )
    return stacks_emulator.emulator.create_job(spec)


def test_renders_the_job_and_secret_from_jobs_get_output(
    stacks_emulator: EmulatorServer, job: str, tmp_path: Path
) -> None:
    env = {"BUILDKITE_CLUSTER_TOKEN": stacks_emulator.token}
    got = cli("jobs", "get", "--stack", KEY, job, "-o", "json",
              "--base-url", stacks_emulator.base_url, **env)  # fmt: skip
    assert got.returncode == 0, got.stderr
    job_json = tmp_path / "job.json"
    job_json.write_text(got.stdout)
    config = write_config(tmp_path)

    done = cli("kubernetes", "render", "--config", str(config), str(job_json))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"# The objects stack {KEY} would create for job {job}")
    objects = list(yaml.safe_load_all(done.stdout))
    assert [o["kind"] for o in objects] == ["Job", "Secret"]
    validate(objects)
    kube_job, secret = objects
    assert kube_job["metadata"]["name"] == f"buildkite-{job}"
    assert kube_job["metadata"]["namespace"] == "builds"
    assert kube_job["metadata"]["labels"]["team"] == "platform"
    assert kube_job["metadata"]["labels"]["stacksapi/stack-key"] == KEY
    by_name = {c["name"]: c for c in kube_job["spec"]["template"]["spec"]["containers"]}
    assert list(by_name) == ["container-0", "agent", "checkout"]
    command = {e["name"]: e.get("value") for e in by_name["container-0"]["env"]}
    assert command["BUILDKITE_COMMAND"] == "make test"  # the job's own command
    agent = by_name["agent"]
    assert agent["image"] == "buildkite/agent:3.90"
    assert agent["resources"] == {"requests": {"cpu": "2"}}
    env_vars = {e["name"]: e for e in agent["env"]}
    assert env_vars["BUILDKITE_AGENT_ACQUIRE_JOB"]["value"] == job
    ref = env_vars["BUILDKITE_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "token"}
    assert secret["stringData"] == {"token": MASKED}
    assert "data" not in secret
    assert "bkjat_" not in done.stdout
    assert stacks_emulator.emulator.job_state(job) == "scheduled"  # nothing reserved or issued


def test_renders_a_job_by_uuid_from_the_live_server_with_its_pipeline(
    stacks_emulator: EmulatorServer, job: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    done = cli("kubernetes", "render", "--config", str(config), job, "-o", "json",
               "--base-url", stacks_emulator.base_url,
               BUILDKITE_CLUSTER_TOKEN=stacks_emulator.token)  # fmt: skip
    assert done.returncode == 0, done.stderr
    objects = json.loads(done.stdout)
    validate(objects)
    labels = objects[0]["metadata"]["labels"]
    assert labels["stacksapi/pipeline"] == "web-app"
    assert labels["stacksapi/build-number"] == "42"
    assert objects[0]["metadata"]["annotations"]["stacksapi/build-branch"] == "main"
    assert stacks_emulator.token not in done.stdout + done.stderr
    assert stacks_emulator.emulator.job_state(job) == "scheduled"


def test_a_config_change_shows_in_the_output(tmp_path: Path) -> None:
    """What operators use it for: the same job, before and after a change, from stdin."""
    job = json.dumps({"id": "0190f1e2-1111-7000-8000-000000000001", "command": "x", "env": {}})
    before = cli("kubernetes", "render", "--config", str(write_config(tmp_path)), "-",
                 stdin=job)  # fmt: skip
    changed = write_config(tmp_path, 'job_name_prefix = "ci-"\nactive_deadline_seconds = 600\n')
    after = cli("kubernetes", "render", "--config", str(changed), "-", "--key", "replica-1",
                stdin=job)  # fmt: skip
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    old, new = first(before.stdout), first(after.stdout)
    assert old["metadata"]["name"] == "buildkite-0190f1e2-1111-7000-8000-000000000001"
    assert new["metadata"]["name"] == "ci-0190f1e2-1111-7000-8000-000000000001"
    assert (old["spec"]["activeDeadlineSeconds"], new["spec"]["activeDeadlineSeconds"]) == (
        21600,
        600,
    )
    assert new["metadata"]["labels"]["stacksapi/stack-key"] == "replica-1"
    from_env = cli("kubernetes", "render", "--config", str(changed), "-", stdin=job,
                   STACKSAPI_STACK_KEY="kubernetes-stacksapi-0")  # fmt: skip
    key = first(from_env.stdout)["metadata"]["labels"]["stacksapi/stack-key"]
    assert key == "kubernetes-stacksapi-0"  # the key a chart replica runs under


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        ("not json", 2, "is not JSON"),
        ('{"command": "x"}', 2, "expected a job object with an 'id'"),
        ('{"id": "j1", "scheduled_at": "yesterday"}', 2, "not a job:"),
        ("no-kubernetes", 2, "bad configuration: kubernetes: no [kubernetes] table"),
        ("bad-key", 2, "bad configuration: kubernetes.pending_timeout"),
        ("no-tokens", 1, "this job would not be dispatched: no job acquisition token"),
        ("no-dispatcher", 2, 'needs stack.dispatcher = "stacksapi.kubernetes:dispatcher"'),
    ],
)
def test_bad_input_is_one_line_with_the_reason(
    tmp_path: Path, setup: str, code: int, message: str
) -> None:
    job = '{"id": "0190f1e2-1111-7000-8000-000000000002"}'
    config = write_config(tmp_path)
    if setup == "no-kubernetes":
        config.write_text(f'[stack]\nkey = "{KEY}"\n')
    elif setup == "bad-key":
        config = write_config(tmp_path, "pending_timeout = 0\n")
    elif setup == "no-dispatcher":  # without it, [kubernetes] is no table the stack knows
        config.write_text(f'[stack]\nkey = "{KEY}"\n[kubernetes]\nnamespace = "ci"\n')
    elif setup == "no-tokens":
        config = write_config(tmp_path, stack_extra="issue_tokens = false\n")
    else:
        job = setup
    done = cli("kubernetes", "render", "--config", str(config), "-", stdin=job)
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr, done.stderr


def test_without_issued_tokens_the_job_is_not_suspended_and_has_no_secret(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'agent_token_secret = "agent-token"\n',
                          stack_extra="issue_tokens = false\n")  # fmt: skip
    job = '{"id": "0190f1e2-1111-7000-8000-000000000003"}'
    done = cli("kubernetes", "render", "--config", str(config), "-", stdin=job)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0]
    assert "native sidecars" in header
    assert "released" not in header  # nothing to wait for: the pod reads the named Secret
    objects = list(yaml.safe_load_all(done.stdout))
    assert [o["kind"] for o in objects] == ["Job"]
    assert "suspend" not in objects[0]["spec"]
    validate(objects)


def test_takes_the_stack_and_a_short_job_id_as_every_command_does(
    stacks_emulator: EmulatorServer, job: str, tmp_path: Path
) -> None:
    """``--stack`` beside ``--key``, and the 8 characters ``jobs list`` shows, as elsewhere."""
    config = write_config(tmp_path)
    done = cli("kubernetes", "render", "--config", str(config), "--stack", "other-key",
               job[:8], "-o", "json", "--base-url", stacks_emulator.base_url,
               BUILDKITE_CLUSTER_TOKEN=stacks_emulator.token)  # fmt: skip
    # The stack is named other-key (not registered): the short id is looked up for it and
    # not found; with the config's key it is.
    assert done.returncode == 1, done.stderr
    assert "other-key" in done.stderr
    done = cli("kubernetes", "render", "--config", str(config), "--stack", KEY, job[:8],
               "-o", "json", "--base-url", stacks_emulator.base_url,
               BUILDKITE_CLUSTER_TOKEN=stacks_emulator.token)  # fmt: skip
    assert done.returncode == 0, done.stderr
    kube_job = json.loads(done.stdout)[0]
    assert kube_job["metadata"]["name"] == f"buildkite-{job}"
    assert kube_job["metadata"]["labels"]["stacksapi/stack-key"] == KEY


def test_plain_http_off_loopback_is_allowed_with_the_flag_the_error_names(
    stacks_emulator: EmulatorServer, job: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    # 0.0.0.0 is not a loopback address, yet connecting to it reaches this machine.
    url = stacks_emulator.base_url.replace("127.0.0.1", "0.0.0.0")
    args = ("kubernetes", "render", "--config", str(config), job, "--base-url", url)
    refused = cli(*args, BUILDKITE_CLUSTER_TOKEN=stacks_emulator.token)
    assert refused.returncode == 2
    assert "--allow-insecure-http" in refused.stderr
    allowed = cli(*args, "--allow-insecure-http", BUILDKITE_CLUSTER_TOKEN=stacks_emulator.token)
    assert allowed.returncode == 0, allowed.stderr
