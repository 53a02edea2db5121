"""The indexer at scale (issue 13): a finished job whose archive holds N objects (default 20,000;
`--objects 100000` for the issue's figure, ~10 minutes here) is indexed through the worker handler in
Lambda's SQS event shape, every step's hand-over going through the queue as in AWS. The step budget is
cut to 1 s (`ERASE_BATCH_SECONDS=1`, 20 in the template) so that the run crosses many hand-overs, as a
long one crosses Lambda timeouts.

It prints what the run took (steps, seconds, objects per second in moto), the AWS requests per 1,000
objects, and what 100,000 objects cost in AWS at the template's 20 s step. The one target: every object
is in the manifest exactly once and the system posted `indexed` (exit 3 otherwise); speed in moto says
little about AWS, so it has none.

    python benchmarks/indexer_scale.py [--objects 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import LambdaContext, moto_stack

# AWS list prices, us-east-1 (as benchmarks/cost.py): DynamoDB on demand per write request unit,
# S3 LIST per request, SQS FIFO per request, Lambda arm64 per GB-second (512 MB).
WRU = 1.25 / 1e6
S3_LIST = 0.005 / 1000
SQS_FIFO = 0.50 / 1e6
LAMBDA_GB_S = 0.0000133334
STEP_SECONDS = 20


class CountdownContext(LambdaContext):
    """A Lambda context whose remaining time runs down from its invocation, as Lambda's does."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        return int(60_000 - (time.monotonic() - self.started) * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=20_000, help="objects in the archive")
    args = parser.parse_args(argv)
    with moto_stack():
        os.environ["ERASE_BATCH_SECONDS"] = "1"
        import api_cost
        import boto3
        from api_cost import ApiBench

        # Lambda's context counts its time down from the invocation; the worker's step budget reads it.
        api_cost.LambdaContext = CountdownContext  # type: ignore[misc]

        from jobcore.adapters.dynamodb import MANIFEST_SK_PREFIX, pk

        bench = ApiBench()
        job = bench.create(1)
        archive = bench.request("GET", f"/jobs/{job['uuid']}", token=job["token"], route="/jobs/{uuid}")[1][
            "archive_path"
        ]
        bucket, _, prefix = archive.removeprefix("s3://").partition("/")
        s3 = boto3.client("s3")
        started = time.perf_counter()
        for n in range(args.objects):
            s3.put_object(Bucket=bucket, Key=f"{prefix}part-{n // 1000:03d}/obj-{n:06d}.csv", Body=b"x")
        print(f"wrote {args.objects:,} objects in {time.perf_counter() - started:.0f} s (not measured)")
        for name in ("run", "finish"):
            bench.event(job, name)
        bench.work()
        status, accepted = bench.request(
            "POST",
            f"/jobs/{job['uuid']}/events",
            token=job["token"],
            body={"name": "index", "data": {"index_patterns": [{"level": "csv", "pattern": "**/*.csv"}]}},
            route="/jobs/{uuid}/events",
        )
        assert status == 202, accepted
        with bench.counting() as calls:
            started = time.perf_counter()
            bench.work()
            seconds = time.perf_counter() - started
        repo_table = bench.worker._deps().repo.ManifestItem
        items = [
            item.attribute_values
            for item in repo_table.query(pk(job["uuid"]), repo_table.sk.startswith(MANIFEST_SK_PREFIX))
        ]
        history = bench.request(
            "GET", f"/jobs/{job['uuid']}/events", token=bench.admin(), route="/jobs/{uuid}/events"
        )[1]["events"]

    keys = [item.get("key") for item in items]
    once = len(keys) == args.objects and len(set(keys)) == args.objects
    indexed = history[-1]["name"] == "indexed" and history[-1]["by"] == "system"
    steps = calls["sqs:SendMessage"]
    per_k = {op: count * 1000 / args.objects for op, count in sorted(calls.items())}
    print(
        f"\nindexed {args.objects:,} objects in {steps} steps (1 s each), {seconds:.1f} s in moto "
        f"({args.objects / seconds:,.0f} objects/s)"
    )
    print("AWS requests per 1,000 objects: " + ", ".join(f"{op} {n:.2f}" for op, n in per_k.items()))
    step_objects = args.objects / max(steps, 1) * STEP_SECONDS  # objects one 20 s step gets through here
    steps_100k = -(-100_000 // max(int(step_objects), 1))
    batch_writes = calls["dynamodb:BatchWriteItem"] * 100_000 / args.objects
    cost = (
        100_000 * WRU  # one manifest item (< 1 KB) per object
        + 100_000 / 1000 * S3_LIST
        + steps_100k * SQS_FIFO * 3  # a step's send, receive and delete
        + steps_100k * STEP_SECONDS * 0.5 * LAMBDA_GB_S
    )
    print(
        f"100,000 objects at the template's 20 s step: ~{steps_100k} steps (Lambda invocations), "
        f"~{batch_writes:,.0f} BatchWriteItem requests, ~${cost:.3f} in AWS "
        f"(manifest writes ${100_000 * WRU:.3f}, the rest lists, messages and Lambda)"
    )
    print(
        f"every object in the manifest exactly once: {'PASS' if once else 'FAIL'} "
        f"({len(set(keys)):,} distinct of {len(keys):,} items); indexed by system: "
        f"{'PASS' if indexed else 'FAIL'}"
    )
    return 0 if once and indexed else 3


if __name__ == "__main__":
    sys.exit(main())
