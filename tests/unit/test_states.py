"""The state table (SPEC section 3) walked pair by pair, with the expectations written out here from the
SPEC rather than read back from `TRANSITIONS`, so a wrong row in the table fails a test."""

from __future__ import annotations

import itertools

import pytest

from jobcore.errors import EventNotAllowed, UnknownEvent
from jobcore.states import (
    CALLBACK_EVENTS,
    EVENT_NAMES,
    TRANSITIONS,
    Actor,
    State,
    allowed_events,
    event_for_status,
    is_allowed,
    may_send,
    next_state,
    reachable_from,
    transition,
)

S = State
ALL_STATES = tuple(State)
# (a producer key may send exactly what a job token may: SPEC section 4 item 4)
ANYONE = frozenset({Actor.JOB, Actor.CALLBACK, Actor.KEY, Actor.ADMIN})
JOB_OR_ADMIN = frozenset({Actor.JOB, Actor.KEY, Actor.ADMIN})
ADMIN = frozenset({Actor.ADMIN})

# event: (sources, target (None = unchanged), who) -- SPEC section 3, in its order.
SPEC_TABLE: dict[str, tuple[frozenset[State], State | None, frozenset[Actor]]] = {
    "run": (frozenset({S.CREATED, S.RUNNING}), S.RUNNING, ANYONE),
    "update": (frozenset({S.CREATED, S.RUNNING, S.INDEXING, S.VALIDATING}), None, ANYONE),
    "resource": (frozenset({S.CREATED, S.RUNNING}), None, ANYONE),
    "fail": (frozenset({S.CREATED, S.RUNNING, S.INDEXING, S.VALIDATING}), S.FAILED, ANYONE),
    "finish": (frozenset({S.RUNNING, S.FINISHED}), S.FINISHED, ANYONE),
    "index": (frozenset({S.FINISHED, S.INDEXING}), S.INDEXING, JOB_OR_ADMIN),
    "indexed": (frozenset({S.FINISHED, S.INDEXING}), S.FINISHED, JOB_OR_ADMIN),
    "validate": (frozenset({S.FINISHED, S.VALIDATED}), S.VALIDATING, JOB_OR_ADMIN),
    "validated": (frozenset({S.VALIDATING, S.VALIDATED}), S.VALIDATED, JOB_OR_ADMIN),
    "reject": (frozenset({S.VALIDATING}), S.REJECTED, JOB_OR_ADMIN),
    "finalize": (frozenset({S.VALIDATED}), S.FINALIZED, JOB_OR_ADMIN),
    "retire": (
        frozenset({S.FAILED, S.FINISHED, S.VALIDATING, S.VALIDATED, S.REJECTED, S.FINALIZED}),
        S.RETIRED,
        JOB_OR_ADMIN,
    ),
    "cancel": (frozenset({S.CREATED}), S.CANCELED, JOB_OR_ADMIN),
    "reset": (frozenset(State), S.RESET, ADMIN),
    "ready": (frozenset({S.RESET}), S.CREATED, ADMIN),
    "delete": (frozenset(State), None, ADMIN),
}
PAIRS = list(itertools.product(SPEC_TABLE, ALL_STATES))


def test_table_has_the_sixteen_events_of_the_spec_in_its_order() -> None:
    # given / when the table's events
    names = list(TRANSITIONS)
    # then they are the SPEC's, in the SPEC's order, and EVENT_NAMES follows the table
    assert names == list(SPEC_TABLE)
    assert len(names) == 16
    assert tuple(names) == EVENT_NAMES
    assert len(ALL_STATES) == 12


def test_table_is_immutable() -> None:
    # given the table
    # when someone tries to change it
    # then it refuses
    with pytest.raises(TypeError):
        TRANSITIONS["run"] = TRANSITIONS["fail"]  # type: ignore[index]


@pytest.mark.parametrize(("event", "state"), PAIRS, ids=[f"{e}-from-{s}" for e, s in PAIRS])
def test_next_state_every_event_from_every_state(event: str, state: State) -> None:
    # given the SPEC's row of the event
    sources, target, _ = SPEC_TABLE[event]
    if state in sources:
        # when the event is applied where it is allowed
        result = next_state(state, event)
        # then the job moves to the row's target, or stays where it is
        assert result == (target if target is not None else state)
        assert is_allowed(state, event)
    else:
        # when the event is applied anywhere else
        # then it is refused with the one clear message, naming the event and the state
        with pytest.raises(EventNotAllowed) as raised:
            next_state(state, event)
        assert str(raised.value) == f"cannot {event} a job in {state.value}"
        assert raised.value.details == {"state": state, "event": event}
        assert not is_allowed(state, event)


def test_next_state_finish_from_created_is_not_allowed() -> None:
    # given a job that never ran
    # when it is finished
    # then the message is the one a user reads
    with pytest.raises(EventNotAllowed, match=r"^cannot finish a job in CREATED$"):
        next_state(State.CREATED, "finish")


def test_next_state_accepts_the_state_as_a_plain_string() -> None:
    # given a state as read back from storage (a str, not a State)
    # when an event is applied
    # then it behaves as the enum does
    assert next_state("RUNNING", "finish") == State.FINISHED  # type: ignore[arg-type]


@pytest.mark.parametrize("event", ["", "Run", "RUN", "erased", "start", "finished"])
def test_next_state_unknown_event_raises_unknown_event(event: str) -> None:
    # given a name that is not in the table (case matters; the internal `erased` is not public)
    # when it is applied
    # then it is an unknown event, not a refused one
    with pytest.raises(UnknownEvent, match="unknown event"):
        next_state(State.CREATED, event)
    with pytest.raises(UnknownEvent):
        transition(event)
    assert not is_allowed(State.CREATED, event)


