"""MkDocs hooks: the README becomes the site's home page and the CHANGELOG a page of its own;
the docstrings' Sphinx roles read as plain names.

Both live at the top of the repository (where GitHub shows them), outside ``docs/``. Their links
to ``docs/x.md`` are rewritten to ``x.md``, and the other repository files they link to (the
examples) are published beside them, so that, like every link on the site, they are checked by
the strict build: a link to a file that does not exist still fails it.

Docstrings cite other objects with Sphinx roles (``:class:`Response```, ``:meth:`~x.Stack.run```),
which mkdocstrings leaves as text; the API reference shows the name alone, as code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

_ROOT = Path(__file__).resolve().parents[1]
_PAGES = {"README.md": "index.md", "CHANGELOG.md": "changelog.md"}
_LINK = re.compile(r"\]\((?!https?://|#)([^)\s]+)\)")
_ROLE = re.compile(r":(?:class|meth|func|attr|exc|mod|data|obj):<code>(~?)([^<]*)</code>")


def _rewrite(match: re.Match[str]) -> str:
    target = match.group(1)
    path, _, anchor = target.partition("#")
    if path.startswith("docs/"):
        path = path.removeprefix("docs/")
    elif path in _PAGES:
        path = _PAGES[path]
    return f"]({path}{'#' + anchor if anchor else ''})"


def on_files(files: Files, config: Any) -> Files:
    for source, page in _PAGES.items():
        text = (_ROOT / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=_LINK.sub(_rewrite, text)))
        for match in _LINK.finditer(text):
            path = match.group(1).partition("#")[0]
            target = _ROOT / path
            if path.startswith("docs/") or path in _PAGES or files.get_file_from_path(path):
                continue
            if target.is_file() and ".." not in Path(path).parts:
                files.append(File.generated(config, path, abs_src_path=str(target)))
    return files


def _plain_name(match: re.Match[str]) -> str:
    tilde, name = match.groups()
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name}</code>"


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    return _ROLE.sub(_plain_name, html)
