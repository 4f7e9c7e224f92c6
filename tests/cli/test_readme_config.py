"""Every setting of agentctl.yaml has a row in the README's configuration table."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agentctl.config import FileConfig, SecretRef

README = Path(__file__).resolve().parents[2] / "README.md"


def leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every setting; `[]` marks a list of blocks."""
    found: list[str] = []
    for name, field in model.model_fields.items():
        annotation: Any = field.annotation
        path, inner = prefix + name, None
        candidates = (annotation, *typing.get_args(annotation))
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                inner = candidate
                if typing.get_origin(annotation) is tuple:
                    path += "[]"
                break
        if inner is None or inner is SecretRef:
            found.append(path)
        else:
            found += leaves(inner, path + ".")
    return found


def config_rows() -> list[str]:
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def covered(path: str, rows: list[str]) -> bool:
    """The row names the setting, or names an ancestor block and the setting's own key."""
    parts = path.split(".")
    for row in rows:
        first = row.split(" | ")[0]
        # `pricing.overrides.<model>` names the block under each model key
        names = {re.sub(r"\.<[^>]+>", "", n) for n in re.findall(r"`([^`]+)`", first)}
        if path in names:
            return True
        ancestors = {".".join(parts[:i]) for i in range(1, len(parts))}
        if names & ancestors and re.search(rf"\b{re.escape(parts[-1])}\b", row):
            return True
    return False


def test_every_setting_is_in_the_readme_table() -> None:
    rows = config_rows()
    missing = [path for path in leaves(FileConfig) if not covered(path, rows)]
    assert not missing, f"README configuration table lacks rows for {missing}"


def test_the_walk_sees_nested_blocks() -> None:
    paths = leaves(FileConfig)
    assert "upstreams[].timeouts.first_byte" in paths and "identity.mode" in paths
    assert not covered("no_such.setting", config_rows())
