"""`agentctl report` and `agentctl tail --json` against a live gateway's store."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json

from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.money import usd_str
from tests.harness import GatewayHarness

MSG = [{"role": "user", "content": "hello there"}]
runner = CliRunner()


async def _traffic(gateway: GatewayHarness) -> None:
    a = gateway.aclient("name=bot-a; owner=team-ml; purpose=production")
    b = gateway.aclient("name=bot-b; owner=team-ml; purpose=batch")
    c = gateway.aclient("name=bot-c; owner=team-ops; purpose=production")
    calls = [a.chat.completions.create(model="gpt-4o-mini", messages=MSG) for _ in range(3)]
    calls += [b.chat.completions.create(model="gpt-4o", messages=MSG) for _ in range(2)]
    calls += [c.embeddings.create(model="text-embedding-3-small", input="x y z")]
    await asyncio.gather(*calls)
    # one refusal: an invalid declaration is still audited against no agent
    bad = gateway.aclient("name=Bot-A; owner=team-ml; purpose=production", max_retries=0)
    with contextlib.suppress(Exception):
        await bad.chat.completions.create(model="gpt-4o-mini", messages=MSG)


async def test_report_json_reconciles_with_audit(gateway: GatewayHarness) -> None:
    await _traffic(gateway)
    records = await gateway.records()
    result = await asyncio.to_thread(runner.invoke, app, ["report", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"]["requests"] == len(records)
    assert data["totals"]["cost_usd"] == usd_str(sum(r["cost_pico"] or 0 for r in records))
    for key in ("prompt_tokens", "completion_tokens", "cached_tokens"):
        assert data["totals"][key] == sum(r[key] for r in records)
        assert sum(row[key] for row in data["rows"]) == data["totals"][key]
    assert data["totals"]["denied"] == 1
    by_agent = {row["agent"]: row for row in data["rows"]}
    assert by_agent["bot-a"]["requests"] == 3 and by_agent["bot-a"]["owner"] == "team-ml"
    expected_b = sum(r["cost_pico"] for r in records if r["agent"] == "bot-b")
    assert by_agent["bot-b"]["cost_usd"] == usd_str(expected_b)

    team = json.loads(
        (
            await asyncio.to_thread(runner.invoke, app, ["report", "--team", "team-ml", "--json"])
        ).stdout
    )
    assert {r["agent"] for r in team["rows"]} == {"bot-a", "bot-b"}
    grouped = json.loads(
        (
            await asyncio.to_thread(
                runner.invoke, app, ["report", "--group-by", "team", "--format", "json"]
            )
        ).stdout
    )
    teams = {r["team"]: r["requests"] for r in grouped["rows"]}
    assert teams == {"team-ml": 5, "team-ops": 1, "": 1}


async def test_report_csv_and_table(gateway: GatewayHarness) -> None:
    await _traffic(gateway)
    await gateway.flush()
    out = (await asyncio.to_thread(runner.invoke, app, ["report", "--format", "csv"])).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[-1]["agent"] == "TOTAL"
    assert sum(int(r["requests"]) for r in rows[:-1]) == int(rows[-1]["requests"])
    table = await asyncio.to_thread(runner.invoke, app, ["report", "--purpose", "production"])
    assert table.exit_code == 0 and "bot-a" in table.output and "bot-b" not in table.output


async def test_report_rejects_bad_input(gateway: GatewayHarness) -> None:
    res = await asyncio.to_thread(runner.invoke, app, ["report", "--since", "yesterdayish"])
    assert res.exit_code == 2 and "cannot read time" in res.output
    res = await asyncio.to_thread(runner.invoke, app, ["report", "--format", "pdf"])
    assert res.exit_code == 2


async def test_tail_json_prints_calls_live(gateway: GatewayHarness) -> None:
    tail = asyncio.create_task(
        asyncio.to_thread(
            runner.invoke, app, ["tail", "--json", "--seconds", "2.5", "--interval", "0.1"]
        )
    )
    await asyncio.sleep(0.8)  # tail starts at the end of the log
    client = gateway.aclient()
    responses = [
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG) for _ in range(3)
    ]
    result = await tail
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [line["request_id"] for line in lines] == [r._request_id for r in responses]
    first = lines[0]
    assert first["agent"] == "bot-a" and first["owner"] == "team-ml"
    assert first["status"] == 200 and first["model"] == "gpt-4o-mini"
    assert first["prompt_tokens"] == responses[0].usage.prompt_tokens
    assert first["cost_usd"] not in (None, "0")
