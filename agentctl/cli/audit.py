"""`agentctl audit ...`: verify the hash chain, prune old days, export raw records."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer

from agentctl.audit.export import iter_records
from agentctl.audit.prune import prune as run_prune
from agentctl.audit.verify import verify as run_verify
from agentctl.cli import render
from agentctl.cli.options import Actor, Db, Json, actor_name, open_db
from agentctl.cli.report import zone
from agentctl.errors import CliError
from agentctl.reports import parse_time

app = typer.Typer(
    help="Prove the audit chain, prune old days, export records for a SIEM.",
    no_args_is_help=True,
)
Since = Annotated[
    str | None, typer.Option("--since", help="Start: 2026-12-01, 2026-12-01T10:00, 24h, 7d.")
]
Until = Annotated[str | None, typer.Option("--until", help="End (exclusive), same forms.")]
Tz = Annotated[str, typer.Option("--tz", help="Time zone for dates without one.")]


@app.command("verify")
def verify(
    since: Since = None, until: Until = None, tz: Tz = "UTC", db: Db = None, json_out: Json = False
) -> None:
    """Recompute the hash chain; exit 1 naming the first modified, deleted or inserted record."""
    zone_info = zone(tz)
    verdict = run_verify(
        open_db(db, existing=True), parse_time(since, zone_info), parse_time(until, zone_info)
    )
    if json_out:
        render.emit_json(verdict.as_dict())
    elif verdict.ok:
        if verdict.segments:
            scope = f"{verdict.records} records in {verdict.segments} day segment(s)"
            if verdict.days:
                scope += f" ({verdict.days[0]} .. {verdict.days[-1]})"
        else:
            scope = "no records in the period checked"
        render.out(f"audit chain OK: {scope}")
        render.out(f"head: record {verdict.head_id}, hash {verdict.head_hash or '-'}")
        if verdict.pruned_through:
            render.out(f"records 1..{verdict.pruned_through} were pruned (prune event checked)")
    if not verdict.ok:
        problem = verdict.problem
        assert problem is not None
        who = f" (request_id {problem.request_id})" if problem.request_id else ""
        if not json_out:
            render.error(f"audit chain broken at record {problem.id}{who}: {problem.message}")
        raise typer.Exit(1)


@app.command("prune")
def prune(
    before: Annotated[
        str, typer.Option("--before", help="Delete whole UTC days before this date (YYYY-MM-DD).")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")],
    actor: Actor = None,
    db: Db = None,
    json_out: Json = False,
) -> None:
    """Delete old day segments; the prune itself is an audit event, the rest stays verifiable."""
    try:
        cutoff = date.fromisoformat(before)
    except ValueError:
        raise CliError(f"--before {before!r} is not a date; use YYYY-MM-DD", exit_code=2) from None
    today = datetime.now(UTC).date()
    result = run_prune(open_db(db), cutoff, actor=actor_name(actor), reason=reason, today=today)
    if json_out:
        render.emit_json(result.__dict__)
        return
    if not result.days:
        render.out(f"nothing to prune before {cutoff}")
        return
    render.out(
        f"pruned {result.records} records ({len(result.days)} day(s), "
        f"{result.days[0]} .. {result.days[-1]}, ids {result.first_id}..{result.through_id}); "
        f"event {result.event_id}"
    )


@app.command("export")
def export(
    since: Since = None,
    until: Until = None,
    tz: Tz = "UTC",
    fmt: Annotated[str, typer.Option("--format", help="jsonl (one record per line).")] = "jsonl",
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", help="Only these kinds: repeat it or separate by commas (request,disable)."
        ),
    ] = None,
    db: Db = None,
) -> None:
    """Stream raw audit records, oldest first, in constant memory."""
    if fmt != "jsonl":
        raise CliError(f"unknown format {fmt!r}; export writes jsonl", exit_code=2)
    zone_info = zone(tz)
    store = open_db(db, existing=True)
    kinds = [k.strip() for value in kind or () for k in value.split(",") if k.strip()] or None
    if kinds:
        _warn_absent_kinds(store, kinds)
    rows = iter_records(
        store, parse_time(since, zone_info), parse_time(until, zone_info), kinds=kinds
    )
    write = sys.stdout.write
    try:
        for row in rows:
            write(json.dumps(row, separators=(",", ":"), default=str) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` closed the pipe: not an error
        sys.stderr.close()


def _warn_absent_kinds(store: Any, kinds: list[str]) -> None:
    """An auditor asking for a kind the store has never recorded (a typo) is told so,
    instead of receiving an empty file in silence."""
    import sqlalchemy as sa

    from agentctl.store.tables import audit

    with store.engine.connect() as conn:
        present = {r[0] for r in conn.execute(sa.select(audit.c.kind).distinct())}
    absent = [k for k in kinds if k not in present]
    if absent:
        render.warn(
            f"no record of kind {', '.join(repr(k) for k in absent)} in this store; kinds "
            f"recorded: {', '.join(sorted(present)) or 'none'}"
        )
