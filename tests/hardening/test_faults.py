"""Faults beyond tests/gateway/test_upstream_failures.py: a full disk under the journal
(the kernel's own ENOSPC, from /dev/full), the SQLite store locked by another writer,
a malformed SSE stream, an upstream hanging while others are served. In each the
gateway answers promptly with the right status, keeps serving, and the audit catches
up."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from agentctl.config import Audit, Timeouts
from tests.gateway.support import CHAT, HEADERS, MESSAGES, RAW_BODY, error_of, ok, post
from tests.hardening.support import connect, request
from tests.harness import GatewayHarness, sim_upstream


@contextmanager
def disk_full(gateway: GatewayHarness) -> Iterator[None]:
    """Every journal write fails with ENOSPC until the block ends."""
    journal = gateway.gw.recorder.journal
    assert journal is not None
    fd = journal._current.fd
    saved = os.dup(fd)
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(full)


def journal_lines(gateway: GatewayHarness) -> list[dict[str, object]]:
    out = []
    for path in sorted(gateway.settings.journal_path.glob("seg-*.jsonl")):  # type: ignore[union-attr]
        out += [json.loads(line) for line in path.read_bytes().splitlines() if line]
    return out


async def test_full_journal_disk_fails_closed_with_503(gateway: GatewayHarness) -> None:
    assert gateway.sim is not None
    await ok(gateway)
    forwarded = len(gateway.sim.state.requests)
    with disk_full(gateway):
        resp = await post(gateway)
        err = error_of(resp, 503, "audit_unavailable")
        assert "cannot write its audit journal (No space left on device)" in err["message"]
        assert resp.headers["retry-after"] == "5"
        assert len(gateway.sim.state.requests) == forwarded  # nothing left unaccounted
        async with httpx.AsyncClient(base_url=gateway.url) as client:
            assert (await client.get("/healthz")).status_code == 200
        assert gateway.gw.recorder.journal_failing is not None
    await ok(gateway)  # space is back: served again, no restart
    assert gateway.gw.recorder.journal_failing is None
    rows = await gateway.records()
    assert [(r["status"], r["rule_id"]) for r in rows] == [
        (200, None),
        (503, "audit_unavailable"),
        (200, None),
    ]
    assert all(isinstance(line, dict) for line in journal_lines(gateway))  # nothing torn


async def test_full_journal_disk_serves_when_configured_open(gateway: GatewayHarness) -> None:
    await gateway.restart(audit=Audit(on_journal_failure="open"))
    with disk_full(gateway):
        await ok(gateway)
        await ok(gateway)
    rows = await gateway.records()
    assert [(r["status"], r["outcome"]) for r in rows] == [(200, "served"), (200, "served")]


async def test_store_locked_by_another_writer(gateway: GatewayHarness) -> None:
    """Like `agentctl policy apply` holding a write transaction: requests are served
    meanwhile, their rows wait (journaled), and land once the lock is released."""
    db = gateway.settings.database.removeprefix("sqlite:///")  # type: ignore[union-attr]
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("CREATE TABLE hold_the_lock (x)")
        for _ in range(5):
            await ok(gateway)
        assert gateway.gw.recorder.pending >= 5
        assert len(journal_lines(gateway)) >= 5  # the rows are safe meanwhile
        other.execute("ROLLBACK")
    finally:
        other.close()
    rows = await gateway.records()
    assert [r["status"] for r in rows] == [200] * 5


async def test_malformed_sse_is_relayed_and_audited(gateway: GatewayHarness) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        resp = await client.post(CHAT, content=body, headers={**HEADERS, "x-sim-malformed": "1"})
    assert resp.status_code == 200
    assert resp.text.endswith("data: [DONE]\n\n")
    [row] = await gateway.records()
    assert (row["status"], row["outcome"]) == (200, "served")
    assert row["usage_source"] in ("reported", "estimated")
    await ok(gateway)


async def test_a_hanging_upstream_does_not_hold_up_others(gateway: GatewayHarness) -> None:
    assert gateway.sim is not None
    timeouts = Timeouts(first_byte=3, idle=3, connect=1.0, total=10.0)
    await gateway.restart(upstreams=(sim_upstream(gateway.sim, timeouts=timeouts),))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        hung = asyncio.ensure_future(
            client.post(CHAT, content=RAW_BODY, headers={**HEADERS, "x-sim-hang": "1"})
        )
        for _ in range(3):
            await ok(gateway)
            assert not hung.done()  # the others were answered while it still waits
        error_of(await hung, 504, "upstream_timeout")
    rows = await gateway.records()
    assert sorted(r["status"] for r in rows) == [200, 200, 200, 504]


async def test_a_client_leaving_mid_body_is_recorded_not_an_error(
    gateway: GatewayHarness, caplog: pytest.LogCaptureFixture
) -> None:
    _, writer = await connect(gateway.url)
    data = request()
    writer.write(data[:-10])  # the head and most of the body, then gone
    await writer.drain()
    writer.close()
    rows = await eventually_rows(gateway)
    assert [(r["status"], r["rule_id"]) for r in rows] == [(499, "client_closed_request")]
    assert "internal error" not in caplog.text
    await ok(gateway)


async def eventually_rows(gateway: GatewayHarness) -> list[dict[str, object]]:
    for _ in range(500):
        rows = await gateway.records()
        if rows:
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError("no audit row")
