"""`pipelinejobs dlq list|redrive`: the dead-letter queue of the events queue."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from jobcore.adapters import dead_letters
from pipelinejobs.cli._app import (
    LOCAL_STACK_NAME,
    JsonOpt,
    YesOpt,
    _err,
    _examples,
    _out,
    _print_json,
    _short_time,
    dlq_app,
)
from pipelinejobs.cli._config import _boto3_client, _config, _local_emulator, _stack_outputs
from pipelinejobs.cli._errors import _fail, _friendly

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
    depth = dead_letters.depth(sqs, dlq)
    messages = [dead_letters.describe(m) for m in dead_letters.peek(sqs, dlq, maximum)] if depth else []
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

    dlq, queue = _queue_urls(ctx, dlq_url, queue_url, stack_name, need_queue=True)
    assert queue is not None
    sqs = _boto3_client("sqs")
    depth = dead_letters.depth(sqs, dlq)
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
        moved = dead_letters.redrive(sqs, dlq, queue, max=maximum, on_moved=lambda: progress.advance(task))
    if as_json:
        _print_json({"moved": moved})
    else:
        _out().print(f"Moved {moved} message{'s' if moved != 1 else ''} back to the events queue.")
