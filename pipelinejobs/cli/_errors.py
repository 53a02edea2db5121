"""Errors: what went wrong and what to do next, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.markup import escape

from pipelinejobs.cli._app import _err
from pipelinejobs.errors import (
    BadRequest,
    Conflict,
    EventRejected,
    Forbidden,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PipelineJobsError,
    ServiceUnavailable,
    Unauthorized,
    WaitTimeout,
)


class CliError(Exception):
    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code


def _fail(message: str, hint: str | None = None, exit_code: int = 1) -> NoReturn:
    raise CliError(message, hint, exit_code)


def _explain(error: PipelineJobsError, key_id: str | None = None) -> CliError:
    """What went wrong and what to do next; `key_id`: the producer key the command acted with."""
    message = error.message
    if isinstance(error, Unauthorized) and key_id:
        return CliError(
            f"the producer key {key_id} was refused ({message})",
            "it is unknown, revoked or expired: an admin sees its status with `pipelinejobs keys list` "
            "and issues a new one with `pipelinejobs keys create`",
            3,
        )
    if isinstance(error, Unauthorized):
        return CliError(
            f"the token was rejected ({message})",
            "get a fresh admin token with `pipelinejobs admin-token` (or set PIPELINEJOBS_ADMIN_KEY)",
            3,
        )
    if isinstance(error, Forbidden) and key_id:
        return CliError(
            f"the producer key {key_id} may not do that ({message})",
            "a key creates jobs for the pipelines in its scope and drives only the jobs it created; "
            "reset, ready, delete and managing keys need the admin credential (--token or --admin-key)",
            3,
        )
    if isinstance(error, Forbidden):
        return CliError(
            f"this credential may not do that ({message})",
            "admin operations need an admin token: `pipelinejobs admin-token`",
            3,
        )
    if isinstance(error, NotFound):
        where = "; a producer key sees only the jobs it created" if key_id else " (deleted jobs are gone)"
        return CliError(message, f"check the uuid with `pipelinejobs jobs list`{where}", 4)
    if isinstance(error, JobFailed):
        return CliError(message, "see why with `pipelinejobs jobs history <uuid>`", 5)
    if isinstance(error, EventRejected):
        return CliError(
            message, "see the job's state and allowed events with `pipelinejobs jobs show <uuid>`", 5
        )
    if isinstance(error, Conflict):
        return CliError(
            message, "see the job's state and allowed events with `pipelinejobs jobs show <uuid>`", 5
        )
    if isinstance(error, PayloadTooLarge):
        return CliError(
            message, "event and job data are limited to 64 KiB: store bulk data in the job's archive"
        )
    if isinstance(error, BadRequest):
        return CliError(message, "check the arguments (`--help` shows an example)")
    if isinstance(error, WaitTimeout):
        return CliError(
            message, "raise --timeout, or look at the job with `pipelinejobs jobs show <uuid>`", 6
        )
    if isinstance(error, ServiceUnavailable):
        return CliError(
            message,
            "is the API running? Start the local stack with `pipelinejobs serve`, or point --url / "
            "PIPELINEJOBS_URL at a deployed stack",
            6,
        )
    return CliError(str(error))


def _explain_aws(error: Exception) -> CliError | None:
    name = type(error).__name__
    module = type(error).__module__
    if not module.startswith(("botocore", "boto3")):
        return None
    if name in {"NoCredentialsError", "PartialCredentialsError"}:
        return CliError(
            "no AWS credentials found",
            "configure AWS credentials (AWS_PROFILE, aws configure), or for the local stack set "
            "AWS_ENDPOINT_URL to its emulator",
            3,
        )
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}:
        return CliError(
            f"cannot reach AWS: {error}", "check AWS_ENDPOINT_URL (local stack) or your network", 6
        )
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        details = getattr(error, "response", {}).get("Error", {})
        code = details.get("Code", "ClientError")
        return CliError(f"AWS refused: {code}: {details.get('Message', '')}".rstrip(": "), _aws_hint(code), 1)
    return CliError(f"AWS error: {error}")


def _aws_hint(code: str) -> str:
    if code in {"ParameterNotFound"}:
        return "check --parameter (the stack output AdminKeyParameterName names it)"
    if code in {"AccessDenied", "AccessDeniedException", "UnrecognizedClientException"}:
        return "your AWS identity lacks the permission: use a role allowed to read the stack's resources"
    if code in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
        return "check --dlq-url / --queue-url (or --stack-name)"
    if code == "ValidationError":
        return "check --stack-name: the CloudFormation stack was not found"
    return "see the AWS message above"


F = TypeVar("F", bound=Callable[..., Any])


def _friendly(command: F) -> F:
    """Turn every expected failure into a short message with a next step and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            problem = error
        except PipelineJobsError as error:
            from pipelinejobs.cli._config import _acting_key_id  # (it imports this module)

            problem = _explain(error, _acting_key_id())
        except Exception as error:
            explained = _explain_aws(error)
            if explained is None:
                raise
            problem = explained
        console = _err()
        console.print(f"[bold red]Error:[/bold red] {escape(problem.message)}")
        if problem.hint:
            console.print(f"[dim]→ {escape(problem.hint)}[/dim]")
        raise typer.Exit(problem.exit_code)

    return wrapper  # type: ignore[return-value]
