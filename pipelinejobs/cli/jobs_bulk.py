"""`pipelinejobs jobs reset|delete`: one job or every job a filter selects, with confirmation and progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from pipelinejobs.cli._app import JsonOpt, YesOpt, _err, _examples, _out, _print_json, jobs_app
from pipelinejobs.cli._config import _config
from pipelinejobs.cli._errors import _fail, _friendly
from pipelinejobs.cli.jobs import (
    AfterOpt,
    BeforeOpt,
    PipelineOpt,
    StateOpt,
    TagOpt,
    _filters,
    _jobs_table,
)
from pipelinejobs.errors import (
    Forbidden,
    PipelineJobsError,
    ServiceUnavailable,
    Unauthorized,
)

if TYPE_CHECKING:
    from pipelinejobs.client import Client


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
