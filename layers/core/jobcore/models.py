"""Request, event and message models (pydantic, as Powertools' parser uses them).

The same models validate the HTTP API's bodies and the worker's queue messages, so the two edges
cannot disagree about what is valid. The limits and data checks both edges share live in
jobcore.payloads and are re-exported here.
"""

from __future__ import annotations

import re
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

from jobcore.errors import InvalidRequest
from jobcore.ids import is_uuid
from jobcore.indexing import INDEX_PATTERNS, check_patterns
from jobcore.payloads import MAX_BODY_BYTES as MAX_BODY_BYTES
from jobcore.payloads import MAX_DATA_BYTES as MAX_DATA_BYTES
from jobcore.payloads import MAX_DATA_DEPTH as MAX_DATA_DEPTH
from jobcore.payloads import check_data as check_data
from jobcore.payloads import data_size as data_size
from jobcore.payloads import decode_json as decode_json
from jobcore.payloads import event_data as event_data
from jobcore.payloads import too_deep as too_deep
from jobcore.records import MAX_DEADLINE_SECONDS
from jobcore.states import check_event_name

_PLAIN_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/=+@-]+$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
# A deadline (SPEC section 3a): whole seconds, at least one, at most a leap year; never a bool, a
# float or a string of digits (strict), so that `true`, `1.5` and `"60"` are refused, not coerced.
DeadlineSeconds = Annotated[int, Field(strict=True, ge=1, le=MAX_DEADLINE_SECONDS)]


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
    # Deadlines (SPEC section 3a). Left out: the pipeline's default applies (Settings.deadlines);
    # null: none, whatever the default.
    heartbeat_seconds: DeadlineSeconds | None = None
    timeout_seconds: DeadlineSeconds | None = None

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
    """`data.index_patterns` (optional) labels the outputs by level (jobcore.indexing)."""

    name: Literal["index"]

    @field_validator("data")
    @classmethod
    def _patterns(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get(INDEX_PATTERNS) is not None:
            check_patterns(value[INDEX_PATTERNS])
        return value


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


def parse_event(body: Any) -> Any:
    """A LifecycleEvent from `{"name", "data"?}`. Raises UnknownEvent, PayloadTooLarge or InvalidRequest."""
    if not isinstance(body, dict):
        raise InvalidRequest("the event must be a JSON object with a 'name' and an optional 'data' object")
    name = check_event_name(body.get("name"))
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

    `expect` is an optional hint: the job's state and generation when the event is applied. The worker
    pins its write to it (saving a read); the write's condition still decides.

    The HTTP API adds its acceptance (SPEC section 3, "a 202 is a promise"): `seq`, the event's place in
    the job's order; `by`, who sent it; `at`, when; `ignore`, a callback the job's state had already
    left; and `mark`, its HMAC over all of these (jobcore.keyring). A message whose mark is valid is
    applied in that order without its credential being checked again; any other is treated as a
    producer's (section 6), whatever these fields say.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    uuid: str
    name: str
    token: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    data: dict[str, Any] | None = None
    event_id: Identifier | None = None
    expect: tuple[str, int] | None = None
    seq: Annotated[int, Field(ge=1)] | None = None
    by: Annotated[str, StringConstraints(max_length=80)] | None = None
    at: float | None = None
    ignore: bool = False
    mark: Annotated[str, StringConstraints(max_length=64)] | None = None
    # how often the worker sent it back to wait for the event before it (not marked)
    waits: Annotated[int, Field(ge=0, le=1000)] = 0

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if not is_uuid(value):
            raise ValueError("uuid must be a UUID")
        return value.lower()


class DeadlineMessage(BaseModel):
    """The system's `fail` of a job that missed a deadline (SPEC section 3a), sent by the sweeper.

    It names the deadline it enforces (`reason`, and `deadline` in epoch milliseconds as the job item
    holds it) and the state and generation the sweeper saw; the worker's write is conditioned on all
    of them, so an event applied meanwhile (which moves or clears the deadline) wins. Signed with the
    admin key so that no producer can forge one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    internal: Literal["deadline"]
    uuid: str
    reason: Literal["heartbeat", "timeout"]
    deadline: Annotated[int, Field(strict=True, ge=0)]
    state: str
    generation: Annotated[int, Field(strict=True, ge=1)]
    signature: Annotated[str, StringConstraints(max_length=64)]
    # set when it first found accepted events still queued and went back behind them (the worker's
    # clock then), and how often it has since: it overtakes them only after order_wait_seconds
    since: float | None = None
    waits: Annotated[int, Field(ge=0, le=1000)] = 0

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
    # reset: erase, then CREATED again; keep: CREATED again without erasing (keep_archive, or the end
    # of a reset that had to wait for accepted events); purge: erase a deleted job's archive.
    purpose: Literal["reset", "keep", "purge"]
    event_id: str
    generation: int
    step: int
    # keep: when the completion started waiting for accepted events still queued
    since: float | None = None
    signature: str


class IndexMessage(BaseModel):
    """Internal continuation of the indexer (SPEC section 3, `index`): the step that lists the archive
    after `start_after` (None: from its start) and records what it finds in the manifest of the run
    `event_id` (the `index` event that started it) of `generation`; `count` objects are recorded
    before it. `done`: the listing is complete, and the system's `indexed` waits for accepted events
    still queued (since `since`, the worker's clock then; `waits` times).

    Signed with the admin key over every other field, so that no producer can forge or alter one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    internal: Literal["index"]
    uuid: str
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    generation: Annotated[int, Field(strict=True, ge=1)]
    step: Annotated[int, Field(strict=True, ge=0)]
    start_after: Annotated[str, StringConstraints(max_length=1024)] | None = None
    count: Annotated[int, Field(strict=True, ge=0)] = 0
    done: bool = False
    since: float | None = None
    waits: Annotated[int, Field(ge=0, le=1000)] = 0
    signature: Annotated[str, StringConstraints(max_length=64)]

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if not is_uuid(value):
            raise ValueError("uuid must be a UUID")
        return value.lower()

    def signed_fields(self) -> dict[str, Any]:
        """What the signature covers: everything but itself."""
        return self.model_dump(exclude={"signature"})


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
