"""`prompt_hash`: the normalised request hash the loop detector counts.

The gateway sets `RequestFacts.prompt_hash = prompt_hash(facts.endpoint, body)` once per
request, from the body it already parsed. Two requests get the same hash when an agent
is plausibly repeating itself, so the normalisation keeps what identifies the *work*
and drops what changes between two iterations of the same loop:

* kept: the model (lowercased), the tool/function schema, the system prompt or
  instructions, the first user message (the conversation's anchor) and the trailing
  non-assistant turn (everything after the last assistant message: the new user
  input or tool results). Agent loops that append turns keep the same anchor and
  repeat the same tail, so they hash alike although the body grows; two users who
  both answer "yes" differ in their anchors, so they do not.
* dropped: sampling and transport fields (`user`, `seed`, `temperature`, `stream`,
  `metadata`, `previous_response_id`, ...), tool-call and message ids, cache hints.
* masked in every string: ISO timestamps, epoch-like 10/13-digit stamps, UUIDs and hex
  runs of 16+ characters become `#`; whitespace runs collapse to one space. A loop that
  stamps a time or a request id into its prompt therefore still repeats one hash.
  Other numbers are kept: templated work ("summarise ticket 4812", "... 4813") is
  different work, and masking every digit made a batch job walking through ids look
  like a loop (a wrongful throttle found by running the demo).

The digest is blake2b-64 as 16 hex characters. It never raises: any JSON shape hashes.
Masking is one regex pass per string, so the cost is linear in the prompt size.
"""

from __future__ import annotations

import json
import re
from hashlib import blake2b
from typing import Any

from agentctl.facts import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES

_VOLATILE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\b[0-9a-fA-F]{16,}\b"
    r"|\b1\d{9}(?:\d{3})?\b"
)
_SKIP_KEYS = frozenset(
    {"id", "tool_call_id", "tool_use_id", "call_id", "cache_control", "status", "signature"}
)
_SEP = b"\x1f"


def normalise_text(text: str) -> str:
    return " ".join(_VOLATILE.sub("#", text).split())


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, str):
        h.update(normalise_text(value).encode("utf-8", "surrogatepass"))
    elif isinstance(value, dict):
        h.update(b"{")
        for key in sorted(k for k in value if isinstance(k, str) and k not in _SKIP_KEYS):
            h.update(key.encode() + b"=")
            _feed(h, value[key])
            h.update(_SEP)
        h.update(b"}")
    elif isinstance(value, list | tuple):
        h.update(b"[")
        for item in value:
            _feed(h, item)
            h.update(_SEP)
        h.update(b"]")
    elif value is None:  # the common scalars as `json.dumps` writes them, without its cost
        h.update(b"null")
    elif value is True or value is False:
        h.update(b"true" if value else b"false")
    elif type(value) is int:
        h.update(str(value).encode())
    else:
        h.update(json.dumps(value, default=str).encode())


def _is_assistant(message: Any) -> bool:
    if not isinstance(message, dict):
        return False
    return message.get("role") == "assistant" or message.get("type") in (
        "function_call",
        "reasoning",
        "computer_call",
    )


def _conversation(messages: Any) -> list[Any]:
    """System turns, the first user turn and the trailing non-assistant turn."""
    if not isinstance(messages, list):
        return [messages]
    system = [
        m for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")
    ]
    rest = [
        m
        for m in messages
        if not (isinstance(m, dict) and m.get("role") in ("system", "developer"))
    ]
    last_assistant = max((i for i, m in enumerate(rest) if _is_assistant(m)), default=-1)
    tail = rest[last_assistant + 1 :]
    anchor = next((m for m in rest if isinstance(m, dict) and m.get("role") == "user"), None)
    if last_assistant < 0 or anchor is None:
        return [system, rest]
    return [system, anchor, tail]


def prompt_hash(endpoint: str, body: dict[str, Any]) -> str:
    h = blake2b(digest_size=8)
    if not isinstance(body, dict):
        _feed(h, body)
        return h.hexdigest()
    model = body.get("model")
    h.update(endpoint.encode() + _SEP)
    h.update((model.strip().lower() if isinstance(model, str) else "").encode() + _SEP)
    if endpoint in (CHAT, MESSAGES):
        parts: list[Any] = [body.get("system"), body.get("tools"), body.get("functions")]
        parts += _conversation(body.get("messages"))
    elif endpoint == RESPONSES:
        parts = [body.get("instructions"), body.get("tools"), *_conversation(body.get("input"))]
    elif endpoint == COMPLETIONS:
        parts = [body.get("prompt"), body.get("suffix")]
    elif endpoint == EMBEDDINGS:
        parts = [body.get("input")]
    else:
        parts = [{k: v for k, v in body.items() if k in ("messages", "input", "prompt", "tools")}]
    for part in parts:
        _feed(h, part)
        h.update(_SEP)
    return h.hexdigest()
