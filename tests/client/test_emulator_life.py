"""A whole stack life through the client against the project's emulator, over real HTTP."""

from __future__ import annotations

import pytest

from stacksapi import DEFAULT_QUEUE_KEY, AsyncClient, Client, JobState, StackNotification

emulator = pytest.importorskip("stacksapi.emulator")


def test_stack_life_sync() -> None:
    with emulator.EmulatorServer() as srv:
        ids = srv.emulator.create_jobs(3, command="echo hi", env={"A": "1"})
        with Client(srv.token, base_url=srv.base_url) as c:
            assert c.get_token().is_clustered
            stack = c.register_stack("life-stack", queue_key=DEFAULT_QUEUE_KEY, metadata={"v": "1"})
            assert stack.key == "life-stack"
            page = c.list_scheduled_jobs("life-stack", queue_key=DEFAULT_QUEUE_KEY, limit=2)
            assert len(page.jobs) == 2
            assert not page.cluster_queue.dispatch_paused
            listed = [
                j.id
                for j in c.iter_scheduled_jobs(
                    "life-stack", queue_key=DEFAULT_QUEUE_KEY, page_size=2
                )
            ]
            assert sorted(listed) == sorted(ids)
            res = c.batch_reserve_jobs("life-stack", listed, reservation_expiry_seconds=300)
            assert sorted(res.reserved) == sorted(ids)
            job = c.get_job("life-stack", ids[0])
            assert job.command == "echo hi"
            assert job.env.get("A") == "1"
            tokens = c.issue_job_acquisition_tokens("life-stack", ids[:1])
            assert tokens.job_acquisition_tokens[0].job_uuid == ids[0]
            assert tokens.job_acquisition_tokens[0].job_acquisition_token.get_secret_value()
            notes = c.create_stack_notifications(
                "life-stack", [StackNotification(ids[1], "provisioning")]
            )
            assert notes.errors == ()
            states = c.get_job_states("life-stack", ids)
            assert states.states[ids[1]] == JobState.RESERVED
            c.finish_job("life-stack", ids[1], detail="could not provision", exit_status=0)
            c.finish_job("life-stack", ids[2], detail="gave up", signal_reason="stack_error")
            after = c.get_job_states("life-stack", ids[1:])
            assert after.states[ids[1]] == JobState.FINISHED
            c.deregister_stack("life-stack")


@pytest.mark.anyio
async def test_stack_life_async() -> None:
    with emulator.EmulatorServer() as srv:
        ids = srv.emulator.create_jobs(2)
        async with AsyncClient(srv.token, base_url=srv.base_url) as c:
            await c.register_stack("async-life", queue_key=DEFAULT_QUEUE_KEY)
            listed = [
                j.id async for j in c.iter_scheduled_jobs("async-life", queue_key=DEFAULT_QUEUE_KEY)
            ]
            assert sorted(listed) == sorted(ids)
            res = await c.batch_reserve_jobs("async-life", listed)
            assert sorted(res.reserved) == sorted(ids)
            for uuid in ids:
                await c.finish_job("async-life", uuid, detail="not run")
            await c.deregister_stack("async-life")
