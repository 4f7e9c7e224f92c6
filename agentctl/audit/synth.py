"""Synthetic audit records written straight to a SQLite database, for scale tests.

The rows go through the store's own row shape (`_full_row`) and hash chain
(`record_hash`), so `audit verify` proves them and reports reconcile with them like
real traffic; only the insert is different: one `executemany` per chunk with the
audit indexes dropped and rebuilt once, then anchors and rollups computed in bulk.
Deterministic for a seed. Run: `python -m agentctl.audit.synth PATH N`.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl.store import rollups
from agentctl.store.chain import ANCHORS, build_anchors, record_hash
from agentctl.store.sql import AUDIT, CHAIN, Store, _full_row

DAY_US = 86_400_000_000
END_US = 1_796_083_200_000_000  # 2026-12-01T00:00:00Z
MODELS = {  # pico-dollars per input and output token
    "gpt-4o-mini": (150_000, 600_000),
    "gpt-4o": (2_500_000, 10_000_000),
    "claude-sonnet-4": (3_000_000, 15_000_000),
    "o3-mini": (1_100_000, 4_400_000),
}
PURPOSES = ("production", "batch", "development", "evaluation")
RULES = ("daily-budget-exceeded", "model-not-allowed", "rate-limit-requests", "agent_disabled")


@dataclass(frozen=True)
class Fleet:
    agents: list[tuple[str, str, str, tuple[str, ...]]]  # name, team, purpose, models
    weights: list[float]


def fleet(rng: random.Random, agents: int, teams: int) -> Fleet:
    names = []
    for i in range(agents):
        models = tuple(rng.sample(sorted(MODELS), rng.choice((1, 1, 2))))
        names.append((f"agent-{i:03d}", f"team-{i % teams:02d}", PURPOSES[i % 4], models))
    return Fleet(names, [1 / (i + 1) ** 0.8 for i in range(agents)])


def rows(n: int, *, days: int, agents: int, teams: int, seed: int) -> Iterator[dict[str, Any]]:
    """Records in timestamp order over `days` days ending at END_US, events included."""
    rng = random.Random(seed)
    crew = fleet(rng, agents, teams)
    start, step = END_US - days * DAY_US, days * DAY_US // max(n, 1)
    for i in range(n):
        name, team, purpose, models = rng.choices(crew.agents, crew.weights)[0]
        ts = start + i * step + rng.randrange(max(step, 1))
        if i % 5000 == 4999:
            kind = "disable" if (i // 5000) % 2 == 0 else "enable"
            yield _event(i, ts, kind, name, team, purpose)
            continue
        model = rng.choice(models)
        roll = rng.random()
        outcome, rule, status = "served", None, 200
        if roll < 0.04:
            outcome, rule, status = "refused", rng.choice(RULES), 429
        elif roll < 0.06:
            outcome, rule, status = "upstream_error", None, 503
        elif roll < 0.07:
            outcome = "disconnected"
        prompt = rng.randrange(20, 4000) if outcome != "refused" else 0
        completion = rng.randrange(1, 800) if outcome == "served" else 0
        price_in, price_out = MODELS[model]
        yield {
            "kind": "request",
            "request_id": f"req_syn{seed:x}_{i:09d}",
            "ts_us": ts,
            "agent": name,
            "owner": team,
            "purpose": purpose,
            "verification": "token",
            "endpoint": "/v1/chat/completions",
            "model": model,
            "upstream_model": model,
            "upstream": "openai",
            "status": status,
            "outcome": outcome,
            "rule_id": rule,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_tokens": prompt // 4 if roll > 0.5 else 0,
            "usage_source": "estimated" if outcome == "disconnected" else "reported",
            "cost_pico": prompt * price_in + completion * price_out,
            "reserved_pico": prompt * price_in + 1024 * price_out,
            "latency_ms": round(rng.uniform(80, 4000), 3),
            "stream": roll > 0.3,
            "client": "10.0.0.7",
        }


def _event(i: int, ts: int, kind: str, agent: str, team: str, purpose: str) -> dict[str, Any]:
    status = "disabled" if kind == "disable" else "active"
    before = {"status": "active" if kind == "disable" else "disabled"}
    return {
        "kind": kind,
        "request_id": f"evt_syn_{i:09d}",
        "ts_us": ts,
        "agent": agent,
        "owner": team,
        "purpose": purpose,
        "outcome": "event",
        "actor": "alice",
        "reason": "synthetic: runaway loop" if kind == "disable" else "synthetic: fixed",
        "detail": json.dumps({"before": before, "after": {"status": status}}, sort_keys=True),
    }


def generate(
    path: Path, n: int, *, days: int = 90, agents: int = 60, teams: int = 8, seed: int = 7
) -> int:
    """Create `path` (must not exist) holding `n` chained records; return the head id."""
    if path.exists():
        raise FileExistsError(path)
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.close()
    columns = [str(c.name) for c in AUDIT.columns]  # plain str: orjson keys
    insert = f"INSERT INTO audit ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=OFF")  # a bulk load into a fresh file: nothing to roll back
    con.execute("PRAGMA synchronous=OFF")
    indexes = con.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='audit' "
        "AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        con.execute(f"DROP INDEX {name}")
    prev, chunk, links = "", [], []
    for i, raw in enumerate(rows(n, days=days, agents=agents, teams=teams, seed=seed), 1):
        row = _full_row(raw)
        row.update(id=i, chain=CHAIN, prev_hash=prev)
        row["hash"] = prev = record_hash(prev, row)
        chunk.append(tuple(row[c] for c in columns))
        links.append({"id": i, "ts_us": row["ts_us"], "prev_hash": row["prev_hash"], "hash": prev})
        if len(chunk) >= 50_000:
            con.executemany(insert, chunk)
            chunk = []
    con.executemany(insert, chunk)
    for _, sql in indexes:
        con.execute(sql)
    con.execute(
        "UPDATE chain_heads SET last_id = ?, last_hash = ? WHERE chain = ?", (n, prev, CHAIN)
    )
    con.commit()
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    store = Store(f"sqlite:///{path}")
    with store.engine.begin() as conn:
        if links:
            conn.execute(ANCHORS.insert(), build_anchors(links))
        rollups.rebuild(conn, AUDIT)
    store.close()
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentctl.audit.synth", description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--agents", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    generate(args.path, args.n, days=args.days, agents=args.agents, seed=args.seed)
    print(f"wrote {args.n} records to {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
