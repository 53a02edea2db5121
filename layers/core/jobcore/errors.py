"""One error hierarchy for the whole core. Edges translate it: HTTP status codes in the API's one
table, record-and-acknowledge (permanent) or re-raise for retry (transient) at the SQS edge.

Messages are shown to callers and written to logs and history: they never carry a token, a token hash
or admin material.
"""

from __future__ import annotations

from typing import Any


class JobError(Exception):
    """A permanent problem with a request or event: retrying it unchanged cannot succeed."""

    code = "job_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(JobError):
    """The body, a parameter or a message is malformed."""

    code = "invalid_request"


class UnknownEvent(InvalidRequest):
    code = "unknown_event"


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"


class InvalidArchivePath(InvalidRequest):
    code = "invalid_archive_path"


class Unauthorized(JobError):
    """No credential, or one that is not valid (unknown, expired, revoked)."""

    code = "unauthorized"


class Forbidden(JobError):
    """A valid credential that does not allow this operation (a callback token sending `reset`)."""

    code = "forbidden"


class JobNotFound(JobError):
    code = "job_not_found"


class EventNotFound(JobError):
    code = "event_not_found"


class KeyNotFound(JobError):
    code = "key_not_found"


class NotConfigured(JobError):
    """The deployment has no such part (a dead-letter queue the API was not told of)."""

    code = "not_configured"


class JobExists(JobError):
    code = "job_exists"


class IdempotencyKeyReused(JobError):
    """An Idempotency-Key sent again with another event or other data (IETF draft: 422)."""

    code = "idempotency_key_reused"


class TooManyRotations(JobError):
    """A token rotation asked for while as many rotated-out tokens as allowed are still in their grace
    period (details: retry_after, seconds)."""

    code = "too_many_rotations"


class EventNotAllowed(JobError):
    """The event is not allowed from the job's current state."""

    code = "event_not_allowed"


class TransientError(Exception):
    """A failure of the machinery (throttling, a timeout, a transaction conflict): retry it.

    Deliberately not a JobError, so that no edge mistakes it for the caller's fault.
    """
