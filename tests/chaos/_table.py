"""The chaos summary table, as plain text lines (pytest's summary and the benchmark print it)."""

from __future__ import annotations

from collections.abc import Sequence

from stacksapi.emulator._faults import FAULT_KINDS

from ._world import RunReport

__all__ = ["render_table", "totals"]

_HEAD = ("run", "jobs", *FAULT_KINDS, "restarts", "dup", "lost", "drain s", "ok")


def totals(reports: Sequence[RunReport]) -> RunReport:
    """All runs added up into one row (drain: the slowest run's)."""
    faults = {k: sum(r.faults.get(k, 0) for r in reports) for k in FAULT_KINDS}
    outcomes: dict[str, int] = {}
    for r in reports:
        for k, n in r.outcomes.items():
            outcomes[k] = outcomes.get(k, 0) + n
    return RunReport(
        name=f"total ({len(reports)} runs)",
        jobs=sum(r.jobs for r in reports),
        faults=faults,
        restarts=sum(r.restarts for r in reports),
        duplicates=sum(r.duplicates for r in reports),
        lost=sum(r.lost for r in reports),
        drain_seconds=max((r.drain_seconds for r in reports), default=0.0),
        outcomes=outcomes,
        problems=[p for r in reports for p in r.problems],
    )


def _row(r: RunReport) -> tuple[str, ...]:
    return (
        r.name,
        str(r.jobs),
        *(str(r.faults.get(k, 0)) for k in FAULT_KINDS),
        str(r.restarts),
        str(r.duplicates),
        str(r.lost),
        f"{r.drain_seconds:.2f}",
        "yes" if r.ok else f"NO ({len(r.problems)})",
    )


def render_table(reports: Sequence[RunReport]) -> list[str]:
    """One line per run, a rule, and the total; columns aligned."""
    rows = [_HEAD, *(_row(r) for r in reports), _row(totals(reports))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    out = [line(rows[0]), *(line(row) for row in rows[1:-1])]
    out.append("-" * len(out[0]))
    out.append(line(rows[-1]))
    outcome = totals(reports).outcomes
    out.append("outcomes: " + ", ".join(f"{k} {n}" for k, n in sorted(outcome.items())))
    details = sorted({d for r in reports for d in r.stack_details})
    out.extend(f"  finished by a stack: {d}" for d in details[:5])
    return out
