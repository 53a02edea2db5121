"""`pipelinejobs keys create|list|revoke`: producer keys (admin)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from pipelinejobs.cli._app import (
    JsonOpt,
    YesOpt,
    _duration_seconds,
    _err,
    _examples,
    _iso,
    _out,
    _print_json,
    _short_time,
    keys_app,
)
from pipelinejobs.cli._config import _acting_key_id, _config
from pipelinejobs.cli._errors import CliError, _fail, _friendly
from pipelinejobs.errors import (
    Forbidden,
    NotFound,
)

if TYPE_CHECKING:
    from pipelinejobs.client import ProducerKey

KEY_STATUS_STYLES = {"active": "green", "expired": "yellow", "revoked": "red"}
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{12}")


def _expiry(text: str, now: datetime) -> datetime:
    """`--expires`: a duration from now (12h, 30d, 8w) or an ISO-8601 date or time (naive = UTC)."""
    text = text.strip()
    duration = _duration_seconds(text, units="hdw")
    if duration is not None:
        moment = now + timedelta(seconds=duration)
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
