"""The repeated-prompt loop detector (trust.md 2.2 #7).

Counts `RequestFacts.prompt_hash` values (see `prompt.py`) per agent over a sliding
60 s window made of two buckets: the estimate for a hash is its count in the current
bucket plus its count in the previous one weighted by how much of it still overlaps
the window. Any hash reaching `loop_count` (20) is a loop. Counting happens on
*arrival*, refused requests included, so a loop that keeps hammering after it was
throttled stays visible and can be escalated to a disable.

A bucket holds at most `loop_max_hashes` distinct hashes; a full bucket rotates early,
which shortens the window only for agents sending that many distinct prompts a minute
(where a 20-fold repeat would still show). Hot hashes (at most 8) remember when their
episode began; an episode ends after half a window without a repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentctl.trust.config import TrustConfig
from agentctl.trust.signals import LOOP, Signal

MAX_HOT = 8


@dataclass(slots=True)
class LoopDetector:
    cur: dict[str, int] = field(default_factory=dict)
    prev: dict[str, int] = field(default_factory=dict)
    bucket_start: float = 0.0
    hot: dict[str, list[float]] = field(default_factory=dict)  # hash -> [since, last]
    repeat: bool = False  # whether the last observed prompt was already in the window

    def observe(self, prompt_hash: str, now: float, cfg: TrustConfig) -> Signal | None:
        if not prompt_hash:
            self.repeat = False
            return None
        window = cfg.loop_window_s
        age = now - self.bucket_start
        if age >= window:
            self.prev = self.cur if age < 2 * window else {}
            self.cur = {}
            self.bucket_start = now - (age % window) if age < 2 * window else now
            age = now - self.bucket_start
        elif len(self.cur) >= cfg.loop_max_hashes and prompt_hash not in self.cur:
            self.prev, self.cur, self.bucket_start, age = self.cur, {}, now, 0.0
        count = self.cur.get(prompt_hash, 0) + 1
        self.cur[prompt_hash] = count
        estimate = float(count)
        before = self.prev.get(prompt_hash, 0) if self.prev else 0
        if before:
            estimate += before * (1.0 - age / window)
        self.repeat = count > 1 or before > 0
        if estimate < cfg.loop_count:
            return None
        episode = self.hot.get(prompt_hash)
        if episode is None or now - episode[1] > window / 2:
            if len(self.hot) >= MAX_HOT and prompt_hash not in self.hot:
                del self.hot[min(self.hot, key=lambda k: self.hot[k][1])]
            episode = self.hot[prompt_hash] = [now, now]
        else:
            episode[1] = now
        return Signal(
            "loop",
            LOOP,
            estimate,
            float(cfg.loop_count),
            episode[0],
            {"prompt_hash": prompt_hash, "count_in_window": round(estimate, 2), "window_s": window},
        )

    def is_hot(self, prompt_hash: str, now: float, cfg: TrustConfig) -> bool:
        episode = self.hot.get(prompt_hash)
        return episode is not None and now - episode[1] <= cfg.loop_window_s / 2

    def reset(self) -> None:
        self.cur, self.prev, self.hot = {}, {}, {}

    def state(self, now: float, cfg: TrustConfig) -> dict[str, Any]:
        top = max(self.cur.items(), key=lambda kv: kv[1], default=("", 0))
        return {
            "distinct_in_bucket": len(self.cur),
            "top_hash": top[0],
            "top_count": top[1],
            "hot": {
                h: {"since": s, "last": last}
                for h, (s, last) in self.hot.items()
                if now - last <= cfg.loop_window_s / 2
            },
        }

    def to_state(self) -> dict[str, Any]:
        return {
            "cur": dict(self.cur),
            "prev": dict(self.prev),
            "bucket_start": self.bucket_start,
            "hot": {h: list(v) for h, v in self.hot.items()},
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> LoopDetector:
        return cls(
            dict(data["cur"]),
            dict(data["prev"]),
            float(data["bucket_start"]),
            {h: [float(a), float(b)] for h, (a, b) in data["hot"].items()},
        )
