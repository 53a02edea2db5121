"""The deterministic job uuid (SPEC section 2): same inputs, same job."""

from __future__ import annotations

import json
import uuid

import pytest

from jobcore.ids import JOB_NAMESPACE, canonical_json, is_uuid, job_uuid, new_event_id


def test_job_uuid_pins_a_known_value() -> None:
    # given the canonical document of pipeline "p" with data {"a": 1} and no inputs, written out by hand
    expected = str(uuid.uuid5(JOB_NAMESPACE, '{"child_of":[],"data":{"a":1},"pipeline_uuid":"p"}'))
    # when the job uuid is computed
    result = job_uuid("p", {"a": 1})
    # then it is that document's UUIDv5 (a change here would give every existing job a new identity)
    assert result == expected


def test_job_namespace_is_frozen() -> None:
    assert str(JOB_NAMESPACE) == "8b2e6f5c-3b0a-5d7e-9c41-6a1f0d2e7b93"


def test_job_uuid_same_inputs_same_uuid() -> None:
    # given the same inputs twice
    first = job_uuid("pipe-1", {"x": [1, 2], "y": {"z": "é"}}, ["m-1", "m-2"])
    # when computed again
    second = job_uuid("pipe-1", {"x": [1, 2], "y": {"z": "é"}}, ["m-1", "m-2"])
    # then the uuid is the same
    assert first == second


def test_job_uuid_child_of_order_and_duplicates_do_not_matter() -> None:
    base = job_uuid("pipe-1", {"x": 1}, ["a", "b", "c"])
    assert job_uuid("pipe-1", {"x": 1}, ["c", "a", "b"]) == base
    assert job_uuid("pipe-1", {"x": 1}, ["b", "a", "c", "a", "b"]) == base
    assert job_uuid("pipe-1", {"x": 1}, ("c", "b", "a")) == base


def test_job_uuid_no_child_of_equals_empty_child_of() -> None:
    assert (
        job_uuid("pipe-1", {"x": 1}) == job_uuid("pipe-1", {"x": 1}, []) == job_uuid("pipe-1", {"x": 1}, None)
    )


def test_job_uuid_data_key_order_does_not_matter() -> None:
    # given the same data with keys in another order, at every depth
    one = {"a": 1, "b": {"c": 2, "d": 3}}
    other = {"b": {"d": 3, "c": 2}, "a": 1}
    # then the uuid is the same
    assert job_uuid("pipe-1", one) == job_uuid("pipe-1", other)


@pytest.mark.parametrize(
    ("pipeline", "data", "child_of"),
    [
        ("pipe-2", {"x": 1}, ["a"]),  # another pipeline
        ("pipe-1", {"x": 2}, ["a"]),  # other data
        ("pipe-1", {"x": "1"}, ["a"]),  # same digits, another type
        ("pipe-1", {"x": 1, "y": None}, ["a"]),  # one more key
        ("pipe-1", {"x": [1]}, ["a"]),
        ("pipe-1", {"x": 1}, ["b"]),  # other inputs
        ("pipe-1", {"x": 1}, ["a", "b"]),
        ("pipe-1", {"x": 1}, []),
    ],
)
def test_job_uuid_different_inputs_give_a_different_uuid(pipeline: str, data: dict, child_of: list) -> None:
    assert job_uuid(pipeline, data, child_of) != job_uuid("pipe-1", {"x": 1}, ["a"])


def test_job_uuid_is_a_version_5_uuid() -> None:
    # when a job uuid is computed
    result = uuid.UUID(job_uuid("pipe-1", {"x": 1}))
    # then it is an RFC 4122 version-5 uuid, in the canonical lowercase text form
    assert result.version == 5
    assert result.variant == uuid.RFC_4122
    assert job_uuid("pipe-1", {"x": 1}) == str(result)


def test_canonical_json_sorts_keys_and_has_no_spaces() -> None:
    # given nested data with unsorted keys
    value = {"b": [1, {"z": 1, "y": 2}], "a": "x y", "c": {"é": True}}
    # when serialized canonically
    text = canonical_json(value)
    # then keys are sorted at every depth, no separator spaces, UTF-8 kept as is
    assert text == '{"a":"x y","b":[1,{"y":2,"z":1}],"c":{"é":true}}'
    assert json.loads(text) == value


def test_canonical_json_same_value_same_text() -> None:
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


def test_new_event_id_is_a_fresh_uuid() -> None:
    ids = {new_event_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(is_uuid(i) for i in ids)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8b2e6f5c-3b0a-5d7e-9c41-6a1f0d2e7b93", True),
        ("8B2E6F5C-3B0A-5D7E-9C41-6A1F0D2E7B93", True),
        ("not-a-uuid", False),
        ("", False),
        ("8b2e6f5c-3b0a-5d7e-9c41", False),
    ],
)
def test_is_uuid(text: str, expected: bool) -> None:
    assert is_uuid(text) is expected
