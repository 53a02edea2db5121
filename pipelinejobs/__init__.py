"""pipelinejobs: the SDK, the CLI and the local stack of the pipeline job lifecycle manager.

    from pipelinejobs import Client, JobFailed

Importing the package is cheap: `Client` and the error classes load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelinejobs.client import PIPELINE_DEFAULT, Client, Job, ProducerKey
    from pipelinejobs.errors import (
        BadRequest,
        Conflict,
        EventNotAllowed,
        EventRejected,
        Forbidden,
        JobExists,
        JobFailed,
        NotFound,
        PayloadTooLarge,
        PipelineJobsError,
        ServiceUnavailable,
        Unauthorized,
        WaitTimeout,
    )

__version__ = "0.1.0"

_CLIENT_NAMES = frozenset({"Client", "Job", "PIPELINE_DEFAULT", "ProducerKey"})
_ERROR_NAMES = frozenset(
    {
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
    }
)

__all__ = [
    "PIPELINE_DEFAULT",
    "BadRequest",
    "Client",
    "Conflict",
    "EventNotAllowed",
    "EventRejected",
    "Forbidden",
    "Job",
    "JobExists",
    "JobFailed",
    "NotFound",
    "PayloadTooLarge",
    "PipelineJobsError",
    "ProducerKey",
    "ServiceUnavailable",
    "Unauthorized",
    "WaitTimeout",
]


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from pipelinejobs import client

        return getattr(client, name)
    if name in _ERROR_NAMES:
        from pipelinejobs import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'pipelinejobs' has no attribute {name!r}")
