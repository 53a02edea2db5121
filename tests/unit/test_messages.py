"""The worker's reading of queue messages (jobcore.messages) agrees with the models (jobcore.models):
the same messages and events accepted, converted alike, refused with the same words; and the worker
loads no pydantic for a well-formed message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from jobcore.errors import InvalidRequest, PayloadTooLarge, UnknownEvent
from jobcore.messages import Event, MalformedMessage, Message, read_event, read_message
from jobcore.models import QueueMessage, describe, event_data, parse_event
from jobcore.payloads import MAX_DATA_BYTES
from jobcore.states import EVENT_NAMES

ROOT = Path(__file__).resolve().parents[2]
JOB_UUID = "8b2e6f5c-3b0a-5d7e-9c41-6a1f0d2e7b93"
DEEP: Any = 1
for _ in range(40):
    DEEP = [DEEP]


def models_message(body: Any) -> Message | str:
    """What the models make of a body: the message, or the description of the refusal."""
    try:
        model = QueueMessage.model_validate(body)
    except ValidationError as error:
        return describe(error)
    return Message(model.uuid, model.name, model.token, model.data, model.event_id, model.expect)


def fast_message(body: Any) -> Message | str:
    try:
        return read_message(body)
    except MalformedMessage as error:
        return str(error)


def models_event(name: Any, data: Any) -> Event | tuple[type[Exception], str]:
    try:
        event = parse_event({"name": name, "data": data})
    except (InvalidRequest, UnknownEvent, PayloadTooLarge) as error:
        return type(error), error.message
    return Event(event.name, event_data(event))


def fast_event(name: Any, data: Any) -> Event | tuple[type[Exception], str]:
    try:
        return read_event(name, data)
    except (InvalidRequest, UnknownEvent, PayloadTooLarge) as error:
        return type(error), error.message


# -- well-formed messages and the odd ones ---------------------------------------------------------------

WELL_FORMED = {
    "uuid": JOB_UUID.upper(),
    "name": "update",
    "token": "pjt_" + "a" * 43,
    "data": {"progress": 50},
    "event_id": "3c6d2e1f-8a9b-4c0d-9e1f-2a3b4c5d6e7f",
    "expect": ["RUNNING", 2],
}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"uuid": JOB_UUID},
        {"expect": ("RUNNING", 2)},
        {"expect": ["RUNNING", True]},  # converted by the models
        {"expect": ["RUNNING", 1.0]},
        {"expect": ["RUNNING", "3"]},
        {"expect": ["RUNNING"]},
        {"expect": "RUNNING"},
        {"token": "pjt_\ud800"},  # a lone surrogate: the models refuse it
        {"token": ""},
        {"token": "x" * 513},
        {"token": "x" * 512},
        {"token": "é" * 10},
        {"event_id": "bad id"},
        {"event_id": "e\n"},
        {"event_id": "x" * 129},
        {"event_id": ""},
        {"uuid": "not-a-uuid"},
        {"uuid": 7},
        {"name": 3},
        {"name": "nope"},
        {"data": None},
        {"data": [1]},
        {"data": {1: "x"}},
        {"extra": "field"},
    ],
)
def test_a_message_reads_as_the_models_read_it(change: dict[str, Any]) -> None:
    body = {**WELL_FORMED, **change}
    assert fast_message(body) == models_message(body)


@pytest.mark.parametrize("missing", ["uuid", "name", "token", "data", "event_id", "expect"])
def test_a_message_without_a_field_reads_as_the_models_read_it(missing: str) -> None:
    body = {k: v for k, v in WELL_FORMED.items() if k != missing}
    assert fast_message(body) == models_message(body)


@pytest.mark.parametrize("body", [None, [], "text", 3, {}])
def test_a_body_that_is_no_message_is_refused_as_the_models_refuse_it(body: Any) -> None:
    assert isinstance(fast_message(body), str)
    assert fast_message(body) == models_message(body)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        *((name, None) for name in EVENT_NAMES),
        *((name, {"note": "x"}) for name in EVENT_NAMES),
        ("reset", {"keep_archive": True, "reason": "rerun"}),
        ("reset", {"reason": "rerun", "keep_archive": False}),
        ("reset", {"keep_archive": "true"}),  # converted by the models
        ("reset", {"keep_archive": 1}),
        ("reset", {"keep_archive": {"nested": True}}),
        ("delete", {"purge_archive": True}),
        ("delete", {"purge_archive": "no"}),
        ("run", [1, 2]),
        ("run", "text"),
        ("finish", 3),
        ("reset", []),
        ("nope", None),
        (None, None),
        (3, {}),
        ("update", {"blob": "x" * MAX_DATA_BYTES}),
        ("update", {"deep": DEEP}),
    ],
)
def test_an_event_reads_as_the_models_read_it(name: Any, data: Any) -> None:
    assert fast_event(name, data) == models_event(name, data)


# -- any message at all ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
field_values = {
    "uuid": st.sampled_from([JOB_UUID, JOB_UUID.upper(), "x"]) | json_values,
    "name": st.sampled_from([*EVENT_NAMES, "nope"]) | json_values,
    "token": st.sampled_from(["pjt_x", "", "x" * 600]) | st.text(max_size=10) | json_values,
    "data": st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3) | json_values,
    "event_id": st.sampled_from(["e-1", "bad id", ""]) | st.text(max_size=10) | json_values,
    "expect": st.none()
    | st.tuples(st.sampled_from(["RUNNING", "x"]) | json_values, st.integers() | json_values).map(list)
    | json_values,
    "extra": json_values,
}
messages = st.fixed_dictionaries(
    {},
    optional={name: values for name, values in field_values.items()},
)


@settings(max_examples=400, deadline=None)
@given(messages)
def test_any_message_reads_as_the_models_read_it(body: dict[str, Any]) -> None:
    assert fast_message(body) == models_message(body)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([*EVENT_NAMES, "nope"]) | json_values, field_values["data"])
def test_any_event_reads_as_the_models_read_it(name: Any, data: Any) -> None:
    assert fast_event(name, data) == models_event(name, data)


# -- the worker's cold start ------------------------------------------------------------------------------


def test_the_worker_loads_no_pydantic_and_no_batch_utility_for_a_well_formed_message() -> None:
    # given a fresh interpreter with the worker's code, as a Lambda container has it
    message = {"uuid": JOB_UUID, "name": "run", "token": "pjt_x", "data": {}}
    code = (
        "import sys, worker_handler\n"
        "from jobcore.messages import read_event, read_message\n"
        f"m = read_message({message!r})\n"
        "read_event(m.name, m.data)\n"
        "print(sorted(n for n in ('pydantic', 'asyncio', 'aws_lambda_powertools.utilities.batch')"
        " if n in sys.modules))"
    )
    env = {"PYTHONPATH": f"{ROOT / 'layers/core'}:{ROOT / 'functions/worker'}", "PATH": "/usr/bin:/bin"}
    # when the handler module is imported and a message read
    output = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    # then none of them was loaded (each costs a cold start tens of milliseconds)
    assert output.stdout.strip() == "[]"
