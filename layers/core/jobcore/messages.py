"""Queue messages (SPEC section 6) as the worker reads them: plain Python for a well-formed message,
the pydantic models of jobcore.models for everything else.

Why: loading pydantic and building the models costs a Lambda cold start ~80 ms, more than everything
else the worker loads besides boto3. The messages the worker reads are written by the HTTP API (or by
producers following SPEC section 6) and are almost always well formed. So a message whose every field
already has exactly the type and shape the models would produce is taken as it is; anything else (a
field missing, extra or of another type, a value the models would convert or refuse) goes through the
models, loaded then, so that what is accepted, how it is converted and the words of a refusal stay the
models' own. tests/unit/test_messages.py checks that both paths agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from jobcore.ids import is_uuid
from jobcore.payloads import check_data, event_data
from jobcore.states import check_event_name

_FIELDS: Final = frozenset({"uuid", "name", "token", "data", "event_id", "expect"})
_REQUIRED: Final = frozenset({"uuid", "name", "token"})
_MAX_TOKEN_CHARS: Final = 512
_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # jobcore.models.Identifier
# Events whose data is a model with a flag (jobcore.models.ResetData, DeleteData), not any object.
_FLAGS: Final = {"reset": "keep_archive", "delete": "purge_archive"}


class MalformedMessage(ValueError):
    """The message is not a valid queue message; the text says what is wrong without repeating input."""


@dataclass(frozen=True, slots=True)
class Message:
    """A valid queue message (the fields of jobcore.models.QueueMessage)."""

    uuid: str
    name: str
    token: str
    data: dict[str, Any] | None = None
    event_id: str | None = None
    expect: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A valid lifecycle event: its name and its data as jobcore.payloads.event_data gives it."""

    name: str
    data: dict[str, Any]


def read_message(body: Any) -> Message:
    """The message in a queue message's decoded body. Raises MalformedMessage."""
    message = _well_formed_message(body)
    if message is not None:
        return message
    from pydantic import ValidationError

    from jobcore.models import QueueMessage, describe

    try:
        model = QueueMessage.model_validate(body)
    except ValidationError as error:
        raise MalformedMessage(describe(error)) from None
    return Message(model.uuid, model.name, model.token, model.data, model.event_id, model.expect)


def read_event(name: Any, data: Any) -> Event:
    """The event `{"name": name, "data": data}` (data None: none given), as jobcore.models.parse_event
    reads it. Raises UnknownEvent, PayloadTooLarge or InvalidRequest."""
    check_event_name(name)
    plain = _well_formed_data(name, data)
    if plain is not None:
        return Event(name, check_data(plain))
    from jobcore.models import parse_event

    event = parse_event({"name": name, "data": data})
    return Event(event.name, event_data(event))


def _plain_object(value: Any) -> bool:
    return type(value) is dict and all(type(key) is str for key in value)


def _well_formed_message(body: Any) -> Message | None:
    """The message when every field is exactly as QueueMessage would give it back, else None."""
    if type(body) is not dict or not _REQUIRED <= body.keys() <= _FIELDS:
        return None
    uuid, name, token = body["uuid"], body["name"], body["token"]
    data, event_id, expect = body.get("data"), body.get("event_id"), body.get("expect")
    if type(uuid) is not str or not is_uuid(uuid) or type(name) is not str:
        return None
    # (non-ASCII text: the models refuse what cannot be encoded, such as a lone surrogate)
    if type(token) is not str or not 0 < len(token) <= _MAX_TOKEN_CHARS or not token.isascii():
        return None
    if data is not None and not _plain_object(data):
        return None
    if event_id is not None and (type(event_id) is not str or not _IDENTIFIER.fullmatch(event_id)):
        return None
    if expect is not None:
        if type(expect) not in (list, tuple) or len(expect) != 2:
            return None
        if type(expect[0]) is not str or type(expect[1]) is not int:
            return None
        expect = (expect[0], expect[1])
    return Message(uuid.lower(), name, token, None if data is None else dict(data), event_id, expect)


def _well_formed_data(name: str, data: Any) -> dict[str, Any] | None:
    """The event's data when it is exactly as the event's model would give it back, else None."""
    flag = _FLAGS.get(name)
    if data is None:
        return {} if flag is None else {flag: False}
    if not _plain_object(data):
        return None
    if flag is None:
        return dict(data)
    value = data.get(flag, False)
    if type(value) is not bool:
        return None
    return {flag: value, **{key: item for key, item in data.items() if key != flag}}
