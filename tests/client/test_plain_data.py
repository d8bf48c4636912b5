"""``to_dict()`` gives plain data only, as documented: dicts, lists, str, int, float, bool and
``None``, so any tool that knows those types (a YAML or TOML writer, an equality with a literal)
takes it as it is; ``from_dict`` reads it back."""

from __future__ import annotations

from typing import Any

from stacksapi import (
    DEFAULT_QUEUE_KEY,
    Client,
    JobAcquisitionTokens,
    Reservation,
    ScheduledJobsPage,
)
from stacksapi.emulator import EmulatorServer

PLAIN = (dict, list, str, int, float, bool, type(None))


def _not_plain(value: Any, where: str = "data") -> list[str]:
    """Where ``value`` holds something other than the documented plain types."""
    if not isinstance(value, PLAIN):
        return [f"{where}: {type(value).__name__}"]
    if isinstance(value, dict):
        return [bad for k, v in value.items() for bad in _not_plain(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [bad for i, v in enumerate(value) for bad in _not_plain(v, f"{where}[{i}]")]
    return []


def test_to_dict_holds_lists_never_tuples() -> None:
    with EmulatorServer() as srv, Client(srv.token, base_url=srv.base_url) as client:
        ids = srv.emulator.create_jobs(2, queue=DEFAULT_QUEUE_KEY)
        client.register_stack("plain", queue_key=DEFAULT_QUEUE_KEY)
        page = client.list_scheduled_jobs("plain", queue_key=DEFAULT_QUEUE_KEY)
        held = client.batch_reserve_jobs("plain", [*ids, "00000000-0000-0000-0000-000000000000"])
        tokens = client.issue_job_acquisition_tokens("plain", ids)

    for result in (page, held, tokens):
        assert _not_plain(result.to_dict()) == [], type(result).__name__
    assert held.to_dict() == {
        "reserved": ids,
        "not_reserved": ["00000000-0000-0000-0000-000000000000"],
    }
    assert isinstance(page.to_dict()["jobs"], list)
    assert page.to_dict()["jobs"][0]["agent_query_rules"] == [f"queue={DEFAULT_QUEUE_KEY}"]
    assert ScheduledJobsPage.from_dict(page.to_dict()) == page
    assert Reservation.from_dict(held.to_dict()) == held
    revealed = tokens.to_dict(reveal_secrets=True)
    assert _not_plain(revealed) == []
    assert JobAcquisitionTokens.from_dict(revealed) == tokens
