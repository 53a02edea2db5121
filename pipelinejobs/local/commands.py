"""`pipelinejobs serve` and `pipelinejobs demo`, registered on the main CLI by `register(app)`.

Also runnable alone: `python -m pipelinejobs.local.commands serve`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["main", "register"]

DEFAULT_URL = "http://127.0.0.1:8765"
DEFAULT_DATA_DIR = ".pipelinejobs"  # persistence.DEFAULT_DATA_DIR (not imported: the CLI starts without moto)


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (docker stop, systemd, kill) shuts down as cleanly as Ctrl-C; and SIGINT always does,
    even when serve was started with it ignored (a script's background job, `cmd &`, inherits SIGINT
    ignored, and Python then leaves it so)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def wait_for_interrupt(poll: float = 0.5, *, give_up: Callable[[], bool] = lambda: False) -> None:
    """Sleep until Ctrl-C (KeyboardInterrupt), in short naps: a signal delivered to another thread is
    handled by the main thread only when it next runs, so one long sleep could ignore it for that long.
    (`give_up`: return instead once it is true; for tests.)"""
    while not give_up():
        time.sleep(poll)


def _valid_until(lifetime: int) -> str:
    from jobcore.tokens import admin_window

    until = datetime.fromtimestamp((admin_window(time.time(), lifetime) + 2) * lifetime, UTC)
    return until.astimezone().strftime("%H:%M")


# What the local stack imports beyond the command line's extra (`pipelinejobs[local]`).
_LOCAL_MODULES = ("moto", "yaml", "pynamodb", "aws_lambda_powertools", "flask")


def _require_local_extra(command: str) -> None:
    """Exit with what to install when the local stack's dependencies are missing (not a traceback)."""
    import importlib.util

    missing = [name for name in _LOCAL_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        _err().print(
            f"[red]error:[/red] `pipelinejobs {command}` runs the local stack, which needs its extra "
            f"(missing: {', '.join(missing)}).\nnext: pip install 'pipelinejobs\\[local]'"
        )
        raise typer.Exit(1)


def serve(
    port: Annotated[int, typer.Option(help="Port of the HTTP API on 127.0.0.1 (0: any free port).")] = 8765,
    aws_port: Annotated[
        int | None,
        typer.Option(
            "--aws-port",
            help="Port of the emulated AWS endpoint (moto) on 127.0.0.1; by default the one of the last run on --data-dir when it is free, else a free one.",
            show_default=False,
        ),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key",
            envvar="PIPELINEJOBS_ADMIN_KEY",
            help="The admin key to use (stored in SSM, kept in --data-dir); by default the one kept there, generated at the first start.",
            show_default=False,
        ),
    ] = None,
    aws: Annotated[
        bool,
        typer.Option(
            "--aws",
            help="Use a deployed stack (--stack-name) instead of the emulator: the API runs here against its resources.",
        ),
    ] = False,
    stack_name: Annotated[
        str | None,
        typer.Option(
            "--stack-name",
            envvar="PIPELINEJOBS_STACK_NAME",
            help="The deployed stack, with --aws.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print a line per event.")] = False,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            envvar="PIPELINEJOBS_DATA_DIR",
            help="Where the local stack keeps its data (jobs, history, archive, producer keys, queued "
            "events, the admin key, the ports): started again on it, it comes back as it was.",
        ),
    ] = Path(DEFAULT_DATA_DIR),
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Start afresh: delete what the data folder holds first (asks to confirm on a terminal).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --fresh: do not ask to confirm.")] = False,
) -> None:
    """Start the local stack: AWS emulated by moto on loopback, resources from template.yaml, the HTTP
    API, the queue worker and the notifier. Logs one line per event until Ctrl-C.

    Its data lives in --data-dir (.pipelinejobs/ in the working directory): Ctrl-C and start again, and
    every job, history entry, archived file, producer key and queued event is there, with the same
    admin key (exported tokens keep working) and the same AWS endpoint port. --fresh starts afresh."""
    _require_local_extra("serve")
    from pipelinejobs.local.persistence import DataFolder
    from pipelinejobs.local.resources import LocalStackError
    from pipelinejobs.local.stack import LocalStack

    err = _err()
    if fresh and not aws and DataFolder(data_dir).holds_data() and not yes:
        if not sys.stdin.isatty():
            err.print(
                f"[bold red]Error:[/bold red] --fresh deletes the data in {escape(str(data_dir))}; "
                "add --yes to do so without a terminal to confirm"
            )
            raise typer.Exit(2)
        if not typer.confirm(
            f"Delete every job, history entry, archived file and the admin key kept in {data_dir}?"
        ):
            err.print("Nothing deleted.")
            raise typer.Exit(1)
    stack = LocalStack(
        port=port,
        aws_port=aws_port,
        admin_key=admin_key,
        quiet=quiet,
        aws=aws,
        stack_name=stack_name if aws else None,
        data_dir=None if aws else data_dir,
        fresh=fresh,
    )
    with _terminate_as_interrupt():
        try:
            with err.status("Starting the local stack…" if not aws else f"Reading the stack {stack_name}…"):
                stack.start()
        except LocalStackError as error:
            err.print(f"[bold red]Error:[/bold red] {escape(str(error))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            stack.stop()
            raise typer.Exit(130) from None
        try:
            _print_banner(stack)
            wait_for_interrupt()
        except KeyboardInterrupt:
            pass
        finally:
            err.print("[dim]Stopping…[/dim]")
            folder = stack.data_folder.path if stack.data_folder is not None else None
            stack.stop()
            if folder is not None:
                err.print(
                    f"Stopped. The data is kept in {escape(str(folder))}: `pipelinejobs serve` there brings it back."
                )
            else:
                err.print("Stopped.")


def _print_banner(stack: object) -> None:
    from pipelinejobs.local.stack import LocalStack

    assert isinstance(stack, LocalStack)
    out = _out()
    token = stack.admin_token()
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    if stack.aws:
        table.add_row("Deployed API", escape(stack.deployed_api_url or "(no ApiUrl output)"))
        table.add_row(
            "Local API", f"{stack.api_url}  [dim](the API function run here, against the stack)[/dim]"
        )
        table.add_row("Stack", escape(str(stack.stack_name)))
    else:
        table.add_row("API", stack.api_url)
        table.add_row(
            "Dashboard", f"{stack.api_url}/  [dim](in a browser; sign in with the admin token)[/dim]"
        )
        table.add_row(
            "AWS endpoint", f"{stack.aws_endpoint}  [dim](moto; credentials testing/testing, us-east-1)[/dim]"
        )
        if stack.aws_port_note:
            table.add_row("", f"[yellow]{escape(stack.aws_port_note)}: re-export AWS_ENDPOINT_URL[/yellow]")
        if stack.data_folder is not None:
            table.add_row(
                "Data", f"{escape(str(stack.data_folder.path))}  [dim]{escape(_data_note(stack))}[/dim]"
            )
        table.add_row("Queue", escape(stack.resources.queue_url))
        table.add_row("Dead letters", escape(stack.resources.dead_letter_queue_url))
        table.add_row(
            "Archive", f"s3://{escape(stack.resources.bucket)}/{escape(stack.resources.archive_prefix)}/"
        )
        for function_id, (seconds, expression) in stack.schedule_periods().items():
            table.add_row(
                "Schedule",
                f"{escape(function_id)} every {seconds:g} s  [dim](the template's {escape(expression)}: "
                "jobs past a deadline are failed)[/dim]",
            )
    table.add_row("Admin key", escape(stack.admin_key_source))
    table.add_row(
        "Admin token", f"{token}  [dim](valid until {_valid_until(stack.admin_token_lifetime)})[/dim]"
    )
    out.print()
    out.print("[bold green]pipelinejobs is up[/bold green]")
    out.print(table)
    out.print()
    url = stack.deployed_api_url if stack.aws and stack.deployed_api_url else stack.api_url
    out.print("[dim]In another shell:[/dim]")
    out.print(f"  export PIPELINEJOBS_URL={url} PIPELINEJOBS_TOKEN={token}", soft_wrap=True)
    if not stack.aws:
        out.print(
            f"  export AWS_ENDPOINT_URL={stack.aws_endpoint} AWS_ACCESS_KEY_ID=testing "
            "AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1  [dim]# for admin-token, dlq, boto3[/dim]",
            soft_wrap=True,
        )
    out.print("  pipelinejobs demo   [dim]# or: pipelinejobs jobs list[/dim]")
    out.print(
        "  pipelinejobs keys create --label my-reactor --pipeline <id>   "
        "[dim]# a reactor gets its own key, not the admin token[/dim]"
    )
    out.print()
    out.print("[dim]Events are logged below; Ctrl-C stops.[/dim]")


def _data_note(stack: object) -> str:
    from pipelinejobs.local.stack import LocalStack

    assert isinstance(stack, LocalStack)
    counts = stack.restored
    if counts is None:
        return "(new; kept across restarts, `--fresh` starts afresh)"
    jobs, messages, objects = (counts.get(name, 0) for name in ("jobs", "messages", "objects"))
    return (
        f"(restored: {_count(jobs, 'job')}, {_count(messages, 'queued or dead-lettered event')}, "
        f"{_count(objects, 'archive object')}; `--fresh` starts afresh)"
    )


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def demo(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="PIPELINEJOBS_URL",
            help=f"A running API. Default: {DEFAULT_URL} if it answers, else a local stack started for the demo.",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="An admin token for --url (default: PIPELINEJOBS_TOKEN or PIPELINEJOBS_ADMIN_KEY).",
            show_default=False,
        ),
    ] = None,
    aws_endpoint: Annotated[
        str | None,
        typer.Option(
            "--aws-endpoint",
            envvar="AWS_ENDPOINT_URL",
            help="The running local stack's AWS endpoint, to write archive objects (skipped without it).",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print the demo stack's event lines.")
    ] = False,
) -> None:
    """Drive one job through create → run → update → finish, callbacks, archive outputs, an admin reset
    that erases them, and a delete, printing each step."""
    _require_local_extra("demo")
    from pipelinejobs.errors import PipelineJobsError
    from pipelinejobs.local.demo import run_demo
    from pipelinejobs.local.stack import LocalStack, wait_for_port

    err = _err()
    out = _out()
    if url is None and wait_for_port(DEFAULT_URL):
        url = DEFAULT_URL
        err.print(f"[dim]Using the API at {DEFAULT_URL}.[/dim]")
    try:
        if url is not None:
            key = None if token else os.environ.get("PIPELINEJOBS_ADMIN_KEY") or None
            token = token or os.environ.get("PIPELINEJOBS_TOKEN") or None
            if not token and not key and aws_endpoint:
                key = _local_admin_key(aws_endpoint)
            if not token and not key:
                err.print("[bold red]Error:[/bold red] no admin credential for " + escape(url))
                err.print(
                    "[dim]→ give --token, or export PIPELINEJOBS_TOKEN as `pipelinejobs serve` prints it[/dim]"
                )
                raise typer.Exit(3)
            s3 = _s3_client(aws_endpoint) if aws_endpoint else None
            if s3 is None:
                err.print("[dim]No --aws-endpoint (AWS_ENDPOINT_URL): the archive steps are skipped.[/dim]")
            run_demo(url, token=token, admin_key=key, s3=s3, console=out)
            return
        with err.status("Starting a local stack for the demo…"):
            stack = LocalStack(port=0, aws_port=0, quiet=not verbose).start()
        try:
            err.print(f"[dim]Local stack at {stack.api_url} (AWS endpoint {stack.aws_endpoint}).[/dim]")
            run_demo(
                stack.api_url,
                admin_key=stack.admin_key,
                s3=stack.client("s3"),
                console=out,
                drain=stack.drain,
            )
        finally:
            stack.stop()
    except PipelineJobsError as error:
        err.print(f"[bold red]Error:[/bold red] {escape(str(error))}")
        raise typer.Exit(1) from None


