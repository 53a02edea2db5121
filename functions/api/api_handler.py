"""HTTP API (API Gateway HTTP API, payload v2): jobs, events, callbacks, tokens, OpenAPI (SPEC section 5).

Each route parses its request (Powertools validates path, query and body against the same models the
worker uses), makes ONE call into jobcore.access.ApiService, and maps the result. Errors are mapped in
one table, `ERROR_STATUS`, to `{"error": {"code", "message"}}` with a 4xx status; only a failure of the
machinery (TransientError) is a 503, and only a bug is a 500.

Nothing here logs the event, a header, the query string or a body: a token travels in each of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache, lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from jobcore.access import (
    MAX_DEAD_LETTER_PEEK,
    MAX_HISTORY_LIMIT,
    MAX_LIST_LIMIT,
    MAX_OUTPUTS_LIMIT,
    OUTPUT_URL_SECONDS,
    REDRIVE_PER_CALL,
    ApiService,
)
from jobcore.clock import Clock
from jobcore.errors import (
    EventNotAllowed,
    EventNotFound,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    JobError,
    JobExists,
    JobNotFound,
    KeyNotFound,
    NotConfigured,
    PayloadTooLarge,
    TooManyRotations,
    TransientError,
    Unauthorized,
    UnknownEvent,
)
from jobcore.models import MAX_BODY_BYTES, JobSpec, LifecycleEvent
from jobcore.payloads import strict_json_loads
from jobcore.ports import DeadLetters
from jobcore.states import EVENT_NAMES, State

logger = Logger()

API_TITLE: Final = "pipelinejobs"
API_VERSION: Final = "1.0.0"

# The one table from the core's errors to HTTP statuses (looked up along the exception's MRO).
ERROR_STATUS: Final = {
    PayloadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    UnknownEvent: HTTPStatus.BAD_REQUEST,
    InvalidRequest: HTTPStatus.BAD_REQUEST,
    Unauthorized: HTTPStatus.UNAUTHORIZED,
    Forbidden: HTTPStatus.FORBIDDEN,
    JobNotFound: HTTPStatus.NOT_FOUND,
    EventNotFound: HTTPStatus.NOT_FOUND,
    KeyNotFound: HTTPStatus.NOT_FOUND,
    NotConfigured: HTTPStatus.NOT_FOUND,
    JobExists: HTTPStatus.CONFLICT,
    EventNotAllowed: HTTPStatus.CONFLICT,
    # The IETF Idempotency-Key draft's status for a key reused with another request.
    IdempotencyKeyReused: HTTPStatus.UNPROCESSABLE_ENTITY,
    TooManyRotations: HTTPStatus.TOO_MANY_REQUESTS,
    JobError: HTTPStatus.BAD_REQUEST,
}


class Resolver(APIGatewayHttpResolver):
    """Powertools' resolver, with a schema that documents the 400 this API answers to a request that
    fails validation instead of the 422 Powertools would (the handler below maps it); a 422 of the
    API's own (an Idempotency-Key reused) stays documented."""

    def get_openapi_schema(self, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(**kwargs)
        for item in (schema.paths or {}).values():
            for method in ("get", "post", "put", "patch", "delete"):
                operation = getattr(item, method, None)
                if operation is None or not operation.responses:
                    continue
                validation = operation.responses.get(422)
                if validation is not None and _description(validation) == "Validation Error":
                    operation.responses.pop(422)
        if schema.components and schema.components.schemas:
            for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
                schema.components.schemas.pop(name, None)
        return schema


# Bodies are strict JSON: NaN and Infinity are refused (SPEC section 5), so none is ever stored or served.
def _description(response: Any) -> Any:
    return (
        response.get("description") if isinstance(response, dict) else getattr(response, "description", None)
    )


app = Resolver(enable_validation=True, json_body_deserializer=strict_json_loads)


def build_service(*, clock: Clock | None = None) -> ApiService:
    """The service with real adapters from the environment. Tests pass a fake clock here."""
    import os

    import boto3
    import botocore.session

    from jobcore.adapters.dynamodb import DynamoJobRepository
    from jobcore.adapters.s3 import S3ArchiveStore
    from jobcore.adapters.sqs import SqsEventQueue
    from jobcore.adapters.ssm import SsmAdminKeys
    from jobcore.settings import Settings

    settings = Settings.from_env()
    # One botocore session for every client (PynamoDB's included): they share its endpoint rules.
    session = botocore.session.get_session()
    aws = boto3.session.Session(botocore_session=session)

    def archive() -> S3ArchiveStore:
        # Only the outputs route needs S3: its client (and S3's service model) is built on its first
        # request, not in every container's cold start. Links are signed with SigV4 in every region.
        from botocore.config import Config

        return S3ArchiveStore(aws.client("s3", config=Config(signature_version="s3v4")))

    def dead_letters() -> DeadLetters:
        # Only the dashboard's dead-letter routes need them: built on their first request.
        from jobcore.adapters.dead_letters import SqsDeadLetters

        return SqsDeadLetters(aws.client("sqs"), settings.dead_letter_queue_url or "", settings.queue_url)

    return ApiService(
        settings,
        DynamoJobRepository(settings.table_name, host=os.environ.get("AWS_ENDPOINT_URL"), session=session),
        SqsEventQueue(aws.client("sqs"), settings.queue_url),
        SsmAdminKeys(settings.admin_key_parameter, aws.client("ssm")),
        clock=clock,
        archive=archive,
        dead_letters=dead_letters if settings.dead_letter_queue_url else None,
    )


@cache
def _deps() -> ApiService:
    """Built on the first request of a container, not at import time (moto must start first in tests)."""
    return build_service()


# -- documentation models (the responses' shapes, for the OpenAPI document) ---------------------------


class ErrorDetail(BaseModel):
    code: str = Field(examples=["event_not_allowed"])
    message: str = Field(examples=["cannot finish a job in CREATED"])


class ErrorResponse(BaseModel):
    error: ErrorDetail


class JobExistsResponse(ErrorResponse):
    uuid: str


class JobView(BaseModel):
    """A job as users see it; one `<state>_at` timestamp per state it reached (run_at, finished_at, ...)."""

    model_config = ConfigDict(extra="allow")
    uuid: str
    pipeline_uuid: str
    state: State
    last_event: str | None
    generation: int
    archive_path: str
    child_of: list[str]
    name: str | None
    tags: list[str]
    session: str | None
    agent: str | None
    task: str | None
    created_at: str
    updated_at: str
    state_entered_at: str
    pending_seconds: float | None = Field(
        None, description="this generation's wait, created_at -> run_at (null until it runs)"
    )
    run_seconds: float | None = Field(
        None,
        description="this generation's run, run_at -> its finish or fail (or reset), or -> now while "
        "RUNNING (null until it runs); fixed once the run ended, whatever follows",
    )
    owner: str = Field("admin", description="who created it: a producer key's id, or admin")
    heartbeat_seconds: int | None = Field(
        None, description="longest silence allowed while RUNNING, INDEXING or VALIDATING (SPEC 3a)"
    )
    timeout_seconds: int | None = Field(None, description="longest time from run to finish or fail")
    heartbeat_due: str | None = Field(None, description="when the heartbeat runs out, while it runs")
    timeout_due: str | None = Field(None, description="when the timeout runs out, while RUNNING")
    deadline_missed: Literal["heartbeat", "timeout"] | None = Field(
        None, description="the deadline whose miss failed the job (while it is FAILED by it)"
    )
    queued_events: int = Field(0, description="events accepted and not applied yet")
    allowed_events: list[str] = Field(
        description="events the caller's credential may send now: from the state the job will be in once "
        "its queued events are applied"
    )
    data: dict[str, Any] | None = Field(None, description="run-time parameters (not in listings)")
    callback_url: str | None = Field(
        None, description="the current callback URL (it holds a token): on creation, and for an admin"
    )


class CreatedJobResponse(BaseModel):
    job: JobView
    token: str = Field(description="the job token: use it in Authorization: Bearer, follow its rotation")
    callback_url: str


class JobListResponse(BaseModel):
    jobs: list[JobView]
    next: str | None = Field(description="pass back as `next` for the following page; null at the end")


class CountsResponse(BaseModel):
    counts: dict[State, int] = Field(description="jobs per state, every state named (0 included)")
    total: int
    complete: bool = Field(
        description="false when more jobs match than one call counts (100,000): narrow the filters"
    )


class AcceptedResponse(BaseModel):
    event_id: str
    event: str = Field(description="the event queued (for a callback, the one its status maps to)")
    token: str | None = Field(None, description="the token to use next (absent on callbacks)")


class HistoryEntryView(BaseModel):
    event_id: str
    name: str
    data: dict[str, Any]
    at: str
    outcome: Literal["applied", "ignored", "rejected"]
    reason: str | None = None
    from_state: State | None
    to_state: State | None
    generation: int | None
    by: str | None = Field(description="who sent it: admin, job, callback, key:<id> or system")


class HistoryResponse(BaseModel):
    events: list[HistoryEntryView]
    next: str | None


class OutputView(BaseModel):
    key: str = Field(description="relative to the job's archive_path", examples=["results/summary.csv"])
    size: int = Field(description="bytes")
    modified: str = Field(description="when it was last written, ISO-8601 UTC with milliseconds")
    etag: str = Field(description="S3's ETag, without quotes (the MD5 of the content for a one-part upload)")
    level: str | None = Field(
        default=None,
        description="from the manifest: the level of the first `data.index_patterns` pattern of the "
        "`index` event that matches the key (absent when none does, and in a listing)",
    )
    url: str = Field(
        description=f"a presigned S3 GET of the object, valid {OUTPUT_URL_SECONDS // 60} minutes: it "
        "carries S3's signature, no credential of this API; fetch it without an Authorization header"
    )


class OutputListResponse(BaseModel):
    outputs: list[OutputView]
    next: str | None = Field(description="pass back as `next` for the following page; null at the end")
    source: Literal["manifest", "listing"] = Field(
        description="`manifest`: what the indexer recorded (after the system's `indexed`); `listing`: "
        "the archive path's current objects, listed now"
    )


class EventStatusResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_id: str
    status: Literal["queued", "applied", "ignored", "rejected"]


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=100, description="who or what holds the key")
    pipelines: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=100, description='the pipelines it may create jobs for, or ["*"]'
    )
    expires_at: str | float | None = Field(
        None, description="ISO-8601 (2026-12-31T00:00:00Z) or epoch seconds; absent: never expires"
    )


