"""Policy documents: validation with paths, multi-file rules, exact USD, versions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agentctl.policy.loader import (
    PolicyError,
    from_mapping,
    load_files,
    load_text,
    load_texts,
)
from agentctl.policy.schema import PolicyDocument, policy_json_schema

HEAD = "apiVersion: agentctl/v1\n"


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        (
            "agents:\n  prod-bot:\n    budgets:\n      day:\n        usdd: 5\n",
            "agents.prod-bot.budgets.day.usdd",
            "unknown key (did you mean 'usd'?)",
        ),
        ("defaults:\n  rate:\n    rpm: 0\n", "defaults.rate.rpm", "greater than or equal to 1"),
        ("defaults:\n  lane: fast\n", "defaults.lane", "'priority', 'standard' or 'batch'"),
        (
            "defaults:\n  budgets:\n    day:\n      usd: abc\n",
            "defaults.budgets.day.usd",
            "'abc' is not a decimal USD amount",
        ),
        (
            "defaults:\n  budgets:\n    day:\n      usd: -1\n",
            "defaults.budgets.day.usd",
            "must be finite and not negative",
        ),
        (
            "defaults:\n  budgets:\n    day:\n      usd: '0.0000000000001'\n",
            "defaults.budgets.day.usd",
            "at most 12 decimal places",
        ),
        ("defaults:\n  timezone: Mars/Olympus\n", "defaults.timezone", "unknown IANA timezone"),
        (
            "defaults:\n  budgets:\n    day:\n      mode: dry-run\n",
            "defaults.budgets.day.mode",
            "'enforce' or 'shadow'",
        ),
        ("defaults:\n  concurrency: {}\n", "defaults.concurrency.max", "required key is missing"),
        ("defaults:\n  alerts:\n    webhook: ftp://x\n", "defaults.alerts.webhook", "http"),
        (
            "purposes:\n  batch:\n    team_budgets: {}\n",
            "purposes.batch.team_budgets",
            "unknown key",
        ),
        ("owners:\n  t:\n    pool_budgets: {}\n", "owners.t.pool_budgets", "unknown key"),
        ("defaults:\n  rate:\n    rpm: '60'\n", "defaults.rate.rpm", "valid integer"),
        ("defaults:\n  rate:\n    rpm: true\n", "defaults.rate.rpm", "valid integer"),
        ("unknown_scope: {}\n", "unknown_scope", "unknown key"),
        # found by a fresh-user attack: accepted, and never (or wrongly) applied
        (
            "defaults:\n  budgets:\n    day:\n      usd: '1e400'\n",
            "defaults.budgets.day.usd",
            "at most 1,000,000,000",
        ),
        ("agents:\n  BAD_NAME: {}\n", "agents", "'BAD_NAME' can never be declared"),
        ("owners:\n  'team x': {}\n", "owners", "'team x' can never be declared"),
    ],
)
def test_malformed_policy_names_file_path_and_reason(body: str, path: str, reason: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_text(HEAD + body, "team.yaml")
    assert any(i.path == path and reason in i.reason for i in err.value.issues), err.value
    assert f"team.yaml: {path}: " in str(err.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("defaults: {}\n", "apiVersion: expected 'agentctl/v1'"),
        ("apiVersion: agentctl/v2\n", "apiVersion: expected 'agentctl/v1', got 'agentctl/v2'"),
        ("- a\n- b\n", "a policy document must be a mapping"),
        (HEAD + "defaults: [\n", "line"),
        (HEAD + "agents:\n  a: {}\n  a: {}\n", "duplicate key 'a'"),
        ("", "the file holds no policy document (is it empty?)"),
        ("# only a comment\n", "`apiVersion: agentctl/v1`"),
    ],
)
def test_broken_documents(text: str, reason: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_text(text, "x.yaml")
    assert str(err.value).startswith("x.yaml: ") and reason in str(err.value)


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(PolicyError) as err:
        load_text(HEAD + "defaults:\n  lane: x\n  rate: {rpm: 0}\n", "x.yaml")
    assert {i.path for i in err.value.issues} == {"defaults.lane", "defaults.rate.rpm"}


def test_yaml_numbers_are_exact_decimals_and_python_floats_are_refused() -> None:
    policy = load_text(
        HEAD + "defaults:\n  budgets:\n    day:\n      usd: 0.1\n"
        "    hour:\n      usd: 12345678.123456789012\n"
    )
    budgets = policy.document.defaults.budgets  # type: ignore[union-attr]
    assert budgets.day.usd == Decimal("0.1")  # type: ignore[union-attr]
    assert budgets.hour.usd == Decimal("12345678.123456789012")  # type: ignore[union-attr]
    with pytest.raises(PolicyError, match="floats are inexact"):
        from_mapping({"apiVersion": "agentctl/v1", "defaults": {"budgets": {"day": {"usd": 0.1}}}})


def test_yaml_1_1_booleans_are_names_not_booleans() -> None:
    policy = load_text(HEAD + "agents:\n  on:\n    lane: batch\n  '123': {}\n")
    assert set(policy.document.agents) == {"on", "123"}


def test_files_merge_scope_by_scope_and_reject_duplicates(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text(HEAD + "defaults:\n  lane: batch\nagents:\n  x: {lane: priority}\n")
    b.write_text(HEAD + "agents:\n  y: {lane: standard}\naliases: {fast: gpt-4o-mini}\n")
    policy = load_files([a, b])
    assert set(policy.document.agents) == {"x", "y"}
    assert policy.scope_sources["agents.y"] == str(b)
    b.write_text(HEAD + "agents:\n  x: {lane: standard}\n")
    with pytest.raises(PolicyError) as err:
        load_files([a, b])
    assert str(err.value) == f"{b}: agents.x: already defined in {a}; define it once"


def test_missing_file() -> None:
    with pytest.raises(PolicyError, match=r"nope\.yaml: cannot read"):
        load_files(["nope.yaml"])


def test_version_ignores_comments_order_and_file_split() -> None:
    one = load_text(HEAD + "# c\ndefaults: {lane: batch}\nagents:\n  x: {lane: priority}\n")
    two = load_texts(
        [
            ("b", HEAD + "agents:\n  x:\n    lane: priority  # hi\n"),
            ("a", "defaults:\n  lane: batch\napiVersion: agentctl/v1\n"),
        ]
    )
    three = load_text(HEAD + "defaults: {lane: standard}\nagents:\n  x: {lane: priority}\n")
    assert one.version == two.version != three.version
    assert len(one.version) == 64


def test_multi_document_file() -> None:
    policy = load_text(HEAD + "defaults: {lane: batch}\n---\n" + HEAD + "agents: {x: {}}\n")
    assert policy.document.defaults is not None and "x" in policy.document.agents


def test_json_schema_for_editors() -> None:
    schema = policy_json_schema()
    assert schema["properties"]["apiVersion"]["const"] == "agentctl/v1"
    assert schema["additionalProperties"] is False
    assert "usd" in schema["$defs"]["Budget"]["properties"]
    assert PolicyDocument.model_config.get("extra") == "forbid"


def test_descriptions_from_several_files_are_joined() -> None:
    policy = load_texts([("a", HEAD + "description: one\n"), ("b", HEAD + "description: two\n")])
    assert policy.document.description == "one\ntwo"
