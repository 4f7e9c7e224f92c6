"""Load policy YAML into a validated, versioned `PolicySet`.

Several files (or several `---` documents in one file) form one policy set. A scope
(`defaults`, `unverified`, `purposes.<p>`, `owners.<o>`, `agents.<name>`, each alias)
may be defined in exactly one document: a second definition is an error naming both
places, never a silent override, because in a policy under version control two
definitions of one scope are always a mistake (descriptions are simply joined).
YAML duplicate keys are rejected for the same reason. Every YAML float is read as
the `Decimal` of its text, so USD amounts stay exact; every mapping key is read as a
string (`on`, `no`, `123` are agent names, not booleans or numbers).

The version id is the sha256 of the canonical JSON of the merged document (sorted
keys, no whitespace): comments, key order and the split into files do not change it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentctl.errors import ConfigError
from agentctl.identity import VALID_VALUE_HINT, value_ok
from agentctl.policy.schema import API_VERSION, PolicyDocument, field_names

_SINGLE = ("defaults", "unverified")
_KEYED = ("purposes", "owners", "agents", "aliases")


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    source: str
    path: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.path}: {self.reason}"
            if self.path
            else (f"{self.source}: {self.reason}")
        )


class PolicyError(ConfigError):
    """Invalid policy; `issues` lists every problem as (source, dotted path, reason)."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


@dataclass(frozen=True)
class PolicySet:
    document: PolicyDocument
    version: str
    sources: tuple[str, ...] = ()
    # scope path ("agents.prod-bot", "defaults") -> the source that defined it
    scope_sources: Mapping[str, str] = field(default_factory=dict)
    # effective policies resolved from this version (see resolve.effective)
    cache: dict[tuple[str, ...], Any] = field(default_factory=dict, compare=False, repr=False)


# libyaml's parser when PyYAML was built with it (about 10x faster: a policy with
# 10,000 agent scopes parses in a fraction of a second); same constructors either way.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    pass


def _float(loader: _Loader, node: yaml.Node) -> Any:
    text = str(loader.construct_scalar(node))
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        return loader.construct_yaml_float(node)  # .inf/.nan: the schema rejects floats


def _mapping(loader: _Loader, node: yaml.Node) -> dict[str, Any]:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, "expected a mapping", node.start_mark)
    loader.flatten_mapping(node)
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "keys must be plain strings", key_node.start_mark
            )
        key = str(key_node.value)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor("tag:yaml.org,2002:float", _float)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _yaml_documents(text: str, source: str) -> list[Any]:
    try:
        return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError([PolicyIssue(source, "", f"{where}{problem}")]) from None


def _issues(exc: ValidationError, source: str) -> list[PolicyIssue]:
    known = field_names()
    issues = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            last = str(err["loc"][-1]) if err["loc"] else ""
            close = difflib.get_close_matches(last, known, n=1)
            reason = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else "")
        elif kind == "missing":
            reason = "required key is missing"
        else:
            reason = str(err["msg"]).removeprefix("Value error, ")
            value = err.get("input")
            scalar = isinstance(value, str | int | float | Decimal) and not isinstance(value, bool)
            if scalar and str(value) not in reason:
                reason += f" (got {value!r})"
        issues.append(PolicyIssue(source, path, reason))
    return issues


def _validate(data: Any, source: str) -> PolicyDocument:
    if not isinstance(data, dict):
        raise PolicyError([PolicyIssue(source, "", "a policy document must be a mapping")])
    if data.get("apiVersion") != API_VERSION:
        got = data.get("apiVersion")
        reason = f"expected '{API_VERSION}'" + (f", got {got!r}" if got is not None else "")
        raise PolicyError([PolicyIssue(source, "apiVersion", reason)])
    try:
        return PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_issues(exc, source)) from None


def load_texts(texts: Iterable[tuple[str, str]]) -> PolicySet:
    """Load (source name, YAML text) pairs into one policy set."""
    merged: dict[str, Any] = {"apiVersion": API_VERSION}
    origin: dict[str, str] = {}
    issues: list[PolicyIssue] = []
    sources: list[str] = []
    descriptions: list[str] = []
    for source, text in texts:
        sources.append(source)
        try:
            docs = [_validate(d, source) for d in _yaml_documents(text, source)]
        except PolicyError as exc:
            issues += exc.issues
            continue
        if not docs:  # applied, it would silently lift every limit
            reason = (
                "the file holds no policy document (is it empty?); a policy without rules "
                f"is the single line `apiVersion: {API_VERSION}`"
            )
            issues.append(PolicyIssue(source, "", reason))
            continue
        for doc in docs:
            data = doc.model_dump(by_alias=True, exclude_unset=True)
            if data.get("description"):
                descriptions.append(data["description"])
            for key in _SINGLE:
                if key in data:
                    _claim(key, source, origin, issues)
                    merged[key] = data[key]
            for key in _KEYED:
                for name, value in data.get(key, {}).items():
                    if key != "aliases" and not value_ok(name):  # the scope would never apply
                        reason = f"{name!r} can never be declared in X-Agent-Identity: use "
                        issues.append(PolicyIssue(source, key, reason + VALID_VALUE_HINT))
                    _claim(f"{key}.{name}", source, origin, issues)
                    merged.setdefault(key, {})[name] = value
    if issues:
        raise PolicyError(issues)
    if descriptions:
        merged["description"] = "\n".join(descriptions)
    document = PolicyDocument.model_validate(merged)
    return PolicySet(document, policy_version(document), tuple(sources), origin)


def _claim(scope: str, source: str, origin: dict[str, str], issues: list[PolicyIssue]) -> None:
    if scope in origin:
        issues.append(
            PolicyIssue(source, scope, f"already defined in {origin[scope]}; define it once")
        )
    else:
        origin[scope] = source


def load_files(paths: Iterable[str | Path]) -> PolicySet:
    texts = []
    for path in paths:
        try:
            texts.append((str(path), Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError([PolicyIssue(str(path), "", f"cannot read: {exc}")]) from None
    return load_texts(texts)


def load_text(text: str, source: str = "<string>") -> PolicySet:
    return load_texts([(source, text)])


def from_mapping(data: Mapping[str, Any], source: str = "<mapping>") -> PolicySet:
    """A policy set from an already-parsed mapping (tests, the store's stored JSON)."""
    document = _validate(dict(data), source)
    scopes = {s: source for s in _SINGLE if s in data}
    scopes |= {f"{k}.{n}": source for k in _KEYED for n in data.get(k, {})}
    return PolicySet(document, policy_version(document), (source,), scopes)


def empty_policy() -> PolicySet:
    return from_mapping({"apiVersion": API_VERSION}, "<empty>")


def canonical_json(document: PolicyDocument) -> str:
    data = document.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def policy_version(document: PolicyDocument) -> str:
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