class KeyView(BaseModel):
    id: str
    label: str
    pipelines: list[str]
    expires_at: str | None
    created_at: str
    revoked_at: str | None
    status: Literal["active", "expired", "revoked"]


class IssuedKeyResponse(KeyView):
    key: str = Field(description="the producer key (pjk_...): shown this once; store it now")


class KeyListResponse(BaseModel):
    keys: list[KeyView]


class TokenResponse(BaseModel):
    token: str
    callback_url: str | None = Field(None, description="for an admin: the job's current callback URL")


def _doc(description: str, model: type[BaseModel] = ErrorResponse) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


_BAD = {400: _doc("malformed request"), 401: _doc("no valid credential")}
_JOB_ERRORS = {**_BAD, 403: _doc("the credential does not allow this"), 404: _doc("no such job")}
_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


@cache
def openapi_settings() -> dict[str, Any]:
    """The document's title, description and security schemes. Built on the first request for the
    document: Powertools' OpenAPI models cost a cold start ~60 ms, and no event needs them."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, HTTPBearer

    return {
        "title": API_TITLE,
        "version": API_VERSION,
        "description": (
            "Lifecycle of pipeline jobs. Credentials go in `Authorization: Bearer <token>`: the job token "
            "(rotates: always use the `token` of the last response), an admin token, a callback token, or a "
            "producer key (`pjk_...`, issued by an admin: creates jobs in its scope and drives its own). "
            'Errors are `{"error": {"code", "message"}}`.'
        ),
        "security_schemes": {
            "bearerAuth": HTTPBearer(
                description="job token (pjt_...), callback token (pjc_...), producer key (pjk_...) "
                "or admin token"
            ),
            "callbackToken": APIKey.model_validate(
                {"name": "token", "in": APIKeyIn.query, "description": "the callback URL's token"}
            ),
        },
    }


# -- request helpers -------------------------------------------------------------------------------


def _bearer() -> str | None:
    """The token of `Authorization: Bearer <token>`, or None."""
    header = app.current_event.headers.get("authorization") or ""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _base_url() -> str:
    """Where this API is reached: PUBLIC_API_URL, else the request's domain and stage."""
    configured = _deps().settings.public_api_url
    if configured:
        return configured.rstrip("/")
    context = app.current_event.request_context
    host = context.domain_name or app.current_event.headers.get("host") or "localhost"
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    scheme = "http" if hostname in ("127.0.0.1", "localhost", "[::1]", "::1") else "https"
    stage = context.stage
    return f"{scheme}://{host}" + ("" if not stage or stage == "$default" else f"/{stage}")


