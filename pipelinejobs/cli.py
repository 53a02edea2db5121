"""The `pipelinejobs` command line: admin tokens, producer keys, jobs (list, show, history, events, bulk
reset/delete), the dead-letter queue, and (registered by pipelinejobs.local.commands) `serve` and `demo`.

It acts as one principal: the admin (`--token` / `--admin-key`) or a producer key (`--api-key`, or
PIPELINEJOBS_KEY), as the SDK's Client does. Options given on the command line beat the environment;
both kinds on the command line are refused; both in the environment, the key wins (a shell that
exported a key acts as that producer, with no more than the key allows) and a note on stderr says so.

Human output is rich tables on stdout; `--json` prints plain JSON for scripts instead. Messages,
prompts and progress bars go to stderr, so `--json` output can always be piped. Failures print what
went wrong and what to do next, never a traceback, and exit non-zero:

    1 any other failure    3 credential refused (401/403)    4 not found
    5 conflict (not allowed in this state, rejected, failed)   6 API or AWS unreachable, timeout
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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

if TYPE_CHECKING:
    from pipelinejobs.client import Client, ProducerKey

__all__ = ["app", "main"]

LOCAL_STACK_NAME = "pipelinejobs-local"
STATE_STYLES = {
    "CREATED": "cyan",
    "RUNNING": "yellow",
    "FAILED": "bold red",
    "FINISHED": "green",
    "INDEXING": "yellow",
    "VALIDATING": "yellow",
    "VALIDATED": "green",
    "REJECTED": "bold red",
    "FINALIZED": "bold green",
    "RETIRED": "dim",
    "RESET": "magenta",
    "CANCELED": "dim",
}
OUTCOME_STYLES = {"applied": "green", "ignored": "yellow", "rejected": "red", "queued": "cyan"}


def _examples(*commands: str) -> str:
    lines = "\n\n".join(f"  [cyan]$ {escape(command)}[/cyan]" for command in commands)
    return f"[bold]Examples[/bold]\n\n{lines}"


app = typer.Typer(
    name="pipelinejobs",
    help=(
        "Manage pipeline jobs: admin tokens, producer keys, listing, history, events, bulk reset and "
        "delete, and the dead-letter queue.\n\n"
        "Configuration: [bold]PIPELINEJOBS_URL[/bold] (the API, default http://127.0.0.1:8765), "
        "[bold]PIPELINEJOBS_TOKEN[/bold] (an admin token) or [bold]PIPELINEJOBS_ADMIN_KEY[/bold] "
        "(the admin key, a fresh token per request), or [bold]PIPELINEJOBS_KEY[/bold] (a producer key: "
        "act as a reactor, on its own jobs only), [bold]PIPELINEJOBS_STACK_NAME[/bold] "
        "(a deployed stack: its outputs give the URL, the admin key parameter and the queues). "
        "Options beat the environment; with both a key and an admin variable exported, the key wins."
    ),
    epilog=_examples(
        "export PIPELINEJOBS_TOKEN=$(pipelinejobs admin-token)",
        "pipelinejobs jobs list --state FAILED",
        "pipelinejobs keys create --label my-reactor --pipeline pipe-1 --expires 90d",
        'PIPELINEJOBS_KEY=pjk_… pipelinejobs jobs create pipe-1 --data \'{"sample": "S1"}\'',
        "pipelinejobs --stack-name pipelinejobs-prod jobs show 3f0c…",
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
jobs_app = typer.Typer(
    help=(
        "List, inspect and drive jobs: as the admin (every job), or with a producer key (the jobs it "
        "created; never reset, ready or delete)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)
keys_app = typer.Typer(
    help=(
        "Producer keys (admin): give each reactor its own key instead of the admin token. A key creates "
        "jobs for the pipelines in its scope and drives only those; revoking it stops it at once."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)
dlq_app = typer.Typer(
    help="Inspect the dead-letter queue of the events queue and move its messages back.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.add_typer(dlq_app, name="dlq")


def _out() -> Console:
    # Created per use so it writes to the sys.stdout of the moment (CliRunner swaps it).
    return Console(highlight=False, soft_wrap=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


# ------------------------------------------------------------------------------------------------
# Errors: what went wrong and what to do next
# ------------------------------------------------------------------------------------------------


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


def _acting_key_id() -> str | None:
    """The id of the producer key the current command acts with, if its client was made with one."""
    config = _CURRENT.get()
    client = config._client if config is not None else None
    return client.key_id if client is not None else None


# ------------------------------------------------------------------------------------------------
# Configuration: the root options, the client, a deployed stack's outputs
# ------------------------------------------------------------------------------------------------


@dataclass
class _Config:
    url: str | None = None
    token: str | None = None
    admin_key: str | None = None
    api_key: str | None = None
    stack_name: str | None = None
    # The credential options given on the command line (they beat the environment's).
    explicit: frozenset[str] = frozenset()
    _client: Client | None = None

    @property
    def key_source(self) -> str:
        return "--api-key" if "api_key" in self.explicit else "PIPELINEJOBS_KEY"

    def principal(self) -> tuple[str | None, str | None, str | None]:
        """(token, admin_key, api_key) to act with: one principal, by the module's precedence."""
        token, admin_key, api_key = self.token, self.admin_key, self.api_key
        if not api_key or not (token or admin_key):
            return token, admin_key, api_key
        key_given = "api_key" in self.explicit
        admin_given = bool({"token", "admin_key"} & self.explicit)
        if key_given and admin_given:
            _fail(
                "give --api-key or an admin credential (--token, --admin-key), not both",
                "a command acts as one principal: the producer key, or the admin",
            )
        if admin_given:
            return token, admin_key, None
        if not key_given:
            _err().print(
                "[dim]note: PIPELINEJOBS_KEY is set, so this acts as that producer key, not as the admin "
                "(unset it, or pass --token / --admin-key, to act as the admin)[/dim]"
            )
        return None, None, api_key

    def client(self) -> Client:
        if self._client is None:
            token, key, api_key = self.principal()
            url = self.url
            lifetime = 3600
            if self.stack_name and (not url or not (token or key or api_key)):
                outputs = _stack_outputs(self.stack_name)
                url = url or outputs.get("ApiUrl")
                if not (token or key or api_key) and outputs.get("AdminKeyParameterName"):
                    key = _read_parameter(outputs["AdminKeyParameterName"])
                    lifetime = int(outputs.get("AdminTokenLifetime") or lifetime)
            self._client = _new_client(url, token, key, api_key, lifetime, self.key_source)
            if not self._client.token:
                _fail(
                    "no credential: these commands need an admin token or a producer key",
                    "export PIPELINEJOBS_TOKEN=$(pipelinejobs admin-token)  (or set PIPELINEJOBS_ADMIN_KEY; "
                    "a reactor sets PIPELINEJOBS_KEY)",
                    3,
                )
        return self._client


