"""`agentctl init` and `agentctl agents ...` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.store.sql import Store, hash_secret, split_token

runner = CliRunner()


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args))


def test_init_writes_starter_and_refuses_overwrite(home: Path) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    text = (home / "agentctl.yaml").read_text()
    assert "upstreams:" in text and '{"$env": "OPENAI_API_KEY"}' in text
    again = runner.invoke(app, ["init"])
    assert again.exit_code == 1
    assert "--force" in again.output
    assert runner.invoke(app, ["init", "--force"]).exit_code == 0


def test_starter_config_loads(home: Path) -> None:
    from agentctl.config import load_settings

    runner.invoke(app, ["init"])
    settings = load_settings()
    assert settings.upstreams[0].name == "openai"
    assert settings.identity.mode == "verify"


def test_register_prints_token_once_and_stores_hash(home: Path) -> None:
    result = runner.invoke(
        app,
        ["agents", "register", "bot-a", "--owner", "team-ml", "--purpose", "production", "--json"],
    )
    assert result.exit_code == 0, result.output
    token = json.loads(result.output)["token"]
    key_id, secret = split_token(token)
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    cred = store.registry().credentials[key_id]
    assert cred.secret_hash == hash_secret(secret)
    db_bytes = (home / "agentctl.db").read_bytes()
    assert secret.encode() not in db_bytes
    again = runner.invoke(
        app, ["agents", "register", "bot-a", "--owner", "team-ml", "--purpose", "production"]
    )
    assert again.exit_code == 1 and "already registered" in again.output


def test_register_rejects_invalid_names(home: Path) -> None:
    result = runner.invoke(
        app, ["agents", "register", "Bot A", "--owner", "team-ml", "--purpose", "production"]
    )
    assert result.exit_code == 2
    assert "invalid name" in result.output
    assert "Traceback" not in result.output


def test_list_show_disable_enable(home: Path) -> None:
    runner.invoke(app, ["agents", "register", "bot-a", "--owner", "team-ml", "--purpose", "batch"])
    runner.invoke(app, ["agents", "register", "bot-b", "--owner", "team-x", "--purpose", "batch"])
    listed = json.loads(
        runner.invoke(app, ["agents", "list", "--team", "team-ml", "--json"]).output
    )
    assert [a["name"] for a in listed] == ["bot-a"]
    res = runner.invoke(
        app, ["agents", "disable", "bot-a", "--reason", "runaway", "--actor", "alice"]
    )
    assert res.exit_code == 0, res.output
    shown = json.loads(runner.invoke(app, ["agents", "show", "bot-a", "--json"]).output)
    assert shown["status"] == "disabled"
    assert (shown["status_reason"], shown["status_actor"]) == ("runaway", "alice")
    runner.invoke(app, ["agents", "enable", "bot-a", "--reason", "fixed"])
    shown = json.loads(runner.invoke(app, ["agents", "show", "bot-a", "--json"]).output)
    assert shown["status"] == "active"
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    events = store.records_after(0, kinds=("register", "disable", "enable"))
    assert [
        (e["kind"], e["agent"], e["actor"] if e["kind"] == "disable" else "") for e in events
    ] == [
        ("register", "bot-a", ""),
        ("register", "bot-b", ""),
        ("disable", "bot-a", "alice"),
        ("enable", "bot-a", ""),
    ]
    assert [e["reason"] for e in events[2:]] == ["runaway", "fixed"]


def test_disable_declared_only_name(home: Path) -> None:
    args = ["agents", "disable", "never-seen", "--reason", "block it"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "--force" in res.output  # a typo must not pass silently
    res = runner.invoke(app, [*args, "--force"])
    assert res.exit_code == 0, res.output
    shown = json.loads(runner.invoke(app, ["agents", "show", "never-seen", "--json"]).output)
    assert shown["status"] == "disabled" and shown["registered"] is False


def test_show_unknown_agent_is_a_clear_error(home: Path) -> None:
    res = runner.invoke(app, ["agents", "show", "ghost"])
    assert res.exit_code == 1
    assert "no agent named 'ghost'" in res.output
    assert "Traceback" not in res.output


def test_show_an_agent_that_only_declared_itself(home: Path) -> None:
    # Regression: `agents show` said "no agent named ... in the store" for an agent with
    # traffic that tail, report and trust knew.
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    store.migrate()
    day = 86_400_000_000
    store.append_records(
        [
            {"request_id": "d1", "ts_us": 20_000 * day + 5, "agent": "tiny", "owner": "team-x",
             "purpose": "test", "status": 200, "outcome": "served"},
            {"request_id": "d2", "ts_us": 20_002 * day + 5, "agent": "tiny", "owner": "team-y",
             "purpose": "batch", "status": 200, "outcome": "served"},
        ]
    )  # fmt: skip
    store.close()
    res = runner.invoke(app, ["agents", "show", "tiny", "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert (shown["owner"], shown["purpose"], shown["registered"]) == ("team-y", "batch", False)
    assert (shown["first_seen"], shown["last_seen"], shown["requests"]) == (
        "2024-10-04",
        "2024-10-06",
        2,
    )
    res = runner.invoke(app, ["agents", "show", "tinny"])
    assert res.exit_code == 1 and "did you mean 'tiny'?" in res.output
    # `agents list` shows it too (it listed only registered or switched agents)
    runner.invoke(app, ["agents", "register", "reg", "--owner", "team-y", "--purpose", "batch"])
    listed = json.loads(runner.invoke(app, ["agents", "list", "--json"]).output)
    assert [(a["name"], a["registered"]) for a in listed] == [("reg", True), ("tiny", False)]
    mine = json.loads(runner.invoke(app, ["agents", "list", "--team", "team-x", "--json"]).output)
    assert mine == []  # tiny last declared team-y
    theirs = runner.invoke(app, ["agents", "list", "--team", "team-y", "--json"]).output
    assert [a["name"] for a in json.loads(theirs)] == ["reg", "tiny"]


def test_disabling_a_declared_agent_files_it_under_its_team(home: Path) -> None:
    # Regression: disabled by name, it got an agents row with owner "" and vanished from
    # `tail --team`, `agents list --team` and the team's compliance report.
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    store.migrate()
    store.append_records(
        [{"request_id": "l1", "ts_us": 1_700_000_000_000_000, "agent": "runaway-loop",
          "owner": "team-data", "purpose": "batch", "status": 200, "outcome": "served"}]
    )  # fmt: skip
    store.close()
    res = runner.invoke(app, ["agents", "disable", "runaway-loop", "--reason", "loop at 02:13"])
    assert res.exit_code == 0, res.output
    listed = json.loads(
        runner.invoke(app, ["agents", "list", "--team", "team-data", "--json"]).output
    )
    assert [(a["name"], a["owner"], a["purpose"], a["status"]) for a in listed] == [
        ("runaway-loop", "team-data", "batch", "disabled")
    ]
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    [event] = [r for r in store.records_after(0, kinds=("disable",))]
    assert (event["agent"], event["owner"]) == ("runaway-loop", "team-data")


def test_bad_database_url_is_a_clear_error(home: Path) -> None:
    res = runner.invoke(app, ["agents", "list", "--db", "mysql://nope"])
    assert res.exit_code == 1
    assert "unsupported database URL" in res.output


def test_a_typo_in_the_kill_switch_names_the_likely_agent(home: Path) -> None:
    """Regression (new-user trial): disabling a misspelt name said "disabled" and left the
    real runaway running."""
    runner.invoke(app, ["agents", "register", "scraper-bot", "--owner", "t", "--purpose", "batch"])
    res = runner.invoke(app, ["agents", "disable", "scraper-bto", "--reason", "incident"])
    assert res.exit_code == 1
    assert "did you mean 'scraper-bot'" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["agents", "enable", "nobody-at-all", "--reason", "x"])
    assert res.exit_code == 1 and "no agent named 'nobody-at-all'" in res.output
    assert runner.invoke(app, ["agents", "disable", "scraper-bot", "--reason", "x"]).exit_code == 0


def test_register_refuses_a_purpose_the_gateway_would_refuse(home: Path) -> None:
    """Regression (new-user trial): `--purpose prod` registered fine, then every request
    declaring it was refused 400 by the gateway."""
    res = runner.invoke(app, ["agents", "register", "ok-bot", "--owner", "t", "--purpose", "prod"])
    assert res.exit_code == 2 and "production" in res.output
