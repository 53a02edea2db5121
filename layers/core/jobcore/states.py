"""The job state machine, as data: one immutable table from event to allowed sources and destination.

Everything else -- the worker's write condition, the API's pre-check, the README's table and diagram,
the `allowed_events` of a job representation -- is derived from `TRANSITIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from jobcore.errors import EventNotAllowed, UnknownEvent


class State(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    FAILED = "FAILED"
    FINISHED = "FINISHED"
    INDEXING = "INDEXING"
    VALIDATING = "VALIDATING"
    VALIDATED = "VALIDATED"
    REJECTED = "REJECTED"
    FINALIZED = "FINALIZED"
    RETIRED = "RETIRED"
    RESET = "RESET"
    CANCELED = "CANCELED"


class Actor(StrEnum):
    """Who may send an event: the job's own token, a compute platform's callback token, a producer key
    (on the jobs it created), an admin.

    A producer key's principal is `key:<id>` (see `principal`); the table names the kind only."""

    JOB = "job"
    CALLBACK = "callback"
    KEY = "key"
    ADMIN = "admin"


# How a producer key is named as a principal: in history entries (`by`), acceptance marks, `owner`.
KEY_PRINCIPAL_PREFIX: Final = "key:"


def principal(actor: Actor, key_id: str | None = None) -> str:
    """The principal as history entries name it: `admin`, `job`, `callback` or `key:<id>`."""
    return f"{KEY_PRINCIPAL_PREFIX}{key_id}" if actor is Actor.KEY else str(actor)


def parse_principal(text: str) -> tuple[Actor, str | None] | None:
    """(kind, key id) of a principal as `principal` writes it; None for anything else."""
    if text.startswith(KEY_PRINCIPAL_PREFIX):
        key_id = text.removeprefix(KEY_PRINCIPAL_PREFIX)
        return (Actor.KEY, key_id) if key_id and key_id.isascii() and len(key_id) <= 32 else None
    if text in (Actor.JOB, Actor.CALLBACK, Actor.ADMIN):
        return Actor(text), None
    return None


_ALL: Final = frozenset(State)
_ANYONE: Final = frozenset(Actor)
# A producer key may send exactly what a job token may, on the jobs it owns (SPEC section 4 item 4).
_JOB_OR_ADMIN: Final = frozenset({Actor.JOB, Actor.KEY, Actor.ADMIN})
_ADMIN: Final = frozenset({Actor.ADMIN})


@dataclass(frozen=True, slots=True)
class Transition:
    sources: frozenset[State]
    # None: the state does not change (update, resource); for delete, the record is removed.
    target: State | None
    actors: frozenset[Actor]
    description: str


TRANSITIONS: Final = MappingProxyType(
    {
        "run": Transition(
            frozenset({State.CREATED, State.RUNNING}),
            State.RUNNING,
            _ANYONE,
            "the job started (or is still) running",
        ),
        "update": Transition(
            frozenset({State.CREATED, State.RUNNING, State.INDEXING, State.VALIDATING}),
            None,
            _ANYONE,
            "progress note; the state is unchanged",
        ),
        "resource": Transition(
            frozenset({State.CREATED, State.RUNNING}),
            None,
            _ANYONE,
            "the compute platform reports a resource status",
        ),
        "fail": Transition(
            frozenset({State.CREATED, State.RUNNING, State.INDEXING, State.VALIDATING}),
            State.FAILED,
            _ANYONE,
            "the job failed",
        ),
        "finish": Transition(
            frozenset({State.RUNNING, State.FINISHED}),
            State.FINISHED,
            _ANYONE,
            "the job finished its computation",
        ),
        "index": Transition(
            frozenset({State.FINISHED, State.INDEXING}),
            State.INDEXING,
            _JOB_OR_ADMIN,
            "outputs are being indexed",
        ),
        "indexed": Transition(
            frozenset({State.FINISHED, State.INDEXING}), State.FINISHED, _JOB_OR_ADMIN, "indexing is done"
        ),
        "validate": Transition(
            frozenset({State.FINISHED, State.VALIDATED}),
            State.VALIDATING,
            _JOB_OR_ADMIN,
            "outputs are being validated",
        ),
        "validated": Transition(
            frozenset({State.VALIDATING, State.VALIDATED}),
            State.VALIDATED,
            _JOB_OR_ADMIN,
            "outputs passed validation",
        ),
        "reject": Transition(
            frozenset({State.VALIDATING}), State.REJECTED, _JOB_OR_ADMIN, "outputs failed validation"
        ),
        "finalize": Transition(
            frozenset({State.VALIDATED}), State.FINALIZED, _JOB_OR_ADMIN, "the job is complete and final"
        ),
        "retire": Transition(
            frozenset(
                {
                    State.FAILED,
                    State.FINISHED,
                    State.VALIDATING,
                    State.VALIDATED,
                    State.REJECTED,
                    State.FINALIZED,
                }
            ),
            State.RETIRED,
            _JOB_OR_ADMIN,
            "the job's results are withdrawn from use",
        ),
        "cancel": Transition(
            frozenset({State.CREATED}), State.CANCELED, _JOB_OR_ADMIN, "the job is canceled before it ran"
        ),
        "reset": Transition(
            _ALL, State.RESET, _ADMIN, "erase the archive and revoke tokens; CREATED again once erased"
        ),
        "ready": Transition(
            frozenset({State.RESET}),
            State.CREATED,
            _ADMIN,
            "mark a reset job ready without waiting for erasure",
        ),
        "delete": Transition(_ALL, None, _ADMIN, "remove the job from listings and lookups"),
    }
)

