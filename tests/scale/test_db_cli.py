"""`agentctl db status|migrate` and `serve` refusing a PostgreSQL schema that is behind.
(Independent commands run side by side: each CLI start costs seconds on a busy box.)"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentctl.store.migrations import MIGRATIONS
from tests.procs import agentctl

pytestmark = pytest.mark.slow
ALL = [m.__name__ for m in MIGRATIONS]


def test_postgres_is_migrated_only_on_request(pg_url: str) -> None:
    with ThreadPoolExecutor(2) as pool:
        status_run = pool.submit(agentctl, "db", "status", "--db", pg_url, "--json")
        refused = pool.submit(
            agentctl, "serve", "--db", pg_url, "--upstream", "http://127.0.0.1:9/v1"
        ).result()
        status = json.loads(status_run.result().stdout)
    assert status["backend"] == "postgresql" and status["pending"] == ALL
    assert not status["up_to_date"]
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "pending migration" in refused.stderr and "agentctl db migrate --db" in refused.stderr

    # Two hosts migrating at once: the advisory lock lets one apply, the other sees none.
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: agentctl("db", "migrate", "--db", pg_url, "--json"), [1, 2]))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    outputs = [json.loads(r.stdout) for r in runs]
    assert sorted(o["ran"] for o in outputs) == [[], ALL]
    assert all(o["applied"] == ALL and o["up_to_date"] for o in outputs)


def test_sqlite_migrate_reports_what_it_did(home: Path) -> None:
    done = agentctl("db", "migrate", "--db", f"sqlite:///{home / 'x.db'}", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["backend"] == "sqlite" and info["ran"] == ALL and info["pending"] == []


def test_db_status_on_a_mistyped_path_creates_nothing(tmp_path: Path) -> None:
    # Regression (third attack): `db status` (a read) created the directory and a file.
    from typer.testing import CliRunner

    from agentctl.cli import app

    missing = tmp_path / "no" / "such" / "x.db"
    result = CliRunner().invoke(app, ["db", "status", "--db", f"sqlite:///{missing}"])
    assert result.exit_code == 1 and f"no agentctl database at {missing}" in result.output
    assert not (tmp_path / "no").exists()