def _json(status: int, body: Any, *, secret: bool = False, headers: dict[str, str] | None = None) -> Response:
    all_headers = dict(headers or {})
    if secret:
        all_headers["Cache-Control"] = "no-store"  # it carries a token
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=all_headers
    )


def _callback_body() -> Any:
    """A platform's body, as leniently as possible: JSON, else a form, else the text itself."""
    import base64
    from urllib.parse import parse_qsl

    raw = app.current_event.body or ""
    try:
        text = (
            base64.b64decode(raw).decode("utf-8", "replace") if app.current_event.is_base64_encoded else raw
        )
    except ValueError:
        text = raw
    if not text.strip():
        return None
    try:
        return strict_json_loads(text)
    except (ValueError, RecursionError):
        pass  # not strict JSON (NaN included): kept as the text it is
    content_type = (app.current_event.headers.get("content-type") or "").lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(text, keep_blank_values=True))
    return text


# -- routes ----------------------------------------------------------------------------------------


@app.post(
    "/jobs",
    summary="Create a job (admin, or a producer key for a pipeline in its scope)",
    description="The uuid is derived from pipeline_uuid, child_of and data: the same inputs give the same job.",
    responses={
        201: _doc("created", CreatedJobResponse),
        **_BAD,
        403: _doc("not an admin token, or a producer key outside its scope"),
        409: _doc("the job exists", JobExistsResponse),
        413: _doc("data too large"),
    },
    security=_BEARER,
    tags=["jobs"],
)
def create_job(spec: Annotated[JobSpec, Body()]):
    body = _deps().create_job(_bearer(), spec, _base_url())
    return _json(201, body, secret=True, headers={"Location": f"/jobs/{body['job']['uuid']}"})


