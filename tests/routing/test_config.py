"""Routing settings in agentctl.yaml: pools, lanes, reserves, and their mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.config import load_settings
from agentctl.errors import ConfigError
from agentctl.facts import CHAT, MESSAGES
from agentctl.gateway.routing import Router

CONFIG = """
upstreams:
  - name: primary
    base_url: https://api.openai.com/v1
    models: ["gpt-*"]
    aliases: {fast: gpt-4o-mini}
    lanes: [priority, standard]
    max_concurrency: 16
    weight: 3
    timeouts: {connect: 2, first_byte: 30, idle: 20, total: 300}
  - name: overflow
    base_url: https://openai-compatible.example/v1
    models: ["gpt-*"]
    weight: 0
  - name: claude
    base_url: https://api.anthropic.com/v1
    api: anthropic
    auth: x-api-key
    provider: anthropic
    models: ["claude-*"]
pools:
  - name: gpt
    models: ["gpt-4o*", "fast"]
    upstreams: [primary, overflow]
    max_attempts: 2
    fallback_on: [connect, timeout, 5xx]
    queue_timeout: 5
routing:
  queue_timeout: 20
  health: {failures: 5, eject_seconds: 15, max_eject_seconds: 120}
admin: {allow_remote: false}
"""


def settings_from(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "agentctl.yaml"
    path.write_text(text)
    return load_settings(home=tmp_path, config=path)


def test_a_full_routing_config_loads_and_routes(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CONFIG)
    router = Router(settings.upstreams, settings.pools, settings.routing)
    plan = router.plan("gpt-4o", CHAT, "/v1/chat/completions")
    assert plan is not None and plan.pool.name == "gpt" and plan.pool.options.max_attempts == 2
    assert [u.name for u in plan.pool.members] == ["primary", "overflow"]
    alias = router.plan("FAST", CHAT, "/v1/chat/completions")
    assert alias is not None and alias.primary.model == "gpt-4o-mini"
    assert alias.route(settings.upstreams[1]).model == "FAST"  # overflow has no alias
    implicit = router.plan("gpt-3.5-turbo", CHAT, "/v1/chat/completions")
    assert implicit is not None and implicit.pool.name == "primary+overflow"
    assert implicit.pool.options.queue_timeout == 20
    messages = router.plan("claude-sonnet-4-5", MESSAGES, "/v1/messages")
    assert messages is not None and messages.primary.url == "https://api.anthropic.com/v1/messages"
    assert router.plan("llama-3", CHAT, "/v1/chat/completions") is None
    assert "fast" in router.models()


def test_an_explicit_pool_inherits_the_routing_options_it_does_not_set(tmp_path: Path) -> None:
    # Regression (third attack): `routing: {queue_timeout: 5}` was ignored by every
    # explicit pool (they had their own defaults), and an unquoted 429 failed to load.
    settings = settings_from(
        tmp_path,
        "upstreams: [{name: a, base_url: 'http://a/v1'}, {name: b, base_url: 'http://b/v1'}]\n"
        "pools:\n"
        "  - {name: p, models: ['gpt-*'], upstreams: [a, b], max_attempts: 2}\n"
        "routing: {queue_timeout: 5, fallback_on: [connect, 429]}\n",
    )
    [pool] = settings.pools
    assert (pool.queue_timeout, pool.max_attempts, pool.fallback_on) == (5, 2, ("connect", "429"))
    assert pool.max_queue == 1000  # set nowhere: the default
    assert settings.routing.fallback_on == ("connect", "429")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "upstreams: [{name: a, base_url: 'http://a/v1'}]\n"
            "pools: [{name: p, models: ['*'], upstreams: [b]}]",
            "unknown upstream",
        ),
        (
            "upstreams: [{name: a, base_url: 'http://a/v1'}, {name: a, base_url: 'http://b/v1'}]",
            "unique",
        ),
        (
            "upstreams: [{name: a, base_url: 'http://a/v1',"
            " reserve: {priority: 0.5, standard: 0.5}}]",
            "below 1",
        ),
        ("upstreams: [{name: a, base_url: 'http://a/v1', lanes: [urgent]}]", "lanes"),
        ("upstreams: [{name: a, base_url: 'http://a/v1', max_concurrency: 0}]", "max_concurrency"),
        ("routing: {fallback_on: [4xx]}", "fallback_on"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, text)
    assert problem in info.value.message
