"""Backends the Counters contract suite runs against.

Add a backend by adding a param and a branch that yields a fresh, empty instance
(for Redis: a unique key prefix, deleted afterwards; skip with a reason when the
server is absent, except under CI=true).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentctl.counters import Counters, open_counters

BACKENDS = ["memory"]


@pytest.fixture(params=BACKENDS)
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    backend = open_counters(f"{request.param}://")
    try:
        yield backend
    finally:
        await backend.close()