# The listing's filters, which GET /jobs and GET /jobs/counts share.
StateQuery = Annotated[State | None, Query()]
PipelineQuery = Annotated[str | None, Query(max_length=128)]
TagQuery = Annotated[str | None, Query(max_length=64)]
OwnerQuery = Annotated[str | None, Query(max_length=32, description="a producer key's id, or admin")]
AfterQuery = Annotated[str | None, Query(max_length=40, description="ISO-8601, inclusive")]
BeforeQuery = Annotated[str | None, Query(max_length=40, description="ISO-8601, inclusive")]


@app.get(
    "/jobs",
    summary="List jobs, newest first (admin: all; a producer key: its own)",
    responses={
        200: _doc("a page of jobs", JobListResponse),
        **_BAD,
        403: _doc("not an admin token or a producer key"),
    },
    security=_BEARER,
    tags=["jobs"],
)
def list_jobs(
    state: StateQuery = None,
    pipeline_uuid: PipelineQuery = None,
    tag: TagQuery = None,
    owner: OwnerQuery = None,
    updated_after: AfterQuery = None,
    updated_before: BeforeQuery = None,
    child_of: Annotated[
        str | None,
        Query(
            max_length=128,
            description="only jobs whose child_of holds this input id, newest first by creation; the "
            "other filters apply to the jobs read, so a page may be short (even empty) with a `next`",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 50,
    cursor: Annotated[
        str | None, Query(alias="next", max_length=2048, description="from the last page")
    ] = None,
):
    body = _deps().list_jobs(
        _bearer(),
        state=state,
        pipeline_uuid=pipeline_uuid,
        tag=tag,
        owner=owner,
        updated_after=updated_after,
        updated_before=updated_before,
        child_of=child_of,
        limit=limit,
        cursor=cursor,
    )
    return _json(200, body)


@app.get(
    "/jobs/counts",
    summary="Jobs per state, for the listing's filters (admin: all; a producer key: its own)",
    description="Reads the matching jobs' entries in the listing's index (their state only), never the "
    "whole table: a call costs ~0.1 read unit per matching job (see docs/PERFORMANCE.md).",
    responses={
        200: _doc("jobs per state", CountsResponse),
        **_BAD,
        403: _doc("not an admin token or a producer key"),
    },
    security=_BEARER,
    tags=["jobs"],
)
def count_jobs(
    state: StateQuery = None,
    pipeline_uuid: PipelineQuery = None,
    tag: TagQuery = None,
    owner: OwnerQuery = None,
    updated_after: AfterQuery = None,
    updated_before: BeforeQuery = None,
    child_of: Annotated[
        str | None, Query(max_length=128, description="jobs whose child_of holds this id")
    ] = None,
):
    body = _deps().count_jobs(
        _bearer(),
        state=state,
        pipeline_uuid=pipeline_uuid,
        tag=tag,
        owner=owner,
        updated_after=updated_after,
        updated_before=updated_before,
        child_of=child_of,
    )
    return _json(200, body)


@app.get(
    "/jobs/<uuid>",
    summary="A job, with the events its caller may send now",
    responses={200: _doc("the job", JobView), **_JOB_ERRORS},
    security=_BEARER,
    tags=["jobs"],
)
def get_job(uuid: str):
    return _json(200, _deps().get_job(uuid, _bearer(), _base_url()), secret=True)


@app.get(
    "/jobs/<uuid>/outputs",
    summary="The job's outputs: the objects under its archive path, with download links",
    description=(
        "The current version of every object under the job's archive_path, in key order, paginated. "
        f"Each `url` downloads its object for {OUTPUT_URL_SECONDS // 60} minutes (a presigned S3 GET); "
        "list again for fresh links. Once the indexer has run (`index`, then `indexed` by the system), "
        "the outputs are those its manifest recorded, with their `level` (`source: manifest`). "
        "Readable with the job's token or callback token, its owner's "
        "producer key, or an admin token. After a reset erased the archive, the list is empty."
    ),
    responses={200: _doc("a page of the outputs", OutputListResponse), **_JOB_ERRORS},
    security=_BEARER,
    tags=["jobs"],
)
def list_outputs(
    uuid: str,
    limit: Annotated[int, Query(ge=1, le=MAX_OUTPUTS_LIMIT)] = 50,
    cursor: Annotated[
        str | None, Query(alias="next", max_length=2048, description="from the last page")
    ] = None,
):
    # no-store: each link lets whoever holds it download the object until it expires
    return _json(200, _deps().outputs(uuid, _bearer(), limit, cursor), secret=True)


@app.post(
    "/jobs/<uuid>/events",
    summary="Send a lifecycle event",
    description=(
        "A 202 is a promise: the event is applied, in the order accepted, unless a reset or delete comes "
        "first. It is checked against the state the job will be in once the events queued before it are "
        "applied, so `run` then `finish` may follow each other at once. Use the returned token next. "
        "To retry safely after a lost response, send an `Idempotency-Key`: the same key on the same job "
        "always gives the same event_id, and the event is applied once."
    ),
    responses={
        202: _doc("accepted and queued", AcceptedResponse),
        **_JOB_ERRORS,
        409: _doc("not allowed from the state the job will be in"),
        413: _doc("data too large"),
        422: _doc("the Idempotency-Key was used on this job for another request"),
    },
    security=_BEARER,
    tags=["events"],
)
def post_event(
    uuid: str,
    event: Annotated[LifecycleEvent, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            pattern=r"^[A-Za-z0-9._~-]{1,64}$",
            description="up to 64 URL-safe characters; a retry with the same key is the same event",
        ),
    ] = None,
):
    accepted = _deps().submit_event(uuid, _bearer(), event, idempotency_key)
    return _json(202, accepted.body(), secret=True)


@app.get(
    "/jobs/<uuid>/events",
    summary="The job's event history, oldest first",
    responses={200: _doc("a page of the history", HistoryResponse), **_JOB_ERRORS},
    security=_BEARER,
    tags=["events"],
)
def list_events(
    uuid: str,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_LIMIT)] = 100,
    cursor: Annotated[
        str | None, Query(alias="next", max_length=2048, description="from the last page")
    ] = None,
):
    return _json(200, _deps().history(uuid, _bearer(), limit, cursor))