def _new_client(
    url: str | None,
    token: str | None,
    admin_key: str | None,
    api_key: str | None,
    lifetime: int = 3600,
    key_source: str = "--api-key",
) -> Client:
    from pipelinejobs.client import Client, _key_id

    if api_key and _key_id(api_key) is None:  # (never quoted: whatever it is, it may be a secret)
        _fail(
            f"{key_source} is not a producer key: one looks like pjk_<id>_<secret>",
            "an admin issues one with `pipelinejobs keys create`; an admin token goes in --token",
            3,
        )
    try:
        if api_key:
            return Client(url, api_key=api_key)
        return Client(url, token=token, admin_key=admin_key, admin_token_lifetime=lifetime)
    except ValueError as error:  # a URL that is not http(s)
        _fail(str(error), "check --url / PIPELINEJOBS_URL")


# The configuration of the command running (for the error messages, which have no context at hand).
_CURRENT: contextvars.ContextVar[_Config | None] = contextvars.ContextVar("pipelinejobs_cli", default=None)


def _config(ctx: typer.Context) -> _Config:
    root = ctx.find_root()
    if not isinstance(root.obj, _Config):
        root.obj = _Config()
    return root.obj


@app.callback()
def _root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", envvar="PIPELINEJOBS_URL", help="Base URL of the API.", show_default=False),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="PIPELINEJOBS_TOKEN", help="An admin token.", show_default=False),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            envvar="PIPELINEJOBS_ADMIN_KEY",
            help="The admin key; a fresh admin token is computed per request.",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="PIPELINEJOBS_KEY",
            help=(
                "A producer key (pjk_…): act as that reactor, creating jobs in its scope and driving "
                "only its own jobs. Beats the admin variables when both are exported."
            ),
            show_default=False,
        ),
    ] = None,
    stack_name: Annotated[
        str | None,
        typer.Option(
            "--stack-name",
            envvar="PIPELINEJOBS_STACK_NAME",
            help="A deployed CloudFormation stack: its outputs give the URL, admin key and queues.",
            show_default=False,
        ),
    ] = None,
) -> None:
    explicit = frozenset(
        name
        for name in ("token", "admin_key", "api_key")
        if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    )
    ctx.obj = _Config(
        url=url, token=token, admin_key=admin_key, api_key=api_key, stack_name=stack_name, explicit=explicit
    )
    _CURRENT.set(ctx.obj)


def _boto3_client(service: str) -> Any:
    import boto3

    # boto3 honours AWS_ENDPOINT_URL, which points it at the local stack's emulator.
    return boto3.client(service)  # type: ignore[call-overload,unused-ignore]


def _local_emulator() -> bool:
    return bool(os.environ.get("AWS_ENDPOINT_URL"))


def _stack_outputs(stack_name: str) -> dict[str, str]:
    """A deployed stack's outputs; for the local stack (AWS_ENDPOINT_URL set, no CloudFormation stack),
    the same names derived from the local stack's naming convention."""
    from botocore.exceptions import ClientError

    try:
        stacks = _boto3_client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
        return {item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])}
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if not _local_emulator() or code not in {"ValidationError", "NotImplemented", "InvalidAction"}:
            raise
    # The local stack builds resources from template.yaml without CloudFormation; it names them
    # `{stack}-{logical id in lowercase}` (pipelinejobs.local.resources).
    sqs = _boto3_client("sqs")
    outputs = {"AdminKeyParameterName": f"/{stack_name}/admin-key"}
    for output, logical_id in (("QueueUrl", "EventsQueue"), ("DeadLetterQueueUrl", "EventsDeadLetterQueue")):
        name = f"{stack_name}-{logical_id.lower()}.fifo"
        try:
            outputs[output] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError:
            continue
    return outputs


def _read_parameter(name: str) -> str:
    response = _boto3_client("ssm").get_parameter(Name=name, WithDecryption=True)
    return str(response["Parameter"]["Value"])


# ------------------------------------------------------------------------------------------------
# admin-token
# ------------------------------------------------------------------------------------------------


@app.command(
    "admin-token",
    epilog=_examples(
        'pipelinejobs admin-token --key "$PIPELINEJOBS_ADMIN_KEY"',
        "export PIPELINEJOBS_TOKEN=$(pipelinejobs admin-token --parameter /pipelinejobs-local/admin-key)",
        "eval $(pipelinejobs admin-token --stack-name pipelinejobs-prod --export)",
    ),
)
@_friendly
def admin_token_command(
    ctx: typer.Context,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", envvar="PIPELINEJOBS_ADMIN_KEY", help="The admin key itself.", show_default=False
        ),
    ] = None,
    parameter: Annotated[
        str | None,
        typer.Option("--parameter", help="SSM SecureString holding the admin key.", show_default=False),
    ] = None,
    stack_name: Annotated[
        str | None,
        typer.Option(
            "--stack-name", help="Read the key parameter from this stack's outputs.", show_default=False
        ),
    ] = None,
    lifetime: Annotated[
        int | None,
        typer.Option(help="Seconds per token window (the stack's AdminTokenLifetime, 3600 by default)."),
    ] = None,
    export: Annotated[bool, typer.Option("--export", help="Print `export PIPELINEJOBS_TOKEN=…`.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON with the validity window.")] = False,
) -> None:
    """Compute the admin token: HMAC-SHA256 of the current time window under the admin key.

    The key comes from --key / PIPELINEJOBS_ADMIN_KEY, else from SSM (--parameter, or the stack's
    AdminKeyParameterName output with --stack-name; with AWS_ENDPOINT_URL set, the local stack's
    parameter). The token is valid for the rest of this window and the next one.
    """
    from jobcore.tokens import admin_token, admin_window

    stack_name = stack_name or _config(ctx).stack_name
    if not key and not parameter:
        if stack_name:
            outputs = _stack_outputs(stack_name)
            parameter = outputs.get("AdminKeyParameterName")
            if lifetime is None and outputs.get("AdminTokenLifetime"):
                lifetime = int(outputs["AdminTokenLifetime"])
        elif _local_emulator():
            parameter = f"/{LOCAL_STACK_NAME}/admin-key"
    if not key and not parameter:
        _fail(
            "no admin key: give --key (or PIPELINEJOBS_ADMIN_KEY), --parameter or --stack-name",
            "for the local stack, `pipelinejobs serve` prints a token and the key's parameter name",
        )
    if not key:
        assert parameter is not None
        key = _read_parameter(parameter)
    lifetime = lifetime or 3600
    now = time.time()
    token = admin_token(key, now, lifetime)
    valid_until = datetime.fromtimestamp((admin_window(now, lifetime) + 2) * lifetime, UTC)
    if as_json:
        _print_json({"token": token, "valid_until": _iso(valid_until), "lifetime": lifetime})
    elif export:
        typer.echo(f"export PIPELINEJOBS_TOKEN={token}")
    else:
        typer.echo(token)
        if sys.stderr.isatty():
            _err().print(f"[dim]valid until {_iso(valid_until)}[/dim]")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------
# jobs: list, show, history
# ------------------------------------------------------------------------------------------------

