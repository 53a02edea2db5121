"""`pipelinejobs demo`: one job driven through its whole life against a running API, step by step.

create → run → update → finish, a compute platform's callbacks (one applied, one late and ignored),
outputs written to the job's archive, an admin reset that erases them (every version) and reruns the
job as generation 2, and a delete that keeps the history readable. Each step prints what happened.

The job's data holds a fresh nonce, so each demo creates a new job (the uuid is derived from the data).
Tokens are never printed: the callback URL is shown with its token masked.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
import uuid as uuid_module
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipelinejobs.client import Client, Job

__all__ = ["run_demo"]

PIPELINE = "demo-pipeline"
_STYLE = {"applied": "green", "ignored": "yellow", "rejected": "red", "queued": "cyan"}


def _masked(url: str | None) -> str:
    return re.sub(r"(token=)[^&]+", r"\1…", url or "-")


def _s3_location(archive_path: str) -> tuple[str, str]:
    split = urllib.parse.urlsplit(archive_path)
    return split.netloc, split.path.lstrip("/")


def _versions(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        found += page.get("Versions", []) + page.get("DeleteMarkers", [])
    return found


class _Steps:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.number = 0

    def __call__(self, title: str) -> None:
        self.number += 1
        self.console.print()
        self.console.rule(f"[bold]{self.number}. {escape(title)}[/bold]", align="left")

    def say(self, text: str) -> None:
        self.console.print(f"   {text}")

    def state(self, job: Job) -> None:
        self.say(
            f"state [bold]{job.state}[/bold], generation {job.generation}, last event {job.get('last_event')}"
        )


def _callback(url: str, status: str, body: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    """What a compute platform does: POST to the callback URL (its token in the query string)."""
    split = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(split.query))
    query["status"] = status
    target = urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(query)))
    request = urllib.request.Request(  # noqa: S310 - the API's own http(s) URL
        target,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return dict(json.loads(response.read() or b"{}"))


def run_demo(
    url: str,
    *,
    token: str | None = None,
    admin_key: str | None = None,
    s3: Any = None,
    console: Console | None = None,
    timeout: float = 60,
    drain: Callable[[], None] | None = None,
) -> str:
    """Drive one demo job against the API at `url` with an admin credential (token or key); returns
    its uuid. `s3`: a boto3 S3 client of the stack's AWS, to write and erase archive objects (the
    archive steps are skipped without it). Raises the SDK's errors (PipelineJobsError) on failure."""
    console = console or Console(highlight=False)
    step = _Steps(console)
    client = Client(url, token=token, admin_key=admin_key, timeout=15)
    if not client.token:
        raise ValueError("the demo needs an admin credential (a token or the admin key)")

    step("Create a job (admin)")
    nonce = uuid_module.uuid4().hex[:8]
    job = client.create_job(
        PIPELINE, {"sample": "S-001", "reference": "GRCh38", "demo": nonce}, name="demo run", tags=["demo"]
    )
    step.say(f"uuid [bold]{job.uuid}[/bold]")
    step.say(f"archive {escape(str(job.archive_path))}")
    step.say(f"callback URL {escape(_masked(job.callback_url))}  [dim](token masked)[/dim]")
    step.state(job)

    step("The job runs, reports progress, finishes (rotating job token)")
    job.run({"host": "node-7"}).wait_for("RUNNING", timeout=timeout)
    step.state(job)
    job.update(progress=0.5, message="halfway").finish({"outputs": 3})
    job.wait_for("FINISHED", timeout=timeout)
    step.state(job)
    step.say("[dim]each response handed back the next token; the SDK followed it[/dim]")

    step("The compute platform calls back (token in the callback URL)")
    callback_url = job.callback_url
    if callback_url:
        for status, expected in (
            ("FINISHED", "repeated: finish from FINISHED"),
            ("RUNNING", "late: the job has left RUNNING"),
        ):
            receipt = _callback(callback_url, status, {"status": status, "platform": "demo-hpc"})
            event = client.wait_for_event(job.uuid, str(receipt["event_id"]), timeout=timeout)
            outcome = str(event.get("status") or event.get("outcome"))
            reason = f" ({event['reason']})" if event.get("reason") else ""
            step.say(
                f"status={status} → event [bold]{event.get('name')}[/bold]: "
                f"[{_STYLE.get(outcome, '')}]{outcome}[/]{escape(reason)}  [dim]{expected}[/dim]"
            )
    else:
        step.say("[yellow]no callback URL in the job's representation; skipped[/yellow]")

    bucket = prefix = ""
    if s3 is not None and job.archive_path:
        step("Outputs land in the job's archive (S3, versioned)")
        bucket, prefix = _s3_location(job.archive_path)
        s3.put_object(Bucket=bucket, Key=f"{prefix}results/summary.json", Body=b'{"variants": 41}')
        s3.put_object(Bucket=bucket, Key=f"{prefix}results/summary.json", Body=b'{"variants": 42}')
        s3.put_object(Bucket=bucket, Key=f"{prefix}results/calls.vcf", Body=b"##fileformat=VCFv4.2\n")
        s3.put_object(Bucket=bucket, Key=f"{prefix}logs/run.log", Body=b"done\n")
        versions = _versions(s3, bucket, prefix)
        table = Table("key", "version", box=None, padding=(0, 2))
        for version in versions:
            table.add_row(escape(version["Key"][len(prefix) :]), escape(str(version.get("VersionId"))[:12]))
        console.print(table)
        step.say(f"{len(versions)} object versions under the archive path")

    step("Admin reset: archive erased, tokens revoked, generation 2")
    job.reset()
    job.wait_for("CREATED", timeout=timeout)
    if drain is not None:
        drain()
    step.state(job)
    if s3 is not None and bucket:
        left = _versions(s3, bucket, prefix)
        step.say(f"{len(left)} object versions left under the archive path")

    step("Admin delete: archive and history kept")
    if s3 is not None and bucket:
        s3.put_object(Bucket=bucket, Key=f"{prefix}results/summary.json", Body=b'{"variants": 43}')
        step.say("generation 2 wrote results/summary.json")
    job.delete()
    job.wait_for("DELETED", timeout=timeout)
    step.say("GET /jobs/{uuid} → 404: the job left every listing and lookup")
    if s3 is not None and bucket:
        step.say(
            f"{len(_versions(s3, bucket, prefix))} object version(s) still in the archive (no purge_archive)"
        )
    history = client.history(job.uuid)
    table = Table(box=None, padding=(0, 2))
    for column in ("event", "outcome", "from → to", "gen", "by"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold")
    for entry in history:
        outcome = str(entry.get("outcome"))
        table.add_row(
            escape(str(entry.get("name"))),
            f"[{_STYLE.get(outcome, '')}]{outcome}[/]",
            f"{entry.get('from_state')} → {entry.get('to_state')}",
            str(entry.get("generation")),
            escape(str(entry.get("by"))),
            escape(str(entry.get("reason") or "")),
        )
    step.say("the history stays readable by an admin:")
    console.print(table)
    console.print()
    console.print(f"[bold green]Done.[/bold green] Job {job.uuid} went through {len(history)} events.")
    return job.uuid
