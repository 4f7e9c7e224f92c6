"""Which upstream serves a model: globs on normalised names, first match wins.

Upstream `base_url` replaces the `/v1` prefix of the client's path, so
`https://api.openai.com/v1` + `/v1/chat/completions` -> `.../v1/chat/completions`,
and an Anthropic upstream is configured as `https://api.anthropic.com/v1`.
`/v1/messages` prefers upstreams speaking the Anthropic API; other endpoints prefer
OpenAI-API upstreams; either falls back to any upstream whose globs match (many
OpenAI-compatible servers also speak Messages). Request fields can never change
the upstream URL: only config does.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from agentctl.config import Upstream
from agentctl.facts import MESSAGES
from agentctl.pricing import normalise_model


@dataclass(frozen=True, slots=True)
class Route:
    upstream: Upstream
    url: str
    model: str  # the model name sent upstream


class Router:
    def __init__(self, upstreams: tuple[Upstream, ...]) -> None:
        self.upstreams = upstreams
        self._cache: dict[tuple[str, str], Upstream | None] = {}

    def resolve(self, model: str, endpoint: str, path: str) -> Route | None:
        key = (model, endpoint)
        try:
            upstream = self._cache[key]
        except KeyError:
            upstream = self._cache[key] = self._match(model, endpoint)
            if len(self._cache) > 50_000:
                self._cache.clear()
        if upstream is None:
            return None
        return Route(upstream, upstream.base_url + path[3:], model)

    def _match(self, model: str, endpoint: str) -> Upstream | None:
        wanted = "anthropic" if endpoint == MESSAGES else "openai"
        names = {model.lower(), normalise_model(model)}
        fallback = None
        for upstream in self.upstreams:
            if any(fnmatch.fnmatchcase(n, g.lower()) for n in names for g in upstream.models):
                if upstream.api == wanted:
                    return upstream
                fallback = fallback or upstream
        return fallback

    def models(self) -> list[str]:
        """Concrete (non-glob) model names from config, for GET /v1/models."""
        seen: dict[str, None] = {}
        for upstream in self.upstreams:
            for pattern in upstream.models:
                if not any(ch in pattern for ch in "*?["):
                    seen[pattern] = None
        return list(seen)
