"""The README's generated sections, rendered from the code that enforces them.

    python -m pipelinejobs.docs            # rewrite the generated sections of README.md
    python -m pipelinejobs.docs --check    # exit 1 if README.md is out of date (CI, and a unit test)

The state table and the Mermaid diagram come from `jobcore.states.TRANSITIONS`, the one table the worker
and the API also use; the token rules come from `jobcore.tokens` and the settings' defaults; the
configuration table from the docstring of `jobcore.settings`, the module that reads every variable.
README.md holds each generated section between two marker lines:

    <!-- BEGIN GENERATED: states -->
    <!-- END GENERATED: states -->
    <!-- BEGIN GENERATED: tokens -->
    <!-- END GENERATED: tokens -->
    <!-- BEGIN GENERATED: configuration -->
    <!-- END GENERATED: configuration -->

Everything between a pair is replaced; everything outside is left alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from jobcore import settings as settings_module
from jobcore.settings import Settings
from jobcore.states import TRANSITIONS, Actor, State
from jobcore.tokens import (
    _TOKEN_BYTES,
    CALLBACK_TOKEN_PREFIX,
    JOB_TOKEN_PREFIX,
    KEY_ID_CHARS,
    MAX_GRACE_TOKENS,
    PRODUCER_KEY_PREFIX,
    RotationPolicy,
)

__all__ = [
    "ReadmeError",
    "main",
    "render_state_diagram",
    "render_state_table",
    "render_token_rules",
    "update_readme",
]

# Rows whose `target` is None: the state does not change, except for delete, which removes the record.
_REMOVED = frozenset({"delete"})


class ReadmeError(Exception):
    """README.md is missing, or its generated-section markers are missing or out of order."""


def begin_marker(section: str) -> str:
    return f"<!-- BEGIN GENERATED: {section} -->"


def end_marker(section: str) -> str:
    return f"<!-- END GENERATED: {section} -->"


# -- states ---------------------------------------------------------------------------------------------


def _is_any(sources: frozenset[State]) -> bool:
    return sources >= frozenset(State)


def _sources_text(sources: frozenset[State]) -> str:
    if _is_any(sources):
        return "any"
    return ", ".join(state.value for state in State if state in sources)


def _target_text(event: str, target: State | None) -> str:
    if target is not None:
        return target.value
    return "(record removed)" if event in _REMOVED else "(unchanged)"


def _actors_text(actors: Iterable[Actor]) -> str:
    chosen = set(actors)
    return " / ".join(actor.value for actor in Actor if actor in chosen)


def render_state_table() -> str:
    """The markdown table of SPEC section 3: one row per event, in table order."""
    lines = ["| event | from | to | who | what it does |", "|---|---|---|---|---|"]
    for event, row in TRANSITIONS.items():
        cells = (
            f"`{event}`",
            _sources_text(row.sources),
            _target_text(event, row.target),
            _actors_text(row.actors),
            row.description,
        )
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def diagram_edges() -> dict[tuple[str, str], list[str]]:
    """(from, to) -> the events that move a job along that edge, in table order.

    An event allowed from every state is drawn once, from the pseudo-state `ANY` ("any state"), rather
    than as twelve arrows; `delete` ends at `[*]` (the record is gone); update and resource loop on
    their state.
    """
    edges: dict[tuple[str, str], list[str]] = {}
    for event, row in TRANSITIONS.items():
        sources = ["ANY"] if _is_any(row.sources) else [s.value for s in State if s in row.sources]
        for source in sources:
            if row.target is not None:
                target = row.target.value
            elif event in _REMOVED:
                target = "[*]"
            else:
                target = source
            edges.setdefault((source, target), []).append(event)
    return edges


def render_state_diagram() -> str:
    """A Mermaid `stateDiagram-v2` with one arrow per (from, to) pair, labelled with its events."""
    edges = diagram_edges()
    lines = ["stateDiagram-v2", f"    [*] --> {State.CREATED.value}"]
    if any(source == "ANY" for source, _ in edges):
        lines.append('    state "any state" as ANY')
    lines += [f"    {source} --> {target}: {', '.join(events)}" for (source, target), events in edges.items()]
    return "\n".join(lines) + "\n"


def render_states_section() -> str:
    return f"{render_state_table()}\n```mermaid\n{render_state_diagram()}```\n"


# -- tokens ---------------------------------------------------------------------------------------------


def _default(cls: type, name: str) -> object:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _events_for(actor: Actor) -> str:
    allowed = [event for event, row in TRANSITIONS.items() if actor in row.actors]
    denied = [event for event in TRANSITIONS if event not in allowed]
    if not denied:
        return "every event, on every job; listing all jobs; a fresh job token for any job"
    if len(denied) < len(allowed):
        return "every event except " + ", ".join(f"`{e}`" for e in denied) + ", on its own job only"
    return ", ".join(f"`{e}`" for e in allowed) + ", on its own job only"


def render_token_rules() -> str:
    """The markdown table of SPEC section 4, with the defaults the code uses."""
    policy = RotationPolicy()
    lifetime = _default(Settings, "admin_token_lifetime")
    random_chars = -(-_TOKEN_BYTES * 4 // 3)  # unpadded URL-safe base64 length
    rows = [
        (
            "job (update) token",
            f"`{JOB_TOKEN_PREFIX}` + {random_chars} URL-safe characters ({_TOKEN_BYTES * 8} random bits, "
            "then the HMAC of the token it replaces)",
            _events_for(Actor.JOB),
            f"after a state-changing event, after {policy.rotate_uses} uses (`TOKEN_ROTATE_USES`), "
            f"at {policy.rotate_seconds} s of age (`TOKEN_ROTATE_SECONDS`), or on request "
            "(`POST /jobs/{uuid}/token`); only in HTTP responses, never on the queue. A rotated-out token "
            "is answered with the current one and never rotates again",
            f"until rotated out, then {policy.grace_seconds} s more (`TOKEN_GRACE_SECONDS`), whatever "
            f"it is used for; with {MAX_GRACE_TOKENS} rotated-out tokens in grace, rotation waits "
            "(on request: 429); revoked by `reset` and `delete`",
        ),
        (
            "callback token",
            f"`{CALLBACK_TOKEN_PREFIX}` + {random_chars} URL-safe characters (an HMAC under the admin key of "
            "the job and a random nonce), in the job's `callback_url`; an admin can always read it",
            _events_for(Actor.CALLBACK),
            "never by use; a new one after each `reset`, or when an admin asks (`rotate_callback`)",
            "until replaced, or `delete` revokes it",
        ),
        (
            "admin token",
            "64 lowercase hex characters: HMAC-SHA256 of `str(floor(unix_time / lifetime))` "
            "under the admin key",
            _events_for(Actor.ADMIN),
            f"a new one every window of {lifetime} s (`ADMIN_TOKEN_LIFETIME`)",
            "its own window and the next one",
        ),
        (
            "producer key",
            f"`{PRODUCER_KEY_PREFIX}<id>_` + 43 URL-safe characters (256 random bits); the {KEY_ID_CHARS}-"
            "character id is public. Issued by an admin (`POST /keys`) with a label, a scope of pipelines "
            "(`*`: all) and an optional expiry; shown once",
            _events_for(Actor.KEY).replace("on its own job only", "on the jobs it created")
            + "; creating jobs in its scope, reading and listing its own jobs, rotating their job tokens",
            "never",
            "until its expiry, or an admin revokes it (`DELETE /keys/{id}`): at once at the API, and for "
            "events already queued with it at the worker",
        ),
    ]
    lines = [
        "| credential | looks like | authorizes | rotates | stays valid |",
        "|---|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "Job and callback tokens and producer keys are stored only as SHA-256 hashes and compared in constant time; no token, "
        "hash or admin material appears in a job, a log line, a history entry, a metric or an error.",
    ]
    return "\n".join(lines) + "\n"


def render_configuration() -> str:
    """The table of every environment variable, from the docstring of `jobcore.settings`, the module that
    reads them (a unit test checks that every variable it reads is in that table)."""
    doc = settings_module.__doc__ or ""
    rows = [line for line in doc.splitlines() if line.startswith("|")]
    return "\n".join(rows) + "\n"


SECTIONS: dict[str, Callable[[], str]] = {
    "states": render_states_section,
    "tokens": render_token_rules,
    "configuration": render_configuration,
}


# -- README ---------------------------------------------------------------------------------------------


def render_readme(text: str, where: str = "README.md") -> str:
    """`text` with every generated section replaced. Raises ReadmeError if a marker pair is missing."""
    for section, render in SECTIONS.items():
        begin, end = begin_marker(section), end_marker(section)
        if text.count(begin) != 1 or text.count(end) != 1:
            raise ReadmeError(
                f"{where} must contain the marker lines {begin!r} and {end!r} exactly once each "
                f"(the generated {section} section goes between them)"
            )
        start = text.index(begin) + len(begin)
        stop = text.index(end)
        if stop < start:
            raise ReadmeError(f"{where}: {end!r} comes before {begin!r}")
        text = text[:start] + "\n" + render() + text[stop:]
    return text


def update_readme(path: str | Path = "README.md", check: bool = False) -> bool:
    """Whether the README's generated sections were already up to date.

    With check=False, rewrites the sections that are stale; with check=True, writes nothing.
    Raises ReadmeError if the file does not exist or lacks a marker pair.
    """
    path = Path(path)
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReadmeError(f"{path} does not exist") from None
    wanted = render_readme(current, str(path))
    if wanted == current:
        return True
    if not check:
        path.write_text(wanted, encoding="utf-8")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelinejobs.docs",
        description="Regenerate the state table, state diagram and token rules in README.md.",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if README.md is out of date; write nothing"
    )
    parser.add_argument("--readme", default="README.md", type=Path, help="the README to update (README.md)")
    args = parser.parse_args(argv)
    try:
        fresh = update_readme(args.readme, check=args.check)
    except (ReadmeError, OSError) as exc:
        print(f"pipelinejobs.docs: {exc}", file=sys.stderr)
        return 1
    if args.check and not fresh:
        print(
            f"pipelinejobs.docs: {args.readme} is out of date; run `python -m pipelinejobs.docs`",
            file=sys.stderr,
        )
        return 1
    print(f"{args.readme}: " + ("up to date" if fresh else "updated"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
