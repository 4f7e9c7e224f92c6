"""`agentctl audit verify | prune | export` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from agentctl.audit.synth import generate
from agentctl.cli import app
from agentctl.store.chain import record_hash
from agentctl.store.sql import AUDIT, Store

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "synth.db"
    generate(path, 600, days=6, agents=5)  # 6 days ending 2026-12-01
    return f"sqlite:///{path}"


def cli(*args: str) -> tuple[int, str]:
    """Exit code and stdout; errors (stderr) are only looked at on failure."""
    result = runner.invoke(app, list(args))
    plain = result.exit_code == 0 or "--json" in args
    return result.exit_code, result.stdout if plain else result.output


def test_verify_reports_ok_then_names_the_tampered_record(db: str) -> None:
    code, out = cli("audit", "verify", "--db", db)
    assert code == 0 and "audit chain OK: 600 records in 6 day segment(s)" in out
    code, out = cli("audit", "verify", "--db", db, "--since", "2099-01-01")
    assert code == 0 and "audit chain OK: no records in the period checked" in out
    store = Store(db)
    with store.engine.begin() as conn:
        rid = conn.execute(sa.select(AUDIT.c.request_id).where(AUDIT.c.id == 250)).scalar_one()
        conn.execute(AUDIT.update().where(AUDIT.c.id == 250).values(prompt_tokens=1))
    code, out = cli("audit", "verify", "--db", db)
    assert code == 1
    assert f"broken at record 250 (request_id {rid})" in out and "modified" in out
    code, out = cli("audit", "verify", "--db", db, "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["break"]["id"] == 250
    code, out = cli("audit", "verify", "--db", db, "--since", "2026-11-30", "--json")
    assert code == 0 and json.loads(out)["days"] == ["2026-11-30"]


def test_prune_is_audited_and_leaves_a_verifiable_chain(db: str) -> None:
    code, out = cli(
        "audit", "prune", "--db", db, "--before", "2026-11-28",
        "--reason", "retention", "--actor", "carol", "--json",
    )  # fmt: skip
    assert code == 0, out
    pruned = json.loads(out)
    assert pruned["days"] == ["2026-11-25", "2026-11-26", "2026-11-27"]
    code, out = cli("audit", "verify", "--db", db, "--json")
    assert code == 0 and json.loads(out)["pruned_through"] == pruned["through_id"]
    code, out = cli("audit", "export", "--db", db, "--kind", "prune")
    event = json.loads(out)
    assert (event["actor"], event["reason"]) == ("carol", "retention")
    code, out = cli("audit", "prune", "--db", db, "--before", "2999-01-01", "--reason", "x")
    assert code == 2 and "future" in out
    code, out = cli("audit", "prune", "--db", db, "--before", "soon", "--reason", "x")
    assert code == 2 and "not a date" in out


def test_export_streams_raw_records_that_re_verify(db: str) -> None:
    code, out = cli("audit", "export", "--db", db, "--format", "jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["id"] for r in lines] == list(range(1, 601))
    prev = ""
    for rec in lines:
        assert rec["prev_hash"] == prev and record_hash(prev, rec) == rec["hash"]
        prev = rec["hash"]
    code, out = cli("audit", "export", "--db", db, "--since", "2026-11-30", "--until", "2026-12-01")
    day = [json.loads(line) for line in out.splitlines()]
    assert day and all(r["ts_us"] >= 1_796_083_200_000_000 - 86_400_000_000 for r in day)
    assert len(day) < 200
    code, out = cli("audit", "export", "--db", db, "--format", "csv")
    assert code == 2


def test_export_kinds_by_commas_and_a_typo_is_named(db: str) -> None:
    # Regression: `--kind disable,enable` and `--kind bogus` exported nothing, silently.
    Store(db).record_event("disable", agent="bot-1", actor="op", reason="incident")
    code, out = cli("audit", "export", "--db", db, "--kind", "disable,request")
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert code == 0 and set(kinds) == {"disable", "request"} and len(kinds) == 601
    result = runner.invoke(app, ["audit", "export", "--db", db, "--kind", "bogus"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "no record of kind 'bogus' in this store" in result.stderr
    assert "kinds recorded: disable, request" in result.stderr