StateOpt = Annotated[str | None, typer.Option("--state", help="Only jobs in this state.", show_default=False)]
PipelineOpt = Annotated[
    str | None, typer.Option("--pipeline", help="Only jobs of this pipeline_uuid.", show_default=False)
]
TagOpt = Annotated[str | None, typer.Option("--tag", help="Only jobs with this tag.", show_default=False)]
AfterOpt = Annotated[
    str | None,
    typer.Option("--updated-after", help="Only jobs updated after this ISO-8601 time.", show_default=False),
]
BeforeOpt = Annotated[
    str | None,
    typer.Option("--updated-before", help="Only jobs updated before this ISO-8601 time.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _filters(
    state: str | None, pipeline: str | None, tag: str | None, after: str | None, before: str | None
) -> dict[str, Any]:
    return {
        key: value
        for key, value in {
            "state": state.upper() if state else None,
            "pipeline_uuid": pipeline,
            "tag": tag,
            "updated_after": after,
            "updated_before": before,
        }.items()
        if value is not None
    }


def _state(state: Any) -> str:
    text = escape(str(state or "-"))
    style = STATE_STYLES.get(str(state))
    return f"[{style}]{text}[/{style}]" if style else text


def _short_time(value: Any) -> str:
    """`2024-05-01T12:00:00.123Z` as `2024-05-01 12:00:00` (UTC): what a table needs."""
    return str(value or "-").replace("T", " ").removesuffix("Z").split(".")[0]


def _jobs_table(jobs: Iterable[dict[str, Any]], title: str | None = None, width: int | None = None) -> Table:
    """One row per job; NAME and TAGS only when some job has one. The uuid, state, generation and time
    always show whole: on a terminal too narrow for every column (`width`), NAME and TAGS are left out
    (`jobs show` and `--json` have them) and the time loses its seconds."""
    listed = list(jobs)
    rows = [
        {
            "uuid": str(job.get("uuid")),
            "state": str(job.get("state") or "-"),
            "gen": str(job.get("generation", "")),
            "pipeline": str(job.get("pipeline_uuid") or ""),
            "name": str(job.get("name") or ""),
            "tags": ", ".join(job.get("tags") or []),
            "updated": _short_time(job.get("updated_at")),
        }
        for job in listed
    ]
    optional = [key for key in ("name", "tags") if any(row[key] for row in rows)]

    def widest(key: str, header: str) -> int:
        return max([len(header)] + [len(row[key]) for row in rows])

    natural = 36 + widest("state", "STATE") + 3 + min(widest("pipeline", "PIPELINE"), 24) + 19
    natural += sum(min(widest(key, key), 16) for key in optional) + 2 * (4 + len(optional)) + 1
    if width is not None and natural > width:
        optional = []
        for row in rows:
            row["updated"] = row["updated"][:16]
    table = Table(
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),  # with the box's blank column separator: two spaces between columns
    )
    table.add_column("UUID", no_wrap=True, min_width=36)
    table.add_column("STATE", no_wrap=True, min_width=widest("state", "STATE"))
    table.add_column("GEN", justify="right", no_wrap=True, min_width=3)
    table.add_column("PIPELINE", overflow="ellipsis", min_width=6)  # whole in `jobs show`
    for key in optional:
        table.add_column(key.upper(), overflow="fold")
    table.add_column("UPDATED (UTC)", no_wrap=True, min_width=len(rows[0]["updated"]) if rows else 13)
    for row in rows:
        cells = {**{key: escape(value) for key, value in row.items()}, "state": _state(row["state"])}
        table.add_row(*(cells[key] for key in ("uuid", "state", "gen", "pipeline", *optional, "updated")))
    return table