@app.get(
    "/jobs/<uuid>/events/<event_id>",
    summary="One event: queued, applied, ignored or rejected",
    responses={200: _doc("the event", EventStatusResponse), **_JOB_ERRORS},
    security=_BEARER,
    tags=["events"],
)
def get_event(uuid: str, event_id: str):
    return _json(200, _deps().event_status(uuid, event_id, _bearer()))


@app.post(
    "/jobs/<uuid>/callback",
    summary="A compute platform's notification (the job's callback URL)",
    description=(
        "The status (query or JSON body `status`) maps to an event: RUNNING→run; FINISHED→finish; FAILED, "
        "STOPPED, KILLED, ARCHIVING_FAILED, DELETED→fail; other known statuses→resource; unknown→update. "
        "Any body (JSON, form or text) is kept as the event's data, trimmed to 64 KiB. A notification "
        "that arrives after the job left the states it applies to is accepted and recorded as ignored."
    ),
    responses={
        202: _doc("accepted and queued", AcceptedResponse),
        400: _doc("a query parameter over its length limit"),
        401: _doc("no valid callback token"),
        404: _doc("no such job"),
    },
    security=[{"callbackToken": []}],
    tags=["events"],
)
def callback(
    uuid: str,
    token: Annotated[str | None, Query(max_length=512, description="the callback token")] = None,
    status: Annotated[str | None, Query(max_length=128, description="the platform's status word")] = None,
):
    accepted = _deps().callback(uuid, token, status, _callback_body())
    return _json(202, accepted.body())


