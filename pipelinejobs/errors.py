"""Typed errors of the SDK: one class per kind of failure, so callers catch what they can handle.

Every HTTP error of the API (`{"error": {"code", "message"}}`) becomes a `PipelineJobsError` subclass
chosen by status code, carrying `status`, `code` and `message`; an unknown status gets the base class.

    try:
        job = client.create_job("pipe-1", {"n": 1})
    except Conflict as error:          # the job exists: same inputs, same uuid
        job = client.job(error.uuid)

Nothing here ever holds a token: messages come from the server, which never echoes credentials.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "EventNotAllowed",
    "EventRejected",
    "Forbidden",
    "JobExists",
    "JobFailed",
    "NotFound",
    "PayloadTooLarge",
    "PipelineJobsError",
    "ServiceUnavailable",
    "Unauthorized",
    "WaitTimeout",
    "error_for_response",
]


class _Default:
    """The class's own status, when the caller gives none (None itself means "no response")."""


_DEFAULT = _Default()


class PipelineJobsError(Exception):
    """Base of every SDK error. `status` is the HTTP status (None when no response arrived)."""

    status: int | None = None
    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | _Default | None = _DEFAULT,
        code: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if not isinstance(status, _Default):
            self.status = status
        self.code = code or self.default_code
        # The whole decoded error body, for fields this SDK does not know yet.
        self.body: dict[str, Any] = body or {}

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status is not None else ""
        return f"{prefix}{self.code}: {self.message}"


class BadRequest(PipelineJobsError):
    """400: a malformed body, an unknown event name, an invalid filter."""

    status = 400
    default_code = "bad_request"


class Unauthorized(PipelineJobsError):
    """401: no credential, or one the server does not accept (expired, revoked, rotated out)."""

    status = 401
    default_code = "unauthorized"


class Forbidden(PipelineJobsError):
    """403: a valid credential that may not do this (a job token on another job, a job token for an
    admin-only event or listing)."""

    status = 403
    default_code = "forbidden"


class NotFound(PipelineJobsError):
    """404: no such job (or it was deleted), no such event."""

    status = 404
    default_code = "not_found"


class Conflict(PipelineJobsError):
    """409: the request conflicts with the job's state. `uuid` is set when the job already exists."""

    status = 409
    default_code = "conflict"

    def __init__(self, message: str, *, uuid: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.uuid = uuid


class JobExists(Conflict):
    """409 on create: a job with the same pipeline, inputs and data exists; `uuid` names it."""


class EventNotAllowed(Conflict):
    """409 on an event: not allowed from the job's current state (e.g. `finish` while CREATED)."""


class PayloadTooLarge(PipelineJobsError):
    """413: the event or job data is larger than the API accepts (64 KiB serialized)."""

    status = 413
    default_code = "payload_too_large"


class ServiceUnavailable(PipelineJobsError):
    """The API could not be reached or stayed unavailable (503, 429, a refused connection) after the
    client's retries. `status` is None when no response arrived at all."""

    status = 503
    default_code = "unavailable"


class EventRejected(PipelineJobsError):
    """An event was accepted (202) but the worker rejected it when applying it (the job's state had
    changed meanwhile, its token was revoked by a reset). `reason` is the server's explanation."""

    status = None
    default_code = "rejected"

    def __init__(self, message: str, *, event: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.event: dict[str, Any] = event or {}
        self.event_id: str | None = self.event.get("event_id")
        self.reason: str | None = self.event.get("reason")


class JobFailed(PipelineJobsError):
    """`wait_for` saw the job reach a terminal state other than the one awaited (FAILED, REJECTED,
    CANCELED). `state` is that state and `job` the last representation seen."""

    status = None
    default_code = "job_failed"

    def __init__(self, state: str, *, job: dict[str, Any] | None = None, message: str | None = None) -> None:
        super().__init__(message or f"the job reached {state}")
        self.state = state
        self.job: dict[str, Any] = job or {}


class WaitTimeout(PipelineJobsError):
    """`wait_for` gave up: the job was still in `state` (not one of `wanted`) after `timeout` seconds."""

    status = None
    default_code = "timeout"

    def __init__(self, state: str | None, wanted: tuple[str, ...], timeout: float) -> None:
        super().__init__(
            f"the job is still in {state} after {timeout:g}s (waiting for {' or '.join(wanted)})"
        )
        self.state = state
        self.wanted = wanted
        self.timeout = timeout


_BY_STATUS: dict[int, type[PipelineJobsError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: ServiceUnavailable,
    502: ServiceUnavailable,
    503: ServiceUnavailable,
    504: ServiceUnavailable,
}


def error_for_response(
    status: int, body: Any, fallback_text: str = "", *, conflict: type[Conflict] = Conflict
) -> PipelineJobsError:
    """The typed error for an HTTP error response (`body`: the decoded JSON, or None if not JSON).

    `conflict`: the class for a 409 that names no existing job (the caller knows what it asked).
    """
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "") or None
        message = str(error.get("message") or "") or fallback_text or f"HTTP {status}"
    else:
        # API Gateway's own errors: {"message": "..."}; anything else: the text itself.
        code = None
        message = (
            str(body.get("message"))
            if isinstance(body, dict) and body.get("message")
            else (fallback_text.strip()[:300] or f"HTTP {status}")
        )
    extra = body if isinstance(body, dict) else None
    kind = _BY_STATUS.get(status, PipelineJobsError)
    if kind is Conflict:
        uuid = _conflict_uuid(body)
        if uuid is not None:
            return JobExists(message, uuid=uuid, status=status, code=code, body=extra)
        return conflict(message, status=status, code=code, body=extra)
    return kind(message, status=status, code=code, body=extra)


def _conflict_uuid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("error")):
        uuid = holder.get("uuid") if isinstance(holder, dict) else None
        if isinstance(uuid, str):
            return uuid
    return None
