"""Hypothesis strategies shared by the fuzz tests: odd JSON, odd text, odd path segments."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

__all__ = [
    "EDGE_INTS",
    "JSON_VALUES",
    "ODD_TEXT",
    "body_for",
    "deep_json",
    "path_segment",
    "to_json_bytes",
]

# Text with what breaks naive code: controls, NUL, RTL marks, combining marks, emoji, CJK,
# line separators, "bk" prefixes. Surrogates cannot be encoded as UTF-8 so they are not here.
ODD_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\u202e", "\u0301", "\U0001f600", "\u2028", "%", ".", "/"]),
    ),
    max_size=40,
)

EDGE_INTS = st.sampled_from(
    [
        0,
        -1,
        1,
        3600,
        3601,
        1000,
        1001,
        2**31,
        2**53 + 1,
        2**63,
        -(2**63) - 1,
        2**64,
        10**30,
        10**400,
    ]
)
"""Integers at and past every documented limit (kept small enough to never create a million jobs
by accident in the admin API)."""

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    EDGE_INTS,
    st.integers(min_value=-1000, max_value=1000),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
)

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(ODD_TEXT, inner, max_size=5),
    max_leaves=12,
)


def to_json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    """Deeply nested arrays or objects, up to far past any parser's comfortable depth."""
    depth = draw(st.sampled_from([64, 512, 5000, 100_000]))
    if draw(st.booleans()):
        return b"[" * depth + b"]" * depth
    field = draw(st.sampled_from(["job_uuids", "key", "metadata", "notifications", "x"]))
    opener = f'{{"{field}":'.encode()
    return opener * depth + b"1" + b"}" * depth


@st.composite
def body_for(draw: st.DrawFn, fields: tuple[str, ...]) -> bytes:
    """A request body: raw bytes, any JSON, deep nesting, or the right field names with
    values of wrong types and out-of-range sizes."""
    kind = draw(st.sampled_from(["bytes", "json", "deep", "fields", "fields", "fields"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return to_json_bytes(draw(JSON_VALUES))
    if kind == "deep":
        return draw(deep_json())
    fields = fields or ("x",)
    names = draw(st.lists(st.sampled_from(fields), max_size=len(fields), unique=True))
    value = st.one_of(
        JSON_VALUES,
        st.lists(ODD_TEXT, min_size=0, max_size=3),
        st.builds(lambda n, s: [s] * n, st.sampled_from([0, 1, 1000, 1001]), ODD_TEXT),
        st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=3),
        ODD_TEXT.map(lambda s: (s or "x") * 2000),
    )
    return to_json_bytes({name: draw(value) for name in names})


@st.composite
def path_segment(draw: st.DrawFn) -> str:
    """One path segment as it goes on the wire: dots, slashes, percent signs, encoded or not."""
    raw = draw(
        st.one_of(
            st.sampled_from(
                [".", "..", "...", "%", "%2e%2e", "a/b", "a%2Fb", "%00", "%ff", "~", ""]
            ),
            ODD_TEXT,
        )
    )
    how = draw(st.sampled_from(["escaped", "raw", "half"]))
    if how == "escaped":
        return quote(raw, safe="")
    if how == "raw":
        return quote(raw, safe="/%.~")  # slashes, dots and percent signs go out as they are
    return quote(raw, safe=".%")