@app.post(
    "/jobs/<uuid>/token",
    summary="Rotate the job token now (job token or admin)",
    description=(
        "An admin gets a fresh job token for any job, and its current callback URL; with "
        "`rotate_callback=true`, a new callback URL, and the old one stops working."
    ),
    responses={
        200: _doc("the new token", TokenResponse),
        **_JOB_ERRORS,
        429: _doc("as many rotated-out tokens as allowed are still in their grace period"),
    },
    security=_BEARER,
    tags=["jobs"],
)
def issue_token(
    uuid: str,
    rotate_callback: Annotated[bool, Query(description="admin: issue a new callback URL")] = False,
):
    body = _deps().issue_token(uuid, _bearer(), _base_url(), rotate_callback=rotate_callback)
    return _json(200, body, secret=True)


_KEY_ERRORS = {401: _doc("no valid credential"), 403: _doc("not an admin token")}


@app.post(
    "/keys",
    summary="Issue a producer key (admin)",
    description="The key is in this answer only (it is stored hashed): give it to the reactor now.",
    responses={201: _doc("the key", IssuedKeyResponse), 400: _doc("malformed request"), **_KEY_ERRORS},
    security=_BEARER,
    tags=["keys"],
)
def create_key(request: Annotated[KeyRequest, Body()]):
    body = _deps().create_key(
        _bearer(), label=request.label, pipelines=request.pipelines, expires_at=request.expires_at
    )
    return _json(201, body, secret=True, headers={"Location": f"/keys/{body['id']}"})


@app.get(
    "/keys",
    summary="List producer keys, newest first (admin): never a key or its hash",
    responses={200: _doc("every key", KeyListResponse), **_KEY_ERRORS},
    security=_BEARER,
    tags=["keys"],
)
def list_keys():
    return _json(200, _deps().list_keys(_bearer()))


@app.delete(
    "/keys/<key_id>",
    summary="Revoke a producer key (admin), at once; idempotent",
    responses={200: _doc("the revoked key", KeyView), **_KEY_ERRORS, 404: _doc("no such key")},
    security=_BEARER,
    tags=["keys"],
)
def revoke_key(key_id: str):
    return _json(200, _deps().revoke_key(_bearer(), key_id))


class DeadLetterView(BaseModel):
    message_id: str
    uuid: str | None = Field(description="the job the message is for, when its body names one")
    name: str | None = Field(description="the event's name, when its body names one")
    event_id: str | None
    receive_count: int = Field(description="how often the worker received it before it was dead-lettered")
    sent_at: str | None
    group_id: str | None
    data: Any = Field(None, description="the event's data (never its token)")


class DeadLettersResponse(BaseModel):
    approximate_count: int = Field(description="about how many messages wait in the dead-letter queue")
    messages: list[DeadLetterView] = Field(description="some of them, left in the queue")


class RedriveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max: int = Field(REDRIVE_PER_CALL, ge=1, le=REDRIVE_PER_CALL, description="move at most this many")


class RedriveResponse(BaseModel):
    moved: int
    remaining: int = Field(description="about how many are left: call again while it is above 0")


_DLQ_ERRORS = {
    400: _doc("malformed request"),
    **_KEY_ERRORS,
    404: _doc("the deployment names no dead-letter queue"),
}


@app.get(
    "/dlq",
    summary="Look at the dead-letter queue (admin)",
    description="Events the worker failed to apply after every retry (a failure of the machinery, never "
    "a caller's mistake). The messages shown stay in the queue; tokens are never shown.",
    responses={200: _doc("the queue's depth and some messages", DeadLettersResponse), **_DLQ_ERRORS},
    security=_BEARER,
    tags=["operations"],
)
def list_dead_letters(limit: Annotated[int, Query(ge=1, le=MAX_DEAD_LETTER_PEEK)] = 10):
    return _json(200, _deps().dead_letters(_bearer(), limit))


