"""Short ids: unique among the listed jobs, at least 8 characters, a start of the uuid."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from stacksapi.cli._job_ids import SHORT_ID, short_ids

# Buildkite's uuids are time-ordered: many share a long start, as these do.
_uuids = st.lists(
    st.builds(lambda r: "0190f7d2-" + str(uuid.UUID(int=r))[9:], st.integers(0, 2**20)),
    max_size=40,
)


@given(st.lists(st.uuids().map(str), max_size=40) | _uuids)
def test_short_ids_are_unique_starts(uuids: list[str]) -> None:
    shorts = short_ids(uuids)
    assert set(shorts) == set(uuids)
    for full, short in shorts.items():
        assert full.startswith(short)
        assert len(short) >= SHORT_ID
        assert not short.endswith("-")
        others = {u for u in uuids if u != full}
        assert not any(o.startswith(short) for o in others)  # it names one job only


def test_a_long_list_is_quick() -> None:
    many = [str(uuid.uuid4()) for _ in range(50_000)]
    assert len(set(short_ids(many).values())) == len(many)
