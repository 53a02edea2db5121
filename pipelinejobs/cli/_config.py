"""The root options (one principal: the admin or a producer key), the client, a deployed stack's outputs."""

from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipelinejobs.cli._app import _err, app
from pipelinejobs.cli._errors import _fail

if TYPE_CHECKING:
    from pipelinejobs.client import Client


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


def _acting_key_id() -> str | None:
    """The id of the producer key the current command acts with, if its client was made with one."""
    config = _CURRENT.get()
    client = config._client if config is not None else None
    return client.key_id if client is not None else None
