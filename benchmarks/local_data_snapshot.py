"""What the local stack's data folder costs as the data grows: one snapshot's time (all of it, and the part
with requests held), its size, the crash bound it gives, and the time to start again on it.

Starts the local stack on a temporary data folder, drives one job through create, `run`, 8 `update`s and
`finish` over HTTP, then copies that job's items (the job and its history) under new job ids straight
into the table until the table holds `--jobs` jobs, taking a snapshot at each step. Then stops the stack
and starts it again on the folder, timing the start against a start on an empty folder.

Target: none for the times (this machine and moto); the figure is the crash bound (snapshots are taken at
most once a second, and never more than a fifth of the time: the bound is max(1 s, 4 x a snapshot) plus
one snapshot), which the README states.

    python benchmarks/local_data_snapshot.py [--jobs 1000,4000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import use_project_paths

PIPELINE = "bench-snapshot"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--jobs", default="1000,4000", help="job counts to measure at, comma-separated (default 1000,4000)"
    )
    args = parser.parse_args(argv)
    steps = sorted(int(n) for n in args.jobs.split(","))

    use_project_paths()
    os.environ.pop("AWS_PROFILE", None)
    from pipelinejobs import Client
    from pipelinejobs.local.stack import LocalStack

    rows: list[tuple[int, dict[str, int]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="pipelinejobs-bench-") as folder,
        open(os.devnull, "w") as null,
    ):
        data = Path(folder) / "data"
        started = time.monotonic()
        with contextlib.redirect_stdout(null), LocalStack(port=0, aws_port=0, quiet=True) as empty:
            empty_start = time.monotonic() - started
        del empty
        with contextlib.redirect_stdout(null), LocalStack(port=0, quiet=True, data_dir=data) as stack:
            client = Client(stack.api_url, admin_key=stack.admin_key, timeout=30)
            job = client.create_job(PIPELINE, {"n": 0}).run()
            for step in range(8):
                job.update(step=step)
            job.finish()
            stack.drain()
            dynamodb = stack.client("dynamodb")
            table = stack.resources.table_name
            items = [
                item
                for page in dynamodb.get_paginator("scan").paginate(TableName=table)
                for item in page["Items"]
                if job.uuid in json.dumps(item)
            ]
            template = json.dumps(items)
            jobs = 1

            def copy(count: int) -> None:
                def write(batch: list[dict[str, Any]]) -> None:
                    request = {table: [{"PutRequest": {"Item": item}} for item in batch]}
                    while request:
                        request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems")

                copies = [
                    item
                    for _ in range(count)
                    for item in json.loads(template.replace(job.uuid, str(uuidlib.uuid4())))
                ]
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(write, [copies[i : i + 25] for i in range(0, len(copies), 25)]))

            for target in steps:
                copy(target - jobs)
                jobs = target
                rows.append((target, stack.snapshot()))
        started = time.monotonic()
        with contextlib.redirect_stdout(null), LocalStack(port=0, quiet=True, data_dir=data) as again:
            restored_start = time.monotonic() - started
            restored = again.restored or {}

    print(f"one job = {len(items)} items (the job and its history); {os.cpu_count()} CPUs")
    print(f"{'jobs':>7} {'items':>8} {'size MB':>8} {'snapshot ms':>12} {'held ms':>8} {'crash bound s':>14}")
    for target, figures in rows:
        bound = max(1.0, 4 * figures["ms"] / 1000) + figures["ms"] / 1000  # the interval, then one snapshot
        print(
            f"{target:>7} {figures['items']:>8} {figures['bytes'] / 1e6:>8.1f} {figures['ms']:>12} "
            f"{figures['closed_ms']:>8} {bound:>14.1f}"
        )
    print(
        f"start again on {restored.get('jobs', 0)} jobs: {restored_start:.1f} s "
        f"(on an empty folder: {empty_start:.1f} s)"
    )
    print("\ncrash bound: no target (stated in the README; this machine and moto)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
