"""Failure behaviour: Redis unreachable (closed: 503 `counters_unavailable`, audited;
open: per-process limits), recovery without a restart, and PostgreSQL unreachable
(audit rows wait in the journal and are caught up). Only private servers or private
databases are broken here; the machine's Redis and PostgreSQL keep running."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import openai
import psycopg
import pytest
import redis

from agentctl.counters import Amounts, Limits, WindowSpec
from agentctl.counters.failover import CountersUnavailable, FailoverCounters
from agentctl.counters.redis import RedisCounters
from agentctl.policy import load_text
from agentctl.policy.loader import canonical_json
from agentctl.simulator import RunningSimulator
from agentctl.store.sql import Store
from tests.backends import PG_ADMIN_URL
from tests.harness import GatewayHarness
from tests.scale.conftest import PrivateRedis

pytestmark = pytest.mark.slow
MSG = [{"role": "user", "content": "one two three"}]


async def apply(gateway: GatewayHarness, text: str) -> None:
    policy = load_text(text)
    document = canonical_json(policy.document)
    await asyncio.to_thread(
        gateway.store.apply_policy, policy.version, document, ["t.yaml"], actor="t", reason="t"
    )
    await gateway.gw.refresh()


async def until(predicate, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_redis_outage_closed_refuses_with_503_and_recovers(
    home: Path, sim: RunningSimulator, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = GatewayHarness(home, sim)
    await gateway.start(counters=private_redis.url)  # on_failure defaults to closed
    try:
        client = gateway.aclient(max_retries=0)
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=8)
        private_redis.stop()
        caplog.set_level(logging.ERROR, logger="agentctl.counters")
        for _ in range(3):
            with pytest.raises(openai.InternalServerError) as err:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
            assert err.value.status_code == 503 and err.value.code == "counters_unavailable"
            assert "shared counters" in err.value.message
        loud = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(loud) == 1 and "closed" in loud[0].getMessage()  # once per outage

        private_redis.start()  # back, and empty (no persistence)

        async def served() -> bool:
            try:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
            except openai.InternalServerError:
                return False
            return True

        await until(served, "the gateway to use Redis again")
        refused = [r for r in await gateway.records() if r["rule_id"] == "counters_unavailable"]
        assert len(refused) >= 3 and {(r["status"], r["outcome"]) for r in refused} == {
            (503, "error")
        }
        # Redis came back without its data: the gateway seeded it again from the audit log.
        probe = redis.Redis(port=private_redis.port)
        assert probe.exists("agentctl:seeded")
        probe.close()
    finally:
        await gateway.stop()


async def test_redis_outage_open_serves_with_per_process_limits(
    home: Path, sim: RunningSimulator, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = GatewayHarness(home, sim)
    # Trust off: its tier multiplier would scale rpm 5 down, and this test counts to 5.
    await gateway.start(
        counters=private_redis.url,
        counters_options={"on_failure": "open"},
        trust={"enabled": False},
    )
    try:
        await apply(gateway, "apiVersion: agentctl/v1\nagents:\n  bot-a:\n    rate: {rpm: 5}\n")
        client = gateway.aclient(max_retries=0)
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        caplog.set_level(logging.ERROR, logger="agentctl.counters")
        private_redis.stop()
        for _ in range(5):  # a fresh local bucket of 5: served, Redis or not
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        with pytest.raises(openai.RateLimitError) as err:  # the limit still holds locally
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert err.value.code == "rate-limit-rpm"
        loud = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(loud) == 1 and "PER-PROCESS" in loud[0].getMessage()

        private_redis.start()
        counters = gateway.gw.counters
        assert isinstance(counters, FailoverCounters)

        async def healthy() -> bool:
            return counters.healthy

        await until(healthy, "the probe to find Redis again")
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # shared again
        assert counters.outages == 1
    finally:
        await gateway.stop()


async def test_postgres_outage_keeps_audit_rows_until_it_returns(
    home: Path, sim: RunningSimulator, pg_url: str
) -> None:
    Store(pg_url).migrate()
    name = pg_url.rsplit("/", 1)[1]
    gateway = GatewayHarness(home, sim)
    await gateway.start(database=pg_url)
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    try:
        client = gateway.aclient(max_retries=0)
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        await gateway.flush()
        # Make this one database unreachable: no new connections, existing ones cut.
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        ids = []
        for _ in range(5):
            resp = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MSG
            )
            ids.append(resp.headers["x-request-id"])
        recorder = gateway.gw.recorder

        async def failing() -> bool:
            return recorder.failures > 0

        await until(failing, "the recorder to hit the outage")
        assert recorder.pending == 5
        journal = "".join(p.read_text() for p in (home / "journal").glob("seg-*.jsonl"))
        assert all(rid in journal for rid in ids)  # kept on disk meanwhile

        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await gateway.flush()  # caught up by the writer's retries, no restart
        rows = await gateway.records()
        assert [r["request_id"] for r in rows][-5:] == ids and len(rows) == 6
    finally:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
        await gateway.stop()


async def test_full_or_flushed_redis(private_redis: PrivateRedis) -> None:
    """Script cache lost (restart, SCRIPT FLUSH): EVALSHA reloads. A full Redis under
    `noeviction` cannot count: that is an outage, not a bug (no 500s)."""
    counters = RedisCounters(private_redis.url)
    admin = redis.Redis(port=private_redis.port)
    try:
        spec = WindowSpec("w|agent|a|day|UTC|x", Limits(requests=5), time.time() + 60)
        assert (await counters.reserve("r1", [spec], Amounts(1), now=time.time(), ttl=60)).ok
        admin.script_flush()  # then a pipelined batch meets NOSCRIPT on every call
        got = await asyncio.gather(
            *(counters.reserve(f"r{i}", [spec], Amounts(1), now=time.time(), ttl=60)
              for i in range(2, 6))
        )  # fmt: skip
        assert [r.ok for r in got] == [True, True, True, True]
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        with pytest.raises(CountersUnavailable):
            await counters.reserve("r9", [], Amounts(1), now=time.time(), ttl=60)
    finally:
        admin.close()
        await counters.close()