EVENT_NAMES: Final = tuple(TRANSITIONS)

# Compute platforms hold only a callback token, which authorizes exactly these events.
CALLBACK_EVENTS: Final = frozenset(name for name, t in TRANSITIONS.items() if Actor.CALLBACK in t.actors)

# Internal event applied by the worker once a reset's archive erasure is complete. It is not part of
# the public table: nobody can send it, and it is recorded in the history under this name.
ERASED: Final = "erased"

# Compute-platform status words (SPEC section 5) and the event each maps to. Any other known status
# maps to `resource`; an unknown one to `update`.
CALLBACK_STATUS_EVENTS: Final = MappingProxyType(
    {
        "RUNNING": "run",
        "FINISHED": "finish",
        "FAILED": "fail",
        "STOPPED": "fail",
        "KILLED": "fail",
        "ARCHIVING_FAILED": "fail",
        "DELETED": "fail",
    }
)
KNOWN_RESOURCE_STATUSES: Final = frozenset(
    {
        "CREATED",
        "PENDING",
        "SUBMITTED",
        "QUEUED",
        "PROCESSING_INPUTS",
        "STAGING_INPUTS",
        "STAGING_JOB",
        "STAGED",
        "BLOCKED",
        "PAUSED",
        "ARCHIVING",
        "ARCHIVING_FINISHED",
        "CLEANING_UP",
        "HEARTBEAT",
    }
)


def event_for_status(status: str) -> str:
    """The event a compute-platform status word maps to (case-insensitive)."""
    word = status.strip().upper()
    if word in CALLBACK_STATUS_EVENTS:
        return CALLBACK_STATUS_EVENTS[word]
    if word in KNOWN_RESOURCE_STATUSES:
        return "resource"
    return "update"


def is_plain_name(name: object) -> bool:
    """Whether a caller's name may be repeated back: a short plain word. Anything else may be a
    credential pasted in the wrong place, and is never quoted in a message or a record (SPEC section 2)."""
    return isinstance(name, str) and len(name) <= 32 and name.isascii() and name.isidentifier()


def shown_name(name: object) -> str:
    """How a caller's name is quoted back in a message."""
    return repr(name) if is_plain_name(name) else "(not shown)"


def check_event_name(name: object) -> str:
    """`name` if it names an event (the table's rows). Raises UnknownEvent."""
    if not isinstance(name, str) or name not in TRANSITIONS:
        raise UnknownEvent(f"unknown event {shown_name(name)}; known events: {', '.join(EVENT_NAMES)}")
    return name


def transition(event: str) -> Transition:
    """The table row of `event`. Raises UnknownEvent."""
    try:
        return TRANSITIONS[event]
    except KeyError:
        raise UnknownEvent(
            f"unknown event {shown_name(event)}; known events: {', '.join(EVENT_NAMES)}"
        ) from None


def next_state(state: State, event: str) -> State:
    """The state after `event` is applied in `state` (unchanged for update/resource).

    Raises UnknownEvent, or EventNotAllowed ("cannot finish a job in CREATED").
    For `delete` the answer is `state` itself: the record is removed, not moved.
    """
    row = transition(event)
    if state not in row.sources:
        raise EventNotAllowed(f"cannot {event} a job in {state}", state=state, event=event)
    return row.target or state


def is_allowed(state: State, event: str) -> bool:
    row = TRANSITIONS.get(event)
    return row is not None and state in row.sources


def allowed_events(state: State, actor: Actor = Actor.ADMIN) -> list[str]:
    """Events `actor` may send to a job in `state`, in table order."""
    return [name for name, row in TRANSITIONS.items() if state in row.sources and actor in row.actors]


def may_send(actor: Actor, event: str) -> bool:
    row = TRANSITIONS.get(event)
    return row is not None and actor in row.actors


def reachable_from(start: State = State.CREATED) -> set[State]:
    """Every state reachable from `start` through the table (used by tests and docs)."""
    seen = {start}
    frontier = [start]
    while frontier:
        state = frontier.pop()
        for row in TRANSITIONS.values():
            if state in row.sources and row.target is not None and row.target not in seen:
                seen.add(row.target)
                frontier.append(row.target)
    # A reset ends in CREATED once the archive is erased.
    return seen
