"""`agentctl report`: usage, cost and refusals by agent, team or purpose."""

from __future__ import annotations

import csv
import io
import sys
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from agentctl.cli import render
from agentctl.cli.options import Agent, Db, Purpose, Team, open_db
from agentctl.errors import CliError
from agentctl.reports import METRICS, ReportQuery, build_report, parse_time


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(
            f"unknown time zone {name!r}; use an IANA name like Europe/Berlin", 2
        ) from None


def report(
    agent: Agent = None,
    team: Team = None,
    purpose: Purpose = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Start: 2026-12-01, 2026-12-01T10:00, today, 24h, 7d."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="End (exclusive), same forms.")
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help="Time zone for dates.")] = "UTC",
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", help="agent, team, purpose or model (repeatable)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    db: Db = None,
) -> None:
    """Usage, cost and refusals from the audit records; totals reconcile exactly."""
    if json_out:
        fmt = "json"
    if fmt not in ("table", "csv", "json"):
        raise CliError(f"unknown format {fmt!r}; choose table, csv or json", exit_code=2)
    tzinfo = zone(tz)
    query = ReportQuery(
        agent=agent,
        team=team,
        purpose=purpose,
        model=model,
        since_us=parse_time(since, tzinfo),
        until_us=parse_time(until, tzinfo),
        group_by=group_by or ["agent"],
    )
    data = build_report(open_db(db), query)
    if fmt == "json":
        render.emit_json(data)
        return
    rows = data["rows"]
    keys = [k for k in (rows[0].keys() if rows else []) if k not in METRICS and k != "cost_usd"]
    keys = keys or ["group"]
    columns = [*keys, *METRICS, "cost_usd"]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        totals = {"agent" if "agent" in keys else (keys[0] if keys else "total"): "TOTAL"}
        writer.writerow({**data["totals"], **totals})
        sys.stdout.write(buf.getvalue())
        return
    shown = [k for k in keys if k != "team" or "owner" not in keys]
    metrics = ("requests", "denied", "errors", "prompt_tokens", "completion_tokens")
    labels = [*shown, "requests", "denied", "errors", "tokens in", "tokens out", "cost_usd"]
    table_rows = [[r.get(c) for c in (*shown, *metrics, "cost_usd")] for r in rows]
    total = data["totals"]
    table_rows.append(
        ["TOTAL", *([""] * (len(shown) - 1)), *(total[m] for m in metrics), total["cost_usd"]]
    )
    render.show(render.table(labels, table_rows, right=labels[len(shown) :]))
