"""The root Typer app, its command groups, and the output helpers every command shares."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _state(state: Any) -> str:
    text = escape(str(state or "-"))
    style = STATE_STYLES.get(str(state))
    return f"[{style}]{text}[/{style}]" if style else text


def _short_time(value: Any) -> str:
    """`2024-05-01T12:00:00.123Z` as `2024-05-01 12:00:00` (UTC): what a table needs."""
    return str(value or "-").replace("T", " ").removesuffix("Z").split(".")[0]


# Options more than one command group takes.
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


_DURATION = re.compile(r"(\d+)\s*([smhdw]?)", re.IGNORECASE)
_DURATION_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def _duration_seconds(text: str, units: str = "smhdw") -> int | None:
    """Seconds in a duration such as 90, 90s, 15m, 12h, 30d or 8w (the units allowed: `units`; a bare
    number is seconds only when `s` is allowed); None when `text` is not one."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        return None
    unit = found[2].lower()
    if (unit or "s") not in units:
        return None
    return int(found[1]) * _DURATION_SECONDS[unit]