def test_every_state_is_reachable_from_created() -> None:
    # given the table
    # when walking it from CREATED
    reached = reachable_from(State.CREATED)
    # then every state is reached
    assert reached == set(State)


def test_reset_ready_loop_returns_to_created_from_every_state() -> None:
    # given a job in any state
    for state in State:
        # when an admin resets it and marks it ready
        reset = next_state(state, "reset")
        ready = next_state(reset, "ready")
        # then it is CREATED again
        assert reset == State.RESET
        assert ready == State.CREATED


def test_reachable_from_terminal_states_only_through_reset() -> None:
    # given a canceled or retired job
    for state in (State.CANCELED, State.RETIRED):
        # when walking the table from it
        reached = reachable_from(state)
        # then only the reset loop leads anywhere, and it leads everywhere
        assert reached == set(State)
        assert allowed_events(state) == ["reset", "delete"]


def test_happy_path_walks_to_finalized() -> None:
    # given a new job
    state = State.CREATED
    # when it runs, finishes, is indexed and validated, then finalized
    for event in (
        "run",
        "update",
        "resource",
        "finish",
        "index",
        "indexed",
        "validate",
        "validated",
        "finalize",
    ):
        state = next_state(state, event)
    # then it is final
    assert state == State.FINALIZED


@pytest.mark.parametrize("event", list(SPEC_TABLE))
def test_actors_column_matches_the_spec(event: str) -> None:
    # given the SPEC's "who" column
    _, _, who = SPEC_TABLE[event]
    # when asking the table
    # then exactly those actors may send the event
    assert TRANSITIONS[event].actors == who
    for actor in Actor:
        assert may_send(actor, event) is (actor in who)


def test_only_an_admin_may_reset_ready_or_delete() -> None:
    # given the admin-only events
    for event in ("reset", "ready", "delete"):
        # then neither a job token nor a callback token may send them
        assert not may_send(Actor.JOB, event)
        assert not may_send(Actor.CALLBACK, event)
        assert may_send(Actor.ADMIN, event)


def test_callback_token_may_not_send_the_indexing_to_cancel_events() -> None:
    for event in ("index", "indexed", "validate", "validated", "reject", "finalize", "retire", "cancel"):
        assert not may_send(Actor.CALLBACK, event)
        assert may_send(Actor.JOB, event)


def test_callback_events_are_exactly_the_compute_platform_events() -> None:
    # given / when the events a callback token may send
    events = CALLBACK_EVENTS
    # then they are those of SPEC section 4
    assert events == {"run", "update", "resource", "finish", "fail"}


def test_may_send_unknown_event_is_false_for_everyone() -> None:
    assert not any(may_send(actor, "erased") for actor in Actor)


@pytest.mark.parametrize(
    ("state", "actor", "expected"),
    [
        (State.CREATED, Actor.ADMIN, ["run", "update", "resource", "fail", "cancel", "reset", "delete"]),
        (State.CREATED, Actor.JOB, ["run", "update", "resource", "fail", "cancel"]),
        (State.CREATED, Actor.CALLBACK, ["run", "update", "resource", "fail"]),
        (State.FINISHED, Actor.CALLBACK, ["finish"]),
        (State.FINISHED, Actor.JOB, ["finish", "index", "indexed", "validate", "retire"]),
        (State.RESET, Actor.ADMIN, ["reset", "ready", "delete"]),
        (State.RESET, Actor.JOB, []),
    ],
)
def test_allowed_events_by_state_and_actor_in_table_order(
    state: State, actor: Actor, expected: list[str]
) -> None:
    assert allowed_events(state, actor) == expected


def test_allowed_events_defaults_to_the_admin_view() -> None:
    assert allowed_events(State.VALIDATING) == allowed_events(State.VALIDATING, Actor.ADMIN)
    assert allowed_events(State.VALIDATING) == [
        "update",
        "fail",
        "validated",
        "reject",
        "retire",
        "reset",
        "delete",
    ]


# SPEC section 5: status word -> event.
STATUS_TABLE = [
    ("RUNNING", "run"),
    ("FINISHED", "finish"),
    ("FAILED", "fail"),
    ("STOPPED", "fail"),
    ("KILLED", "fail"),
    ("ARCHIVING_FAILED", "fail"),
    ("DELETED", "fail"),
    ("PENDING", "resource"),
    ("QUEUED", "resource"),
    ("ARCHIVING", "resource"),
    ("STAGING_INPUTS", "resource"),
    ("running", "run"),
    ("Finished", "finish"),
    ("killed", "fail"),
    ("pending", "resource"),
    ("  RUNNING\n", "run"),
    ("SOMETHING_NEW", "update"),
    ("", "update"),
    ("RUN", "update"),
]


@pytest.mark.parametrize(("status", "event"), STATUS_TABLE)
def test_event_for_status_maps_like_the_spec(status: str, event: str) -> None:
    # given a compute platform's status word
    # when it is mapped
    # then it gives the SPEC's event, whatever its case
    assert event_for_status(status) == event


def test_event_for_status_only_ever_gives_callback_events() -> None:
    # given every status word in the table
    # then a callback token can always send what it maps to
    assert {event_for_status(status) for status, _ in STATUS_TABLE} <= CALLBACK_EVENTS
