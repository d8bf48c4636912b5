"""The public names of ``stacksapi``: code outside the project is written against exactly these.

Adding a name is a deliberate act: update this list in the same commit, and the CHANGELOG.
"""

from __future__ import annotations

import stacksapi

PUBLIC = {
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncClient",
    "AsyncClientWithResponse",
    "AuthenticationError",
    "BadRequestError",
    "Build",
    "Client",
    "ClientWithResponse",
    "ClusterQueue",
    "DEFAULT_QUEUE_KEY",
    "Job",
    "JobAcquisitionToken",
    "JobAcquisitionTokens",
    "JobState",
    "JobStates",
    "NotFoundError",
    "NotificationError",
    "NotificationsResult",
    "PageInfo",
    "PermissionDeniedError",
    "Pipeline",
    "RateLimit",
    "RateLimitError",
    "RequestValidationError",
    "Reservation",
    "Response",
    "ResponseValidationError",
    "RetryPolicy",
    "ScheduledJob",
    "ScheduledJobsPage",
    "Secret",
    "ServerError",
    "Stack",
    "StackNotification",
    "StackState",
    "StackType",
    "StacksAPIError",
    "Step",
    "TokenInfo",
    "UnprocessableEntityError",
    "__version__",
}


def test_all_is_exactly_the_public_contract() -> None:
    assert set(stacksapi.__all__) == PUBLIC
    assert len(stacksapi.__all__) == len(PUBLIC)  # no duplicates


def test_every_public_name_resolves() -> None:
    for name in stacksapi.__all__:
        assert getattr(stacksapi, name) is not None


def test_public_objects_say_they_are_stacksapi() -> None:
    for name in PUBLIC - {"__version__", "DEFAULT_QUEUE_KEY"}:
        assert getattr(stacksapi, name).__module__.startswith("stacksapi")
