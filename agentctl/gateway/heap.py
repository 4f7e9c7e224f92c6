"""Keep the garbage collector's full passes off the request path.

A serving gateway holds a few hundred thousand long-lived objects (modules, pydantic
and SQLAlchemy models, the policy, the agent registry), and CPython's generation-2
collection walks every one of them: measured at ~50 ms a pass on the shared 2-core host,
a stall of the event loop that every request in flight waits out (the p99 of
bench/run.py at 50 ms upstream latency). `settle` collects once, then moves everything
alive into the permanent generation (`gc.freeze`), so later full passes walk only what
was made since. Objects that die after being frozen are still freed by reference
counting; only reference cycles among frozen objects would outlive their use, and start-up
and reloads (the two callers) leave none worth a full pass.
"""

from __future__ import annotations

import gc


def settle(*, collect: bool = True) -> int:
    """Collect (unless `collect` is false) and freeze what is left. Returns the number of
    objects now in the permanent generation."""
    if collect:
        gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
