"""`pipelinejobs jobs list|show|history|outputs|create|event|wait|token|ready`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from pipelinejobs.cli._app import (
    OUTCOME_STYLES,
    STATE_STYLES,
    JsonOpt,
    _duration_seconds,
    _err,
    _examples,
    _out,
    _print_json,
    _short_time,
    _state,
    jobs_app,
)
from pipelinejobs.cli._config import _acting_key_id, _config, _new_client, _stack_outputs
from pipelinejobs.cli._errors import CliError, _fail, _friendly

if TYPE_CHECKING:
    from pipelinejobs.client import Client

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


def _filters(
    state: str | None,
    pipeline: str | None,
    tag: str | None,
    after: str | None,
    before: str | None,
    owner: str | None = None,
    child_of: str | None = None,
) -> dict[str, Any]:
    return {
        key: value
        for key, value in {
            "state": state.upper() if state else None,
            "pipeline_uuid": pipeline,
            "tag": tag,
            "updated_after": after,
            "updated_before": before,
            "owner": owner or None,
            "child_of": child_of or None,
        }.items()
        if value is not None
    }


OwnerOpt = Annotated[
    str | None,
    typer.Option(
        "--owner",
        help="Only jobs created by this producer key's id, or `admin` (an admin's filter).",
        show_default=False,
    ),
]
ChildOfOpt = Annotated[
    str | None,
    typer.Option(
        "--child-of",
        help="Only jobs of this input id (their child_of holds it), newest first by creation.",
        show_default=False,
    ),
]


def _elapsed(seconds: Any) -> str:
    """A duration in at most six characters: 42.5s, 4m05s, 2h03m, 3d04h ('' for none)."""
    if not isinstance(seconds, int | float):
        return ""
    whole = int(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86_400}d{whole % 86_400 // 3600:02d}h"


def _jobs_table(jobs: Iterable[dict[str, Any]], title: str | None = None, width: int | None = None) -> Table:
    """One row per job; NAME and TAGS only when some job has one, RUN (run_seconds) only when some job
    ran. The uuid, state, generation and time always show whole: on a terminal too narrow for every
    column (`width`), NAME and TAGS are left out (`jobs show` and `--json` have them) and the time loses
    its seconds; then RUN too, if it still does not fit (an 80-column terminal: 100 have room for it)."""
    listed = list(jobs)
    rows = [
        {
            "uuid": str(job.get("uuid")),
            "state": str(job.get("state") or "-"),
            "gen": str(job.get("generation", "")),
            "pipeline": str(job.get("pipeline_uuid") or ""),
            "name": str(job.get("name") or ""),
            "tags": ", ".join(job.get("tags") or []),
            "run": _elapsed(job.get("run_seconds")),
            "updated": _short_time(job.get("updated_at")),
        }
        for job in listed
    ]
    optional = [key for key in ("name", "tags") if any(row[key] for row in rows)]
    run = [key for key in ("run",) if any(row[key] for row in rows)]

    def widest(key: str, header: str) -> int:
        return max([len(header)] + [len(row[key]) for row in rows])

    def natural(optional: list[str], run: list[str], pipeline: int, time: int) -> int:
        columns = 36 + widest("state", "STATE") + 3 + min(widest("pipeline", "PIPELINE"), pipeline) + time
        columns += sum(min(widest(key, key), 16) for key in optional) + sum(widest(key, key) for key in run)
        return columns + 2 * (4 + len(optional) + len(run)) + 1

    if width is not None and natural(optional, run, 24, 19) > width:
        optional = []
        for row in rows:
            row["updated"] = row["updated"][:16]
        if natural([], run, len("PIPELINE"), 16) > width:
            run = []
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
    for key in run:
        table.add_column(key.upper(), justify="right", no_wrap=True, min_width=widest(key, key))
    table.add_column("UPDATED (UTC)", no_wrap=True, min_width=len(rows[0]["updated"]) if rows else 13)
    for row in rows:
        cells = {**{key: escape(value) for key, value in row.items()}, "state": _state(row["state"])}
        table.add_row(
            *(cells[key] for key in ("uuid", "state", "gen", "pipeline", *optional, *run, "updated"))
        )
    return table


@jobs_app.command(
    "counts",
    epilog=_examples(
        "pipelinejobs jobs counts",
        "pipelinejobs jobs counts --pipeline pipe-1 --updated-after 2026-12-01T00:00:00Z",
        "pipelinejobs jobs counts --tag nightly --json",
    ),
)
@_friendly
def jobs_counts(
    ctx: typer.Context,
    state: StateOpt = None,
    pipeline: PipelineOpt = None,
    tag: TagOpt = None,
    updated_after: AfterOpt = None,
    updated_before: BeforeOpt = None,
    owner: OwnerOpt = None,
    child_of: ChildOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How many jobs are in each state, for the same filters as `jobs list` (a key: its own jobs)."""
    filters = _filters(state, pipeline, tag, updated_after, updated_before, owner, child_of)
    answer = _config(ctx).client().count_jobs(**filters)
    if as_json:
        _print_json(answer)
        return
    counts = {s: n for s, n in (answer.get("counts") or {}).items() if n}
    if not counts:
        _err().print("No jobs match." if filters else "No jobs yet.")
        return
    out = _out()
    widest = max(counts.values())
    room = max(10, min(out.width, 80) - 28)  # state (12) + count (9) + gaps, the bar takes the rest
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    for state_name, n in sorted(counts.items(), key=lambda item: -item[1]):
        bar = "█" * max(1, round(room * n / widest))
        style = STATE_STYLES.get(state_name, "")
        table.add_row(_state(state_name), f"{n:,}", f"[{style}]{bar}[/{style}]" if style else bar)
    out.print(table)
    total = f"{answer.get('total', 0):,} jobs"
    if not answer.get("complete", True):
        total += " counted; more match than one call counts (narrow the filters)"
    _err().print(f"[dim]{total}[/dim]")


