"""Agent query rule matching: key=value, wildcards, negation, the queue rule."""

from __future__ import annotations

import pytest

from stacksapi.stack import rule_matches, serves_job
from stacksapi.stack._rules import unmatched_rules

TAGS = {"os": "linux", "arch": "amd64", "size": "large"}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("os=linux", True),
        ("os=windows", False),
        ("os=*", True),
        ("os=lin*", True),
        ("os=*ux", True),
        ("os=l*x", True),
        ("os=mac*", False),
        ("gpu=true", False),
        ("gpu=*", False),
        ("os!=windows", True),
        ("os!=linux", False),
        ("gpu!=true", True),
        ("os", True),
        ("gpu", False),
        ("", True),
        ("os=linux.x", False),
        ("os=l?nux", False),  # only * is special
    ],
)
def test_rule_against_tags(rule: str, expected: bool) -> None:
    assert rule_matches(rule, TAGS, "builders") is expected


@pytest.mark.parametrize(
    ("rule", "queue", "expected"),
    [
        ("queue=builders", "builders", True),
        ("queue=deploy", "builders", False),
        ("queue=build*", "builders", True),
        ("queue!=builders", "builders", False),
        ("queue=anything", "__default__", True),  # the default queue's real key is unknown
    ],
)
def test_queue_rule(rule: str, queue: str, expected: bool) -> None:
    assert rule_matches(rule, {}, queue) is expected


def test_stack_tag_wildcard_accepts_any_value() -> None:
    assert rule_matches("os=plan9", {"os": "*"}, "q")


def test_all_rules_must_match() -> None:
    rules = ["queue=builders", "os=linux", "arch=arm64"]
    assert not serves_job(rules, TAGS, "builders")
    assert unmatched_rules(rules, TAGS, "builders") == ["arch=arm64"]
    assert serves_job([], TAGS, "builders")