@jobs_app.command(
    "list",
    epilog=_examples(
        "pipelinejobs jobs list",
        "pipelinejobs jobs list --state FAILED --pipeline pipe-1 --limit 200",
        "pipelinejobs jobs list --tag nightly --updated-after 2024-05-01T00:00:00Z --all --json",
        "pipelinejobs jobs list --owner Xk3v9QmL2a_B   # the jobs of one producer key",
    ),
)
@_friendly
def jobs_list(
    ctx: typer.Context,
    state: StateOpt = None,
    pipeline: PipelineOpt = None,
    tag: TagOpt = None,
    updated_after: AfterOpt = None,
    updated_before: BeforeOpt = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="Only jobs created by this producer key's id, or `admin` (an admin's filter).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many jobs.", min=1)] = 50,
    all_jobs: Annotated[
        bool, typer.Option("--all", help="Show every matching job (pages through all).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first, optionally filtered: every job as the admin, its own with a producer key."""
    client = _config(ctx).client()
    filters = _filters(state, pipeline, tag, updated_after, updated_before)
    if owner:
        filters["owner"] = owner
    # One more than shown tells whether there are more.
    jobs = list(client.iter_jobs(**filters, limit=None if all_jobs else limit + 1))
    more = not all_jobs and len(jobs) > limit
    jobs = jobs[:limit] if more else jobs
    if as_json:
        _print_json({"jobs": jobs, "more": more})
        return
    if not jobs:
        _err().print("No jobs match." if filters else "No jobs yet.")
        return
    out = _out()
    out.print(_jobs_table(jobs, width=out.width))
    count = f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}"
    suffix = " (more match: raise --limit or use --all)" if more else ""
    _err().print(f"[dim]{count}{suffix}[/dim]")


@jobs_app.command(
    "show", epilog=_examples("pipelinejobs jobs show 3f0c2a4e-…", "pipelinejobs jobs show 3f0c2a4e-… --json")
)
@_friendly
def jobs_show(
    ctx: typer.Context,
    uuid: Annotated[str, typer.Argument(help="The job's uuid.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one job: state, generation, timestamps, archive path, data and allowed events."""
    job = _config(ctx).client().get_job_data(uuid)
    if as_json:
        _print_json(job)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    first = ["uuid", "state", "generation", "last_event", "pipeline_uuid", "name", "tags", "archive_path"]
    skip = {"data", "allowed_events", "callback_url"}
    for field in first + sorted(k for k in job if k not in first and k not in skip):
        value = job.get(field)
        if value is None or value == []:
            continue
        if field == "state":
            rendered = _state(value)
        elif isinstance(value, list | dict):
            rendered = escape(", ".join(map(str, value)) if isinstance(value, list) else json.dumps(value))
        else:
            rendered = escape(str(value))
        table.add_row(field, rendered)
    table.add_row("allowed events", escape(", ".join(job.get("allowed_events") or []) or "-"))
    table.add_row("data", escape(json.dumps(job.get("data", {}), indent=2, sort_keys=True)))
    _out().print(table)


@jobs_app.command(
    "history",
    epilog=_examples(
        "pipelinejobs jobs history 3f0c2a4e-…", "pipelinejobs jobs history 3f0c2a4e-… --json | jq '.[].name'"
    ),
)
@_friendly
def jobs_history(
    ctx: typer.Context,
    uuid: Annotated[str, typer.Argument(help="The job's uuid.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a job's event history, oldest first: every event applied, ignored or rejected, with why."""
    events = _config(ctx).client().history(uuid)
    if as_json:
        _print_json(events)
        return
    if not events:
        _err().print("No events yet.")
        return
    table = _history_table(events, _out().width)
    _out().print(table)


def _history_table(events: list[dict[str, Any]], width: int) -> Table:
    """One row per event. On a terminal narrower than the whole table (80 columns), the principal and
    the states stay whole and the reason keeps room to be read: a day shared by every event moves into
    the title (the time column keeps the time), a generation shared by every event too, and a
    transition shows only the state it led to (`→ RUNNING`)."""
    times = [_short_time(event.get("at")) for event in events]
    days = {time.split(" ")[0] for time in times}
    generations = {str(event.get("generation", "")) for event in events}
    narrow = width < 110
    same_day = len(days) == 1 and narrow
    show_generation = not (narrow and len(generations) == 1)
    title = []
    if same_day:
        title.append(f"{next(iter(days))} (UTC)")
    if not show_generation:
        title.append(f"generation {next(iter(generations))}")
    table = Table(
        title=", ".join(title) or None,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=not narrow,
        padding=(0, 1, 0, 0) if narrow else (0, 1),
    )
    table.add_column("AT" if same_day else "AT (UTC)", no_wrap=True)
    table.add_column("EVENT", no_wrap=True)
    table.add_column("OUTCOME", no_wrap=True)
    table.add_column("STATE" if narrow else "TRANSITION", no_wrap=True)
    if show_generation:
        table.add_column("GEN", justify="right", no_wrap=True)
    table.add_column("BY", no_wrap=True)
    table.add_column("REASON / DATA", overflow="fold", min_width=12)
    for event, at in zip(events, times, strict=True):
        outcome = str(event.get("outcome") or event.get("status") or "")
        style = OUTCOME_STYLES.get(outcome, "")
        source, target = event.get("from_state"), event.get("to_state")
        if target and target != source:
            transition = f"→ {target}" if narrow else f"{source or '-'} → {target}"
        else:
            transition = str(source or "-")
        detail = event.get("reason") or (json.dumps(event["data"]) if event.get("data") else "")
        cells = [
            at.split(" ", 1)[-1] if same_day else at,
            escape(str(event.get("name"))),
            f"[{style}]{escape(outcome)}[/{style}]" if style else escape(outcome),
            escape(transition),
            *([str(event.get("generation", ""))] if show_generation else []),
            escape(str(event.get("by") or "")),
            escape(str(detail)),
        ]
        table.add_row(*cells)
    return table


# ------------------------------------------------------------------------------------------------
# jobs: create, event, wait, token, ready
# ------------------------------------------------------------------------------------------------


def _json_object(text: str | None, what: str) -> dict[str, Any] | None:
    """`--data`: inline JSON, `@file.json`, or `-` for stdin."""
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        value = json.loads(text)
    except ValueError as error:
        _fail(f"{what} is not valid JSON: {error}", "pass a JSON object, e.g. --data '{\"progress\": 0.5}'")
    if not isinstance(value, dict):
        _fail(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


DataOpt = Annotated[
    str | None,
    typer.Option("--data", help="Event data: a JSON object, @file.json, or - for stdin.", show_default=False),
]


@jobs_app.command(
    "create",
    epilog=_examples(
        'pipelinejobs jobs create pipe-1 --data \'{"sample": "S1"}\' --tag nightly',
        "pipelinejobs jobs create pipe-1 --data @params.json --child-of m1 --child-of m2 --json",
    ),
)
@_friendly
def jobs_create(
    ctx: typer.Context,
    pipeline_uuid: Annotated[str, typer.Argument(help="The pipeline that does the work.")],
    data: DataOpt = None,
    child_of: Annotated[
        list[str] | None, typer.Option("--child-of", help="An input id (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label.", show_default=False)] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    session: Annotated[str | None, typer.Option(help="A session label.", show_default=False)] = None,
    archive_path: Annotated[
        str | None, typer.Option(help="An s3:// path inside the archive bucket.", show_default=False)
    ] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Show the existing job instead of failing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a job (admin, or a producer key for a pipeline in its scope, which then owns it). The uuid
    derives from the pipeline, inputs and data: same inputs, same job.

    Prints the job, its first job token and its callback URL (both secrets: hand them to the job only).
    """
    from pipelinejobs.errors import JobExists

    client = _config(ctx).client()
    try:
        job = client.create_job(
            pipeline_uuid,
            _json_object(data, "--data") or {},
            child_of=child_of or None,
            name=name,
            tags=tag or None,
            session=session,
            archive_path=archive_path,
        )
    except JobExists as error:
        if not exist_ok:
            raise CliError(
                f"the job exists: {error.uuid}", f"see it with `pipelinejobs jobs show {error.uuid}`", 5
            ) from None
        job = client.get_job(str(error.uuid))
    result = {"job": job.raw, "token": job.token, "callback_url": job.callback_url}
    if as_json:
        _print_json(result)
        return
    out = _out()
    out.print(_jobs_table([job.raw], width=out.width))
    if job.token:
        out.print(f"[bold]job token[/bold]     {escape(job.token)}", soft_wrap=True)
    if job.callback_url:
        out.print(f"[bold]callback url[/bold]  {escape(job.callback_url)}", soft_wrap=True)


@jobs_app.command(
    "event",
    epilog=_examples(
        'pipelinejobs jobs event 3f0c2a4e-… run --data \'{"host": "node-7"}\'',
        "pipelinejobs jobs event 3f0c2a4e-… finish --wait",
        'pipelinejobs jobs event 3f0c2a4e-… update --job-token "$JOB_TOKEN" --data @progress.json --json',
    ),
)
@_friendly
def jobs_event(
    ctx: typer.Context,
    uuid: Annotated[str, typer.Argument(help="The job's uuid.")],
    name: Annotated[str, typer.Argument(help="The event: run, update, finish, fail, cancel, retire, …")],
    data: DataOpt = None,
    job_token: Annotated[
        str | None,
        typer.Option(
            "--job-token",
            envvar="PIPELINEJOBS_JOB_TOKEN",
            help="Send as the job (its job or callback token) instead of as admin.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the worker applied (or rejected) it.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 30.0,
    as_json: JsonOpt = False,
) -> None:
    """Post one lifecycle event. It is applied a moment later by the queue worker (use --wait to see
    the outcome). With --job-token, prints the token to use next (job tokens rotate)."""
    client = _config(ctx).client() if not job_token else _job_client(ctx)
    receipt = client.send_event(uuid, name, _json_object(data, "--data"), token=job_token or None)
    result: dict[str, Any] = {"uuid": uuid, "name": name, "event_id": receipt.get("event_id")}
    if job_token and receipt.get("token"):
        result["token"] = receipt["token"]
    if wait:
        event = client.wait_for_event(uuid, str(receipt.get("event_id")), timeout=timeout, token=job_token)
        result["status"] = event.get("status") or event.get("outcome")
        if event.get("reason"):
            result["reason"] = event["reason"]
    if as_json:
        _print_json(result)
    else:
        out = _out()
        status = result.get("status", "queued")
        style = OUTCOME_STYLES.get(status, "")
        out.print(
            f"{escape(name)} → {escape(uuid)}: [{style}]{status}[/{style}] (event {escape(str(result['event_id']))})"
        )
        if result.get("reason"):
            out.print(f"  reason: {escape(str(result['reason']))}")
        if "token" in result:
            out.print(f"  next token: {escape(result['token'])}", soft_wrap=True)
    if result.get("status") == "rejected":
        raise typer.Exit(5)


def _job_client(ctx: typer.Context) -> Client:
    """A client for commands sent with a job token: no admin credential needed."""
    config = _config(ctx)
    url = config.url
    if not url and config.stack_name:
        url = _stack_outputs(config.stack_name).get("ApiUrl")
    token, admin_key, api_key = config.principal()
    return _new_client(url, token, admin_key, api_key, key_source=config.key_source)


@jobs_app.command(
    "wait",
    epilog=_examples(
        "pipelinejobs jobs wait 3f0c2a4e-… FINISHED --timeout 600",
        "pipelinejobs jobs wait 3f0c2a4e-… CREATED   # after a reset",
    ),
)
@_friendly
def jobs_wait(
    ctx: typer.Context,
    uuid: Annotated[str, typer.Argument(help="The job's uuid.")],
    states: Annotated[list[str], typer.Argument(help="One or more states to wait for (or DELETED).")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Wait until a job reaches one of the states; exits 5 at once if it fails, is rejected or canceled."""
    job = _config(ctx).client().job(uuid).wait_for(*states, timeout=timeout)
    if as_json:
        _print_json(job.raw if job.get("uuid") else {"uuid": uuid, "state": "DELETED"})
    else:
        _out().print(f"{escape(uuid)}: {_state(job.state)}")


@jobs_app.command(
    "token",
    epilog=_examples(
        "pipelinejobs jobs token 3f0c2a4e-…",
        "pipelinejobs jobs token 3f0c2a4e-… --new-callback-url",
        "pipelinejobs jobs token 3f0c2a4e-… --json",
    ),
)
@_friendly
def jobs_token(
    ctx: typer.Context,
    uuid: Annotated[str, typer.Argument(help="The job's uuid.")],
    new_callback_url: Annotated[
        bool,
        typer.Option("--new-callback-url", help="Also replace the callback URL (the old one stops working)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Issue a fresh job token (admin, or the producer key that owns the job); show it and, for an
    admin, the job's current callback URL.

    The previous token stays valid for its grace period. With --new-callback-url the callback URL is
    replaced too, and the old one stops working at once (give the new one to the compute platform)."""
    response = _config(ctx).client().issue_token_response(uuid, rotate_callback=new_callback_url)
    if as_json:
        _print_json(response)
        return
    typer.echo(f"token:        {response['token']}")
    url = response.get("callback_url")
    if url:
        typer.echo(f"callback_url: {url}")
    elif _acting_key_id():
        typer.echo("callback_url: (shown to an admin only)")
    else:
        typer.echo("callback_url: (none: issue one with --new-callback-url)")


@jobs_app.command("ready", epilog=_examples("pipelinejobs jobs ready 3f0c2a4e-…"))
@_friendly
def jobs_ready(
    ctx: typer.Context,
    uuid: Annotated[str, typer.Argument(help="The job's uuid.")],
    as_json: JsonOpt = False,
) -> None:
    """Move a job from RESET to CREATED without waiting for its archive to be erased (admin)."""
    receipt = _config(ctx).client().ready(uuid)
    if as_json:
        _print_json({"uuid": uuid, "event_id": receipt.get("event_id")})
    else:
        _out().print(f"ready → {escape(uuid)}: queued (event {escape(str(receipt.get('event_id')))})")


# ------------------------------------------------------------------------------------------------
# jobs: bulk reset and delete
# ------------------------------------------------------------------------------------------------


def _targets(
    client: Client,
    uuids: list[str] | None,
    filters: dict[str, Any],
    every: bool,
    maximum: int,
    verb: str,
) -> list[dict[str, Any]]:
    """The jobs a bulk command acts on: the uuids given, or those matching the filters (at most
    `maximum`; more is refused, so a loose filter cannot reset a whole table)."""
    if uuids:
        if filters:
            _fail("give uuids or filters, not both")
        return [{"uuid": uuid} for uuid in dict.fromkeys(uuids)]
    if not filters and not every:
        _fail(
            "nothing selected: give uuids, a filter (--state, --pipeline, --tag, --updated-…), or --all-jobs",
            f"e.g. `pipelinejobs jobs {verb} --state FAILED --pipeline pipe-1`",
        )
    matching = list(client.iter_jobs(**filters, limit=maximum + 1))
    if len(matching) > maximum:
        _fail(
            f"more than {maximum} jobs match: refusing to {verb} them all",
            f"narrow the filter, or raise the guard with --max (e.g. --max {maximum * 10})",
        )
    return matching


def _bulk(
    ctx: typer.Context,
    verb: str,
    send: Callable[[Client, str], dict[str, Any]],
    uuids: list[str] | None,
    filters: dict[str, Any],
    every: bool,
    maximum: int,
    yes: bool,
    as_json: bool,
    wait_state: str | None,
    timeout: float,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    client = _config(ctx).client()
    targets = _targets(client, uuids, filters, every, maximum, verb)
    if not targets:
        if as_json:
            _print_json({"requested": 0, "accepted": [], "failed": []})
        else:
            _err().print(f"No jobs match: nothing to {verb}.")
        return
    err = _err()
    if not yes:
        if targets[0].get("state") is not None:
            err.print(_jobs_table(targets[:10], title=f"Jobs to {verb}", width=err.width))
            if len(targets) > 10:
                err.print(f"[dim]… and {len(targets) - 10} more[/dim]")
        noun = "job" if len(targets) == 1 else "jobs"
        if not typer.confirm(f"{verb.capitalize()} {len(targets)} {noun}?", default=False, err=True):
            _fail("aborted, nothing changed")
    accepted: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=as_json and not err.is_terminal,
    )
    with progress:
        task = progress.add_task(verb.capitalize(), total=len(targets))
        for target in targets:
            uuid = str(target["uuid"])
            try:
                receipt = send(client, uuid)
                accepted.append({"uuid": uuid, "event_id": receipt.get("event_id")})
            except (Unauthorized, Forbidden, ServiceUnavailable):
                raise  # the same for every other job: stop now
            except PipelineJobsError as error:
                failed.append(
                    {
                        "uuid": uuid,
                        "error": {"status": error.status, "code": error.code, "message": error.message},
                    }
                )
            progress.advance(task)
        if wait_state and accepted:
            waiting = progress.add_task(f"Waiting for {wait_state}", total=len(accepted))
            for item in accepted:
                try:
                    # first this command's own event (the job's state before it does not count), then
                    # the state it leads to (a reset erases the archive before CREATED)
                    handle = client.job(item["uuid"], pending_event=item["event_id"])
                    handle.wait_for(wait_state, timeout=timeout)
                    item["state"] = wait_state
                except PipelineJobsError as error:
                    item["error"] = {"code": error.code, "message": error.message}
                progress.advance(waiting)
    if as_json:
        _print_json({"requested": len(targets), "accepted": accepted, "failed": failed})
    else:
        out = _out()
        noun = "job" if len(accepted) == 1 else "jobs"
        out.print(f"{verb.capitalize()} requested for {len(accepted)} {noun}.")
        for item in failed:
            out.print(f"[red]✗[/red] {escape(item['uuid'])}: {escape(item['error']['message'])}")
        for item in accepted:
            if "error" in item:
                out.print(f"[yellow]![/yellow] {escape(item['uuid'])}: {escape(item['error']['message'])}")
    if failed or any("error" in item for item in accepted):
        raise typer.Exit(1)


AllJobsOpt = Annotated[bool, typer.Option("--all-jobs", help="Select every job (still limited by --max).")]
MaxOpt = Annotated[int, typer.Option("--max", help="Refuse if more jobs than this match.", min=1)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
UuidsArg = Annotated[
    list[str] | None, typer.Argument(help="Job uuids (or select with filters).", show_default=False)
]


@jobs_app.command(
    "reset",
    epilog=_examples(
        "pipelinejobs jobs reset 3f0c2a4e-… --yes",
        "pipelinejobs jobs reset --state FAILED --pipeline pipe-1 --max 500",
        "pipelinejobs jobs reset --tag nightly --keep-archive --wait --yes --json",
    ),
)
@_friendly
def jobs_reset(
    ctx: typer.Context,
    uuids: UuidsArg = None,
    state: StateOpt = None,
    pipeline: PipelineOpt = None,
    tag: TagOpt = None,
    updated_after: AfterOpt = None,
    updated_before: BeforeOpt = None,
    every: AllJobsOpt = False,
    keep_archive: Annotated[bool, typer.Option("--keep-archive", help="Do not erase the archives.")] = False,
    maximum: MaxOpt = 100,
    yes: YesOpt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until each job is CREATED again.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits for each job.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Reset jobs (admin): erase each archive, revoke its tokens, and rerun it as a new generation
    (back to CREATED once the archive is erased). Asks first; refuses more than --max jobs."""
    _bulk(
        ctx,
        "reset",
        lambda client, uuid: client.reset(uuid, keep_archive=keep_archive),
        uuids,
        _filters(state, pipeline, tag, updated_after, updated_before),
        every,
        maximum,
        yes,
        as_json,
        "CREATED" if wait else None,
        timeout,
    )


@jobs_app.command(
    "delete",
    epilog=_examples(
        "pipelinejobs jobs delete 3f0c2a4e-…",
        "pipelinejobs jobs delete --state CANCELED --updated-before 2024-01-01T00:00:00Z --yes",
        "pipelinejobs jobs delete --tag scratch --purge-archive --max 1000 --yes --json",
    ),
)
@_friendly
def jobs_delete(
    ctx: typer.Context,
    uuids: UuidsArg = None,
    state: StateOpt = None,
    pipeline: PipelineOpt = None,
    tag: TagOpt = None,
    updated_after: AfterOpt = None,
    updated_before: BeforeOpt = None,
    every: AllJobsOpt = False,
    purge_archive: Annotated[bool, typer.Option("--purge-archive", help="Erase the archives too.")] = False,
    maximum: MaxOpt = 100,
    yes: YesOpt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until each job is gone.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits for each job.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Delete jobs (admin): gone from every listing and lookup; archives are kept unless
    --purge-archive; the history stays readable by an admin. Asks first; refuses more than --max jobs."""
    _bulk(
        ctx,
        "delete",
        lambda client, uuid: client.delete(uuid, purge_archive=purge_archive),
        uuids,
        _filters(state, pipeline, tag, updated_after, updated_before),
        every,
        maximum,
        yes,
        as_json,
        "DELETED" if wait else None,
        timeout,
    )


# ------------------------------------------------------------------------------------------------
# keys: create, list, revoke (admin)
# ------------------------------------------------------------------------------------------------

KEY_STATUS_STYLES = {"active": "green", "expired": "yellow", "revoked": "red"}
_DURATION = re.compile(r"(\d+)\s*([hdw])", re.IGNORECASE)
_DURATION_SECONDS = {"h": 3600, "d": 86_400, "w": 7 * 86_400}
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{12}")


def _expiry(text: str, now: datetime) -> datetime:
    """`--expires`: a duration from now (12h, 30d, 8w) or an ISO-8601 date or time (naive = UTC)."""
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        moment = now + timedelta(seconds=int(duration[1]) * _DURATION_SECONDS[duration[2].lower()])
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            _fail(
                f"--expires {text!r} is neither a duration nor a date",
                "give a duration (12h, 30d, 90d, 8w) or an ISO-8601 date or time "
                "(2027-01-01, 2027-01-01T12:00:00Z)",
            )
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    if moment <= now:
        _fail(f"--expires {text!r} is not in the future", "e.g. --expires 90d")
    return moment


def _in_words(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 2 * 86_400:
        return f"in {round(seconds / 86_400)} days"
    if seconds >= 2 * 3600:
        return f"in {round(seconds / 3600)} hours"
    return f"in {max(1, round(seconds / 60))} minutes"


def _scope(pipelines: Iterable[str]) -> str:
    listed = list(pipelines)
    return "* (every pipeline)" if listed == ["*"] else ", ".join(listed)


def _key_status(status: str) -> str:
    style = KEY_STATUS_STYLES.get(status)
    return f"[{style}]{escape(status)}[/{style}]" if style else escape(status)


def _key_json(key: ProducerKey) -> dict[str, Any]:
    """A key's record for --json, as the API gives it (the key itself only when it was just issued)."""
    record: dict[str, Any] = {"id": key.id, "key": key.key} if key.key else {"id": key.id}
    record.update(
        label=key.label,
        pipelines=list(key.pipelines),
        status=key.status,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )
    return record


def _key_argument(text: str) -> str:
    """The id to act on: an id, or a whole key pasted by mistake (its id is taken; it is never shown)."""
    from pipelinejobs.client import _key_id

    return _key_id(text) or text


def _shown_id(text: str) -> str:
    return text if _KEY_ID.fullmatch(text) else "(not shown)"


@contextlib.contextmanager
def _managing_keys(key_id: str | None = None) -> Iterator[None]:
    """The errors of the /keys routes, said for keys: who may manage them, which id is unknown."""
    try:
        yield
    except Forbidden:
        acting = _acting_key_id()
        hint = (
            f"this acted as the producer key {acting} (--api-key / PIPELINEJOBS_KEY): pass --token or "
            "--admin-key, or unset PIPELINEJOBS_KEY"
            if acting
            else "use the admin credential: export PIPELINEJOBS_TOKEN=$(pipelinejobs admin-token)"
        )
        raise CliError("managing keys needs the admin credential", hint, 3) from None
    except NotFound:
        raise CliError(
            f"no producer key {_shown_id(key_id or '')}", "`pipelinejobs keys list` shows every key's id", 4
        ) from None


@keys_app.command(
    "create",
    epilog=_examples(
        "pipelinejobs keys create --label lab-a --pipeline pipe-1 --expires 90d",
        "pipelinejobs keys create --label nightly-reactor --pipeline pipe-1 --pipeline pipe-2 --expires 2027-01-01",
        "pipelinejobs keys create --label ops --all-pipelines --json | jq -r .key",
    ),
)
@_friendly
def keys_create(
    ctx: typer.Context,
    label: Annotated[
        str,
        typer.Option("--label", help="Who or what holds the key (1 to 100 characters).", show_default=False),
    ],
    pipeline: Annotated[
        list[str] | None,
        typer.Option(
            "--pipeline", help="A pipeline it may create jobs for (repeatable).", show_default=False
        ),
    ] = None,
    all_pipelines: Annotated[
        bool, typer.Option("--all-pipelines", help="Every pipeline (the scope `*`).")
    ] = False,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When it stops working: a duration (12h, 30d, 90d, 8w) or an ISO-8601 date or time "
            "(UTC unless it says otherwise). Never, when not given.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its record as JSON.")] = False,
) -> None:
    """Issue a producer key (admin): for a reactor, a pipeline's service or a person.

    The key creates jobs for the pipelines in its scope, reads, lists and drives the jobs it created,
    and rotates their tokens; never reset, ready, delete, another owner's jobs, or managing keys.

    It is printed this once (only its hash is stored): store it now, in the reactor's secret store.
    """
    if all_pipelines and pipeline:
        _fail("give --pipeline or --all-pipelines, not both")
    if not all_pipelines and not pipeline:
        _fail("which pipelines? give --pipeline (repeatable) or --all-pipelines", "e.g. --pipeline pipe-1")
    scope = ["*"] if all_pipelines else list(dict.fromkeys(pipeline or []))
    now = datetime.now(UTC)
    until = _expiry(expires, now) if expires else None
    client = _config(ctx).client()
    with _managing_keys():
        issued = client.keys.create(label, scope, expires_at=until)
    err = _err()
    if as_json:
        _print_json(_key_json(issued))
        err.print("[yellow]Store the key now: it cannot be shown again.[/yellow]")
        return
    out = _out()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("id", escape(issued.id))
    table.add_row("label", escape(issued.label))
    table.add_row("pipelines", escape(_scope(issued.pipelines)))
    expiry = "never" if until is None else f"{_iso(until)}  ({_in_words(until - now)})"
    table.add_row("expires", escape(expiry))
    out.print(table)
    out.print(f"[bold]key[/bold]        {escape(str(issued.key))}", soft_wrap=True)
    err.print()
    err.print(
        "[bold yellow]Store this key now:[/bold yellow] it is shown this once and cannot be shown again "
        "(only its hash is kept). A lost key is revoked and replaced, never recovered."
    )
    err.print(
        "[dim]→ the reactor uses it as [/dim]export PIPELINEJOBS_KEY=<the key above>[dim], which the SDK "
        "(Client()) and the CLI read; over HTTP, Authorization: Bearer <the key>[/dim]"
    )
    err.print(f"[dim]→ revoke it, at once: [/dim]pipelinejobs keys revoke {escape(issued.id)}")


@keys_app.command(
    "list",
    epilog=_examples(
        "pipelinejobs keys list", "pipelinejobs keys list --active", "pipelinejobs keys list --json"
    ),
)
@_friendly
def keys_list(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option("--active", help="Only keys that work now.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List producer keys, newest first (admin): id, label, scope, status, expiry. Never a key itself."""
    client = _config(ctx).client()
    with _managing_keys():
        keys = client.keys.list()
    shown = [key for key in keys if key.active] if active else keys
    if as_json:
        _print_json({"keys": [_key_json(key) for key in shown]})
        return
    if not shown:
        _err().print(
            "No active keys." if keys else "No producer keys yet: issue one with `pipelinejobs keys create`."
        )
        return
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    table.add_column("ID", no_wrap=True, min_width=12)
    table.add_column("LABEL", overflow="fold", min_width=5)
    table.add_column("PIPELINES", overflow="fold", min_width=9)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("EXPIRES (UTC)", no_wrap=True)
    for key in shown:
        expires = _short_time(key.expires_at)[:16] if key.expires_at else "never"
        table.add_row(
            escape(key.id),
            escape(key.label),
            escape(_scope(key.pipelines)),
            _key_status(key.status),
            escape(expires),
        )
    _out().print(table)
    working = sum(key.active for key in keys)
    _err().print(f"[dim]{len(shown)} key{'s' if len(shown) != 1 else ''} shown, {working} active[/dim]")


@keys_app.command(
    "revoke",
    epilog=_examples(
        "pipelinejobs keys revoke Xk3v9QmL2a_B", "pipelinejobs keys revoke Xk3v9QmL2a_B --yes --json"
    ),
)
@_friendly
def keys_revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (from `pipelinejobs keys list`).")],
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a producer key (admin), at once. Asks first, unless --yes.

    The API refuses the key from the next request, and the worker rejects its events accepted but not
    applied yet. What was applied stays; its jobs stay (reset or delete them as admin), and so do the
    job tokens their creation handed out.
    """
    key_id = _key_argument(key_id)
    client = _config(ctx).client()
    with _managing_keys(key_id):
        if not yes:
            record = next((key for key in client.keys.list() if key.id == key_id), None)
            if record is None:
                raise NotFound("no producer key with this id")
            if record.status == "revoked":
                if as_json:
                    _print_json(_key_json(record))
                else:
                    _out().print(
                        f"Key {escape(record.id)} ({escape(record.label)}) was already revoked "
                        f"at {_short_time(record.revoked_at)} UTC."
                    )
                return
            question = (
                f"Revoke key {record.id} ({record.label}; pipelines {_scope(record.pipelines)})? "
                "Its events still queued will be rejected"
            )
            if not typer.confirm(question, default=False, err=True):
                _fail("aborted, nothing changed")
        revoked = client.keys.revoke(key_id)
    if as_json:
        _print_json(_key_json(revoked))
        return
    _out().print(
        f"Revoked key {escape(revoked.id)} ({escape(revoked.label)}) at {_short_time(revoked.revoked_at)} "
        "UTC: refused from now on; its events still queued will be rejected."
    )


# ------------------------------------------------------------------------------------------------
# dlq: list and redrive
# ------------------------------------------------------------------------------------------------

DlqUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--dlq-url", envvar="PIPELINEJOBS_DLQ_URL", help="The dead-letter queue URL.", show_default=False
    ),
]
QueueUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--queue-url", envvar="PIPELINEJOBS_QUEUE_URL", help="The events queue URL.", show_default=False
    ),
]
DlqStackOpt = Annotated[
    str | None,
    typer.Option(
        "--stack-name",
        help="Read the queue URLs from this stack's outputs (DeadLetterQueueUrl, QueueUrl).",
        show_default=False,
    ),
]


def _queue_urls(
    ctx: typer.Context, dlq_url: str | None, queue_url: str | None, stack_name: str | None, need_queue: bool
) -> tuple[str, str | None]:
    stack_name = stack_name or _config(ctx).stack_name
    if (not dlq_url or (need_queue and not queue_url)) and not stack_name and _local_emulator():
        stack_name = LOCAL_STACK_NAME
    if (not dlq_url or (need_queue and not queue_url)) and stack_name:
        outputs = _stack_outputs(stack_name)
        dlq_url = dlq_url or outputs.get("DeadLetterQueueUrl")
        queue_url = queue_url or outputs.get("QueueUrl")
    if not dlq_url or (need_queue and not queue_url):
        missing = "--dlq-url" if not dlq_url else "--queue-url"
        _fail(
            f"which queue? {missing} is missing",
            "give --dlq-url/--queue-url (PIPELINEJOBS_DLQ_URL/PIPELINEJOBS_QUEUE_URL) or --stack-name",
        )
    return dlq_url, queue_url


def _describe_message(message: dict[str, Any]) -> dict[str, Any]:
    """A dead-lettered message, for display: never its token."""
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        body = None
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    described: dict[str, Any] = {
        "message_id": message.get("MessageId"),
        "uuid": body.get("uuid") if isinstance(body, dict) else None,
        "name": body.get("name") if isinstance(body, dict) else None,
        "event_id": body.get("event_id") if isinstance(body, dict) else None,
        "receive_count": int(attributes.get("ApproximateReceiveCount", 0) or 0),
        "sent_at": _iso(datetime.fromtimestamp(int(sent) / 1000, UTC)) if sent else None,
        "group_id": attributes.get("MessageGroupId"),
    }
    if isinstance(body, dict) and "data" in body:
        described["data"] = body["data"]
    if not isinstance(body, dict):
        described["body"] = "(not JSON)"
    return described


def _peek(sqs: Any, dlq_url: str, maximum: int, hold: int = 30) -> list[dict[str, Any]]:
    """Up to `maximum` messages of the queue, left in it: received with a short hold, then made
    visible again at once. (In a FIFO queue, messages of a group behind a held one are not seen.)"""
    seen: dict[str, dict[str, Any]] = {}
    try:
        while len(seen) < maximum:
            response = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(10, maximum - len(seen)),
                VisibilityTimeout=hold,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
            )
            messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            for message in messages:
                seen[message["MessageId"]] = message
    finally:
        handles = [m["ReceiptHandle"] for m in seen.values()]
        for start in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(handles[start : start + 10])
                ],
            )
    return list(seen.values())


def _queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))


@dlq_app.command(
    "list",
    epilog=_examples(
        "pipelinejobs dlq list",
        "pipelinejobs dlq list --stack-name pipelinejobs-prod --max 50 --json",
        "pipelinejobs dlq list --dlq-url https://sqs.eu-west-1.amazonaws.com/123456789012/x-dlq.fifo",
    ),
)
@_friendly
def dlq_list(
    ctx: typer.Context,
    dlq_url: DlqUrlOpt = None,
    stack_name: DlqStackOpt = None,
    maximum: Annotated[int, typer.Option("--max", help="Show at most this many messages.", min=1)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Show the messages in the dead-letter queue (events the worker failed to apply after every
    retry) without removing them. Tokens in the messages are never shown."""
    dlq, _ = _queue_urls(ctx, dlq_url, None, stack_name, need_queue=False)
    sqs = _boto3_client("sqs")
    depth = _queue_depth(sqs, dlq)
    messages = [_describe_message(m) for m in _peek(sqs, dlq, maximum)] if depth else []
    if as_json:
        _print_json({"queue_url": dlq, "approximate_count": depth, "messages": messages})
        return
    if not messages:
        _err().print(
            "The dead-letter queue is empty."
            if not depth
            else f"{depth} messages, none visible now (in flight)."
        )
        return
    table = Table(header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("JOB UUID", no_wrap=True)
    table.add_column("EVENT", no_wrap=True)
    table.add_column("EVENT ID", overflow="fold")
    table.add_column("RECEIVES", justify="right")
    table.add_column("SENT (UTC)", no_wrap=True)
    for message in messages:
        table.add_row(
            escape(str(message.get("uuid") or "?")),
            escape(str(message.get("name") or "?")),
            escape(str(message.get("event_id") or "-")),
            str(message["receive_count"]),
            _short_time(message.get("sent_at")),
        )
    _out().print(table)
    _err().print(f"[dim]{len(messages)} shown, about {depth} in the queue[/dim]")


@dlq_app.command(
    "redrive",
    epilog=_examples(
        "pipelinejobs dlq redrive",
        "pipelinejobs dlq redrive --max 10 --yes",
        "pipelinejobs dlq redrive --stack-name pipelinejobs-prod --yes --json",
    ),
)
@_friendly
def dlq_redrive(
    ctx: typer.Context,
    dlq_url: DlqUrlOpt = None,
    queue_url: QueueUrlOpt = None,
    stack_name: DlqStackOpt = None,
    maximum: Annotated[
        int | None, typer.Option("--max", help="Move at most this many messages.", min=1)
    ] = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Move dead-lettered events back to the events queue, to be applied again (each event is still
    applied at most once). Fix the cause first: `pipelinejobs dlq list` shows what is there."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from pipelinejobs.dlq import redrive

    dlq, queue = _queue_urls(ctx, dlq_url, queue_url, stack_name, need_queue=True)
    assert queue is not None
    sqs = _boto3_client("sqs")
    depth = _queue_depth(sqs, dlq)
    if depth == 0:
        if as_json:
            _print_json({"moved": 0})
        else:
            _err().print("The dead-letter queue is empty: nothing to redrive.")
        return
    total = depth if maximum is None else min(depth, maximum)
    if not yes and not typer.confirm(
        f"Move about {total} messages back to the events queue?", default=False, err=True
    ):
        _fail("aborted, nothing moved")
    err = _err()
    progress = Progress(
        TextColumn("Redrive"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        disable=as_json and not err.is_terminal,
    )
    with progress:
        task = progress.add_task("redrive", total=total)
        moved = redrive(sqs, dlq, queue, max=maximum, on_moved=lambda: progress.advance(task))
    if as_json:
        _print_json({"moved": moved})
    else:
        _out().print(f"Moved {moved} message{'s' if moved != 1 else ''} back to the events queue.")


# ------------------------------------------------------------------------------------------------
# serve and demo (the local stack), when that module is there
# ------------------------------------------------------------------------------------------------

try:
    from pipelinejobs.local.commands import register as _register_local_commands
except ImportError:  # the local stack's commands are optional
    pass
else:
    _register_local_commands(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
