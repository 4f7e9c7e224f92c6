"""`agentctl policy ...` through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.store.sql import Store

runner = CliRunner()
EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"


def run(*args: str) -> object:
    return runner.invoke(app, list(args))


def test_validate_examples_and_a_typo(tmp_path: Path) -> None:
    res = runner.invoke(app, ["policy", "validate", *map(str, sorted(EXAMPLES.glob("*.yaml")))])
    assert res.exit_code == 0, res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: agentctl/v1\nagents:\n  x:\n    rate: {rpmm: 3}\n")
    res = runner.invoke(app, ["policy", "validate", str(bad)])
    assert res.exit_code == 1
    assert "agents.x.rate.rpmm" in res.output and "did you mean 'rpm'" in res.output
    assert "Traceback" not in res.output


def test_apply_dry_run_show_and_versions(home: Path) -> None:
    runner.invoke(
        app,
        [
            "agents",
            "register",
            "prod-recommendation-bot",
            "--owner",
            "team-ml",
            "--purpose",
            "production",
        ],
    )
    lanes = str(EXAMPLES / "three-lanes.yaml")
    dry = json.loads(runner.invoke(app, ["policy", "apply", lanes, "--dry-run", "--json"]).output)
    assert dry["dry_run"] and not dry["applied"]
    changes = {c["path"]: c for c in dry["changes"]["prod-recommendation-bot"]}
    assert changes["lane"]["after"] == "priority"
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    assert store.active_policy() is None

    res = runner.invoke(app, ["policy", "apply", lanes, "--reason", "three lanes", "--json"])
    applied = json.loads(res.output)
    assert applied["applied"]
    again = json.loads(runner.invoke(app, ["policy", "apply", lanes, "--json"]).output)
    assert not again["applied"]
    assert store.active_policy().version == applied["version"]
    events = store.records_after(0, kinds=("policy_apply",))
    assert len(events) == 1 and events[0]["reason"] == "three lanes"

    eff = json.loads(
        runner.invoke(
            app, ["policy", "show", "--effective", "prod-recommendation-bot", "--json"]
        ).output
    )
    values = {v["path"]: v for v in eff["values"]}
    assert values["lane"] == {"path": "lane", "value": "priority", "scope": "purposes.production"}
    shown = json.loads(runner.invoke(app, ["policy", "show", "--json"]).output)
    assert shown["version"] == applied["version"]
    text = runner.invoke(app, ["policy", "show"]).output.splitlines()[0]
    assert text == f"version {applied['version'][:12]} by {shown['actor']} from {lanes}"


def test_show_before_any_apply_says_defaults(home: Path) -> None:
    """Regression: a fresh home printed 'version ... by None from []'."""
    first = runner.invoke(app, ["policy", "show"]).output.splitlines()[0]
    assert first.endswith(
        "the built-in defaults (no policy applied yet; `agentctl policy apply FILE` applies one)"
    )
    assert "None" not in first


def test_show_effective_unknown_agent_needs_fields(home: Path) -> None:
    res = runner.invoke(app, ["policy", "show", "--effective", "ghost"])
    assert res.exit_code == 2 and "--owner" in res.output
    res = runner.invoke(
        app,
        ["policy", "show", "--effective", "ghost", "--owner", "t", "--purpose", "batch", "--json"],
    )
    assert res.exit_code == 0 and json.loads(res.output)["verification"] == "unverified"


def test_agents_known_only_from_traffic_are_in_dry_runs_and_effective_views(
    home: Path,
) -> None:
    # Regression: `apply --dry-run` said "no effective change for known agents" for a
    # policy that capped every agent sending traffic, and `show --effective NAME` said
    # the agent was not in the store.
    store = Store(f"sqlite:///{home / 'agentctl.db'}")
    store.migrate()
    store.append_records(
        [
            {"request_id": f"t{i}", "ts_us": 1_700_000_000_000_000 + i, "agent": name,
             "owner": "team-x", "purpose": "production", "status": 200, "outcome": "served"}
            for i, name in enumerate(["prod-bot", "cron-job"])
        ]
    )  # fmt: skip
    store.close()
    policy = home / "cap.yaml"
    policy.write_text("apiVersion: agentctl/v1\ndefaults:\n  budgets:\n    day: {usd: '0.1'}\n")
    dry = runner.invoke(app, ["policy", "apply", str(policy), "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert sorted(json.loads(dry.output)["changes"]) == ["cron-job", "prod-bot"]
    shown = runner.invoke(app, ["policy", "show", "--effective", "prod-bot", "--json"])
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.output)
    assert (view["owner"], view["purpose"], view["verification"]) == (
        "team-x",
        "production",
        "unverified",
    )


def test_a_purpose_no_request_can_declare_is_invalid(home: Path) -> None:
    # Regression (operator trial): a typo'd purpose scope validated, and never applied.
    typo = home / "p.yaml"
    home.mkdir(parents=True, exist_ok=True)
    typo.write_text(
        "apiVersion: agentctl/v1\npurposes:\n  prodution: {lane: priority}\n  batch: {}\n"
    )
    res = runner.invoke(app, ["policy", "validate", str(typo)])
    assert res.exit_code == 1
    assert f"{typo}: purposes.prodution: purpose 'prodution' is not in identity.purposes" in (
        res.output
    )
    assert "(did you mean 'production'?)" in res.output and "'batch'" not in res.output
    assert runner.invoke(app, ["policy", "apply", str(typo)]).exit_code == 1


def test_schema_is_json_schema() -> None:
    schema = json.loads(runner.invoke(app, ["policy", "schema"]).output)
    assert "properties" in schema and "agents" in schema["properties"]


def test_apply_prints_agents_with_the_same_changes_once(home: Path) -> None:
    for i in range(7):
        args = ["agents", "register", f"bot-{i}", "--owner", "team-ml", "--purpose", "production"]
        assert runner.invoke(app, args).exit_code == 0
    lanes = str(EXAMPLES / "three-lanes.yaml")
    res = runner.invoke(app, ["policy", "apply", lanes, "--dry-run"])
    assert res.exit_code == 0, res.output
    heads = [line for line in res.output.splitlines() if line.startswith("bot-")]
    assert heads == ["bot-0, bot-1, bot-2, bot-3, bot-4 and 2 more (7 agents)"]
    assert res.output.count("  lane: 'standard' -> 'priority'") == 1
    dry = json.loads(runner.invoke(app, ["policy", "apply", lanes, "--dry-run", "--json"]).output)
    assert sorted(dry["changes"]) == [f"bot-{i}" for i in range(7)]  # JSON stays per agent