@jobs_app.command(
    "list",
    epilog=_examples(
        "pipelinejobs jobs list",
        "pipelinejobs jobs list --state FAILED --pipeline pipe-1 --limit 200",
        "pipelinejobs jobs list --tag nightly --updated-after 2024-05-01T00:00:00Z --all --json",
        "pipelinejobs jobs list --owner Xk3v9QmL2a_B   # the jobs of one producer key",
        "pipelinejobs jobs list --child-of m1 --all   # every job that analysed input m1",
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
    owner: OwnerOpt = None,
    child_of: ChildOfOpt = None,
    limit: Annotated[int, typer.Option(help="Show at most this many jobs.", min=1)] = 50,
    all_jobs: Annotated[
        bool, typer.Option("--all", help="Show every matching job (pages through all).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first, optionally filtered: every job as the admin, its own with a producer key."""
    client = _config(ctx).client()
    filters = _filters(state, pipeline, tag, updated_after, updated_before, owner, child_of)
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
    """Show one job: state, generation, timestamps, durations, inputs, archive path, data and allowed
    events."""
    job = _config(ctx).client().get_job_data(uuid)
    if as_json:
        _print_json(job)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    first = ["uuid", "state", "generation", "last_event", "pipeline_uuid", "name", "tags", "archive_path"]
    first += ["child_of", "pending_seconds", "run_seconds"]
    skip = {"data", "allowed_events", "callback_url"}
    for field in first + sorted(k for k in job if k not in first and k not in skip):
        value = job.get(field)
        if value is None or value == []:
            continue
        if field == "state":
            rendered = _state(value)
        elif field in ("pending_seconds", "run_seconds") and isinstance(value, int | float):
            rendered = f"{value:.3f} s" + (f" ({_elapsed(value)})" if value >= 60 else "")
            if field == "run_seconds" and job.get("state") == "RUNNING":
                rendered += " so far"
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
        'pipelinejobs jobs create pipe-1 --data \'{"sample": "S2"}\' --heartbeat 10m --timeout 6h',
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
    heartbeat: Annotated[
        str | None,
        typer.Option(
            "--heartbeat",
            metavar="DURATION",
            help="Fail the job if it stays silent this long while running (90, 90s, 15m, 2h, 1d).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            help="Fail the job if it has not finished this long after `run` (same forms).",
            show_default=False,
        ),
    ] = None,
    no_deadlines: Annotated[
        bool,
        typer.Option(
            "--no-deadlines",
            help="No deadline the options above do not set, whatever the pipeline's default.",
        ),
    ] = False,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Show the existing job instead of failing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a job (admin, or a producer key for a pipeline in its scope, which then owns it). The uuid
    derives from the pipeline, inputs and data: same inputs, same job.

    Deadlines: without --heartbeat / --timeout the pipeline's default applies (the stack's
    PipelineDeadlines parameter), unless --no-deadlines. A job that misses one is failed by the system.

    Prints the job, its first job token and its callback URL (both secrets: hand them to the job only).
    """
    from pipelinejobs.client import PIPELINE_DEFAULT
    from pipelinejobs.errors import JobExists

    unset = None if no_deadlines else PIPELINE_DEFAULT
    heartbeat_seconds = _duration(heartbeat, "--heartbeat") if heartbeat is not None else unset
    timeout_seconds = _duration(timeout, "--timeout") if timeout is not None else unset
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
            heartbeat_seconds=heartbeat_seconds,
            timeout_seconds=timeout_seconds,
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


def _duration(text: str, option: str) -> int:
    """Seconds from `90`, `90s`, `15m`, `2h` or `1d` (the API checks the range: 1 s to 366 days)."""
    seconds = _duration_seconds(text, units="smhd")
    if seconds is None:
        raise CliError(
            f"{option} must be a whole number of seconds, or one with s, m, h or d (90, 15m, 2h, 1d); "
            f"not {text!r}",
            "see `pipelinejobs jobs create --help`",
            2,
        )
    return seconds


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
# jobs outputs
# ------------------------------------------------------------------------------------------------


def _size(size: Any) -> str:
    """Bytes in at most eight characters: 512 B, 1.5 KiB, 20.0 MiB, 3.1 GiB."""
    if not isinstance(size, int | float):
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _outputs_table(outputs: list[dict[str, Any]]) -> Table:
    """KEY, SIZE, MODIFIED (UTC), and LEVEL when the indexer labelled any (`data.index_patterns`): the
    size and time always whole, a long key or level folded within its column, so that it fits 80
    columns (the links are in --json)."""
    table = Table(
        header_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    levels = any(output.get("level") is not None for output in outputs)
    table.add_column("KEY", overflow="fold", min_width=12)
    if levels:
        table.add_column("LEVEL", overflow="fold", min_width=5, max_width=12)
    table.add_column("SIZE", justify="right", no_wrap=True, min_width=8)
    table.add_column("MODIFIED (UTC)", no_wrap=True, min_width=19)
    for output in outputs:
        level = [escape(str(output.get("level") or ""))] if levels else []
        table.add_row(
            escape(str(output.get("key"))),
            *level,
            _size(output.get("size")),
            _short_time(output.get("modified")),
        )
    return table


@jobs_app.command(
    "outputs",
    epilog=_examples(
        "pipelinejobs jobs outputs 3f0c2a4e-…",
        "pipelinejobs jobs outputs 3f0c2a4e-… --all --json | jq -r '.outputs[].url'",
        "pipelinejobs jobs outputs 3f0c2a4e-… --all --download ./results",
    ),
)
@_friendly
def jobs_outputs(
    ctx: typer.Context,
    uuid: Annotated[str, typer.Argument(help="The job's uuid.")],
    limit: Annotated[int, typer.Option(help="Show at most this many outputs.", min=1)] = 100,
    all_outputs: Annotated[
        bool, typer.Option("--all", help="Show every output (pages through all).")
    ] = False,
    download: Annotated[
        Path | None,
        typer.Option(
            "--download",
            metavar="DIR",
            help="Also download the outputs shown into DIR, keeping their folders.",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List a job's outputs: the objects under its archive path, in key order, with their size and
    time (--json adds the ETag and a download link, valid 15 minutes). Once the job is indexed, the
    outputs its manifest recorded, with the level its index patterns gave each. Admin, or the producer
    key that owns the job."""
    client = _config(ctx).client()
    # One more than shown tells whether there are more.
    outputs = list(client.iter_outputs(uuid, limit=None if all_outputs else limit + 1))
    more = not all_outputs and len(outputs) > limit
    outputs = outputs[:limit] if more else outputs
    written = (
        _download_outputs(client, uuid, outputs, download, quiet=as_json) if download is not None else []
    )
    if as_json:
        result: dict[str, Any] = {"outputs": outputs, "more": more}
        if download is not None:
            result["downloaded"] = [str(path) for path in written]
        _print_json(result)
        return
    if not outputs:
        _err().print("No outputs: the job's archive path holds nothing (yet).")
        return
    _out().print(_outputs_table(outputs))
    total = sum(int(o.get("size") or 0) for o in outputs)
    count = f"{len(outputs)} output{'s' if len(outputs) != 1 else ''}, {_size(total)}"
    suffix = " (more: raise --limit or use --all)" if more else ""
    _err().print(f"[dim]{escape(count)}{suffix}[/dim]")
    if download is not None:
        _err().print(f"Downloaded {len(written)} to {escape(str(download))}")


def _download_outputs(
    client: Client, uuid: str, outputs: list[dict[str, Any]], folder: Path, *, quiet: bool
) -> list[Path]:
    """Each output into `folder/<key>`, with a progress bar on a terminal. A link that expired while
    the others downloaded (403) is listed afresh; a key that could leave the folder is skipped, said."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelinejobs.errors import PipelineJobsError

    folder.mkdir(parents=True, exist_ok=True)
    err = _err()
    progress = Progress(
        TextColumn("Downloading"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet and not err.is_terminal,
    )
    written = []
    with progress:
        task = progress.add_task("download", total=sum(int(o.get("size") or 0) for o in outputs))
        for output in outputs:
            try:
                try:
                    written.append(client.download_output(output, folder))
                except PipelineJobsError as error:
                    if error.status != 403:
                        raise
                    written.append(client.download(uuid, str(output.get("key")), folder))
            except ValueError as error:
                progress.console.print(f"[yellow]skipped:[/yellow] {escape(str(error))}")
            progress.advance(task, int(output.get("size") or 0))
    return written
