"""What ``stacksapi kubernetes render`` prints is what the dispatcher creates.

The same stack config renders a job through the CLI and dispatches it to the Kubernetes fake;
the Job the fake received (as created: suspended until its Secret exists, with a dispatch id)
and its Secret must match the printed ones, field for field, except what only the cluster or
the moment of dispatch decides (uids, the dispatch id's value, the token).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from click.testing import CliRunner

from stacksapi.cli._main import cli

from .catalogue import STEPS, request_for
from .kube_fake import FakeKube
from .kube_helpers import NS, RecordingSink, dispatcher
from .test_render_cli_catalogue import toml_value

pytestmark = pytest.mark.anyio
DISPATCH_ID = "stacksapi/dispatch-id"


def rendered(tmp_path: Path, step: str, flags: tuple[str, ...], **settings: Any) -> Any:
    lines = ['[stack]', 'key = "k8s"', 'queue_key = "kubernetes"',
             'dispatcher = "stacksapi.kubernetes:dispatcher"', "[kubernetes]"]  # fmt: skip
    lines += [f"{k} = {toml_value(v)}" for k, v in settings.items()]
    config = tmp_path / "stack.toml"
    config.write_text("\n".join(lines) + "\n")
    request, details = request_for(STEPS[step])
    job = {**msgspec.to_builtins(request.job), **msgspec.to_builtins(details)}
    done = CliRunner().invoke(
        cli, ["kubernetes", "render", "--config", str(config), "-", "--namespace", NS, *flags],
        input=json.dumps(job), env={"STACKSAPI_STACK_KEY": None},
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return list(yaml.safe_load_all(done.output))


async def created(fake: FakeKube, tmp_path: Path, step: str, **settings: Any) -> Any:
    """The Job as the dispatcher first sent it, and its Secret."""
    sent: list[dict[str, Any]] = []
    record = fake._record

    def spy(plural: str, ns: str, kind: str, obj: dict[str, Any]) -> None:
        if plural == "jobs" and kind == "ADDED":
            sent.append(json.loads(json.dumps(obj)))
        record(plural, ns, kind, obj)

    fake._record = spy  # type: ignore[method-assign]
    d = dispatcher(fake, tmp_path, **settings)
    await d.start(RecordingSink())
    try:
        request, details = request_for(STEPS[step])
        await d.dispatch(dataclasses.replace(request, details=details))
    finally:
        await d.shutdown(0)
    secret = fake.items("secrets", NS)[0]
    return sent[0], secret


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items()
            if k in ("name", "namespace", "labels", "annotations")}  # fmt: skip
    annotations = dict(meta.get("annotations") or {})
    if DISPATCH_ID in annotations:
        annotations[DISPATCH_ID] = "…"
    meta["annotations"] = annotations
    owners = [{k: v for k, v in o.items() if k != "uid"}
              for o in obj["metadata"].get("ownerReferences") or []]  # fmt: skip
    body = {k: v for k, v in obj.items() if k not in ("metadata", "status", "data", "stringData")}
    return {"metadata": meta, "owners": owners, **body}


@pytest.mark.parametrize(
    ("server", "flags"),
    [((1, 28), ("--ordinary-sidecars",)), ((1, 29), ("--native-sidecars",)), ((1, 33), ())],
)
async def test_render_prints_the_objects_the_dispatcher_creates(
    fake_kube: FakeKube, tmp_path: Path, server: tuple[int, int], flags: tuple[str, ...]
) -> None:
    fake_kube.server_version = server
    step = STEPS["sidecars"].config
    settings = {"agent_image": "buildkite/agent:3.80",
                "default_sidecar_params": step["default-sidecar-params"],
                "pod_spec_patch": step["pod-spec-patch"]}  # fmt: skip
    job, secret = await created(fake_kube, tmp_path, "sidecars", **settings)
    printed_job, printed_secret = rendered(tmp_path, "sidecars", flags, **settings)
    assert comparable(printed_job) == comparable(job)
    assert printed_job["spec"]["suspend"] is True  # released once its Secret exists
    assert comparable(printed_secret) == comparable(secret)
    assert printed_secret["stringData"] == {"token": "**********"}
