"""What the worker adds to the DynamoDB writes it must make: events/s through the handler against the same
writes issued by a bare boto3 loop, side by side in one run (moto in-process serves both).

The worker: batches of 10 `update` events (one per job, 10 message groups, as a loaded FIFO queue
hands them over) in Lambda's SQS event shape, through `worker_handler.handler` with the template's
logging and metrics on (their output discarded). The bare loop: the very TransactWriteItems requests
the worker made (captured at botocore, each with a fresh event id), issued one after the other with a
plain boto3 client. The two sides alternate batch by batch, and the history they wrote is removed
after each batch (unmeasured): moto copies the whole table on every transaction, so a growing table
would slow whichever side ran later. Each side's best round counts.

Target (issue 5): worker events/s >= 0.8x the bare loop's.

    python benchmarks/worker_overhead.py [--batches 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import AwsCalls, LambdaContext, moto_stack

from pipelinejobs.local.event_source import sqs_record

BATCH = 10
TARGET = 0.8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30, help="batches of 10 events per round and side")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (best of each side)")
    args = parser.parse_args(argv)

    with moto_stack(quiet=False):
        # As deployed: INFO logs and metrics on (written to a null device while measured).
        os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
        import boto3

        import worker_handler
        from jobcore.models import JobSpec

        worker_handler._deps.cache_clear()
        service = worker_handler._deps()
        queue_arn = "arn:aws:sqs:us-east-1:123456789012:" + os.environ["QUEUE_URL"].rsplit("/", 1)[1]
        jobs = []
        for i in range(BATCH):
            created = service.create_job(JobSpec(pipeline_uuid="bench", data={"job": i}))
            service.handle_message(
                {"uuid": created.job.uuid, "name": "run", "token": created.token},
                fallback_event_id=f"run-{i}",
            )
            jobs.append((created.job.uuid, created.token))

        def batch_event(n: int) -> dict[str, Any]:
            records = []
            for uuid, token in jobs:
                event_id = str(uuidlib.uuid4())
                body = {
                    "uuid": uuid,
                    "name": "update",
                    "data": {"progress": n},
                    "token": token,
                    "event_id": event_id,
                    "expect": ["RUNNING", 1],
                }
                message = {
                    "MessageId": str(uuidlib.uuid4()),
                    "ReceiptHandle": f"handle-{event_id}",
                    "Body": json.dumps(body),
                    "Attributes": {
                        "ApproximateReceiveCount": "1",
                        "SentTimestamp": "0",
                        "MessageGroupId": uuid,
                        "MessageDeduplicationId": event_id,
                    },
                }
                records.append(sqs_record(message, queue_arn=queue_arn))
            return {"Records": records}

        aws = AwsCalls()
        client = boto3.client("dynamodb")
        table = os.environ["TABLE_NAME"]
        context = LambdaContext()
        worker_rates: list[float] = []
        bare_rates: list[float] = []
        own_ms: list[float] = []
        calls_per_event = 0.0
        with open(os.devnull, "w") as null:
            worker_handler.logger.registered_handler.setStream(null)
            for _ in range(args.rounds):
                worker_seconds = bare_seconds = in_aws = 0.0
                counted = 0
                for n in range(args.batches):
                    event = batch_event(n)
                    with aws.counting(keep=True) as calls, contextlib.redirect_stdout(null):
                        started = time.perf_counter()
                        failures = worker_handler.handler(event, context)["batchItemFailures"]
                        worker_seconds += time.perf_counter() - started
                    assert not failures, failures
                    counted += sum(calls.values())
                    in_aws += aws.seconds
                    writes = [params for operation, params in aws.params if operation == "TransactWriteItems"]
                    assert len(writes) == BATCH, dict(calls)
                    # moto copies the whole table on every transaction: the history each side wrote is
                    # removed (unmeasured), so that both always write into the same small table.
                    _remove_history(client, table, writes)
                    # The same requests, each with a fresh event id (a repeat would be a duplicate).
                    replays = [_fresh_event_id(params) for params in writes]
                    started = time.perf_counter()
                    for params in replays:
                        client.transact_write_items(**params)
                    bare_seconds += time.perf_counter() - started
                    _remove_history(client, table, replays)
                worker_rates.append(BATCH * args.batches / worker_seconds)
                bare_rates.append(BATCH * args.batches / bare_seconds)
                calls_per_event = counted / (BATCH * args.batches)
                own_ms.append((worker_seconds - in_aws) * 1000 / (BATCH * args.batches))

    worker, bare = max(worker_rates), max(bare_rates)
    ratio = worker / bare
    print(
        f"batches of {BATCH} update events, {args.batches} batches per round, {args.rounds} rounds "
        f"(best round of each side); AWS requests per event through the worker: {calls_per_event:g}"
    )
    print(f"{'side':<44} {'events/s':>9}  rounds")
    print(f"{'worker_handler.handler (logs and metrics on)':<44} {worker:9.0f}  {_rounds(worker_rates)}")
    print(f"{'bare boto3 loop, the same TransactWriteItems':<44} {bare:9.0f}  {_rounds(bare_rates)}")
    print(
        f"\nthe worker's own time per event, outside its AWS request: {min(own_ms):.2f} ms "
        f"(rounds: {', '.join(f'{m:.2f}' for m in own_ms)}); moto answers a TransactWriteItems in "
        f"~{1000 / bare:.1f} ms here (DynamoDB: ~5-10 ms over the network)"
    )
    verdict = "PASS" if ratio >= TARGET else "MISS"
    print(f"\nworker / bare: {ratio:.2f}x (target >= {TARGET}x) {verdict}")
    return 0 if ratio >= TARGET else 3


def _fresh_event_id(params: dict[str, Any]) -> dict[str, Any]:
    old_id = params["TransactItems"][0]["Put"]["Item"]["event_id"]["S"]
    replay: dict[str, Any] = json.loads(json.dumps(params).replace(old_id, str(uuidlib.uuid4())))
    return replay


def _remove_history(client: Any, table: str, writes: list[dict[str, Any]]) -> None:
    keys = [
        {"pk": item["pk"], "sk": item["sk"]}
        for params in writes
        for item in (params["TransactItems"][0]["Put"]["Item"],)
    ]
    for start in range(0, len(keys), 25):
        requests = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
        client.batch_write_item(RequestItems={table: requests})


def _rounds(rates: list[float]) -> str:
    return ", ".join(f"{r:.0f}" for r in rates)


if __name__ == "__main__":
    raise SystemExit(main())
