"""Prompts and completions: never stored by default; stored redacted when opted in, for
JSON answers and streams alike, inside the hash chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentctl.audit.capture import Capture
from agentctl.audit.redaction import Redactor
from agentctl.audit.verify import verify
from agentctl.config import ConfigError, load_settings
from agentctl.simulator import RunningSimulator
from tests.harness import GatewayHarness

SECRET_PROMPT = "mail jane.doe@example.com the key sk-proj-abcdefghijklmnopqrstuv please"
MESSAGES = [{"role": "user", "content": SECRET_PROMPT}]


async def test_bodies_are_not_stored_by_default(gateway: GatewayHarness) -> None:
    client = gateway.aclient()
    await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (row,) = await gateway.records()
    assert row["detail"] is None
    assert "jane.doe" not in json.dumps(row)


async def test_opt_in_stores_redacted_bodies_for_json_and_streams(
    home: Path, sim: RunningSimulator
) -> None:
    gateway = GatewayHarness(home, sim)
    await gateway.start(
        audit={"bodies": {"store": True, "custom": [{"name": "ticket", "pattern": r"T-\d{4}"}]}}
    )
    try:
        client = gateway.aclient()
        plain = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[*MESSAGES, {"role": "user", "content": "about T-1234"}],
        )
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        rows = await gateway.records()
        assert len(rows) == 2
        for row in rows:
            assert "jane.doe" not in row["detail"] and "sk-proj-" not in row["detail"]
        first = json.loads(rows[0]["detail"])["bodies"]
        sent = first["request"]["messages"]
        assert sent[0]["content"] == ("mail [REDACTED:email] the key [REDACTED:api_key] please")
        assert sent[1]["content"] == "about [REDACTED:ticket]"
        answer = plain.choices[0].message.content
        assert first["response"]["choices"][0]["message"]["content"] == answer
        second = json.loads(rows[1]["detail"])["bodies"]
        assert second["request"]["messages"][0]["content"].startswith("mail [REDACTED:email]")
        assert isinstance(second["response"], str) and "data: [DONE]" in second["response"]
        assert streamed and all(word in second["response"] for word in streamed.split()[:3])
        # The bodies are hashed with the rest of the record: the chain verifies.
        assert verify(gateway.store).ok
    finally:
        await gateway.stop()


def test_long_bodies_are_cut_and_marked() -> None:
    capture = Capture(Redactor(), limit=300)
    capture.take_request({"messages": [{"role": "user", "content": "x" * 1000}], "model": "m"})
    capture.take_stream(b"data: " + b"y" * 5000 + b"\n\n")
    bodies = json.loads(capture.detail())["bodies"]
    assert bodies["request"]["truncated"] is True and len(bodies["request"]["text"]) == 300
    assert bodies["response"]["truncated"] is True and len(bodies["response"]["text"]) == 300
    assert "model" not in json.dumps(bodies["request"])  # conversational fields only


def test_a_broken_custom_pattern_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid"):
        load_settings(home=tmp_path, overrides={"audit": {"bodies": {"custom": ["(unclosed"]}}})
