"""The indexer's level patterns (jobcore.indexing): their globs, their order, their shape."""

from __future__ import annotations

from typing import Any

import pytest

from jobcore.errors import InvalidRequest
from jobcore.indexing import MAX_PATTERNS, Patterns, check_patterns, patterns_of
from jobcore.models import parse_event


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("*.csv", "a.csv", True),
        ("*.csv", "dir/a.csv", False),  # `*` stays within a folder
        ("**/*.csv", "dir/sub/a.csv", True),
        ("**/*.csv", "a.csv", True),  # `**/` may be no folder at all
        ("**.csv", "dir/a.csv", False),  # `**` within a segment is `*`
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/c", False),
        ("raw/**", "raw/x/y.bin", True),
        ("raw/**", "rawx/y.bin", False),
        ("raw/*", "raw/x/y.bin", False),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("?x", "/x", False),  # `?` never matches `/`
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "b.txt", False),
        ("[!ab].txt", "c.txt", True),
        ("a[!b]c", "a/c", False),  # a negated set never matches `/`
        ("file[0-9].dat", "file7.dat", True),
        ("a+b (1).txt", "a+b (1).txt", True),  # regex characters are themselves
        ("a.txt", "aXtxt", False),
        ("line\nbreak", "line\nbreak", True),
    ],
)
def test_a_pattern_matches_the_whole_key_as_the_glob_table_says(
    pattern: str, key: str, matches: bool
) -> None:
    assert (Patterns([("l", pattern)]).level(key) == "l") is matches


def test_no_pattern_makes_matching_backtrack_for_ever() -> None:
    # given patterns a backtracking matcher takes exponential time on (many stars, no match possible)
    stars = Patterns([("x", "*a" * 300 + "b"), ("y", "**/" * 200 + "*a*a*a*a*a*a*a*a*b")])
    # then a long key is refused (returns at all: the matcher goes back to the last star only)
    assert stars.level("a" * 1000) is None
    assert stars.level("/".join(["a" * 40] * 25)) is None


def test_the_first_matching_pattern_gives_the_level_and_none_matching_gives_none() -> None:
    # given two patterns that both match CSVs under raw/
    patterns = Patterns(
        check_patterns([{"level": "raw", "pattern": "raw/**"}, {"level": "t", "pattern": "**/*.csv"}])
    )
    # then the first in the list wins, and an unmatched key has no level
    assert patterns.level("raw/a.csv") == "raw"
    assert patterns.level("b/a.csv") == "t"
    assert patterns.level("b/a.txt") is None


@pytest.mark.parametrize(
    "value",
    [
        {"raw": "pjt_secret/**"},
        ["pjt_secret/**"],
        [{"level": "raw"}],
        [{"level": "", "pattern": "*"}],
        [{"level": "a" * 65, "pattern": "*"}],
        [{"level": "x y", "pattern": "*"}],
        [{"level": 1, "pattern": "*"}],
        [{"level": "x", "pattern": ""}],
        [{"level": "x", "pattern": "*" * 1025}],
        [{"level": "x", "pattern": "[abc"}],
        [{"level": "x", "pattern": "[]"}],
        [{"level": "x", "pattern": "*", "more": True}],
        [{"level": "x", "pattern": "*"}] * (MAX_PATTERNS + 1),
    ],
)
def test_patterns_of_another_shape_are_refused_without_echoing_them(value: Any) -> None:
    with pytest.raises(ValueError, match="index_patterns must be a list") as caught:
        check_patterns(value)
    assert "pjt_secret" not in str(caught.value) and "[abc" not in str(caught.value)
    # and an `index` event carrying them is invalid (400 at the API, rejected on the queue)
    with pytest.raises(InvalidRequest, match="index_patterns"):
        parse_event({"name": "index", "data": {"index_patterns": value}})


def test_an_index_event_without_patterns_or_with_null_is_valid_and_labels_nothing() -> None:
    assert parse_event({"name": "index"}).data == {}
    assert parse_event({"name": "index", "data": {"index_patterns": None}}).data == {"index_patterns": None}
    assert not patterns_of({"index_patterns": None}) and not patterns_of(None)
    # an event recorded with patterns that are not valid (never, since they are checked) labels nothing
    assert not patterns_of({"index_patterns": "junk"})


def test_a_manifest_sort_key_always_fits_and_tells_long_keys_apart() -> None:
    from jobcore.adapters.dynamodb import manifest_prefix, manifest_sk

    # given keys up to S3's 1,024 bytes, some longer than a sort key holds after the run's prefix
    run = "AbCdEfGhIjKlMnOpQrStUv.0123456789abcdefghij"
    short = "results/summary.csv"
    long_a, long_b = "é" * 505 + "a", "é" * 505 + "b"  # 1,011 bytes each, the same first 1,010
    # then a key that fits is its own sort key (key order), a long one is cut at a character boundary
    assert manifest_sk(run, short) == manifest_prefix(run) + short
    for key in (long_a, long_b):
        sk = manifest_sk(run, key)
        assert len(sk.encode("utf-8")) <= 1024 and sk.startswith(manifest_prefix(run) + "é" * 400)
    assert manifest_sk(run, long_a) != manifest_sk(run, long_b)
    # and each run has its own prefix
    assert manifest_prefix(run) != manifest_prefix(run + "x")
