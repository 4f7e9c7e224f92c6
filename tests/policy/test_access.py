"""Model access cannot be bypassed by case, provider prefixes, snapshots or aliases."""

from __future__ import annotations

import pytest

from agentctl.policy.access import ModelAccess, model_allowed, model_forms

ALIASES = {"smart": "gpt-4o", "fast": "gpt-4o-mini", "Sneaky": "openai/GPT-4o-2024-08-06"}
DENY_4O = ModelAccess.compile(None, ["gpt-4o"], ALIASES)
ALLOW_MINI = ModelAccess.compile(["gpt-4o-mini*", "text-embedding-3-*"], [], ALIASES)


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4o",
        "GPT-4O",
        "openai/gpt-4o",
        "OpenAI/GPT-4o",
        "azure/openai/gpt-4o",
        "gpt-4o-2024-08-06",
        "openai/gpt-4o-2024-08-06",
        " gpt-4o ",
        "smart",
        "SMART",
        "openai/smart",
        "sneaky",
    ],
)
def test_deny_cannot_be_bypassed(name: str) -> None:
    assert not model_allowed(DENY_4O, name)
    assert not model_allowed(DENY_4O, "gpt-4o-mini", upstream=name)


@pytest.mark.parametrize("name", ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "fast", "o3-mini"])
def test_deny_does_not_overreach(name: str) -> None:
    assert model_allowed(DENY_4O, name)


@pytest.mark.parametrize(
    ("requested", "upstream", "allowed"),
    [
        ("gpt-4o-mini", None, True),
        ("GPT-4o-Mini", None, True),
        ("openai/gpt-4o-mini-2024-07-18", None, True),
        ("fast", "gpt-4o-mini", True),
        ("text-embedding-3-small", None, True),
        ("gpt-4o", None, False),
        ("smart", None, False),
        ("openai/gpt-4o-2024-08-06", None, False),
        ("gpt-4o-mini", "gpt-4o", False),  # a router sending something else upstream
        ("fast", "gpt-4o", False),
        ("", None, False),
    ],
)
def test_allow_list_checks_both_names(requested: str, upstream: str | None, allowed: bool) -> None:
    assert model_allowed(ALLOW_MINI, requested, upstream) is allowed


def test_alias_used_as_a_pattern_stands_for_its_target() -> None:
    rules = ModelAccess.compile(["fast"], [], ALIASES)
    assert model_allowed(rules, "fast", "gpt-4o-mini")
    assert model_allowed(rules, "gpt-4o-mini")
    assert not model_allowed(rules, "gpt-4o")


def test_no_allow_list_allows_all_and_empty_allows_none() -> None:
    assert model_allowed(ModelAccess.compile(None), "anything")
    assert not model_allowed(ModelAccess.compile([]), "gpt-4o-mini")


def test_check_explains_which_list() -> None:
    assert DENY_4O.check("openai/gpt-4o") == (
        "deny",
        "model 'openai/gpt-4o' matches the deny list ['gpt-4o']",
    )
    verdict = ALLOW_MINI.check("gpt-4o")
    assert verdict is not None and verdict[0] == "allow"


def test_forms() -> None:
    assert model_forms("OpenAI/Claude-3-5-Sonnet@20240620") >= {
        "openai/claude-3-5-sonnet@20240620",
        "claude-3-5-sonnet@20240620",
        "claude-3-5-sonnet",
    }
    assert "claude-3-5-sonnet" in model_forms("claude-3-5-sonnet-20241022")
