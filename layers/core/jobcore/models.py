"""Request, event and message models (pydantic, as Powertools' parser uses them).

The same models validate the HTTP API's bodies and the worker's queue messages, so the two edges
cannot disagree about what is valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from jobcore.errors import InvalidRequest, PayloadTooLarge, UnknownEvent
from jobcore.ids import canonical_json, is_uuid
from jobcore.states import EVENT_NAMES

MAX_DATA_BYTES: Final = 64 * 1024
_PLAIN_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
MAX_BODY_BYTES: Final = 256 * 1024  # SQS's own limit for a message

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/=+@-]+$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


def data_size(data: Any) -> int:
    return len(canonical_json(data).encode("utf-8"))


# JSON nesting allowed in data: DynamoDB's own limit for maps, and far below what would exhaust the
# recursion of the JSON codecs on the way out (a history nobody could read).
MAX_DATA_DEPTH: Final = 32


def too_deep(value: Any, limit: int = MAX_DATA_DEPTH) -> bool:
    """Whether JSON-like `value` nests objects or arrays more than `limit` levels (without recursing)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_data(data: dict[str, Any]) -> dict[str, Any]:
    """`data` if it may be stored: nested at most MAX_DATA_DEPTH levels and at most MAX_DATA_BYTES
    serialized. Raises InvalidRequest or PayloadTooLarge. Both edges (API and queue) call this."""
    if too_deep(data):
        raise InvalidRequest(f"data is nested more than {MAX_DATA_DEPTH} levels deep")
    size = data_size(data)
    if size > MAX_DATA_BYTES:
        raise PayloadTooLarge(f"data is {size} bytes serialized; the limit is {MAX_DATA_BYTES}")
    return data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobSpec(_Strict):
    """What a caller gives to create a job (POST /jobs)."""

    pipeline_uuid: Identifier
    data: dict[str, Any]
    child_of: list[Identifier] = Field(default_factory=list, max_length=1000)
    name: ShortText | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    session: ShortText | None = None
    agent: ShortText | None = None
    task: ShortText | None = None
    archive_path: Annotated[str, StringConstraints(max_length=1024)] | None = None

    @field_validator("child_of")
    @classmethod
    def _dedupe_children(cls, value: list[str]) -> list[str]:
        return sorted(set(value))

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


# -- event bodies: one discriminated union on `name` ------------------------------------------------


class ResetData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    keep_archive: bool = False


class DeleteData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    purge_archive: bool = False


class _EventBody(_Strict):
    data: dict[str, Any] = Field(default_factory=dict)


class RunEvent(_EventBody):
    name: Literal["run"]


class UpdateEvent(_EventBody):
    name: Literal["update"]


class ResourceEvent(_EventBody):
    name: Literal["resource"]


class FailEvent(_EventBody):
    name: Literal["fail"]


class FinishEvent(_EventBody):
    name: Literal["finish"]


class IndexEvent(_EventBody):
    name: Literal["index"]


class IndexedEvent(_EventBody):
    name: Literal["indexed"]


class ValidateEvent(_EventBody):
    name: Literal["validate"]


class ValidatedEvent(_EventBody):
    name: Literal["validated"]


class RejectEvent(_EventBody):
    name: Literal["reject"]


class FinalizeEvent(_EventBody):
    name: Literal["finalize"]


class RetireEvent(_EventBody):
    name: Literal["retire"]


class CancelEvent(_EventBody):
    name: Literal["cancel"]


class ReadyEvent(_EventBody):
    name: Literal["ready"]


class ResetEvent(_Strict):
    name: Literal["reset"]
    data: ResetData = Field(default_factory=ResetData)


class DeleteEvent(_Strict):
    name: Literal["delete"]
    data: DeleteData = Field(default_factory=DeleteData)


LifecycleEvent = Annotated[
    RunEvent
    | UpdateEvent
    | ResourceEvent
    | FailEvent
    | FinishEvent
    | IndexEvent
    | IndexedEvent
    | ValidateEvent
    | ValidatedEvent
    | RejectEvent
    | FinalizeEvent
    | RetireEvent
    | CancelEvent
    | ResetEvent
    | ReadyEvent
    | DeleteEvent,
    Field(discriminator="name"),
]
_EVENT_ADAPTER: Final[TypeAdapter[Any]] = TypeAdapter(LifecycleEvent)


def event_data(event: Any) -> dict[str, Any]:
    """The event's data as a plain dict (reset/delete data models included)."""
    data = event.data
    return data.model_dump() if isinstance(data, BaseModel) else dict(data)


def parse_event(body: Any) -> Any:
    """A LifecycleEvent from `{"name", "data"?}`. Raises UnknownEvent, PayloadTooLarge or InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest("the event must be a JSON object with a 'name' and an optional 'data' object")
    name = body.get("name")
    if not isinstance(name, str) or name not in EVENT_NAMES:
        raise UnknownEvent(f"unknown event {name!r}; known events: {', '.join(EVENT_NAMES)}")
    if "data" in body and body["data"] is None:
        body = {k: v for k, v in body.items() if k != "data"}
    try:
        event = _EVENT_ADAPTER.validate_python(body)
    except ValidationError as error:
        raise InvalidRequest(f"invalid {name} event: {describe(error)}") from None
    check_data(event_data(event))
    return event


# -- queue messages (SPEC section 6) -----------------------------------------------------------------


class QueueMessage(BaseModel):
    """The body of a message on the events queue.

    `expect` is an optional hint added by the HTTP API: the job's state and generation when the event
    was accepted. The worker pins its write to it (saving a read); the write's condition still decides.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    uuid: str
    name: str
    token: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    data: dict[str, Any] | None = None
    event_id: Identifier | None = None
    expect: tuple[str, int] | None = None

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if not is_uuid(value):
            raise ValueError("uuid must be a UUID")
        return value.lower()


class EraseMessage(BaseModel):
    """Internal continuation of an archive erasure (after reset, or delete with purge_archive).

    Signed with the admin key so that no producer can forge one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    internal: Literal["erase"]
    uuid: str
    purpose: Literal["reset", "purge"]
    event_id: str
    generation: int
    step: int
    signature: str


def decode_json(text: str | bytes, what: str = "body") -> Any:
    if len(text) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the {what} is {len(text)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        raise InvalidRequest(f"the {what} is not valid JSON") from None


def describe(error: ValidationError) -> str:
    """A short, token-free summary of a validation error: which fields, what is wrong."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        # A field name is caller input too: name only plain identifiers (a token sent as a key stays out).
        where = (
            ".".join(
                str(p) if isinstance(p, int) or _PLAIN_NAME.fullmatch(str(p)) else "<field>"
                for p in item.get("loc", ())
            )
            or "body"
        )
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)
