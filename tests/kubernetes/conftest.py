"""Fixtures of the Kubernetes tests: the fake API server over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .kube_fake import FakeKube


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_kube() -> Iterator[FakeKube]:
    fake = FakeKube().start()
    try:
        yield fake
    finally:
        fake.stop()
