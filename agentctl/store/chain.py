"""The audit hash chain: each row's hash covers its content and the previous hash.

`hash = sha256(prev_hash || canonical_json(row without hash))`. Ids are assigned by
the appender under the chain-head lock (ids are contiguous), so a deleted row shows
up as a gap or a broken link, an edited row as a hash mismatch, and an inserted row
as either.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

HASHED_EXCLUDE = frozenset({"hash"})


def canonical(row: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in row.items() if k not in HASHED_EXCLUDE}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def record_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(prev_hash.encode())
    digest.update(canonical(row))
    return digest.hexdigest()
