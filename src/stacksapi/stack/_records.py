"""``JobMemory``: a set of job uuids with a bound, forgetting the oldest first.

The runtime remembers some jobs after it let them go: the ones it finished (so it finishes each
at most once) and the ones it filtered (so each is reported once). A stack runs for days, so
every such record needs a bound; forgetting an old entry costs at most a repeated report or a
second finish that the server refuses, never a lost or duplicated job.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["DEFAULT_JOB_MEMORY", "JobMemory"]

DEFAULT_JOB_MEMORY = 10_000
"""Entries each record keeps by default: far more than a poll can see (``max_pages`` pages)."""


class JobMemory:
    """At most ``limit`` uuids; adding one more forgets the one added longest ago."""

    __slots__ = ("_items", "forgotten", "limit")

    def __init__(self, limit: int = DEFAULT_JOB_MEMORY) -> None:
        if limit < 1:
            raise ValueError(f"limit: must be at least 1 (got {limit})")
        self.limit = limit
        self.forgotten = 0  # entries dropped to stay within the bound, in total
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, uuid: str) -> None:
        self._items[uuid] = None
        self._items.move_to_end(uuid)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)
            self.forgotten += 1

    def discard(self, uuid: str) -> None:
        self._items.pop(uuid, None)

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._items

    def __len__(self) -> int:
        return len(self._items)