def _s3_client(endpoint: str) -> object:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
    )


def _local_admin_key(endpoint: str) -> str | None:
    """The local stack's admin key, from its SSM parameter in the emulator (AWS_ENDPOINT_URL)."""
    import boto3

    from pipelinejobs.local.stack import DEFAULT_STACK_NAME

    try:
        ssm = boto3.client(
            "ssm",
            endpoint_url=endpoint,
            region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
        )
        response = ssm.get_parameter(Name=f"/{DEFAULT_STACK_NAME}/admin-key", WithDecryption=True)
    except Exception:
        return None
    return str(response["Parameter"]["Value"])


def register(app: typer.Typer) -> None:
    """Add `serve` and `demo` to a Typer app (the main CLI's)."""
    app.command(
        "serve",
        epilog="[bold]Examples[/bold]\n\n  [cyan]$ pipelinejobs serve[/cyan]\n\n"
        "  [cyan]$ pipelinejobs serve --port 0 --quiet[/cyan]\n\n"
        "  [cyan]$ pipelinejobs serve --data-dir ~/lab-jobs[/cyan]\n\n"
        "  [cyan]$ pipelinejobs serve --fresh[/cyan]   (deletes the kept data first)\n\n"
        "  [cyan]$ pipelinejobs serve --aws --stack-name pipelinejobs-prod[/cyan]",
    )(serve)
    app.command(
        "demo",
        epilog="[bold]Examples[/bold]\n\n  [cyan]$ pipelinejobs demo[/cyan]\n\n"
        "  [cyan]$ pipelinejobs demo --url http://127.0.0.1:8765 --token $PIPELINEJOBS_TOKEN[/cyan]",
    )(demo)


def main(argv: list[str] | None = None) -> None:
    app = typer.Typer(
        name="pipelinejobs",
        help="The pipelinejobs local stack.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
    )
    register(app)
    app(args=argv if argv is not None else sys.argv[1:], prog_name="pipelinejobs")


if __name__ == "__main__":
    main()
