"""The event loop a gateway process runs on: uvloop where it is installed.

uvloop (libuv, in C) takes the loop's own work (ready-queue, timers, socket
transports) off the interpreter; measured on the full-governance benchmark it saves
CPU on every request (docs/decisions.md, bench/README.md). It is a dependency on
Linux and macOS; elsewhere (Windows) the standard loop runs the same code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop when available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
