"""The runtime's pure decisions: selection, ordering, renewal, cropping, batching."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stacksapi import ScheduledJob
from stacksapi.stack._planning import (
    NotificationBatcher,
    Selection,
    chunks,
    crop_detail,
    crop_notification,
    redact_tokens,
    renewals_due,
    select_candidates,
)

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def job(
    uuid: str,
    *,
    priority: int = 0,
    age: float = 0,
    rules: tuple[str, ...] = (),
    runnable_in: float | None = None,
) -> ScheduledJob:
    runnable = NOW + dt.timedelta(seconds=runnable_in) if runnable_in is not None else None
    return ScheduledJob(
        id=uuid,
        priority=priority,
        agent_query_rules=rules,
        scheduled_at=NOW - dt.timedelta(seconds=age),
        runnable_at=runnable,
    )


def select(
    jobs: list[ScheduledJob], *, limit: int = 10, in_flight: set[str] | None = None
) -> Selection:
    return select_candidates(
        jobs,
        in_flight=in_flight or set(),
        tags={"os": "linux"},
        queue_key="q",
        now=NOW,
        limit=limit,
    )


def test_orders_by_priority_then_age() -> None:
    jobs = [job("a", age=1), job("b", priority=5, age=1), job("c", age=9), job("d", priority=5)]
    assert [j.id for j in select(jobs).candidates] == ["b", "d", "c", "a"]


def test_limit_is_free_capacity() -> None:
    jobs = [job(str(i), age=i) for i in range(10)]
    assert [j.id for j in select(jobs, limit=3).candidates] == ["9", "8", "7"]
    assert select(jobs, limit=0).candidates == ()


def test_skips_in_flight_and_filters_unservable() -> None:
    jobs = [job("a"), job("b", rules=("os=windows",)), job("c", rules=("queue=q", "os=lin*"))]
    sel = select(jobs, in_flight={"a"})
    assert [j.id for j in sel.candidates] == ["c"]
    assert [(j.id, rules) for j, rules in sel.filtered] == [("b", ("os=windows",))]


def test_waits_for_runnable_at() -> None:
    sel = select([job("a", runnable_in=5), job("b", runnable_in=2), job("c", runnable_in=-1)])
    assert [j.id for j in sel.candidates] == ["c"]
    assert sel.next_runnable_at == NOW + dt.timedelta(seconds=2)


def test_naive_timestamps_are_utc() -> None:
    naive = ScheduledJob(id="n", scheduled_at=dt.datetime(2026, 1, 1), runnable_at=None)
    assert [j.id for j in select([naive, job("a")]).candidates] == ["n", "a"]


def test_renewals_due() -> None:
    assert renewals_due({"a": 100.0, "b": 150.0, "c": 109.0}, now=90.0, margin=20.0) == ["a", "c"]


@given(st.text(max_size=3000), st.integers(min_value=64, max_value=5000))
def test_crop_detail_stays_within_bytes(text: str, limit: int) -> None:
    cropped = crop_detail(text, limit)
    assert len(cropped.encode()) <= max(limit, len(b"(no detail)"))
    if len(text.encode()) > limit:
        assert cropped.startswith("[cropped ...]")
        assert text.endswith(cropped.removeprefix("[cropped ...] ")[-10:])


def test_crop_detail_on_character_boundary() -> None:
    cropped = crop_detail("é" * 5000)
    assert len(cropped.encode()) <= 4096
    cropped.encode("utf-8")  # no half characters


@given(st.text(max_size=600))
def test_crop_notification_is_one_short_line(text: str) -> None:
    line = crop_notification(text)
    assert 1 <= len(line) <= 256
    assert "\n" not in line


def test_notification_batcher_limits() -> None:
    b = NotificationBatcher(per_job=3)
    for i in range(5):
        b.add("a", f"note {i}", NOW)
    for i in range(1500):
        b.add(f"job{i}", "x" * 400, NOW)
    assert b.dropped == 2
    first = b.take()
    assert len(first) == 1000
    assert all(len(n.detail) <= 256 for n in first)
    assert len(b.take()) == 503
    assert len(b) == 0


def test_chunks() -> None:
    assert [list(c) for c in chunks(list(range(5)), 2)] == [[0, 1], [2, 3], [4]]
    assert list(chunks([], 2)) == []


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("token bkjat_abc123 used", "token bkjat_[REDACTED] used", "abc123"),
        ("A=x_bkct_secret9", "A=x_bkct_[REDACTED]", "secret9"),
        ("bkat_agent1 bkar_reg2 bkua_user3", "bkat_[REDACTED] bkar_[REDACTED]", "agent1"),
        # inside a word or after an escape it is masked too: over-masking is harmless
        ("%3Dbkct_secret1 and bkx_other", "%3Dbkct_[REDACTED] and bkx_other", "secret1"),
    ],
)
def test_redact_tokens_masks_token_shapes_only(text: str, kept: str, gone: str) -> None:
    out = redact_tokens(text)
    assert out.startswith(kept)
    assert gone not in out
