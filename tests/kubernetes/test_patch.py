"""Strategic merge patch of PodSpecs: merge keys, directives, order, and what stays untouched."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stacksapi.kubernetes._patch import PatchError, strategic_merge

POD: dict[str, Any] = {
    "containers": [
        {"name": "build", "image": "golang:1.23", "command": ["go"], "args": ["test"],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
         "resources": {"requests": {"cpu": "1"}}},
        {"name": "agent", "image": "buildkite/agent:3"},
    ],
    "volumes": [{"name": "workspace", "emptyDir": {}}],
    "tolerations": [{"key": "a", "operator": "Exists"}],
    "nodeSelector": {"arch": "amd64", "zone": "a"},
}  # fmt: skip


def test_named_lists_merge_item_by_item_and_keep_their_order() -> None:
    patch = {"containers": [
        {"name": "agent", "resources": {"limits": {"memory": "1Gi"}}},
        {"name": "build", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
         "resources": {"requests": {"memory": "2Gi"}}},
        {"name": "redis", "image": "redis:7"},
    ]}  # fmt: skip
    out = strategic_merge(POD, patch)
    assert [c["name"] for c in out["containers"]] == ["build", "agent", "redis"]
    build = out["containers"][0]
    assert build["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"},
                            {"name": "C", "value": "3"}]  # fmt: skip
    assert build["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert build["command"] == ["go"]  # untouched fields stay
    assert out["containers"][1]["resources"] == {"limits": {"memory": "1Gi"}}
    assert POD["containers"][0]["env"][1]["value"] == "2"  # the original is not changed


def test_other_lists_are_replaced_and_null_deletes() -> None:
    patch = {"tolerations": [{"key": "b", "operator": "Exists"}],
             "nodeSelector": {"zone": None, "pool": "ci"},
             "containers": [{"name": "build", "args": ["vet"]}]}  # fmt: skip
    out = strategic_merge(POD, patch)
    assert out["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert out["nodeSelector"] == {"arch": "amd64", "pool": "ci"}
    assert out["containers"][0]["args"] == ["vet"]


def test_volume_mounts_merge_by_mount_path() -> None:
    patch = {
        "containers": [
            {
                "name": "build",
                "volumeMounts": [
                    {"name": "other", "mountPath": "/workspace"},
                    {"name": "cache", "mountPath": "/c"},
                ],
            }
        ]
    }
    out = strategic_merge(POD, patch)
    assert out["containers"][0]["volumeMounts"] == [
        {"name": "other", "mountPath": "/workspace"},
        {"name": "cache", "mountPath": "/c"},
    ]


def test_directives_delete_and_replace() -> None:
    patch = {"containers": [{"name": "agent", "$patch": "delete"}],
             "volumes": [{"$patch": "replace"}, {"name": "scratch", "emptyDir": {}}],
             "nodeSelector": {"$patch": "replace", "pool": "ci"}}  # fmt: skip
    out = strategic_merge(POD, patch)
    assert [c["name"] for c in out["containers"]] == ["build"]
    assert out["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    assert out["nodeSelector"] == {"pool": "ci"}
    gone = strategic_merge(
        POD,
        {
            "containers": [
                {
                    "name": "build",
                    "$deleteFromPrimitiveList/args": ["test"],
                    "$setElementOrder/env": [],
                }
            ]
        },
    )
    assert gone["containers"][0]["args"] == []


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"containers": [{"image": "x"}]}, "containers[0].name"),
        ({"containers": ["x"]}, "containers[0]"),
        ({"nodeSelector": {"$patch": "merge-please"}}, "nodeSelector.$patch"),
    ],
)
def test_a_patch_that_cannot_apply_names_the_part(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(PatchError) as info:
        strategic_merge(POD, patch)
    assert info.value.field == field


names = st.text("abc", min_size=1, max_size=2)
containers = st.lists(st.fixed_dictionaries({"name": names, "image": names}), max_size=4,
                      unique_by=lambda c: c["name"])  # fmt: skip


@given(containers, containers)
def test_merging_named_lists_keeps_every_name_once(a: list[Any], b: list[Any]) -> None:
    out = strategic_merge({"containers": a}, {"containers": copy.deepcopy(b)})
    first = [c["name"] for c in a]
    assert [c["name"] for c in out["containers"]] == first + [
        c["name"] for c in b if c["name"] not in first
    ]
    images = {c["name"]: c["image"] for c in out["containers"]}
    assert images == {**{c["name"]: c["image"] for c in a}, **{c["name"]: c["image"] for c in b}}
    assert strategic_merge({"containers": a}, {}) == {"containers": a}
