"""Jumps to a much more expensive model (trust.md 2.2 #11).

A model outside the allowlist is a policy deny, not an anomaly; this detector watches
*allowed* models. Per model it keeps the moving price per token (cost / tokens, so
input/output mix noise averages out) and a call count. A model is *established* after
20 calls that were not themselves a jump, and (outside learning) only if priced under half
the jump factor; the ceiling is the current price of the dearest established model (not a
running maximum, which noise would inflate until a 6x model no longer looked like 5x).
A call priced >= `model_jump_factor` (5x) above the ceiling is a jump: the first raises a
weak alert, `model_jump_calls` (10) of them inside the window make a statistical anomaly.
During learning every model is established as it is used. At most `model_max_tracked`
models are kept (the least used is forgotten).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentctl.trust.config import TrustConfig
from agentctl.trust.signals import STATISTICAL, WEAK, Signal

ESTABLISHED_CALLS = 20
_ALPHA = 0.05


@dataclass(slots=True)
class ModelJumpDetector:
    models: dict[str, list[float]] = field(default_factory=dict)  # model -> [price, calls]
    ceiling: float = 0.0
    ceiling_model: str = ""
    jumps_cur: int = 0
    jumps_prev: int = 0
    bucket_start: float = 0.0

    def observe(
        self,
        model: str,
        cost_pico: int,
        tokens: int,
        now: float,
        cfg: TrustConfig,
        *,
        learning: bool,
    ) -> Signal | None:
        if tokens <= 0 or cost_pico <= 0:
            return None
        unit = cost_pico / tokens
        entry = self.models.get(model)
        if entry is None:
            if len(self.models) >= cfg.model_max_tracked:
                del self.models[min(self.models, key=lambda m: self.models[m][1])]
            entry = self.models[model] = [unit, 0.0]
        else:
            entry[0] += _ALPHA * (unit - entry[0])
        ceiling = self.ceiling
        factor = cfg.model_jump_factor
        if learning or ceiling <= 0.0:
            entry[1] += 1
            if entry[0] > ceiling or model == self.ceiling_model:
                self.ceiling, self.ceiling_model = entry[0], model
            return None
        if entry[0] < factor * ceiling:
            entry[1] += 1
            established = entry[1] >= ESTABLISHED_CALLS
            # The ceiling follows its model's current price (no max-of-noise creep), and only
            # a model within half the jump factor can become established outside learning:
            # a 6x model whose moving price dips under 5x must not quietly become the norm.
            if model == self.ceiling_model or (
                established and ceiling < entry[0] < 0.5 * factor * ceiling
            ):
                self.ceiling, self.ceiling_model = entry[0], model
            return None
        window = cfg.model_jump_window_s
        age = now - self.bucket_start
        if age >= window:
            self.jumps_prev = self.jumps_cur if age < 2 * window else 0
            self.jumps_cur = 0
            self.bucket_start = now
            age = 0.0
        self.jumps_cur += 1
        count = self.jumps_cur + self.jumps_prev * (1.0 - age / window)
        ratio = entry[0] / self.ceiling
        evidence = {
            "model": model,
            "price_ratio": round(ratio, 2),
            "jump_calls_in_window": round(count, 2),
            "window_s": window,
        }
        if count >= cfg.model_jump_calls:
            return Signal("model_jump", STATISTICAL, ratio, cfg.model_jump_factor, now, evidence)
        return Signal("model_jump", WEAK, ratio, cfg.model_jump_factor, now, evidence)

    def reset_baseline(self) -> None:
        self.models.clear()
        self.ceiling, self.ceiling_model = 0.0, ""
        self.jumps_cur = self.jumps_prev = 0

    def state(self) -> dict[str, Any]:
        return {
            "ceiling_pico_per_token": self.ceiling,
            "models": {
                m: {"pico_per_token": p, "calls": int(c)} for m, (p, c) in self.models.items()
            },
            "jump_calls_in_bucket": self.jumps_cur,
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "models": {m: list(v) for m, v in self.models.items()},
            "ceiling": self.ceiling,
            "ceiling_model": self.ceiling_model,
            "jumps": [self.jumps_cur, self.jumps_prev, self.bucket_start],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> ModelJumpDetector:
        cur, prev, start = data["jumps"]
        models = {m: [float(p), float(c)] for m, (p, c) in data["models"].items()}
        ceiling, ceiling_model = float(data["ceiling"]), str(data["ceiling_model"])
        return cls(models, ceiling, ceiling_model, int(cur), int(prev), float(start))