@app.post(
    "/dlq/redrive",
    summary="Move dead-lettered events back to the events queue (admin)",
    description=f"At most {REDRIVE_PER_CALL} per request; each event is still applied at most once. "
    "Fix the cause first.",
    responses={200: _doc("how many moved, how many are left", RedriveResponse), **_DLQ_ERRORS},
    security=_BEARER,
    tags=["operations"],
)
def redrive_dead_letters(request: Annotated[RedriveRequest | None, Body()] = None):
    limit = request.max if request is not None else REDRIVE_PER_CALL
    return _json(200, _deps().redrive(_bearer(), limit))


# -- the dashboard (SPEC section 9): a static page and its two files, read on their first request -----

DASHBOARD_DIR: Final = Path(__file__).resolve().parent / "dashboard"
DASHBOARD_ASSETS: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Job data, names, tags and history are hostile input: the page renders them as text (app.js never
# writes markup), and this policy forbids any script but app.js, inline or injected, should one slip.
DASHBOARD_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": DASHBOARD_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=8)
def _dashboard_file(name: str) -> str:
    return (DASHBOARD_DIR / name).read_text(encoding="utf-8")


@app.get("/", include_in_schema=False)
def dashboard():
    return Response(200, "text/html; charset=utf-8", _dashboard_file("index.html"), headers=_PAGE_HEADERS)


@app.get("/ui/<asset>", include_in_schema=False)
def dashboard_asset(asset: str):
    content_type = DASHBOARD_ASSETS.get(asset)
    if content_type is None:
        return _json(404, error_body("not_found", "no such file of the dashboard"))
    return Response(200, content_type, _dashboard_file(asset), headers=_PAGE_HEADERS)


@lru_cache(maxsize=8)
def _openapi_json(base_url: str) -> str:
    from aws_lambda_powertools.event_handler.openapi.models import Server

    return app.get_openapi_json_schema(servers=[Server(url=base_url)], **openapi_settings())


@app.get("/openapi.json", include_in_schema=False)
def openapi_document():
    return Response(200, content_types.APPLICATION_JSON, _openapi_json(_base_url()))


DOCS_PATH: Final = "/docs"


@cache
def _enable_docs() -> None:
    """Powertools' Swagger UI at DOCS_PATH, registered on the first request for it (see
    openapi_settings: registering it loads the OpenAPI models). Not in the document either way."""
    app.enable_swagger(path=DOCS_PATH, **openapi_settings())


# -- errors ----------------------------------------------------------------------------------------


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, **extra}


def _status_of(error: JobError) -> HTTPStatus:
    for cls in type(error).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return HTTPStatus.BAD_REQUEST


