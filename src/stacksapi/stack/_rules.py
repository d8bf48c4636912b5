"""Agent query rules: can this stack serve a job? Pure functions, no I/O.

A job carries rules such as ``["queue=default", "os=linux", "arch=*"]``. A stack serves the job
when every rule matches the stack's tags. Semantics:

- ``key=value``: the stack has tag ``key`` and its value matches ``value``, where ``*`` in the
  rule's value matches any run of characters (``os=lin*``). A stack tag whose value is ``*``
  accepts any value of that key.
- ``key!=value``: the stack has no tag ``key``, or its value does not match ``value``.
- ``key`` alone: the stack has tag ``key`` (any value).
- The queue rule ``queue=...`` is checked against the stack's queue key, not its tags. When the
  stack serves ``__default__`` the server has already scoped the list to the default queue, whose
  real key the stack cannot know, so the queue rule is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from stacksapi._models import DEFAULT_QUEUE_KEY

__all__ = ["rule_matches", "serves_job", "unmatched_rules"]


@lru_cache(maxsize=4096)
def _pattern(value: str) -> re.Pattern[str]:
    """A regex for a rule value in which only ``*`` is special."""
    return re.compile("^" + ".*".join(re.escape(part) for part in value.split("*")) + "$")


def _value_matches(rule_value: str, tag_value: str) -> bool:
    if tag_value == "*":
        return True
    if "*" not in rule_value:
        return rule_value == tag_value
    return _pattern(rule_value).match(tag_value) is not None


def rule_matches(rule: str, tags: Mapping[str, str], queue_key: str) -> bool:
    """True when one agent query rule is satisfied by the stack's tags and queue."""
    rule = rule.strip()
    if not rule:
        return True
    if "!=" in rule:
        key, _, value = rule.partition("!=")
        key = key.strip()
        if key == "queue":
            return queue_key == DEFAULT_QUEUE_KEY or not _value_matches(value, queue_key)
        return key not in tags or not _value_matches(value, tags[key])
    if "=" not in rule:
        return rule in tags or (rule == "queue")
    key, _, value = rule.partition("=")
    key = key.strip()
    if key == "queue":
        return queue_key == DEFAULT_QUEUE_KEY or _value_matches(value, queue_key)
    return key in tags and _value_matches(value, tags[key])


def unmatched_rules(rules: Iterable[str], tags: Mapping[str, str], queue_key: str) -> list[str]:
    """The rules this stack does not satisfy (empty: the stack serves the job)."""
    return [r for r in rules if not rule_matches(r, tags, queue_key)]


def serves_job(rules: Iterable[str], tags: Mapping[str, str], queue_key: str) -> bool:
    """True when every rule matches."""
    return all(rule_matches(r, tags, queue_key) for r in rules)
