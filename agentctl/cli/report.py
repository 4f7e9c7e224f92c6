"""`agentctl report`: usage, cost and refusals by agent, team, purpose, model, day or hour."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from agentctl.cli import render
from agentctl.cli.options import Agent, Db, Purpose, Team, open_db
from agentctl.errors import CliError
from agentctl.reports import METRICS, ReportQuery, build_report, parse_time

FORMATS = ("table", "csv", "json", "jsonl", "md", "html")
SHOWN = ("requests", "denied", "errors", "prompt_tokens", "completion_tokens")


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
    tz: Annotated[str, typer.Option("--tz", help="Time zone for dates and day/hour rows.")] = "UTC",
    group_by: Annotated[
        list[str] | None,
        typer.Option(
            "--group-by",
            help="agent, team, purpose, model, day, hour, outcome or rule (repeatable).",
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, csv, json, jsonl, md or html.")
    ] = "table",
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    now: Annotated[str | None, typer.Option("--now", hidden=True)] = None,
    db: Db = None,
) -> None:
    """Usage, cost and refusals from the audit records; totals reconcile exactly."""
    if json_out:
        fmt = "json"
    if fmt not in FORMATS:
        raise CliError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}", exit_code=2)
    tzinfo = zone(tz)
    moment = _now(now)
    query = ReportQuery(
        agent=agent,
        team=team,
        purpose=purpose,
        model=model,
        since_us=parse_time(since, tzinfo, now=moment),
        until_us=parse_time(until, tzinfo, now=moment),
        group_by=group_by or ["agent"],
        tz=tzinfo,
    )
    since_us, until_us = query.since_us, query.until_us
    if since_us is not None and until_us is not None and since_us >= until_us:
        raise CliError(f"--since {since} is not before --until {until}; swap them", exit_code=2)
    store = open_db(db, existing=True)
    _warn_unknown_names(store, agent=agent, team=team)
    if fmt == "html":
        from agentctl.audit.compliance import gather
        from agentctl.audit.html import render as render_html

        now_us = int(moment.timestamp() * 1_000_000)
        _write(render_html(gather(store, query, now_us)), output)
        return
    data = build_report(store, query)
    if fmt == "table" and output is None:
        render.show(_table(data))
        return
    text = {"json": _json, "jsonl": _jsonl, "csv": _csv, "md": _markdown, "table": _plain}[fmt]
    _write(text(data), output)


def _warn_unknown_names(store: Any, *, agent: str | None, team: str | None) -> None:
    """A --team or --agent no record has ever named (a typo) would report zeros in
    silence: say so, with the closest names the audit knows."""
    import sqlalchemy as sa

    from agentctl.store.rollups import ROLLUP_DAILY

    r = ROLLUP_DAILY.c
    for flag, value, column in (("--team", team, r.owner), ("--agent", agent, r.agent)):
        if not value:
            continue
        with store.engine.connect() as conn:
            if conn.execute(sa.select(column).where(column == value).limit(1)).first():
                continue
            names = [n for (n,) in conn.execute(sa.select(column).distinct()) if n]
        render.warn(f"no audit record names {flag} {value!r}{render.did_you_mean(value, names)}")


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--now {value!r} is not an ISO datetime", exit_code=2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror}") from None
    render.info(f"wrote {output}")


def _keys(data: dict[str, Any]) -> list[str]:
    rows = data["rows"]
    keys = [k for k in (rows[0] if rows else {}) if k not in METRICS and k != "cost_usd"]
    return [("team" if k == "owner" else k) for k in keys if k != "team"] or ["group"]


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2) + "\n"


def _jsonl(data: dict[str, Any]) -> str:
    lines = [json.dumps(row, separators=(",", ":")) for row in data["rows"]]
    lines.append(json.dumps({"totals": data["totals"]}, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def _csv(data: dict[str, Any]) -> str:
    keys = _keys(data)  # one `team` column (rows carry `owner` and its alias `team`)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*keys, *METRICS, "cost_usd"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(data["rows"])
    writer.writerow({**data["totals"], keys[0]: "TOTAL"})
    return buf.getvalue()


def _label(key: str, value: Any) -> Any:
    """A blank group key for people: requests refused before an identity (or a model)
    was read. JSON, JSONL and CSV keep the raw value."""
    if value != "":
        return value
    return "(no identity)" if key == "agent" else "-"


def _cells(data: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    keys = _keys(data)
    labels = [*keys, "requests", "denied", "errors", "tokens in", "tokens out", "cost_usd"]
    rows = [
        [*(_label(k, r.get(k)) for k in keys), *(r.get(c) for c in (*SHOWN, "cost_usd"))]
        for r in data["rows"]
    ]
    total = data["totals"]
    rows.append(["TOTAL", *([""] * (len(keys) - 1)), *(total[m] for m in SHOWN), total["cost_usd"]])
    return labels, rows


def _table(data: dict[str, Any]) -> Any:
    labels, rows = _cells(data)
    return render.table(labels, rows, right=labels[len(_keys(data)) :])


def _plain(data: dict[str, Any]) -> str:
    labels, rows = _cells(data)
    cells = [labels, *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(labels))]
    return "".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n"
                   for row in cells)  # fmt: skip


def _markdown(data: dict[str, Any]) -> str:
    labels, rows = _cells(data)
    numeric = len(_keys(data))

    def cell(value: Any) -> str:
        return ("" if value is None else str(value)).replace("|", "\\|")

    lines = ["| " + " | ".join(labels) + " |"]
    lines.append(
        "|" + "|".join("---:" if i >= numeric else "---" for i in range(len(labels))) + "|"
    )
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
