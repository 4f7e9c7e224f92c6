"""Model access: allow/deny globs that cannot be bypassed by spelling.

A model name is expanded into its *forms*: case-folded, the alias target when it is
a configured alias, the part after the last '/' (provider prefixes such as
`openai/`, `azure/`), and the name without a dated snapshot suffix (`-2024-08-06`,
`-20241022`, `@20240620`), repeated until nothing new appears. Patterns are
case-folded and an alias used as a pattern also stands for its target.

- denied when ANY form of the requested OR the upstream name matches a deny glob;
- allowed (when an allow list exists) only when SOME form of the requested name AND
  some form of the upstream name match an allow glob.

So `GPT-4O`, `openai/gpt-4o`, `gpt-4o-2024-08-06` and an alias of gpt-4o all hit a
`gpt-4o` deny, while an allow of `gpt-4o-mini` still refuses `gpt-4o`. No allow list
(None) allows everything not denied; an empty allow list allows nothing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_SNAPSHOT = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")
_NEVER = re.compile(r"(?!)")


def model_forms(name: str, aliases: Mapping[str, str] | None = None) -> frozenset[str]:
    aliases = aliases or {}
    forms: set[str] = set()
    todo = [name.strip().casefold()]
    while todo and len(forms) < 32:
        form = todo.pop()
        if not form or form in forms:
            continue
        forms.add(form)
        if form in aliases:
            todo.append(aliases[form])
        if "/" in form:
            todo.append(form.rsplit("/", 1)[1])
        bare = _SNAPSHOT.sub("", form)
        if bare != form:
            todo.append(bare)
    return frozenset(forms)


def _compile(patterns: Iterable[str], aliases: Mapping[str, str]) -> re.Pattern[str]:
    expanded: list[str] = []
    for pattern in patterns:
        folded = pattern.strip().casefold()
        expanded.append(folded)
        if folded in aliases:
            expanded.append(aliases[folded])
    if not expanded:
        return _NEVER
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in expanded))


@dataclass(frozen=True)
class ModelAccess:
    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    _allow: re.Pattern[str] = field(default=_NEVER, repr=False, compare=False)
    _deny: re.Pattern[str] = field(default=_NEVER, repr=False, compare=False)
    _seen: dict[tuple[str, str | None], tuple[str, str] | None] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def compile(
        cls,
        allow: Iterable[str] | None,
        deny: Iterable[str] = (),
        aliases: Mapping[str, str] | None = None,
    ) -> ModelAccess:
        folded = {k.strip().casefold(): v.strip().casefold() for k, v in (aliases or {}).items()}
        allow_t = None if allow is None else tuple(allow)
        deny_t = tuple(deny)
        return cls(
            allow_t, deny_t, folded, _compile(allow_t or (), folded), _compile(deny_t, folded)
        )

    def _any(self, regex: re.Pattern[str], name: str) -> bool:
        return any(regex.match(form) for form in model_forms(name, self.aliases))

    def check(self, requested: str, upstream: str | None = None) -> tuple[str, str] | None:
        """None when allowed, else ("deny" | "allow", why) for the refusal message."""
        key = (requested, upstream)
        if key in self._seen:
            return self._seen[key]
        if len(self._seen) >= 4096:
            self._seen.clear()
        verdict = self._check(requested, upstream)
        self._seen[key] = verdict
        return verdict

    def _check(self, requested: str, upstream: str | None) -> tuple[str, str] | None:
        names = [requested] if upstream in (None, requested) else [requested, upstream]
        for name in names:
            if self._any(self._deny, name):
                return "deny", f"model '{name}' matches the deny list {list(self.deny)}"
        if self.allow is not None:
            for name in names:
                if not self._any(self._allow, name):
                    return "allow", f"model '{name}' is not in the allow list {list(self.allow)}"
        return None


def model_allowed(rules: ModelAccess, requested: str, upstream: str | None = None) -> bool:
    return rules.check(requested, upstream) is None
