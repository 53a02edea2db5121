"""The indexer's rules (SPEC section 3, `index`): which level a pattern of `data.index_patterns` gives an
output, and the shape those patterns must have. Plain Python; the steps themselves are in
jobcore.service, the manifest's items in the repository.

`data.index_patterns` on an `index` event is a list of `{"level": <name>, "pattern": <glob>}`, tried in
order: an output takes the level of the first pattern that matches its key (relative to the archive
path); an output no pattern matches has no level. A pattern matches the whole key:

| in a pattern | matches |
|---|---|
| `*` | any characters but `/` (within one folder) |
| `**` | any characters, `/` included (`**/` also matches no folder at all) |
| `?` | one character but `/` |
| `[abc]`, `[a-z]`, `[!abc]` | one character of (not of) the set, never `/` |
| anything else | itself |

So `*.csv` is a CSV at the top of the archive, `**/*.csv` one anywhere, `raw/**` everything under `raw/`.
A list rather than a mapping: the order decides which level an output matching two patterns takes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

INDEX_PATTERNS: Final = "index_patterns"
MAX_PATTERNS: Final = 100
MAX_PATTERN_CHARS: Final = 1024
LEVEL: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_SHAPE: Final = (
    f"{INDEX_PATTERNS} must be a list of at most {MAX_PATTERNS} objects "
    '{"level": <1 to 64 of A-Z a-z 0-9 _ . : ->, "pattern": <a glob of 1 to '
    f'{MAX_PATTERN_CHARS} characters>}}, e.g. [{{"level": "raw", "pattern": "raw/**"}}]'
)


class Patterns:
    """Compiled `index_patterns`: `level(key)` is the level of the first pattern matching `key`."""

    def __init__(self, pairs: Sequence[tuple[str, str]] = ()) -> None:
        self._compiled = [(level, re.compile(_translate(pattern), re.DOTALL)) for level, pattern in pairs]

    def level(self, key: str) -> str | None:
        for level, pattern in self._compiled:
            if pattern.fullmatch(key):
                return level
        return None

    def __bool__(self) -> bool:
        return bool(self._compiled)


def check_patterns(value: Any) -> list[tuple[str, str]]:
    """(level, pattern) pairs of a `data.index_patterns` value. Raises ValueError (its message says the
    shape, never echoing the value) for anything else; a pattern that cannot compile is refused too."""
    if not isinstance(value, list) or len(value) > MAX_PATTERNS:
        raise ValueError(_SHAPE)
    pairs = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"level", "pattern"}:
            raise ValueError(_SHAPE)
        level, pattern = item["level"], item["pattern"]
        if not isinstance(level, str) or not LEVEL.fullmatch(level):
            raise ValueError(_SHAPE)
        if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN_CHARS:
            raise ValueError(_SHAPE)
        try:
            re.compile(_translate(pattern))
        except re.error:
            raise ValueError(f"{_SHAPE}; a pattern's [set] is not closed or not valid") from None
        pairs.append((level, pattern))
    return pairs


def patterns_of(data: dict[str, Any] | None) -> Patterns:
    """The patterns an `index` event's data holds (none when it has none, or, for an event recorded
    before they were checked, when they are not valid: the outputs are indexed without levels)."""
    value = (data or {}).get(INDEX_PATTERNS)
    if value is None:
        return Patterns()
    try:
        return Patterns(check_patterns(value))
    except ValueError:
        return Patterns()


def _translate(pattern: str) -> str:
    """The regular expression of a glob (see the module's table)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    out.append("(?:.*/)?")  # `**/`: any folders, or none
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if end < 0:
                raise re.error("unterminated set")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            if not body:
                raise re.error("empty set")
            escaped = "".join("\\" + ch if ch in "\\^]" else ch for ch in body)
            out.append(f"(?!/)[{'^' if negate else ''}{escaped}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
