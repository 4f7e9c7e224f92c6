"""Concurrent clients against a gateway subprocess, tagged so every request is traceable.

Each request declares `seq=<n>` as an identity extension: the gateway forwards the
header to the simulator (which records it) and stores it in the audit record's
`extensions`, so the test can match upstream receipts, client outcomes and records
one to one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from agentctl.simulator import RunningSimulator
from agentctl.store.sql import Store

MESSAGES = [{"role": "user", "content": "count the words in this short prompt please"}]


@dataclass
class Load:
    url: str
    clients: int = 12
    sim_headers: dict[str, str] = field(default_factory=dict)
    hanging: int = 0  # this many extra clients send one request the simulator never answers
    slow: int = 0  # this many extra clients stream slowly (about 1.3 s per request)
    finished_at: dict[str, float] = field(default_factory=dict)  # seq -> monotonic time
    sent: set[str] = field(default_factory=set)
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)  # seq -> usage
    failed: dict[str, str] = field(default_factory=dict)  # seq -> why
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def run(self) -> None:
        # One connection per client: with fewer, the hanging client could wait for a
        # pooled connection the busy ones kept taking, and never reach the upstream.
        limits = httpx.Limits(max_connections=self.clients + self.hanging + self.slow)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            await asyncio.gather(
                *(self._client(client, i) for i in range(self.clients)),
                *(self._client(client, -1 - i) for i in range(self.hanging)),
                *(self._client(client, 1000 + 2 * i) for i in range(self.slow)),
            )

    async def _client(self, client: httpx.AsyncClient, index: int) -> None:
        while not self.stop.is_set():
            seq = f"{'h' if index < 0 else 's'}{next(self._seq)}"
            stream = index % 2 == 0
            headers = {
                "X-Agent-Identity": f"name=crash-{index % 4}; owner=team-ml; "
                f"purpose=production; seq={seq}",
                **self.sim_headers,
                **({"x-sim-hang": "1"} if index < 0 else {}),
                **({"x-sim-chunk-delay-ms": "80"} if index >= 1000 else {}),
            }
            # A distinct prompt per request (in letters: the trust engine's loop detector
            # masks digits), else these clients would rightly be throttled as a loop.
            tag = "".join(chr(97 + int(d)) for d in seq[1:])
            messages = [{"role": "user", "content": f"{tag} {MESSAGES[0]['content']}"}]
            body = {"model": "gpt-4o-mini", "messages": messages, "max_tokens": 64}
            if stream:
                body["stream"] = True
            self.sent.add(seq)
            try:
                usage = await (self._stream if stream else self._json)(client, headers, body)
            except (httpx.HTTPError, ValueError) as exc:
                self.failed[seq] = repr(exc)
                return  # the gateway went away: this client is done
            if isinstance(usage, str):
                self.failed[seq] = usage
                return
            self.completed[seq] = usage
            self.finished_at[seq] = time.monotonic()

    async def _json(
        self, client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any] | str:
        resp = await client.post(self.url + "/v1/chat/completions", json=body, headers=headers)
        if resp.status_code != 200:
            return f"{resp.status_code} {resp.text[:200]}"
        return dict(resp.json()["usage"])

    async def _stream(
        self, client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any] | str:
        body = {**body, "stream_options": {"include_usage": True}}
        usage = None
        done = False
        async with client.stream(
            "POST", self.url + "/v1/chat/completions", json=body, headers=headers
        ) as resp:
            if resp.status_code != 200:
                return f"{resp.status_code} {(await resp.aread())[:200]!r}"
            async for line in resp.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunk = json.loads(line[6:])
                    usage = chunk.get("usage") or usage
        return usage if done and usage else f"incomplete stream (done={done})"


def upstream_seqs(sim: RunningSimulator) -> list[str]:
    """The seq of every request the simulator received (recorded requests)."""
    out = []
    for req in sim.state.requests:
        ident = req.headers.get("X-Agent-Identity", "")
        out += [p.split("=", 1)[1].strip() for p in ident.split(";") if "seq=" in p]
    return out


def records_by_seq(store: Store) -> dict[str, list[dict[str, Any]]]:
    rows = store.records_after(0, limit=1_000_000)
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        ext = dict(p.split("=", 1) for p in row["extensions"].split("; ") if "=" in p)
        out.setdefault(ext.get("seq", "?"), []).append(row)
    return out
