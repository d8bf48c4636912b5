"""The client end to end against a local emulator: no Buildkite account, no network.

    python examples/local_run.py

Starts the project's emulator on 127.0.0.1, schedules a few jobs, and walks one stack through its
life with the async client: register, page through the queue, reserve, fetch each job, issue job
acquisition tokens, post notifications, finish the jobs (as a stack that cannot run them would),
and deregister. Needs the ``emulator`` extra (starlette, uvicorn).
"""

from __future__ import annotations

import asyncio
import logging

from stacksapi import DEFAULT_QUEUE_KEY, AsyncClient, StackNotification
from stacksapi.emulator import EmulatorServer

STACK = "local-example"


async def stack_life(base_url: str, token: str) -> None:
    async with AsyncClient(token, base_url=base_url, user_agent_prefix="local-example") as client:
        stack = await client.register_stack(STACK, queue_key=DEFAULT_QUEUE_KEY)
        print(f"registered {stack.key} ({stack.state})")
        jobs = [
            job
            async for job in client.iter_scheduled_jobs(
                STACK, queue_key=DEFAULT_QUEUE_KEY, page_size=2
            )
        ]
        print(f"{len(jobs)} job(s) scheduled")
        reservation = await client.batch_reserve_jobs(
            STACK, [j.id for j in jobs], reservation_expiry_seconds=120
        )
        print(f"reserved {len(reservation.reserved)}, not reserved {len(reservation.not_reserved)}")
        tokens = await client.issue_job_acquisition_tokens(STACK, reservation.reserved)
        for tok in tokens.job_acquisition_tokens:
            print(f"  token for {tok.job_uuid}: {tok.job_acquisition_token}")  # masked
        await client.create_stack_notifications(
            STACK,
            [
                StackNotification(uuid, "example stack: looking at it")
                for uuid in reservation.reserved
            ],
        )
        for uuid in reservation.reserved:
            job = await client.get_job(STACK, uuid)
            await client.finish_job(
                STACK, uuid, detail=f"example stack does not run {job.command!r}", exit_status=0
            )
        states = await client.get_job_states(STACK, reservation.reserved)
        for uuid, state in states.states.items():
            print(f"  {uuid}: {state}")
        with_response = await client.with_response.get_job_states(STACK, reservation.reserved)
        print(f"rate limit after the last call: {with_response.rate_limit}")
        await client.deregister_stack(STACK)
        print(f"deregistered {STACK}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with EmulatorServer() as server:
        server.emulator.create_jobs(5, command="make test")
        asyncio.run(stack_life(server.base_url, server.token))


if __name__ == "__main__":
    main()
