"""Regenerate the raw manifests under ``deploy/`` from the Helm chart, so they cannot drift.

``helm template`` renders ``charts/stacksapi`` with ``charts/stacksapi/ci/deploy-values.yaml``
(release ``buildkite-stack`` in namespace ``buildkite``); each template becomes one file of the
same name in ``deploy/``. ``--check`` writes nothing and exits 1 when a file differs (CI and
``tests/chart`` run it); ``--out DIR`` writes elsewhere.

    python3 scripts/render_deploy.py            # after changing the chart: commit deploy/ too
    python3 scripts/render_deploy.py --check
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from fetch_helm import FetchError, fetch

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "stacksapi"
VALUES = CHART / "ci" / "deploy-values.yaml"
DEPLOY = ROOT / "deploy"
RELEASE, NAMESPACE = "buildkite-stack", "buildkite"
HEADER = (
    "# Generated from charts/stacksapi by scripts/render_deploy.py (make deploy-manifests):\n"
    "# edit the chart, not this file. See docs/kubernetes.md for the order to apply them in.\n"
)
# The token Secret holds a placeholder: named so that nobody applies it by accident.
_RENAMED = {"cluster-token-secret.yaml": "cluster-token-secret.example.yaml"}
_SOURCE = re.compile(r"^# Source: [^/]+/templates/(?P<name>[^\n]+)\n", re.MULTILINE)


def render(helm: Path) -> dict[str, str]:
    """File name -> content, one file per chart template that rendered something."""
    done = subprocess.run(
        [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(VALUES)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"error: helm template failed: {done.stderr.strip()}")
    files: dict[str, list[str]] = {}
    for document in done.stdout.split("\n---\n"):
        found = _SOURCE.search(document)
        if found is None:
            continue
        body = document[found.end() :].strip("\n")
        files.setdefault(found["name"], []).append(body + "\n")
    return {
        _RENAMED.get(name, name): HEADER + "---\n".join(parts)
        for name, parts in sorted(files.items())
    }


def generated(directory: Path) -> dict[str, str]:
    """The files of ``directory`` that this script wrote (by their header)."""
    return {
        p.name: p.read_text()
        for p in sorted(directory.glob("*.yaml"))
        if p.read_text().startswith(HEADER)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if deploy/ is out of date")
    parser.add_argument("--out", type=Path, default=DEPLOY, help="directory (default deploy/)")
    args = parser.parse_args(argv)
    try:
        helm = fetch()
    except FetchError as exc:
        print(f"error: cannot fetch helm: {exc}", file=sys.stderr)
        return 1
    wanted = render(helm)
    have = generated(args.out)
    if args.check:
        stale = sorted(n for n in wanted.keys() | have.keys() if wanted.get(n) != have.get(n))
        for name in stale:
            print(f"{args.out.name}/{name} is out of date with charts/stacksapi", file=sys.stderr)
        if stale:
            print("run: python3 scripts/render_deploy.py", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in have.keys() - wanted.keys():
        (args.out / name).unlink()
    for name, text in wanted.items():
        (args.out / name).write_text(text)
    print(f"wrote {len(wanted)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
