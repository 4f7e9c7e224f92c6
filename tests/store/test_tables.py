"""One schema, two views: the Core tables the gateway uses (`store/tables.py`) and the
CLI's SQLModel classes (`store/models.py`), which copy their columns from them. A
serving process never imports the ORM (or rich): ~8 MB and ~0.1 s of start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from agentctl.store import tables


def ddl(metadata: sa.MetaData, dialect: sa.engine.Dialect) -> dict[str, list[str]]:
    out = {}
    for name, table in metadata.tables.items():
        indexes = sorted(str(CreateIndex(ix).compile(dialect=dialect)) for ix in table.indexes)
        out[name] = [str(CreateTable(table).compile(dialect=dialect)).strip(), *indexes]
    return out


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=str)
def test_the_orm_classes_declare_exactly_the_core_tables(dialect: sa.engine.Dialect) -> None:
    from sqlmodel import SQLModel

    import agentctl.store.models  # noqa: F401 - registers the classes' tables

    orm = {k: v for k, v in ddl(SQLModel.metadata, dialect).items() if k in tables.metadata.tables}
    assert set(orm) == set(tables.metadata.tables)
    assert orm == ddl(tables.metadata, dialect)
    assert "CREATE UNIQUE INDEX ix_audit_request_id ON audit (request_id)" in orm["audit"]


def defaults(metadata: sa.MetaData) -> dict[str, dict[str, object]]:
    return {
        name: {c.name: c.default.arg for c in table.columns if c.default is not None}
        for name, table in metadata.tables.items()
    }


def test_the_column_defaults_are_the_ones_audit_hashes_were_made_with() -> None:
    from sqlmodel import SQLModel

    import agentctl.store.models  # noqa: F401

    orm = {k: v for k, v in defaults(SQLModel.metadata).items() if k in tables.metadata.tables}
    assert orm == defaults(tables.metadata)
    # The appender starts every row from these (`sql._full_row`): a change would change
    # the hash of rows written without the field, so they are pinned here.
    text = {"kind": "request", "usage_source": "none", "chain": "main"}
    empty = ["agent", "owner", "purpose", "extensions", "verification", "endpoint", "model",
             "upstream_model", "upstream", "outcome", "shadow_rules", "client",
             "policy_version", "attempts", "prev_hash", "hash"]  # fmt: skip
    zero = ["status", "prompt_tokens", "completion_tokens", "cached_tokens",
            "cache_write_tokens", "reasoning_tokens", "reserved_pico"]  # fmt: skip
    expected = {**text, **dict.fromkeys(empty, ""), **dict.fromkeys(zero, 0)}
    expected |= {"latency_ms": 0.0, "stream": False}
    assert defaults(tables.metadata)["audit"] == expected


SERVE_AND_ONE_REQUEST = """
import asyncio, json, sys
import aiohttp
from agentctl.cli import app  # the CLI's root group, as `agentctl serve` loads it
from agentctl.config import SecretRef, Upstream, load_settings
from agentctl.gateway.server import serve
import typer.main
typer.main.get_command(app).get_command(None, "serve")

async def main():
    key = SecretRef.model_validate({"$env": "PATH"})
    refused = Upstream(name="default", base_url="http://127.0.0.1:9/v1", api_key=key)
    settings = load_settings(home=sys.argv[1], overrides={"upstreams": (refused,), "port": 0})
    stop = asyncio.Event()
    ready = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, stop=stop, on_ready=ready.set_result))
    url = await asyncio.wait_for(ready, 60)
    headers = {"X-Agent-Identity": "name=bot-a; owner=team-ml; purpose=production"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
            status = r.status
    stop.set()
    await task
    return status

status = asyncio.run(main())
heavy = ("sqlmodel", "sqlalchemy.orm", "agentctl.store.models", "rich")
print(json.dumps([status, sorted(m for m in sys.modules if m.startswith(heavy))]))
"""


def test_a_serving_process_loads_neither_the_orm_nor_rich(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVE_AND_ONE_REQUEST, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    status, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == 502  # the request went through the pipeline to a refused upstream
    assert loaded == []
