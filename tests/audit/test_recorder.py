"""Regression tests for the journal and the batched writer (store/recorder.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentctl.store.recorder import REJECTED, Journal, Recorder, replay
from agentctl.store.sql import Store
from tests.harness import IDENTITY, GatewayHarness


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'rec.db'}")
    s.migrate()
    return s


def row(rid: str, **extra: Any) -> dict[str, Any]:
    return {"request_id": rid, "ts_us": 1_790_000_000_000_000, "agent": "a", **extra}


def ids(store: Store) -> list[str]:
    return [r["request_id"] for r in store.records_after(0, kinds=None)]


def test_a_row_the_store_refuses_does_not_block_the_rows_behind_it(
    store: Store, tmp_path: Path
) -> None:
    """Before: the writer retried the failing batch forever and nothing else was audited."""
    journal = Journal(tmp_path / "journal")
    recorder = Recorder(store, journal=journal, flush_interval=0.01)
    recorder.start()
    recorder.record(row("good-1"))
    recorder.record(row("poison", detail={"not": "a string"}))  # cannot be bound
    recorder.record(row("good-2"))
    assert recorder.wait_idle(10)
    recorder.close()
    assert ids(store) == ["good-1", "good-2"]
    rejected = [json.loads(x) for x in (tmp_path / "journal" / REJECTED).read_text().splitlines()]
    assert [r["row"]["request_id"] for r in rejected] == ["poison"]
    assert not list((tmp_path / "journal").glob("seg-*")), "committed segments are collected"


def test_integers_beyond_64_bits_are_clamped_not_lost(store: Store, tmp_path: Path) -> None:
    """Regression: an upstream (or client) number beyond SQLite's int64 made the store
    refuse the row; the request was served and its record only sat in rejected.jsonl."""
    recorder = Recorder(store, journal=Journal(tmp_path / "journal"), flush_interval=0.01)
    recorder.start()
    recorder.record(row("huge", prompt_tokens=10**30, cost_pico=-(10**25), message="ok"))
    recorder.record(row("after", prompt_tokens=3))
    assert recorder.wait_idle(10)
    recorder.close()
    recs = {r["request_id"]: r for r in store.records_after(0, kinds=None)}
    assert recs["huge"]["prompt_tokens"] == 2**63 - 1
    assert recs["huge"]["cost_pico"] == -(2**63)
    assert recs["huge"]["message"] == "ok; values beyond 64 bits clamped: cost_pico, prompt_tokens"
    assert recs["after"]["prompt_tokens"] == 3
    assert not (tmp_path / "journal" / REJECTED).exists()


def test_replay_survives_torn_and_odd_lines_and_isolates_bad_rows(
    store: Store, tmp_path: Path
) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    lines = [
        json.dumps({"t": "b", **row("done", reserved_pico=7)}),
        json.dumps({"t": "e", **row("done", outcome="served", cost_pico=5)}),
        json.dumps({"t": "b", **row("cut", reserved_pico=9, cost_pico=9)}),
        "[1, 2, 3]",  # valid JSON, not a record
        json.dumps({"t": "e", **row("bad", detail=["x"])}),
        '{"t": "e", "request_id": "torn", "ts_',  # the crash cut this line
    ]
    (directory / "seg-1-1-000001.jsonl").write_text("\n".join(lines))
    assert replay(store, directory) == (2, 1)
    records = {r["request_id"]: r for r in store.records_after(0, kinds=None)}
    assert records["done"]["outcome"] == "served" and records["done"]["cost_pico"] == 5
    assert records["cut"]["outcome"] == "interrupted" and records["cut"]["cost_pico"] == 9
    assert "bad" in (directory / REJECTED).read_text()
    assert not list(directory.glob("seg-*")) and replay(store, directory) == (0, 0)


async def test_record_is_journaled_before_the_response_completes(
    gateway: GatewayHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that has the whole response must find its request in the journal, so a
    SIGKILL right after cannot turn a served request into an `interrupted` estimate.

    Budget settlement is made slow here (as a remote counter store can be)."""
    gw = gateway.gw
    done: set[str] = set()
    journaled_after_done: list[str] = []
    record = gw.recorder.record

    def watch(row: dict[str, Any]) -> None:
        if row["request_id"] in done:
            journaled_after_done.append(row["request_id"])
        record(row)

    settle = gw.governance.settle

    async def slow_settle(call: Any) -> None:
        await asyncio.sleep(0.3)
        await settle(call)

    monkeypatch.setattr(gw.recorder, "record", watch)
    monkeypatch.setattr(gw.governance, "settle", slow_settle)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for stream in (False, True):
            resp = await client.post(
                "/v1/chat/completions",
                json={**body, "stream": stream},
                headers={"X-Agent-Identity": IDENTITY},
            )
            assert resp.status_code == 200
            done.add(resp.headers["x-request-id"])
    await asyncio.sleep(0.8)
    assert journaled_after_done == []
