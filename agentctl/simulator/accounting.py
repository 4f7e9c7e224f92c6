"""Deterministic token accounting, so tests can compute exact expected usage.

The formula (one "token" is one whitespace-separated word):

* a *message* costs `MESSAGE_OVERHEAD` (3) plus the words of its text. Text is a string
  content, or the `text` of every part in a content list; other parts count 0.
  - chat: every entry of `messages`;
  - responses: `instructions` (if a string), and `input` (a string is one message; in a
    list every item is one message, its text taken from `content` or a string `output`);
  - messages (Anthropic): `system` (if present) and every entry of `messages`.
* completions and embeddings have no overhead: a string prompt/input costs its words, a
  token array its length; a list of strings or of token arrays is the sum.
* output per choice = min(the request's max, `completion_tokens` (16)). The max comes from
  `max_completion_tokens` or `max_tokens` (chat), `max_tokens` (completions, messages),
  `max_output_tokens` (responses). A max below the configured length ends the reply with
  `length` / `max_tokens` / status `incomplete`; otherwise `stop` / `end_turn`.
* reasoning per choice = min(`reasoning_tokens` (8), output) when the model matches one of
  `reasoning_models` (globs, default `o*`) on an OpenAI endpoint, else 0. Reasoning is part
  of the output: the visible reply is `output - reasoning` words from `VOCABULARY`,
  streamed one word per delta.
* choices = `n` for chat; `n` times the number of prompts for completions.
* cached = min(prompt, `cached_tokens` + floor(prompt * `cached_fraction`)). OpenAI usage
  counts it inside `prompt_tokens`; Anthropic reports it as `cache_read_input_tokens`, then
  `cache_creation_input_tokens` = min(rest, `cache_write_tokens`), and `input_tokens` is
  what remains.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from agentctl.simulator.behaviour import Behaviour, InvalidRequest, SimulatorConfig

Endpoint = Literal[
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages"
]
CHAT: Endpoint = "/v1/chat/completions"
COMPLETIONS: Endpoint = "/v1/completions"
EMBEDDINGS: Endpoint = "/v1/embeddings"
RESPONSES: Endpoint = "/v1/responses"
MESSAGES: Endpoint = "/v1/messages"

MESSAGE_OVERHEAD = 3
# fmt: off
VOCABULARY = (
    "This", "is", "a", "simulated", "reply", "from", "the", "agentctl", "upstream",
    "simulator", "with", "exactly", "one", "token", "per", "word.",
)
# fmt: on

_FIRST = VOCABULARY
_NEXT = tuple(" " + word for word in VOCABULARY)
_FIRST_JSON = tuple(json.dumps(word) for word in _FIRST)
_NEXT_JSON = tuple(json.dumps(word) for word in _NEXT)


@dataclass(frozen=True, slots=True)
class Counts:
    """Token numbers for one request; `prompt` includes `cached` and `cache_write`."""

    prompt: int
    per_choice: int = 0
    reasoning: int = 0
    choices: int = 1
    cached: int = 0
    cache_write: int = 0
    truncated: bool = False

    @property
    def completion(self) -> int:
        return self.per_choice * self.choices

    @property
    def visible(self) -> int:
        return self.per_choice - self.reasoning


def reply_deltas(words: int) -> list[str]:
    size = len(VOCABULARY)
    return [_FIRST[0] if i == 0 else _NEXT[i % size] for i in range(words)]


def reply_deltas_json(words: int) -> list[str]:
    """`reply_deltas` already encoded as JSON strings (the hot path of every stream)."""
    size = len(VOCABULARY)
    return [_FIRST_JSON[0] if i == 0 else _NEXT_JSON[i % size] for i in range(words)]


def reply_text(words: int) -> str:
    return "".join(reply_deltas(words))


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _content_words(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        return sum(_words(part.get("text")) for part in content if isinstance(part, dict))
    return 0


def _messages(body: Mapping[str, Any], key: str) -> list[Any]:
    messages = body.get(key)
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(f"'{key}' must be a non-empty array", key)
    return messages


def _chat_prompt(messages: list[Any]) -> int:
    return sum(
        MESSAGE_OVERHEAD + _content_words(m.get("content")) for m in messages if isinstance(m, dict)
    )


def _responses_prompt(body: Mapping[str, Any]) -> int:
    total = 0
    if isinstance(body.get("instructions"), str):
        total += MESSAGE_OVERHEAD + _words(body["instructions"])
    items = body.get("input")
    if isinstance(items, str):
        return total + MESSAGE_OVERHEAD + _words(items)
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                text = item.get("content", item.get("output"))
                total += MESSAGE_OVERHEAD + _content_words(text)
    return total


def _anthropic_prompt(body: Mapping[str, Any]) -> int:
    total = _chat_prompt(_messages(body, "messages"))
    if body.get("system") is not None:
        total += MESSAGE_OVERHEAD + _content_words(body["system"])
    return total


def _token_inputs(value: Any, key: str) -> list[int]:
    """Word counts of a completions `prompt` / embeddings `input`, one per input."""
    if isinstance(value, str):
        return [_words(value)]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return [_words(v) for v in value]
        if all(isinstance(v, int) for v in value):
            return [len(value)]
        if all(isinstance(v, list) for v in value):
            return [len(v) for v in value]
    raise InvalidRequest(
        f"'{key}' must be a string, an array of strings, or an array of token arrays", key
    )


def _positive(body: Mapping[str, Any], key: str, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"'{key}' must be a positive integer", key)
    return value


def _max_tokens(body: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"'{key}' must be a non-negative integer", key)
        return value
    return None


def count(endpoint: Endpoint, body: Mapping[str, Any], behaviour: Behaviour) -> Counts:
    """Token counts for one request; raises `InvalidRequest` for a body the API would refuse."""
    if not isinstance(body.get("model"), str):
        raise InvalidRequest("'model' is required", "model")
    choices = 1
    if endpoint == EMBEDDINGS:
        inputs = _token_inputs(body.get("input"), "input")
        return Counts(prompt=sum(inputs), choices=len(inputs))
    if endpoint == CHAT:
        prompt = _chat_prompt(_messages(body, "messages"))
        limit = _max_tokens(body, "max_completion_tokens", "max_tokens")
        choices = _positive(body, "n", 1)
    elif endpoint == COMPLETIONS:
        prompts = _token_inputs(body.get("prompt"), "prompt")
        prompt = sum(prompts)
        limit = _max_tokens(body, "max_tokens")
        choices = _positive(body, "n", 1) * len(prompts)
    elif endpoint == RESPONSES:
        prompt = _responses_prompt(body)
        limit = _max_tokens(body, "max_output_tokens")
    else:
        prompt = _anthropic_prompt(body)
        limit = _max_tokens(body, "max_tokens")
        if limit is None:
            raise InvalidRequest("max_tokens: Field required", "max_tokens")

    length = behaviour.completion_tokens
    per_choice = length if limit is None else min(limit, length)
    reasoning = 0
    if endpoint != MESSAGES and any(
        fnmatchcase(body["model"], glob) for glob in behaviour.reasoning_models
    ):
        reasoning = min(behaviour.reasoning_tokens, per_choice)
    cached = min(prompt, behaviour.cached_tokens + int(prompt * behaviour.cached_fraction))
    cache_write = min(prompt - cached, behaviour.cache_write_tokens) if endpoint == MESSAGES else 0
    return Counts(
        prompt=prompt,
        per_choice=per_choice,
        reasoning=reasoning,
        choices=choices,
        cached=cached,
        cache_write=cache_write,
        truncated=limit is not None and limit < length,
    )


def usage(endpoint: Endpoint, counts: Counts) -> dict[str, Any]:
    """The `usage` object exactly as the endpoint reports it (for messages: the final one)."""
    if endpoint == EMBEDDINGS:
        return {"prompt_tokens": counts.prompt, "total_tokens": counts.prompt}
    if endpoint == MESSAGES:
        return {
            "input_tokens": counts.prompt - counts.cached - counts.cache_write,
            "cache_creation_input_tokens": counts.cache_write,
            "cache_read_input_tokens": counts.cached,
            "output_tokens": counts.completion,
        }
    reasoning = counts.reasoning * counts.choices
    total = counts.prompt + counts.completion
    if endpoint == RESPONSES:
        return {
            "input_tokens": counts.prompt,
            "input_tokens_details": {"cached_tokens": counts.cached},
            "output_tokens": counts.completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": total,
        }
    return {
        "prompt_tokens": counts.prompt,
        "completion_tokens": counts.completion,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": counts.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def expected_usage(
    endpoint: Endpoint,
    body: Mapping[str, Any],
    config: Behaviour | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The usage the simulator will report for `body` sent with `headers` under `config`."""
    behaviour = Behaviour.resolve(config or SimulatorConfig(), headers)
    return usage(endpoint, count(endpoint, body, behaviour))