@app.exception_handler(JobError)
def _job_error(error: JobError) -> Response:
    status = _status_of(error)
    extra = (
        {"uuid": error.details["uuid"]} if isinstance(error, JobExists) and "uuid" in error.details else {}
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == HTTPStatus.UNAUTHORIZED else None
    if isinstance(error, TooManyRotations):
        headers = {"Retry-After": str(error.details.get("retry_after", 1))}
    logger.info("request refused", status=int(status), code=error.code)
    return _json(status, error_body(error.code, error.message, **extra), headers=headers)


@app.exception_handler(RequestValidationError)
def _invalid_request(error: RequestValidationError) -> Response:
    code, message = describe_validation(error.errors())
    logger.info("request refused", status=400, code=code)
    return _json(400, error_body(code, message))


@app.exception_handler(RecursionError)
def _too_deep(error: RecursionError) -> Response:
    return _json(400, error_body("invalid_request", "the body is nested too deeply"))


@app.exception_handler(UnicodeDecodeError)
def _not_text(error: UnicodeDecodeError) -> Response:
    return _json(400, error_body("invalid_request", "the body is not UTF-8 text"))


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(error: RequestUnsupportedContentType) -> Response:
    return _json(415, error_body("unsupported_media_type", _SEND_JSON))


@app.exception_handler(TransientError)
def _transient(error: TransientError) -> Response:
    logger.warning("machinery failure", reason=str(error))
    return _json(
        503, error_body("unavailable", "the service is busy; retry shortly"), headers={"Retry-After": "1"}
    )


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    logger.exception("unhandled error")
    return _json(500, error_body("internal_error", "an internal error occurred"))


@app.not_found
def _no_route(error: Exception) -> Response:
    """404 for a path the API does not have; 405 (with Allow) for a method one of its paths does not
    take. Every request reaches the function (template.yaml's `$default` route), so these answers have
    the API's error shape, in AWS as locally."""
    allowed = _methods_for(app.current_event.path)
    if allowed:
        message = f"{app.current_event.http_method} is not allowed here; use {', '.join(allowed)}"
        return _json(405, error_body("method_not_allowed", message), headers={"Allow": ", ".join(allowed)})
    return _json(404, error_body("not_found", "no such route; the API's routes are in /openapi.json"))


@cache
def _route_patterns() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """Each documented path as a regex, with its methods (from the OpenAPI document: built on the first
    refused route only, an error path)."""
    patterns = []
    for path, item in (app.get_openapi_schema(**openapi_settings()).paths or {}).items():
        methods = tuple(
            m.upper() for m in ("get", "post", "put", "patch", "delete") if getattr(item, m, None)
        )
        regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "/?$"
        patterns.append((re.compile(regex), methods))
    patterns.append((re.compile("^/(openapi\\.json|docs|ui/[^/]+)?/?$"), ("GET",)))
    return tuple(patterns)


def _methods_for(path: str) -> list[str]:
    return sorted({m for pattern, methods in _route_patterns() if pattern.match(path) for m in methods})


def describe_validation(errors: Sequence[Any]) -> tuple[str, str]:
    """(code, message) for Powertools' validation errors: which fields, what is wrong, never the input."""
    for item in errors:
        kind = item.get("type")
        if kind == "json_invalid":
            if "NaN" in str(item.get("ctx", {}).get("error", "")):
                return "invalid_request", "the body is not valid JSON: NaN and Infinity are not JSON numbers"
            return "invalid_request", "the body is not valid JSON"
        if kind == "union_tag_invalid":
            tag = _shown(item.get("ctx", {}).get("tag", ""))
            return "unknown_event", f"unknown event {tag}; known events: {', '.join(EVENT_NAMES)}"
        if kind == "union_tag_not_found":
            return "invalid_request", f"the event needs a 'name', one of: {', '.join(EVENT_NAMES)}"
        if kind == "missing" and tuple(item.get("loc", ())) == ("body",):
            return "invalid_request", "a JSON body is required"
    parts = []
    for item in errors[:5]:
        # a field name is the caller's input too: only short plain names are quoted back
        loc = item.get("loc", ())
        where = ".".join(str(p) if isinstance(p, int) or _plain(p) else "<field>" for p in loc) or "request"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "invalid_request", "; ".join(parts)


def _plain(name: Any) -> bool:
    return isinstance(name, str) and len(name) <= 32 and name.isascii() and name.isidentifier()


def _shown(name: Any) -> str:
    return repr(name) if _plain(name) else "(not shown)"


# -- the handler -----------------------------------------------------------------------------------


def _oversized(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 413 response for a body over the limit (callbacks are trimmed instead), before any parsing."""
    body = event.get("body") or ""
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode("utf-8", "replace"))
    is_callback = str(event.get("rawPath") or "").rstrip("/").endswith("/callback")
    if size <= MAX_BODY_BYTES or is_callback:
        return None
    return _raw_error(413, "payload_too_large", f"the body is {size} bytes; the limit is {MAX_BODY_BYTES}")


_SEND_JSON: Final = (
    "send the body as JSON with Content-Type: application/json (curl: -H 'Content-Type: application/json')"
)
_JSON_TYPES: Final = re.compile(r"application/(json|[\w.+-]+\+json)\s*(;.*)?$", re.IGNORECASE)


def _not_json(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 415 response for a body declared as anything but JSON (curl's `-d` sends a form), before
    parsing: a form would otherwise be read as fields of JSON. Callbacks take any body."""
    headers = event.get("headers") or {}
    content_type = str(headers.get("content-type") or "").strip()
    path = str(event.get("rawPath") or "").rstrip("/")
    if (
        not event.get("body")
        or not content_type
        or _JSON_TYPES.match(content_type)
        or path.endswith("/callback")
    ):
        return None
    return _raw_error(415, "unsupported_media_type", _SEND_JSON)


def _raw_error(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(error_body(code, message)),
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if str(event.get("rawPath") or "").rstrip("/").endswith(DOCS_PATH):
        _enable_docs()
    response = _oversized(event) or _not_json(event) or app.resolve(event, context)
    logger.info("request", route=event.get("routeKey"), status=response.get("statusCode"))
    return response
