"""The docs site builds in strict mode, and a broken link, anchor or API reference fails it.

``make docs`` builds the real site in CI; these tests build a copy with one defect each and check
that the build refuses it, naming the defect.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:class|meth|func|attr|exc|mod|data|obj):<code>[^<]*</code>")

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")


def _site_copy(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("mkdocs.yml", "README.md", "CHANGELOG.md"):
        shutil.copy(ROOT / name, work / name)
    for name in ("docs", "tools"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("src", "examples"):
        (work / name).symlink_to(ROOT / name)
    return work


def _build(work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(work / "mkdocs.yml")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=work,
    )


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.mark.slow
def test_the_docs_build_and_hold_the_api_reference(tmp_path: Path) -> None:
    work = _site_copy(tmp_path)
    done = _build(work)
    assert done.returncode == 0, done.stderr
    client = (work / "site" / "reference" / "client" / "index.html").read_text()
    assert 'id="stacksapi.Client"' in client
    assert "max_retries" in client  # from the docstring, not written by hand
    models = (work / "site" / "reference" / "models" / "index.html").read_text()
    assert 'id="stacksapi.ScheduledJobsPage.to_dict"' in models  # inherited members shown
    home = (work / "site" / "index.html").read_text()
    assert "Quick start" in home  # the README is the home page
    # Docstrings cite with Sphinx roles (:class:`Response`); a reader sees the name, not the role.
    for page in sorted((work / "site" / "reference").rglob("*.html")):
        roles = ROLE.findall(page.read_text())
        assert roles == [], f"{page.relative_to(work)} shows raw roles: {roles[:5]}"
    assert "<code>RetryPolicy</code>" in client  # the name stays, as code


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "defect", "named"),
    [
        ("docs/cli.md", "\nSee [the missing guide](no-such-guide.md).\n", "no-such-guide.md"),
        ("docs/stack.md", "\nSee [the loop](#no-such-heading).\n", "no-such-heading"),
        ("README.md", "\nSee [the guide](docs/gone.md).\n", "gone.md"),
        ("docs/reference/client.md", "\n::: stacksapi.NoSuchName\n", "stacksapi.NoSuchName"),
        ("docs/reference/index.md", "\nSee [`Nope`][stacksapi.Nope].\n", "stacksapi.Nope"),
    ],
    ids=["link", "anchor", "readme-link", "api-object", "cross-reference"],
)
def test_a_broken_link_or_reference_fails_the_build(
    tmp_path: Path, where: str, defect: str, named: str
) -> None:
    work = _site_copy(tmp_path)
    _append(work / where, defect)
    done = _build(work)
    assert done.returncode != 0, "the strict build accepted: " + defect
    assert named in done.stderr + done.stdout
