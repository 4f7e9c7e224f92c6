"""`agentctl serve --workers N`: one port, N processes, one journal replay, a clean drain."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from agentctl.config import load_settings
from agentctl.errors import ConfigError
from agentctl.gateway.workers import check_workers
from agentctl.simulator import RunningSimulator
from agentctl.store.sql import Store
from tests.procs import GatewayProcess

pytestmark = pytest.mark.slow
HEADERS = {
    "Authorization": "Bearer sk-client",
    "X-Agent-Identity": "name=worker-bot; owner=team-scale; purpose=production",
}
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def test_memory_counters_are_refused_with_several_workers(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"--counters redis://"):
        check_workers(load_settings(overrides={"counters": "memory://"}), 2)
    check_workers(load_settings(overrides={"counters": "memory://"}), 1)
    check_workers(load_settings(overrides={"counters": "redis://127.0.0.1:6379/0"}), 4)


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


async def test_workers_share_a_port_replay_respawn_and_drain(
    home: Path, sim: RunningSimulator, redis_url: str
) -> None:
    journal = home / "journal"
    journal.mkdir(parents=True)
    dead = {"t": "e", "request_id": "req_from_a_dead_gateway", "ts_us": 1, "agent": "ghost"}
    (journal / "seg-1-1-000001.jsonl").write_text(json.dumps(dead) + "\n")
    args = ["--workers", "2", "--counters", redis_url, "--upstream", sim.openai_url,
            "--upstream-key-env", "SIM_PROVIDER_KEY"]  # fmt: skip
    gw = GatewayProcess(args, home)
    try:
        await asyncio.to_thread(gw.wait_ready, 90)
        workers = _children(gw.proc.pid)
        assert len(workers) == 2
        # Each worker writes its own journal segments (named by its pid).
        segments = {int(p.name.split("-")[1]) for p in journal.glob("seg-*.jsonl")}
        assert segments == workers
        store = Store(f"sqlite:///{home / 'agentctl.db'}")
        assert [r["request_id"] for r in store.records_after(0, agent="ghost")] == [
            dead["request_id"]
        ]
        store.close()

        async with httpx.AsyncClient(timeout=30) as client:
            ok = await asyncio.gather(
                *(client.post(gw.url + "/v1/chat/completions", json=BODY, headers=HEADERS)
                  for _ in range(8))
            )  # fmt: skip
            assert {r.status_code for r in ok} == {200}
            # A worker that dies is replaced; the replacement replays its journal.
            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            for _ in range(600):
                now = _children(gw.proc.pid)
                dead_segments = list(journal.glob(f"seg-{victim}-*.jsonl"))
                if len(now) == 2 and victim not in now and not dead_segments:
                    break
                await asyncio.sleep(0.1)
            assert len(now) == 2 and victim not in now and not dead_segments, gw.output()
            workers = now
            await asyncio.to_thread(gw.wait_ready, 60)
            slow = asyncio.create_task(
                client.post(
                    gw.url + "/v1/chat/completions",
                    json=BODY,
                    headers={**HEADERS, "x-sim-latency-ms": "1500"},
                )
            )
            await asyncio.sleep(0.5)  # the slow request is in flight in one worker
            gw.send(signal.SIGTERM)
            assert (await slow).status_code == 200  # drained, not cut off
    finally:
        code = await asyncio.to_thread(gw.stop, signal.SIGTERM)
    assert code == 0, gw.output()
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert not list(journal.glob("seg-*.jsonl"))  # everything committed, segments removed
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    assert store.count_records() == 10
    store.close()


async def test_a_replacement_worker_starts_with_the_reloaded_config(
    home: Path, sim: RunningSimulator, redis_url: str
) -> None:
    """SIGHUP reloads every worker *and* the parent's copy: a worker that dies afterwards
    is replaced by one running the new config, not the one the parent started with."""
    config = home.parent / "agentctl.yaml"
    config.write_text("limits:\n  max_body_bytes: 1000000\n")
    args = ["--workers", "2", "--counters", redis_url, "--upstream", sim.openai_url,
            "--upstream-key-env", "SIM_PROVIDER_KEY", "--config", str(config)]  # fmt: skip
    padded = {**BODY, "messages": [{"role": "user", "content": "x" * 2000}]}
    gw = GatewayProcess(args, home)

    async def statuses(client: httpx.AsyncClient, n: int) -> set[int]:
        # A fresh connection each: the kernel spreads them over both workers.
        answers = [
            await client.post(
                gw.url + "/v1/chat/completions",
                json=padded,
                headers={**HEADERS, "Connection": "close"},
            )
            for _ in range(n)
        ]
        return {r.status_code for r in answers}

    try:
        await asyncio.to_thread(gw.wait_ready, 90)
        async with httpx.AsyncClient(timeout=30) as client:
            assert await statuses(client, 4) == {200}
            config.write_text("limits:\n  max_body_bytes: 500\n")
            gw.send(signal.SIGHUP)
            for _ in range(100):
                if await statuses(client, 6) == {413}:
                    break
                await asyncio.sleep(0.1)
            assert await statuses(client, 10) == {413}, gw.output()
            for victim in sorted(_children(gw.proc.pid)):  # replace both, one at a time
                os.kill(victim, signal.SIGKILL)
                for _ in range(600):
                    now = _children(gw.proc.pid)
                    if len(now) == 2 and victim not in now:
                        break
                    await asyncio.sleep(0.1)
                assert victim not in now, gw.output()
                await asyncio.to_thread(gw.wait_ready, 60)
            await asyncio.sleep(1.0)  # both replacements listening
            assert await statuses(client, 16) == {413}, gw.output()
    finally:
        await asyncio.to_thread(gw.stop, signal.SIGTERM)
