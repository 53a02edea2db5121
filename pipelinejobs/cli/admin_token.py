"""`pipelinejobs admin-token`: the admin token of the current window, from the admin key."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from pipelinejobs.cli._app import LOCAL_STACK_NAME, _err, _examples, _iso, _print_json, app
from pipelinejobs.cli._config import _config, _local_emulator, _read_parameter, _stack_outputs
from pipelinejobs.cli._errors import _fail, _friendly


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
