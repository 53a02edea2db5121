"""Request, event and queue-message models: what is valid at both edges, and errors that carry no input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobcore.errors import InvalidRequest, PayloadTooLarge, UnknownEvent
from jobcore.models import (
    MAX_DATA_BYTES,
    DeleteData,
    JobSpec,
    QueueMessage,
    ResetData,
    data_size,
    decode_json,
    describe,
    event_data,
    parse_event,
)
from jobcore.states import EVENT_NAMES
from jobcore.tokens import new_callback_token, new_job_token

JOB_UUID = "8b2e6f5c-3b0a-5d7e-9c41-6a1f0d2e7b93"


# -- JobSpec --------------------------------------------------------------------------------------------


def test_job_spec_minimal() -> None:
    # when only the required fields are given
    spec = JobSpec.model_validate({"pipeline_uuid": "pipe-1", "data": {"x": 1}})
    # then the optional ones have their empty defaults
    assert spec.pipeline_uuid == "pipe-1"
    assert spec.data == {"x": 1}
    assert spec.child_of == []
    assert spec.tags == []
    assert (spec.name, spec.session, spec.agent, spec.task, spec.archive_path) == (None,) * 5


def test_job_spec_forbids_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        JobSpec.model_validate({"pipeline_uuid": "pipe-1", "data": {}, "state": "FINISHED"})


@pytest.mark.parametrize("missing", ["pipeline_uuid", "data"])
def test_job_spec_requires_pipeline_and_data(missing: str) -> None:
    body = {"pipeline_uuid": "pipe-1", "data": {}}
    del body[missing]
    with pytest.raises(ValidationError):
        JobSpec.model_validate(body)


def test_job_spec_dedupes_and_sorts_child_of() -> None:
    spec = JobSpec.model_validate(
        {"pipeline_uuid": "p", "data": {}, "child_of": ["m-3", "m-1", "m-3", "m-2"]}
    )
    assert spec.child_of == ["m-1", "m-2", "m-3"]


def test_job_spec_dedupes_tags_keeping_first_order() -> None:
    spec = JobSpec.model_validate({"pipeline_uuid": "p", "data": {}, "tags": ["b", "a", "b", "c", "a"]})
    assert spec.tags == ["b", "a", "c"]


@pytest.mark.parametrize(
    "tag",
    ["", "has space", "semi;colon", "x" * 65, "quote'", "é", "new\nline", 3],
)
def test_job_spec_rejects_bad_tags(tag: object) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"pipeline_uuid": "p", "data": {}, "tags": [tag]})


def test_job_spec_accepts_tags_of_the_documented_alphabet() -> None:
    spec = JobSpec.model_validate({"pipeline_uuid": "p", "data": {}, "tags": ["a-b_c.d:e/f=g+h@i", "x" * 64]})
    assert spec.tags == ["a-b_c.d:e/f=g+h@i", "x" * 64]


def test_job_spec_rejects_too_many_tags() -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"pipeline_uuid": "p", "data": {}, "tags": [f"t{i}" for i in range(33)]})


@pytest.mark.parametrize("pipeline", ["", "has space", "a/b", "x" * 129])
def test_job_spec_rejects_bad_pipeline_ids(pipeline: str) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"pipeline_uuid": pipeline, "data": {}})


@pytest.mark.parametrize("data", [[1, 2], "text", 3, None])
def test_job_spec_data_must_be_an_object(data: object) -> None:
    with pytest.raises(ValidationError):
        JobSpec.model_validate({"pipeline_uuid": "p", "data": data})


def test_job_spec_is_frozen() -> None:
    spec = JobSpec.model_validate({"pipeline_uuid": "p", "data": {}})
    with pytest.raises(ValidationError):
        spec.pipeline_uuid = "q"  # type: ignore[misc]


# -- parse_event ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_parse_event_every_event_name(name: str) -> None:
    # given a body naming the event, with and without data
    # when parsed
    bare = parse_event({"name": name})
    with_data = parse_event({"name": name, "data": {"note": "hello"}})
    # then the event has that name and keeps its data
    assert bare.name == name
    assert with_data.name == name
    assert event_data(with_data)["note"] == "hello"


@pytest.mark.parametrize("name", [n for n in EVENT_NAMES if n not in ("reset", "delete")])
def test_parse_event_plain_events_default_to_empty_data(name: str) -> None:
    assert event_data(parse_event({"name": name})) == {}
    assert event_data(parse_event({"name": name, "data": None})) == {}


def test_parse_event_reset_keep_archive_flag() -> None:
    # given reset with and without keep_archive
    plain = parse_event({"name": "reset"})
    keep = parse_event({"name": "reset", "data": {"keep_archive": True, "reason": "rerun"}})
    # then the flag defaults to False and is read when given; other data is kept
    assert isinstance(plain.data, ResetData)
    assert plain.data.keep_archive is False
    assert keep.data.keep_archive is True
    assert event_data(keep) == {"keep_archive": True, "reason": "rerun"}


def test_parse_event_delete_purge_archive_flag() -> None:
    plain = parse_event({"name": "delete"})
    purge = parse_event({"name": "delete", "data": {"purge_archive": True}})
    assert isinstance(plain.data, DeleteData)
    assert plain.data.purge_archive is False
    assert purge.data.purge_archive is True
    assert event_data(plain) == {"purge_archive": False}


@pytest.mark.parametrize("name", ["reset", "delete"])
def test_parse_event_admin_flag_of_the_wrong_type_is_refused(name: str) -> None:
    flag = "keep_archive" if name == "reset" else "purge_archive"
    with pytest.raises(InvalidRequest):
        parse_event({"name": name, "data": {flag: {"nested": True}}})


@pytest.mark.parametrize("name", ["nope", "RUN", "erased", "", None, 3, ["run"]])
def test_parse_event_unknown_event_raises_unknown_event(name: object) -> None:
    with pytest.raises(UnknownEvent, match="unknown event"):
        parse_event({"name": name})


def test_parse_event_missing_name_is_unknown_event() -> None:
    with pytest.raises(UnknownEvent):
        parse_event({"data": {}})


@pytest.mark.parametrize("name", ["run", "reset", "delete"])
def test_parse_event_data_over_64_kib_raises_payload_too_large(name: str) -> None:
    # given data one byte over the limit once serialized canonically
    filler = "x" * (MAX_DATA_BYTES - data_size({"blob": ""}) + 1)
    data = {"blob": filler}
    assert data_size(data) == MAX_DATA_BYTES + 1
    # when parsed
    # then it is too large (and a caller error)
    with pytest.raises(PayloadTooLarge) as raised:
        parse_event({"name": name, "data": data})
    assert isinstance(raised.value, InvalidRequest)


def test_parse_event_data_of_exactly_64_kib_is_accepted() -> None:
    data = {"blob": "x" * (MAX_DATA_BYTES - data_size({"blob": ""}))}
    assert data_size(data) == MAX_DATA_BYTES
    assert parse_event({"name": "update", "data": data}).name == "update"


def test_data_size_counts_utf8_bytes() -> None:
    assert data_size({"a": "é"}) == len('{"a":"é"}'.encode())


@pytest.mark.parametrize("data", [[1, 2], "text", 3, True])
@pytest.mark.parametrize("name", ["run", "finish", "reset", "delete"])
def test_parse_event_data_not_an_object_raises_invalid_request(name: str, data: object) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_event({"name": name, "data": data})
    assert not isinstance(raised.value, UnknownEvent | PayloadTooLarge)
    assert f"invalid {name} event" in raised.value.message


@pytest.mark.parametrize("body", [None, "run", ["run"], 3])
def test_parse_event_body_not_an_object_raises_invalid_request(body: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_event(body)


def test_parse_event_extra_fields_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        parse_event({"name": "run", "data": {}, "state": "FINISHED"})


# -- QueueMessage ---------------------------------------------------------------------------------------


def test_queue_message_minimal_and_uuid_lowercased() -> None:
    # given a message with an uppercase uuid
    message = QueueMessage.model_validate({"uuid": JOB_UUID.upper(), "name": "run", "token": "pjt_x"})
    # then the uuid is lowercased and the optional fields are empty
    assert message.uuid == JOB_UUID
    assert (message.data, message.event_id, message.expect) == (None, None, None)


def test_queue_message_all_fields() -> None:
    message = QueueMessage.model_validate(
        {
            "uuid": JOB_UUID,
            "name": "finish",
            "token": "pjt_x",
            "data": {"a": 1},
            "event_id": "e-1",
            "expect": ["RUNNING", 2],
        }
    )
    assert message.data == {"a": 1}
    assert message.event_id == "e-1"
    assert message.expect == ("RUNNING", 2)


@pytest.mark.parametrize("missing", ["uuid", "name", "token"])
def test_queue_message_requires_uuid_name_and_token(missing: str) -> None:
    body = {"uuid": JOB_UUID, "name": "run", "token": "pjt_x"}
    del body[missing]
    with pytest.raises(ValidationError) as raised:
        QueueMessage.model_validate(body)
    assert missing in describe(raised.value)


def test_queue_message_rejects_empty_token() -> None:
    with pytest.raises(ValidationError):
        QueueMessage.model_validate({"uuid": JOB_UUID, "name": "run", "token": ""})


def test_queue_message_rejects_extra_fields() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        QueueMessage.model_validate({"uuid": JOB_UUID, "name": "run", "token": "pjt_x", "state": "FINISHED"})


@pytest.mark.parametrize("uuid", ["not-a-uuid", "", "8b2e6f5c", 42])
def test_queue_message_rejects_a_uuid_that_is_not_one(uuid: object) -> None:
    with pytest.raises(ValidationError):
        QueueMessage.model_validate({"uuid": uuid, "name": "run", "token": "pjt_x"})


# -- describe: never an input value ---------------------------------------------------------------------


@pytest.mark.parametrize("make_token", [new_job_token, new_callback_token, lambda: "f" * 64])
def test_describe_never_repeats_input_values(make_token) -> None:
    # given messages where a token-looking value lands in the wrong places
    secret = make_token()
    bodies = [
        {"uuid": secret, "name": "run", "token": "pjt_x"},  # a token where the uuid goes
        {"uuid": JOB_UUID, "name": "run", "token": secret * 20},  # a token too long
        {"uuid": JOB_UUID, "name": "run", "token": [secret]},  # a token of the wrong type
        {"uuid": JOB_UUID, "name": "run", "token": "pjt_x", "event_id": secret + " !"},  # bad id
        {"uuid": JOB_UUID, "name": "run", "token": "pjt_x", "expect": [secret, secret]},
        {"uuid": JOB_UUID, "name": "run", "token": "pjt_x", "data": secret},
        {"uuid": JOB_UUID, "name": secret, "token": "pjt_x", "data": [secret]},
    ]
    for body in bodies:
        # when validation fails
        with pytest.raises(ValidationError) as raised:
            QueueMessage.model_validate(body)
        # then the description says what is wrong but never repeats the value
        text = describe(raised.value)
        assert text
        assert secret not in text
        assert secret[4:20] not in text


def test_describe_never_repeats_input_values_of_job_specs_and_events() -> None:
    # given a token-looking value in a tag, a pipeline id and an event's data
    secret = new_job_token()
    with pytest.raises(ValidationError) as raised:
        JobSpec.model_validate({"pipeline_uuid": secret + "/", "data": secret, "tags": [secret + " x"]})
    # then neither the validation description nor the event error repeat it
    assert secret not in describe(raised.value)
    with pytest.raises(InvalidRequest) as event_error:
        parse_event({"name": "run", "data": [secret]})
    assert secret not in event_error.value.message
    assert secret not in str(event_error.value)


def test_describe_names_the_fields_and_caps_the_list() -> None:
    # given a body wrong in many fields
    with pytest.raises(ValidationError) as raised:
        JobSpec.model_validate({f"extra{i}": 1 for i in range(10)})
    text = describe(raised.value)
    # then at most five problems are listed, each naming its field
    assert len(text.split("; ")) == 5
    assert "pipeline_uuid: Field required" in text


# -- decode_json ----------------------------------------------------------------------------------------


def test_decode_json_parses_and_refuses() -> None:
    assert decode_json('{"a": 1}') == {"a": 1}
    assert decode_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        decode_json("{nope")
    with pytest.raises(PayloadTooLarge):
        decode_json(" " * (256 * 1024 + 1))
