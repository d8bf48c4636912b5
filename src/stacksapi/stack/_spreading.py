"""``Spreading``: several stacks on one queue share it instead of all chasing the oldest jobs.

Alone, a stack takes the best jobs in order: priority (higher first), then age. When every stack
does that, they all ask for the same few jobs and most reserve attempts lose (measured: 3.2
losing attempts per job with 10 stacks). So each stack watches its own losses: while it loses,
it picks at random within a wider window of the best jobs *of the same priority* (the window
grows with the losses, up to ``MAX_WIDTH`` times what it takes, and shrinks back when it stops
losing). Priority stays strict: a job is never taken while a job of higher priority it could
take is left; only the age order within one priority is loosened, and only under contention.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

from stacksapi._models import ScheduledJob

from ._planning import start_order

__all__ = ["MAX_WIDTH", "Spreading"]

MAX_WIDTH = 32.0
"""The widest window, as a multiple of the jobs taken."""


class Spreading:
    """Chooses which jobs to reserve; learns from how many reserve attempts lost."""

    def __init__(self, rng: random.Random | None = None, *, max_width: float | None = None) -> None:
        self.width = 1.0  # window size / jobs taken; 1: strict order
        self.max_width = MAX_WIDTH if max_width is None else max_width  # 1: never spread
        self._rng = rng or random.Random()

    def window(self, free: int) -> int:
        """How many candidates to look at (read pages until then) to take ``free`` jobs."""
        return max(free, int(free * self.width)) if free > 0 else 0

    def choose(self, candidates: Sequence[ScheduledJob], free: int) -> list[ScheduledJob]:
        """Up to ``free`` of ``candidates``, in the order they should start."""
        if free <= 0:
            return []
        ordered = sorted(candidates, key=start_order)
        if self.width <= 1.0:
            return ordered[:free]
        # Contended and short of jobs: take a share, leave the rest to the others this round.
        free = min(free, max(1, math.ceil(len(ordered) / self.width)))
        chosen: list[ScheduledJob] = []
        for _priority, group in itertools.groupby(ordered, key=lambda j: j.priority):
            jobs = list(group)
            want = free - len(chosen)
            if len(jobs) <= want:
                chosen.extend(jobs)
            else:
                window = jobs[: self.window(want)]
                chosen.extend(self._rng.sample(window, want))
            if len(chosen) >= free:
                break
        return sorted(chosen, key=start_order)

    def observe(self, asked: int, lost: int) -> None:
        """One reserve request's outcome: ``lost`` of ``asked`` went to another stack."""
        if asked <= 0:
            return
        if lost > 0:
            wider = max(2.0, self.width * (1 + 4 * lost / asked))
            self.width = min(self.max_width, wider)
        else:
            self.width = max(1.0, self.width * 0.99)
