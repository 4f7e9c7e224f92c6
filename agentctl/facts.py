"""What the gateway knows about a request before forwarding it.

Extracted once from the parsed body (one JSON parse per request) and handed to
policy evaluation, reservation, routing and the trust detectors.
"""

from __future__ import annotations

from dataclasses import dataclass

# Endpoint kinds; also the `api` flavour used for usage extraction.
CHAT = "chat"
COMPLETIONS = "completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"
MESSAGES = "anthropic"


@dataclass(slots=True)
class RequestFacts:
    endpoint: str  # one of the kinds above
    path: str  # e.g. "/v1/chat/completions"
    model: str  # as the client sent it ("" when absent)
    stream: bool = False
    max_output_tokens: int | None = None  # max_tokens / max_completion_tokens / max_output_tokens
    n: int = 1
    input_tokens_estimate: int = 0  # a likely count from the body size (metering fallback)
    input_tokens_bound: int = 0  # a count no tokenizer exceeds (reservations, caps)
    body_bytes: int = 0
    prompt_hash: str = ""  # normalised hash of the prompt, for the loop detector
    retry_count: int = 0  # x-stainless-retry-count from SDKs
