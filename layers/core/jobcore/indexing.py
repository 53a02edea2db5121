"""The indexer's rules (SPEC section 3, `index`): which level a pattern of `data.index_patterns` gives an
output, and the shape those patterns must have. Plain Python; the steps themselves are in
jobcore.service, the manifest's items in the repository.

`data.index_patterns` on an `index` event is a list of `{"level": <name>, "pattern": <glob>}`, tried in
order: an output takes the level of the first pattern that matches its key (relative to the archive
path); an output no pattern matches has no level. A pattern matches the whole key:

| in a pattern | matches |
|---|---|
| `**` as a whole segment (`**/`, `/**`) | any number of folders, none included |
| `*` (and `**` within a segment) | any characters but `/` (within one folder) |
| `?` | one character but `/` |
| `[abc]`, `[a-z]`, `[!abc]` | one character of (not of) the set, never `/` |
| anything else | itself |

So `*.csv` is a CSV at the top of the archive, `**/*.csv` one anywhere, `raw/**` everything under `raw/`.
A list rather than a mapping: the order decides which level an output matching two patterns takes.
Matching uses no regular expression: at most (pattern length x key length) steps, whatever the pattern.
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
        self._compiled = [(level, _compile(pattern)) for level, pattern in pairs]

    def level(self, key: str) -> str | None:
        segments = key.split("/")
        for level, pattern in self._compiled:
            if _match(pattern, segments, _segment_matches):
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
            _compile(pattern)
        except ValueError:
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


# -- matching: no regular expression, so that no pattern can make a step backtrack for ever ----------
#
# A pattern is a list of segments (split on `/`): GLOBSTAR (a whole `**` segment) or a list of tokens
# (a character, a set, ONE for `?`, STAR for `*`). Both levels use the greedy wildcard algorithm, which
# only ever goes back to the last star: at most (pattern length x key length) steps.

_GLOBSTAR: Final = "**"
_STAR: Final = "*"
_ONE: Final = "?"

_Set = tuple[bool, tuple[tuple[str, str], ...]]  # (negated, ranges)
_Token = str | _Set  # one character, _STAR, _ONE, or a set
_Segment = str | list[_Token]  # _GLOBSTAR, or the tokens of one segment


def _compile(pattern: str) -> list[_Segment]:
    """The segments of a glob. Raises ValueError for a set that is not closed, empty or not valid."""
    return [_GLOBSTAR if part == _GLOBSTAR else _tokens(part) for part in pattern.split("/")]


def _tokens(part: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        if c == "*":
            if not tokens or tokens[-1] != _STAR:  # `**` within a segment is `*`
                tokens.append(_STAR)
        elif c == "?":
            tokens.append(_ONE)
        elif c == "[":
            negate = part.startswith("[!", i)
            first = i + 2 if negate else i + 1
            end = part.find("]", first)
            if end <= first:
                raise ValueError("a [set] is not closed, or empty")
            tokens.append((negate, _ranges(part[first:end])))
            i = end
        else:
            tokens.append(c)
        i += 1
    return tokens


def _ranges(body: str) -> tuple[tuple[str, str], ...]:
    ranges = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low > high:
                raise ValueError("a [set]'s range is reversed")
            ranges.append((low, high))
            i += 3
        else:
            ranges.append((body[i], body[i]))
            i += 1
    return tuple(ranges)


def _segment_matches(segment: _Segment, text: str) -> bool:
    """Whether one pattern segment (not GLOBSTAR) matches one segment of the key."""
    assert not isinstance(segment, str)
    return _match(segment, text, _token_matches)


def _token_matches(token: Any, char: str) -> bool:
    if token == _ONE:
        return True
    if isinstance(token, tuple):
        negate, ranges = token
        return any(low <= char <= high for low, high in ranges) != negate
    return bool(token == char)


def _match(pattern: Sequence[Any], items: Sequence[Any], one: Any) -> bool:
    """The greedy wildcard match of `items` by `pattern`, whose wildcard (STAR among characters,
    GLOBSTAR among segments) matches any run of items, and whose other elements match one item each
    (`one(element, item)`)."""
    wild = _GLOBSTAR if one is _segment_matches else _STAR
    p = k = 0
    star, mark = -1, 0
    while k < len(items):
        if p < len(pattern) and pattern[p] is not wild and pattern[p] != wild and one(pattern[p], items[k]):
            p, k = p + 1, k + 1
        elif p < len(pattern) and pattern[p] == wild:
            star, mark, p = p, k, p + 1
        elif star >= 0:
            mark += 1
            p, k = star + 1, mark
        else:
            return False
    while p < len(pattern) and pattern[p] == wild:
        p += 1
    return p == len(pattern)
