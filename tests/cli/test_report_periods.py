"""`agentctl report` against a hand-computed fixture: month ends and DST changes.

Each record costs a distinct power of ten (pico-dollars), so every expected bucket
total below says exactly which records fell into it.

Europe/Berlin leaves summer time on 2026-10-25 at 01:00 UTC (03:00 CEST -> 02:00 CET:
a 25-hour day, 02:00-03:00 twice); October ends a week later.
America/New_York starts summer time on 2026-03-08 at 07:00 UTC (02:00 EST -> 03:00 EDT:
a 23-hour day); February 2026 has 28 days.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.money import usd_str
from agentctl.store.sql import Store, now_us

runner = CliRunner()
BERLIN = [  # (UTC timestamp, agent, team, outcome)
    ("2026-10-24T21:59:59.999999", "bot-a", "team-ml", "served"),  # 1: Berlin 10-24 23:59:59
    ("2026-10-24T22:00:00", "bot-a", "team-ml", "served"),  # 10: Berlin 10-25 00:00 CEST
    ("2026-10-25T00:30:00", "bot-b", "team-ml", "served"),  # 100: 02:30 CEST (first)
    ("2026-10-25T01:30:00", "bot-b", "team-ml", "refused"),  # 1000: 02:30 CET (second)
    ("2026-10-25T22:59:59", "bot-c", "team-ops", "served"),  # 10^4: 10-25 23:59:59 CET
    ("2026-10-25T23:00:00", "bot-c", "team-ops", "served"),  # 10^5: 10-26 00:00 CET
    ("2026-10-31T22:59:59", "bot-a", "team-ml", "served"),  # 10^6: 10-31 23:59:59 CET
    ("2026-10-31T23:00:00", "bot-a", "team-ml", "served"),  # 10^7: 11-01 00:00 CET
    ("2026-11-01T00:30:00", "bot-b", "team-ml", "served"),  # 10^8: 11-01 01:30 CET
]
NEW_YORK = [
    ("2026-03-01T04:59:59", "ny-a", "team-us", "served"),  # 1: NY 02-28 23:59:59 EST
    ("2026-03-01T05:00:00", "ny-a", "team-us", "served"),  # 10: NY 03-01 00:00 EST
    ("2026-03-08T06:59:59", "ny-a", "team-us", "served"),  # 100: NY 03-08 01:59:59 EST
    ("2026-03-08T07:00:00", "ny-b", "team-us", "served"),  # 1000: NY 03-08 03:00 EDT
    ("2026-03-09T03:59:59", "ny-b", "team-us", "served"),  # 10^4: NY 03-08 23:59:59 EDT
    ("2026-03-09T04:00:00", "ny-b", "team-us", "served"),  # 10^5: NY 03-09 00:00 EDT
]


def records(spec: list[tuple[str, str, str, str]], prefix: str) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    out = []
    for i, (when, agent, team, outcome) in enumerate(spec):
        moment = datetime.fromisoformat(when).replace(tzinfo=UTC)
        out.append(
            {
                "request_id": f"{prefix}{i}",
                "ts_us": int(moment.timestamp()) * 1_000_000 + moment.microsecond,
                "agent": agent,
                "owner": team,
                "purpose": "production",
                "model": "gpt-4o-mini",
                "outcome": outcome,
                "rule_id": "daily-budget-exceeded" if outcome == "refused" else None,
                "prompt_tokens": i + 1,
                "cost_pico": 10**i,
            }
        )
    return out


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'periods.db'}"
    store = Store(url)
    store.migrate()
    store.append_records(records(BERLIN, "b"))
    store.append_records(records(NEW_YORK, "n"))
    store.close()
    yield url


def report(db: str, *args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["report", "--db", db, "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def costs(data: dict[str, Any], key: str) -> dict[str, str]:
    return {row[key]: row["cost_usd"] for row in data["rows"]}


def usd(*powers: int) -> str:
    return usd_str(sum(10**p for p in powers))


def test_days_in_berlin_across_dst_end_and_month_end(db: str) -> None:
    data = report(db, "--group-by", "day", "--tz", "Europe/Berlin", "--team", "team-ml")
    assert costs(data, "day") == {
        "2026-10-24": usd(0),
        "2026-10-25": usd(1, 2, 3),
        "2026-10-31": usd(6),
        "2026-11-01": usd(7, 8),
    }
    everyone = report(db, "--group-by", "day", "--tz", "Europe/Berlin", "--since", "2026-10-01")
    assert costs(everyone, "day")["2026-10-25"] == usd(1, 2, 3, 4)  # the 25-hour day
    assert costs(everyone, "day")["2026-10-26"] == usd(5)


def test_the_repeated_hour_is_two_rows(db: str) -> None:
    data = report(
        db, "--group-by", "hour", "--tz", "Europe/Berlin",
        "--since", "2026-10-25", "--until", "2026-10-26",
    )  # fmt: skip
    assert list(costs(data, "hour").items()) == [
        ("2026-10-25T00:00+02:00", usd(1)),
        ("2026-10-25T02:00+02:00", usd(2)),
        ("2026-10-25T02:00+01:00", usd(3)),
        ("2026-10-25T23:00+01:00", usd(4)),
    ]
    assert data["totals"]["denied"] == 1


def test_months_differ_by_zone(db: str) -> None:
    october = ("--since", "2026-10-01", "--until", "2026-11-01")
    berlin = report(db, *october, "--tz", "Europe/Berlin")["totals"]
    utc = report(db, *october, "--tz", "UTC")["totals"]
    assert berlin["cost_usd"] == usd(0, 1, 2, 3, 4, 5, 6)
    assert utc["cost_usd"] == usd(0, 1, 2, 3, 4, 5, 6, 7)
    assert berlin["requests"] == 7 and utc["requests"] == 8


def test_days_in_new_york_across_month_end_and_dst_start(db: str) -> None:
    data = report(db, "--group-by", "day", "--tz", "America/New_York", "--team", "team-us")
    assert costs(data, "day") == {
        "2026-02-28": usd(0),
        "2026-03-01": usd(1),
        "2026-03-08": usd(2, 3, 4),  # the 23-hour day
        "2026-03-09": usd(5),
    }
    hours = report(
        db, "--group-by", "hour", "--tz", "America/New_York",
        "--since", "2026-03-08T01:00", "--until", "2026-03-08T04:00",
    )  # fmt: skip
    assert costs(hours, "hour") == {
        "2026-03-08T01:00-05:00": usd(2),
        "2026-03-08T03:00-04:00": usd(3),
    }


def test_relative_periods_use_the_injected_now(db: str) -> None:
    today = report(
        db, "--since", "today", "--until", "2026-10-26", "--tz", "Europe/Berlin",
        "--now", "2026-10-25T12:00:00Z",
    )  # fmt: skip
    assert today["totals"]["cost_usd"] == usd(1, 2, 3, 4)
    day = report(
        db, "--since", "24h", "--now", "2026-10-26T00:00:00Z", "--until", "2026-10-26T00:00Z"
    )
    assert day["totals"]["cost_usd"] == usd(2, 3, 4, 5)


def test_grouping_combines_and_totals_reconcile(db: str) -> None:
    data = report(db, "--group-by", "team", "--group-by", "day", "--tz", "Europe/Berlin")
    assert {(r["day"], r["team"]) for r in data["rows"]} >= {
        ("2026-10-25", "team-ml"),
        ("2026-10-25", "team-ops"),
    }
    assert data["totals"]["cost_usd"] == usd(*range(9), *range(6))
    assert sum(r["requests"] for r in data["rows"]) == data["totals"]["requests"] == 15
    assert report(db, "--model", "other")["totals"]["requests"] == 0
    assert report(db, "--purpose", "production", "--agent", "bot-c")["totals"]["cost_usd"] == usd(
        4, 5
    )


def test_formats_and_output_file(db: str, tmp_path: Path) -> None:
    base = ["report", "--db", db, "--group-by", "agent", "--tz", "Europe/Berlin"]
    out = runner.invoke(app, [*base, "--format", "csv"]).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[-1]["agent"] == "TOTAL" and rows[-1]["requests"] == "15"
    assert out.startswith("agent,team,purpose,requests,")  # one team column, no owner twin
    by_team = runner.invoke(app, [*base[:3], "--group-by", "team", "--format", "csv"]).stdout
    header, *teams = list(csv.reader(io.StringIO(by_team)))
    assert header[:2] == ["team", "requests"] and teams[-1][0] == "TOTAL"
    lines = runner.invoke(app, [*base, "--format", "jsonl"]).stdout.splitlines()
    assert json.loads(lines[-1])["totals"]["requests"] == 15 and len(lines) == 6
    md = runner.invoke(app, [*base, "--format", "md"]).stdout.splitlines()
    assert md[0].startswith("| agent | team | purpose |") and md[-1].startswith("| TOTAL |")
    target = tmp_path / "r.csv"
    done = runner.invoke(app, [*base, "--format", "csv", "--output", str(target)])
    assert done.exit_code == 0 and target.read_text() == out
    table = runner.invoke(app, [*base, "--format", "table", "--output", str(tmp_path / "r.txt")])
    assert table.exit_code == 0 and "TOTAL" in (tmp_path / "r.txt").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--group-by", "week"], "cannot group by"),
        (["--group-by", "day", "--group-by", "hour"], "day or by hour"),
        (["--tz", "Mars/Olympus"], "unknown time zone"),
        (["--format", "pdf"], "unknown format"),
        (["--since", "last tuesday"], "cannot read time"),
    ],
)
def test_bad_input_is_a_usage_error(db: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", "--db", db, *args])
    assert result.exit_code == 2 and message in result.output


def test_an_empty_period_is_a_usage_error(tmp_path: Path) -> None:
    """Regression (new-user trial): --since after --until printed an empty table, rc 0."""
    from typer.testing import CliRunner

    from agentctl.cli import app

    args = ["report", "--db", f"sqlite:///{tmp_path / 'a.db'}"]
    res = CliRunner().invoke(app, [*args, "--since", "2027-01-01", "--until", "2026-01-01"])
    assert res.exit_code == 2 and "swap them" in res.output


def test_requests_without_an_identity_are_labelled_for_people(tmp_path: Path) -> None:
    # Regression: refusals before an identity was read made a report row of blank cells.
    url = f"sqlite:///{tmp_path / 'anon.db'}"
    store = Store(url)
    store.migrate()
    store.append_records(
        [
            {"request_id": "a1", "ts_us": now_us(), "agent": "", "status": 400,
             "outcome": "refused", "rule_id": "invalid_agent_identity"},
            {"request_id": "a2", "ts_us": now_us(), "agent": "bot", "owner": "team-a",
             "purpose": "batch", "status": 200, "outcome": "served", "cost_pico": 7},
        ]
    )  # fmt: skip
    store.close()
    md = runner.invoke(app, ["report", "--db", url, "--format", "md"]).stdout.splitlines()
    assert any(line.startswith("| (no identity) | - | - | 1 | 1 |") for line in md)
    raw = report(url)
    assert {r["agent"] for r in raw["rows"]} == {"", "bot"}  # JSON keeps the raw value


def test_a_team_no_record_names_is_warned_about(db: str) -> None:
    # Regression (operator trial): `report --team team-mll` printed zeros, exit 0, no hint.
    known = report(db)["rows"][0]["owner"]
    typo = known[:-1] + known[-1] * 2
    result = runner.invoke(app, ["report", "--db", db, "--team", typo, "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["totals"]["requests"] == 0
    assert f"no audit record names --team {typo!r}; did you mean {known!r}" in result.stderr
    clean = runner.invoke(app, ["report", "--db", db, "--team", known, "--format", "json"])
    assert "no audit record names" not in clean.stderr
