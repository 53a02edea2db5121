"""Figures a suite prints at the end of a run, wherever its tests ran.

A suite registers a section (`register(config, "reliability", lines)`, `lines` called at the end of the
session). tests/conftest.py prints every section after the run; under pytest-xdist each worker hands its
sections to the controller when it finishes (`workeroutput`), and the controller prints them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

_SECTIONS = pytest.StashKey[dict[str, Callable[[], list[str]]]]()
_RELAYED = pytest.StashKey[dict[str, list[str]]]()
WORKER_OUTPUT_KEY = "pipelinejobs_summaries"


def register(config: pytest.Config, title: str, lines: Callable[[], list[str]]) -> None:
    """Print `lines()` under `title` at the end of the run (once per title; the first registration wins)."""
    config.stash.setdefault(_SECTIONS, {}).setdefault(title, lines)


def local_sections(config: pytest.Config) -> dict[str, list[str]]:
    """The sections registered in this process, with their lines as of now (empty ones left out)."""
    sections = {title: lines() for title, lines in config.stash.get(_SECTIONS, {}).items()}
    return {title: lines for title, lines in sections.items() if lines}


def relay(config: pytest.Config, sections: dict[str, list[str]]) -> None:
    """Keep sections a worker handed over (two workers with one title: both sets of lines, in turn)."""
    relayed = config.stash.setdefault(_RELAYED, {})
    for title, lines in sections.items():
        relayed.setdefault(title, []).extend(lines)


def all_sections(config: pytest.Config) -> dict[str, list[str]]:
    """What to print: this process's sections, then those the workers handed over."""
    sections = local_sections(config)
    for title, lines in config.stash.get(_RELAYED, {}).items():
        sections.setdefault(title, []).extend(lines)
    return sections
