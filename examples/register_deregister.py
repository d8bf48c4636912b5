"""Register a stack, look at its queue once, and deregister it again.

The Python counterpart of the Go client's example. Needs a Buildkite cluster token:

    BUILDKITE_CLUSTER_TOKEN=bkct_... python examples/register_deregister.py [stack-key] [queue-key]

``STACKSAPI_BASE_URL`` points it elsewhere (e.g. a local emulator: ``stacksapi emulator serve``).
"""

from __future__ import annotations

import logging
import sys

from stacksapi import DEFAULT_QUEUE_KEY, Client, StacksAPIError, StackType


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stack_key = argv[1] if len(argv) > 1 else "example-stack"
    queue_key = argv[2] if len(argv) > 2 else DEFAULT_QUEUE_KEY
    try:
        # Token from BUILDKITE_CLUSTER_TOKEN, server from STACKSAPI_BASE_URL (else Buildkite).
        with Client(user_agent_prefix="register-example/1.0") as client:
            info = client.get_token()
            if not info.is_clustered:
                print("this token is not a cluster token: it cannot drive a stack")
                return 2
            stack = client.register_stack(
                stack_key, queue_key=queue_key, type=StackType.CUSTOM, metadata={"version": "1.0"}
            )
            print(f"registered {stack.key} on queue {stack.cluster_queue_key or queue_key}")
            try:
                page = client.list_scheduled_jobs(stack_key, queue_key=queue_key, limit=10)
                paused = " (dispatch paused)" if page.cluster_queue.dispatch_paused else ""
                print(f"{len(page.jobs)} job(s) waiting{paused}")
                for job in page.jobs:
                    print(f"  {job.id}  priority={job.priority}  {job.pipeline.slug}")
            finally:
                client.deregister_stack(stack_key)
                print(f"deregistered {stack_key}")
    except (StacksAPIError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
