"""The serving process keeps its start-up objects out of the garbage collector's full passes.

Measured on the benchmark host before this: a generation-2 collection under load walked
every module, model and registry object (~50 ms a pass with 16 agents), a stall of the
event loop that every in-flight request waited out. `heap.settle` freezes what start-up
built, so later full passes walk only what was made since (docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
from pathlib import Path

from agentctl.gateway.server import serve
from agentctl.simulator import RunningSimulator
from tests.harness import GatewayHarness


def test_settle_takes_live_objects_out_of_the_generations() -> None:
    # In a child interpreter: freezing is process-wide and this process runs the suite.
    code = """
import gc
from agentctl.gateway import heap
keep = [[n] for n in range(50_000)]
cycle = []; cycle.append(cycle); del cycle      # garbage: collected, not frozen
frozen = heap.settle()
assert frozen >= 50_000, frozen
ids = {id(o) for o in gc.get_objects()}           # every generation, not the frozen one
assert id(keep) not in ids and id(keep[0]) not in ids
assert gc.collect() == 0                          # nothing left for a full pass
fresh = [[1]]
assert id(fresh) in {id(o) for o in gc.get_objects()}  # new objects are collected as usual
print("ok", frozen)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok ")


async def test_serve_freezes_its_start_up_objects(tmp_path: Path, sim: RunningSimulator) -> None:
    settings = GatewayHarness(tmp_path, sim).make_settings(port=0)
    gc.unfreeze()
    stop = asyncio.Event()
    counts: list[int] = []
    ready = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(settings, stop=stop, on_ready=lambda url: ready.set_result(url))
    )
    try:
        await asyncio.wait_for(ready, 30)
        counts.append(gc.get_freeze_count())
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        gc.unfreeze()  # give this test process its generations back
    assert counts[0] > 10_000  # the gateway's modules, models, policy and registry
