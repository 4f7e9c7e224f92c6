"""Backends the Counters contract suite runs against.

Each param yields a fresh, empty instance: `memory` in-process; `redis` against the
real server of tests/backends.py under a unique key prefix, deleted afterwards
(skipped with the reason when the server is absent, a failure under CI=true).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentctl.counters import Counters, open_counters
from tests.backends import redis_prefix

BACKENDS = ["memory", "redis"]


@pytest.fixture(params=BACKENDS)
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    if request.param == "memory":
        backend = open_counters("memory://")
        try:
            yield backend
        finally:
            await backend.close()
        return
    gen = redis_prefix()
    url, prefix = next(gen)
    backend = open_counters(url, prefix=prefix)
    try:
        yield backend
    finally:
        await backend.close()
        next(gen, None)
