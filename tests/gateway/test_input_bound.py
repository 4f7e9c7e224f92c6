"""The input-token bound reservations use: never below what a tokenizer can produce."""

from __future__ import annotations

import json

from agentctl.gateway.reading import MEDIA_TOKENS, input_bound


def body(content: object) -> bytes:
    return json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    ).encode()


def test_text_is_bounded_by_its_bytes() -> None:
    raw = body("a " * 1000)  # ~1,000 tokens for real tokenizers; bytes/3 said ~690
    assert input_bound(raw) == len(raw) >= 2000


def test_media_by_reference_is_reserved_per_part() -> None:
    url = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    raw = body([{"type": "text", "text": "what is this"}, url, url])
    assert input_bound(raw) >= len(raw) + 2 * MEDIA_TOKENS
    anthropic = json.dumps(
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}
    ).encode()
    assert input_bound(anthropic) >= MEDIA_TOKENS
