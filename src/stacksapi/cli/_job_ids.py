"""Short job ids: the start of a job uuid, accepted wherever a uuid is (like git's short hashes).

``jobs list`` shows each job by the first 8 characters of its uuid, longer where 8 would not
tell the listed jobs apart (time-ordered UUIDv7s start with a timestamp, so jobs scheduled close
together share a start). A command given a short id looks it up in two places:

* the jobs scheduled for the stack's queue (``--queue``, else the queues this stack was
  listed with here, else ``__default__``): what the server can tell;
* the job uuids this machine's CLI has listed or used for the stack: a job leaves the scheduled
  list once reserved, yet ``tokens issue`` and ``finish`` still name it by the same short id.
  They live in ``$STACKSAPI_CACHE_DIR`` (default ``~/.cache/stacksapi``), ``job-ids.json``:
  uuids only, never a token, at most 2,000 per stack and server, forgotten after 7 days.

One match is used; several are an error listing them (give more characters); none is an error
saying where it looked. A full uuid, or anything that is not hex, is sent as given.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stacksapi._models import DEFAULT_QUEUE_KEY

if TYPE_CHECKING:
    from stacksapi import Client

__all__ = ["MIN_PREFIX", "SHORT_ID", "JobIds", "is_short_id", "short_ids"]

SHORT_ID = 8
MIN_PREFIX = 4
_KEEP_PER_STACK = 2000
_KEEP_SECONDS = 7 * 24 * 3600
_MAX_PAGES = 10
_PREFIX = re.compile(r"[0-9a-f][0-9a-f-]*")
_UUID_LEN = 36


def short_ids(uuids: Sequence[str]) -> dict[str, str]:
    """Each uuid's shortest start, at least :data:`SHORT_ID` long, that no other one shares."""
    ordered = sorted({u.lower() for u in uuids})
    shared: dict[str, int] = {}  # the longest start each shares with a sorted neighbour
    for a, b in itertools.pairwise(ordered):
        n = _common_start(a, b)
        shared[a] = max(shared.get(a, 0), n)
        shared[b] = max(shared.get(b, 0), n)
    out: dict[str, str] = {}
    for uuid in uuids:
        length = max(SHORT_ID, shared.get(uuid.lower(), 0) + 1)
        while length < len(uuid) and uuid[length - 1] == "-":
            length += 1  # never end on a dash
        out[uuid] = uuid[:length]
    return out


def _common_start(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _cache_file() -> Path:
    root = os.environ.get("STACKSAPI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "stacksapi"
    )
    return Path(root) / "job-ids.json"


class JobIds:
    """The job uuids this CLI has seen for one stack on one server, and short-id lookups."""

    def __init__(self, base_url: str, stack_key: str) -> None:
        self.scope = f"{base_url.rstrip('/')} {stack_key}"
        self.stack_key = stack_key
        self._all = self._load()
        self._mine = _entries(self._all.get(self.scope))

    # --- the cache ------------------------------------------------------------------------

    @staticmethod
    def _load() -> dict[str, object]:
        try:
            data = json.loads(_cache_file().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def remember(self, uuids: Iterable[str], *, queue: str | None = None) -> None:
        """Note ``uuids`` as seen now (with the queue they were listed from) and save."""
        now = int(time.time())
        for uuid in uuids:
            if len(uuid) == _UUID_LEN:
                old = self._mine.get(uuid)
                self._mine[uuid] = (now, queue or (old[1] if old else None))
        fresh = [(u, v) for u, v in self._mine.items() if now - v[0] < _KEEP_SECONDS]
        fresh.sort(key=lambda kv: kv[1][0], reverse=True)
        self._mine = dict(fresh[:_KEEP_PER_STACK])
        self._all[self.scope] = {u: list(v) for u, v in self._mine.items()}
        self._save()

    def _save(self) -> None:
        path = _cache_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".job-ids-")
        except OSError:  # a read-only home only costs the cache
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._all, f)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def queues(self) -> list[str]:
        """The queues this stack's jobs were listed from here, most recent first."""
        out: list[str] = []
        for _seen, queue in sorted(self._mine.values(), key=lambda v: v[0], reverse=True):
            if queue is not None and queue not in out:
                out.append(queue)
        return out

    # --- resolution -----------------------------------------------------------------------

    def resolve(self, client: Client, refs: Sequence[str], queue: str | None) -> list[str]:
        """``refs`` with each short id replaced by its job's full uuid (see the module doc)."""
        prefixes = [r for r in refs if is_short_id(r)]
        scheduled: list[str] = []
        queues: list[str] = []
        if prefixes:
            queues = [queue] if queue else (self.queues()[:3] or [DEFAULT_QUEUE_KEY])
            for q in queues:
                scheduled += _scheduled(client, self.stack_key, q)
        known = {*self._mine, *scheduled}
        out = [self._one(r, known, queues) if r in prefixes else r for r in refs]
        self.remember(out)
        return out

    def _one(self, ref: str, known: set[str], queues: list[str]) -> str:
        prefix = _bare(ref)  # with or without the dashes, any case
        matches = sorted(u for u in known if _bare(u).startswith(prefix))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise click.UsageError(
                f"no job id starts with {ref!r}: looked at the scheduled jobs of queue "
                f"{', '.join(queues)} and the jobs listed or used here for stack "
                f"{self.stack_key!r}; give --queue or the full uuid"
            )
        shown = ", ".join(short_ids(matches)[m] for m in matches[:5])
        more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
        raise click.UsageError(
            f"job id {ref!r} is ambiguous: {shown}{more} start with it; give more characters"
        )


def _entries(value: object) -> dict[str, tuple[int, str | None]]:
    """One scope of the cache file, checked: a damaged file only costs what it held."""
    out: dict[str, tuple[int, str | None]] = {}
    if isinstance(value, dict):
        for uuid, entry in value.items():
            if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int):
                out[str(uuid)] = (entry[0], entry[1] if isinstance(entry[1], str) else None)
    return out


def _bare(uuid: str) -> str:
    return uuid.replace("-", "").lower()


def is_short_id(ref: str) -> bool:
    """A start of a uuid (hex and dashes, shorter than a uuid); too short is a usage error."""
    low = ref.lower()
    if len(low) >= _UUID_LEN or not _PREFIX.fullmatch(low):
        return False
    if len(_bare(low)) < MIN_PREFIX:
        raise click.UsageError(
            f"job id {ref!r} is too short: give at least {MIN_PREFIX} characters or the full uuid"
        )
    return True


def _scheduled(client: Client, stack_key: str, queue: str) -> list[str]:
    ids: list[str] = []
    after: str | None = None
    for _ in range(_MAX_PAGES):
        page = client.list_scheduled_jobs(stack_key, queue_key=queue, limit=1000, after=after)
        ids += [j.id for j in page.jobs]
        if not page.page_info.has_next_page or not page.page_info.end_cursor:
            break
        after = page.page_info.end_cursor
    return ids
