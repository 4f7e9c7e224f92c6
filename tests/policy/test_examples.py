"""Every example policy validates, comments every key, and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentctl.counters.memory import MemoryCounters
from agentctl.errors import Refusal
from agentctl.identity import Identity
from agentctl.policy.governor import Governor
from agentctl.policy.loader import load_files
from tests.policy.policy_support import chat

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "policies").glob("*.yaml"))
KEY_LINE = re.compile(r"^\s*[\w.-]+:")


def test_the_three_examples_exist() -> None:
    assert {p.name for p in EXAMPLES} >= {"starter.yaml", "three-lanes.yaml", "compliance.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_and_comments_every_key(path: Path) -> None:
    assert load_files([path]).document.api_version == "agentctl/v1"
    bare = [
        f"{path.name}:{n}: {line}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if KEY_LINE.match(line) and "#" not in line
    ]
    assert bare == []


def gov(name: str) -> Governor:
    return Governor(load_files([EXAMPLES[0].parent / name]), MemoryCounters(), clock=lambda: 1e9)


async def lane_or_rule(g: Governor, who: Identity, model: str = "gpt-4o-mini") -> str:
    try:
        admission = await g.admit(
            who,
            chat(model=model, max_tokens=100, input_tokens=100),
            price_in_pico_per_token=150_000,
            price_out_pico_per_token=600_000,
        )
    except Refusal as refusal:
        return refusal.rule_id
    return admission.lane


@pytest.mark.parametrize(
    ("who", "model", "outcome"),
    [
        (
            Identity("checkout-assistant", "team-shop", "production", verification="token"),
            "gpt-4o",
            "priority",
        ),
        (
            Identity("nightly-reindex", "team-search", "batch", verification="token"),
            "gpt-4o",
            "batch",
        ),
        (
            Identity("prompt-trial", "team-research", "evaluation", verification="token"),
            "fast",
            "batch",
        ),
        (
            Identity("prompt-trial", "team-research", "evaluation", verification="token"),
            "smart",
            "model-not-allowed",
        ),
        (Identity("anyone", "team-x", "production"), "gpt-4o", "model-not-allowed"),
        (Identity("anyone", "team-x", "production"), "gpt-4o-mini", "batch"),
        (
            Identity("checkout-assistant", "team-shop", "production", verification="token"),
            "o1-pro-2025-03-19",
            "model-not-allowed",
        ),
    ],
)
async def test_three_lanes_behaves_as_described(who: Identity, model: str, outcome: str) -> None:
    assert await lane_or_rule(gov("three-lanes.yaml"), who, model) == outcome


async def test_compliance_refuses_unverified_and_trials_shadow_rules() -> None:
    g = gov("compliance.yaml")
    anon = Identity("someone", "team-claims", "production")
    assert await lane_or_rule(g, anon, "gpt-4o-mini") == "model-not-allowed"
    member = Identity("claims-summariser", "team-claims", "production", verification="token")
    assert await lane_or_rule(g, member, "approved-chat") == "standard"
    assert await lane_or_rule(g, member, "gpt-4o-mini-audio-preview") == "model-not-allowed"
