"""Token usage in one normalised shape, read from every wire format we proxy.

Convention (OpenAI's, and genai-prices'): `prompt_tokens` is the *total* input and
includes cached reads and cache writes; `completion_tokens` is the total output and
includes reasoning tokens; the detail fields are subsets, never additions. Anthropic
reports `input_tokens` *without* the cache fields, so its extractor sums them first.

Unknown fields are ignored (and passed through to the client untouched elsewhere);
malformed numbers count as zero rather than raising, because a broken usage object
from the upstream must never lose the audit record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

UsageSource = Literal["reported", "estimated", "none"]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    source: UsageSource = "reported"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value == value and value >= 0:
        return int(value)
    return 0


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def from_openai(usage: Any) -> Usage | None:
    """Chat completions, legacy completions and embeddings `usage` objects."""
    if not isinstance(usage, dict):
        return None
    return Usage(
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=_int(_get(usage, "prompt_tokens_details", "cached_tokens")),
        cache_write_tokens=_int(_get(usage, "prompt_tokens_details", "cache_write_tokens")),
        reasoning_tokens=_int(_get(usage, "completion_tokens_details", "reasoning_tokens")),
        input_audio_tokens=_int(_get(usage, "prompt_tokens_details", "audio_tokens")),
        output_audio_tokens=_int(_get(usage, "completion_tokens_details", "audio_tokens")),
    )


def from_responses(usage: Any) -> Usage | None:
    """Responses API `usage` (input_tokens / output_tokens with details)."""
    if not isinstance(usage, dict):
        return None
    return Usage(
        prompt_tokens=_int(usage.get("input_tokens")),
        completion_tokens=_int(usage.get("output_tokens")),
        cached_tokens=_int(_get(usage, "input_tokens_details", "cached_tokens")),
        cache_write_tokens=_int(_get(usage, "input_tokens_details", "cache_write_tokens")),
        reasoning_tokens=_int(_get(usage, "output_tokens_details", "reasoning_tokens")),
    )


def from_anthropic(usage: Any) -> Usage | None:
    """Anthropic Messages `usage`: input_tokens excludes the cache fields, so sum them."""
    if not isinstance(usage, dict):
        return None
    cache_read = _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=_int(usage.get("input_tokens")) + cache_read + cache_write,
        completion_tokens=_int(usage.get("output_tokens")),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def from_body(api: str, body: Any) -> Usage | None:
    """Usage from a complete (non-streamed) response body of the given API flavour."""
    if not isinstance(body, dict):
        return None
    if api == "anthropic":
        return from_anthropic(body.get("usage"))
    if api == "responses":
        return from_responses(body.get("usage"))
    return from_openai(body.get("usage"))
