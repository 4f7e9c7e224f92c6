from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentctl.facts import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES
from agentctl.trust import prompt_hash


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": list(messages), **extra}


def test_digest_is_16_hex_chars() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", prompt_hash(CHAT, chat({"role": "user", "content": "hi"})))


def test_whitespace_timestamps_and_uuids_are_masked() -> None:
    a = chat(
        {
            "role": "user",
            "content": "Retry at 2026-01-01T02:13:05Z  for\n job "
            "5f0e8a0c-1b2c-4d3e-8f90-123456789abc (epoch 1796328832)",
        }
    )
    b = chat(
        {
            "role": "user",
            "content": "Retry at 2026-01-01T02:13:09Z for job "
            "0a0e8a0c-1b2c-4d3e-8f90-123456789fff (epoch 1796328840)",
        }
    )
    assert prompt_hash(CHAT, a) == prompt_hash(CHAT, b)


def test_templated_work_with_different_ids_is_not_a_loop() -> None:
    """Regression: masking every digit run made a batch job walking through ticket ids
    (and the demo's production bot) look like one repeated prompt."""
    a = chat({"role": "user", "content": "Summarise ticket 4812"})
    b = chat({"role": "user", "content": "Summarise ticket 4813"})
    assert prompt_hash(CHAT, a) != prompt_hash(CHAT, b)


def test_sampling_and_transport_fields_are_ignored() -> None:
    base = chat({"role": "user", "content": "rank"})
    noisy = chat(
        {"role": "user", "content": "rank"}, user="u-1", seed=3, temperature=0.7, stream=True
    )
    assert prompt_hash(CHAT, base) == prompt_hash(CHAT, noisy)


def test_model_and_content_matter() -> None:
    base = chat({"role": "user", "content": "rank these"})
    assert prompt_hash(CHAT, base) != prompt_hash(CHAT, {**base, "model": "o1"})
    assert prompt_hash(CHAT, base) != prompt_hash(
        CHAT, chat({"role": "user", "content": "sort these"})
    )


def test_model_is_case_insensitive() -> None:
    body = chat({"role": "user", "content": "x"})
    assert prompt_hash(CHAT, body) == prompt_hash(CHAT, {**body, "model": " GPT-4o "})


def test_an_agent_loop_that_appends_turns_keeps_one_hash() -> None:
    system = {"role": "system", "content": "You are a tool-using agent."}
    user = {"role": "user", "content": "Book the meeting."}
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "book", "arguments": "{}"}}
        ],
    }
    result = {"role": "tool", "tool_call_id": "call_1", "content": "error: room busy"}
    turns = [system, user, call, result]
    hashes = set()
    for i in range(5):
        call_i = {**call, "tool_calls": [{**call["tool_calls"][0], "id": f"call_{i}"}]}
        result_i = {**result, "tool_call_id": f"call_{i}"}
        turns = [*turns, call_i, result_i]
        hashes.add(prompt_hash(CHAT, chat(*turns)))
    assert len(hashes) == 1


def test_same_short_answer_in_different_conversations_differs() -> None:
    def convo(first: str) -> dict[str, Any]:
        return chat(
            {"role": "user", "content": first},
            {"role": "assistant", "content": "Sure?"},
            {"role": "user", "content": "yes"},
        )

    assert prompt_hash(CHAT, convo("Cancel my order")) != prompt_hash(
        CHAT, convo("Delete my account")
    )


def test_tools_are_part_of_the_hash() -> None:
    body = chat({"role": "user", "content": "x"})
    tools = [{"type": "function", "function": {"name": "a", "parameters": {}}}]
    assert prompt_hash(CHAT, body) != prompt_hash(CHAT, {**body, "tools": tools})


def test_other_endpoints() -> None:
    assert prompt_hash(COMPLETIONS, {"model": "m", "prompt": "a  b"}) == prompt_hash(
        COMPLETIONS, {"model": "m", "prompt": "a b"}
    )
    assert prompt_hash(EMBEDDINGS, {"model": "m", "input": ["x"]}) != prompt_hash(
        EMBEDDINGS, {"model": "m", "input": ["y"]}
    )
    assert prompt_hash(
        RESPONSES, {"model": "m", "input": "q", "previous_response_id": "r1"}
    ) == prompt_hash(RESPONSES, {"model": "m", "input": "q", "previous_response_id": "r2"})
    body = {"model": "claude", "system": "s", "messages": [{"role": "user", "content": "q"}]}
    assert prompt_hash(MESSAGES, body) != prompt_hash(MESSAGES, {**body, "system": "t"})
    assert prompt_hash(CHAT, body) != prompt_hash(MESSAGES, body)  # endpoint is part of it


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, MESSAGES, "other"]),
    st.dictionaries(
        st.sampled_from(
            ["model", "messages", "input", "prompt", "tools", "system", "instructions", "x"]
        ),
        json_values,
        max_size=6,
    ),
)
def test_never_raises(endpoint: str, body: dict[str, Any]) -> None:
    assert len(prompt_hash(endpoint, body)) == 16
