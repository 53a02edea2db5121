"""Dollars per million events, from counts measured here, at AWS list prices; next to Step Functions.

Measures a typical job lifecycle through the real handlers (moto in-process, resources from
template.yaml): create (admin), `run`, 8 `update`s, `finish`, each posted to the API handler with the
job token, the worker applying what was queued. Counted per event: API requests, every AWS request of
each function (by operation), the handlers' own time outside AWS requests, the size of every item
written (DynamoDB bills writes per started KB, transactional ones double, strongly consistent reads per
started 4 KB), state changes (EventBridge notifications) and job-item updates (the records the
notifier's stream filter lets through). Those counts, at the list prices below, give $ per million
events; the create is spread over the lifecycle's events.

Step Functions Standard, for the same lifecycle: one execution per job; the create records the job
(Task) and waits for the first event (Task, waitForTaskToken); each event then takes a Choice (is it
allowed now?), a Task that records it, and the next wait: 2 + 3 per event state transitions. Added:
the same HTTP front door for the producers (API Gateway and a function that reads the job, for its
task token), priced as ours; left out (in its favour): its DynamoDB records and notifications.

Index writes are priced too: every write of a job item is read back from the table's stream (old and
new item), and for each global secondary index of template.yaml DynamoDB writes the index entry as it
would: a changed index key is a delete and a put, a changed projected attribute a put, an item entering
or leaving the index one write, each per started KB of the entry.

Deadlines (issue 12, SPEC section 3a): the same lifecycles again with a heartbeat and a timeout on
every job. Their cost is the deadline indexes' writes (the due time moves with every event while the
job runs), the job item's few more bytes, and a fixed cost: the sweeper's schedule (one invocation and
one query per index shard a minute), priced per month. A missed deadline costs what one event does
(the system's fail: a message, the apply, the notification).

Targets (issue 5): <= $3 per million events; >= 15x cheaper than Step Functions Standard.

    python benchmarks/cost.py [--jobs 5] [--batch 10] [--stream-batch 10] [--aws-latency-ms 10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, LambdaContext, moto_stack
from api_cost import ApiBench
from worker_cost import item_size

from pipelinejobs.local.event_source import sqs_record

DEADLINE_INDEXES = ("by_heartbeat", "by_timeout")
DEADLINE_SHARDS = 8  # jobcore.adapters.dynamodb.DEADLINE_SHARDS
UPDATES_PER_JOB = 8
EVENTS_PER_JOB = UPDATES_PER_JOB + 2  # run, updates, finish

# us-east-1 list prices (USD), as published on the AWS pricing pages in 2025.
PRICES = {
    "lambda_request": 0.20 / 1e6,  # per invocation
    "lambda_gb_s": 0.0000133334,  # per GB-second, arm64 (x86: 0.0000166667)
    "http_api_request": 1.00 / 1e6,  # API Gateway HTTP API, first 300 M/month, per 512 KB
    "sqs_fifo_request": 0.50 / 1e6,  # per 64 KB chunk of each send, receive and delete request
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit (since the Nov 2024 price cut)
    "dynamodb_rru": 0.125 / 1e6,  # on-demand read request unit
    "eventbridge_event": 1.00 / 1e6,  # custom event, per 64 KB
    "sfn_transition": 25.0 / 1e6,  # Step Functions Standard state transition
    "logs_gb": 0.50,  # CloudWatch Logs ingestion per GB (outside the list; shown apart)
}
TARGET_DOLLARS = 3.0
TARGET_RATIO = 15.0


@dataclass
class Side:
    """One function's measured work over the lifecycle."""

    invocations: int = 0
    seconds: float = 0.0  # wall time in the handler
    aws_seconds: float = 0.0  # of which in AWS requests (moto here)
    calls: Counter[str] = field(default_factory=Counter)
    log_bytes: int = 0  # metrics printed (EMF)

    @property
    def own_ms(self) -> float:
        return (self.seconds - self.aws_seconds) * 1000

    def requests(self) -> int:
        return sum(self.calls.values())


def measure(jobs: int, deadlines: dict[str, int] | None = None) -> dict[str, Any]:
    """Run `jobs` lifecycles through the API and the worker; what each side did, the item sizes, and the
    index write units of every job-item write (from the stream). `deadlines`: given to every job."""
    with moto_stack(quiet=False, stream=True) as stack:
        os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)  # as deployed: logs at INFO, metrics on
        bench = ApiBench()
        api, worker = Side(), Side()
        job_items: list[str] = []
        state_changes = 0
        context = LambdaContext()

        def timed(side: Side, call: Any) -> Any:
            out = io.StringIO()  # Powertools metrics (EMF) are printed
            with bench.counting() as calls, contextlib.redirect_stdout(out):
                started = time.perf_counter()
                result = call()
                side.seconds += time.perf_counter() - started
            side.aws_seconds += bench.aws.seconds
            side.calls.update(calls)
            side.invocations += 1
            side.log_bytes += len(out.getvalue().encode())
            return result

        def work() -> None:
            nonlocal state_changes
            while True:
                received = bench.sqs.receive_message(
                    QueueUrl=bench.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
                )
                messages: list[dict[str, Any]] = received.get("Messages", [])  # type: ignore[assignment]
                if not messages:
                    return
                event = {"Records": [sqs_record(m, queue_arn=bench.queue_arn) for m in messages]}
                response = timed(worker, lambda event=event: bench.worker.handler(event, context))
                assert not response["batchItemFailures"], response
                bench.sqs.delete_message_batch(
                    QueueUrl=bench.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                    ],
                )

        # The Logger writes to its handler's stream (metrics go to stdout, captured in `timed`).
        logs = io.StringIO()
        for module in (bench.api, bench.worker):
            module.logger.registered_handler.setStream(logs)

        for n in range(-1, jobs):
            if n == 0:
                # Measured from here: warm containers (the first lifecycle paid for the clients, the
                # admin key read and Powertools' first analysis of each route).
                api, worker, state_changes, job_items = Side(), Side(), 0, []
                logs.seek(0)
                logs.truncate()
            job = timed(api, lambda n=n: bench.create(n, **(deadlines or {})))
            job_items.append(job["uuid"])
            for name in ["run", *["update"] * UPDATES_PER_JOB, "finish"]:
                timed(api, lambda job=job, name=name: bench.event(job, name))
                if name in ("run", "finish"):
                    state_changes += 1
                    work()  # a state change must be applied before the next one is accepted
            work()
        log_bytes = api.log_bytes + worker.log_bytes + len(logs.getvalue().encode())

        import boto3

        dynamodb = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
        job_sizes, data_sizes, history_sizes = [], [], []
        for uuid in job_items:
            items = dynamodb.query(
                KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"JOB#{uuid}"}
            )["Items"]
            for item in items:
                size = item_size(item)
                if item["sk"] == "JOB":
                    job_sizes.append(size)
                elif item["sk"] == "DATA":
                    data_sizes.append(size)
                else:
                    history_sizes.append(size)
        index_units = index_write_units(stack.table_stream_arn, set(job_items))
    return {
        "jobs": jobs,
        "events": jobs * EVENTS_PER_JOB,
        "api": api,
        "worker": worker,
        "state_changes": state_changes,
        "log_bytes": log_bytes,
        "job_bytes": max(job_sizes),
        "data_bytes": max(data_sizes),
        "history_bytes": max(history_sizes),
        "index_wru": index_units,
    }


def _indexes() -> list[tuple[str, tuple[str, ...], str, tuple[str, ...]]]:
    """(name, key attributes, projection type, included attributes) of the table's GSIs (template.yaml)."""
    from pipelinejobs.local.template import load_template

    table = load_template(ROOT / "template.yaml")["Resources"]["JobsTable"]["Properties"]
    return [
        (
            index["IndexName"],
            tuple(k["AttributeName"] for k in index["KeySchema"]),
            index["Projection"]["ProjectionType"],
            tuple(index["Projection"].get("NonKeyAttributes") or ()),
        )
        for index in table.get("GlobalSecondaryIndexes") or []
    ]


def index_write_units(stream_arn: str, uuids: set[str]) -> dict[str, float]:
    """Write units DynamoDB spends on each GSI for the job-item writes of `uuids`, from the stream's old
    and new items (per index: a changed key = delete + put, a changed projected attribute = put, entering
    or leaving = one write; each per started KB of the index entry: its keys and projected attributes)."""
    import boto3
    from boto3.dynamodb.types import TypeDeserializer
    from botocore.config import Config

    # (moto answers the regional Streams endpoint, not botocore's account-based one)
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    deserialize = TypeDeserializer().deserialize
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    units: dict[str, float] = {name: 0.0 for name, *_ in _indexes()}
    for record in records:
        change = record["dynamodb"]
        images = [
            {k: deserialize(v) for k, v in (change.get(which) or {}).items()}
            for which in ("OldImage", "NewImage")
        ]
        old, new = images
        item = new or old
        if item.get("sk") != "JOB" or str(item.get("pk", "")).removeprefix("JOB#") not in uuids:
            continue
        for name, keys, projection, included in _indexes():

            def entry(
                image: dict[str, Any],
                keys: tuple[str, ...] = keys,
                projection: str = projection,
                included: tuple[str, ...] = included,
            ) -> dict[str, Any] | None:
                if not image or not all(k in image for k in keys):
                    return None
                if projection == "ALL":
                    return image
                names = {"pk", "sk", *keys, *(included if projection == "INCLUDE" else ())}
                return {k: v for k, v in image.items() if k in names}

            before, after = entry(old), entry(new)
            if before is None and after is None:
                continue
            if before is None or after is None:
                units[name] += kb(item_size(before or after or {}))
            elif any(before.get(k) != after.get(k) for k in keys):
                units[name] += kb(item_size(before)) + kb(item_size(after))  # moved: delete + put
            elif before != after:
                units[name] += kb(item_size(after))
    return units


def bill(
    m: dict[str, Any], args: argparse.Namespace, memory_gb: float
) -> tuple[list[tuple[str, float, str, float]], dict[str, Any]]:
    """The bill's lines per event (name, quantity, unit, $ per event) from one measurement, and the
    counts they come from."""
    api: Side = m["api"]
    worker: Side = m["worker"]
    per_event = 1 / m["events"]
    latency = args.aws_latency_ms
    api_requests = api.invocations * per_event
    api_ops = {op.split(":")[1]: n * per_event for op, n in api.calls.items()}
    worker_ops = {op.split(":")[1]: n * per_event for op, n in worker.calls.items()}
    notifications = m["state_changes"] * per_event
    # job-item MODIFY records reaching the notifier: every applied event and every token rotation
    stream_records = worker_ops.get("TransactWriteItems", 0) + api_ops.get("UpdateItem", 0)
    job_kb, data_kb, history_kb = kb(m["job_bytes"]), kb(m["data_bytes"]), kb(m["history_bytes"])
    wru = (
        worker_ops.get("TransactWriteItems", 0) * (2 * job_kb + 2 * history_kb)  # apply: job + history
        + api_ops.get("UpdateItem", 0) * job_kb  # the API's acceptance of each event, token rotations
        + api_ops.get("TransactWriteItems", 0) * (2 * job_kb + 2 * data_kb)  # create: job + data
    )
    index_wru = {name: units * per_event for name, units in m["index_wru"].items()}
    listing_wru = sum(u for name, u in index_wru.items() if name not in DEADLINE_INDEXES)
    deadline_wru = sum(u for name, u in index_wru.items() if name in DEADLINE_INDEXES)
    rru = api_ops.get("GetItem", 0) * kb(m["job_bytes"], 4096)  # strongly consistent
    sqs_requests = api_ops.get("SendMessage", 0) * (1 + 2 / args.batch)  # send, receive, delete batch
    api_ms = api.own_ms / api.invocations + latency * api.requests() / api.invocations
    worker_ms_per_event = worker.own_ms * per_event + latency * worker.requests() * per_event
    notifier_ms = 1.0 + latency  # one PutEvents per batch of records; its own time is ~1 ms
    p = PRICES
    lines = [
        ("API Gateway HTTP API", api_requests, "requests", api_requests * p["http_api_request"]),
        ("Lambda API: requests", api_requests, "invocations", api_requests * p["lambda_request"]),
        (
            "Lambda API: duration",
            api_requests * api_ms / 1000 * memory_gb,
            "GB-s",
            api_requests * api_ms / 1000 * memory_gb * p["lambda_gb_s"],
        ),
        ("SQS FIFO (send, receive, delete)", sqs_requests, "requests", sqs_requests * p["sqs_fifo_request"]),
        ("Lambda worker: requests", 1 / args.batch, "invocations", p["lambda_request"] / args.batch),
        (
            "Lambda worker: duration",
            worker_ms_per_event / 1000 * memory_gb,
            "GB-s",
            worker_ms_per_event / 1000 * memory_gb * p["lambda_gb_s"],
        ),
        ("DynamoDB writes (table)", wru, "WRU", wru * p["dynamodb_wru"]),
        ("DynamoDB writes (listing indexes)", listing_wru, "WRU", listing_wru * p["dynamodb_wru"]),
        ("DynamoDB writes (deadline indexes)", deadline_wru, "WRU", deadline_wru * p["dynamodb_wru"]),
        ("DynamoDB reads", rru, "RRU", rru * p["dynamodb_rru"]),
        (
            "Lambda notifier: requests",
            stream_records / args.stream_batch,
            "invocations",
            stream_records / args.stream_batch * p["lambda_request"],
        ),
        (
            "Lambda notifier: duration",
            stream_records / args.stream_batch * notifier_ms / 1000 * memory_gb,
            "GB-s",
            stream_records / args.stream_batch * notifier_ms / 1000 * memory_gb * p["lambda_gb_s"],
        ),
        ("EventBridge (state changes)", notifications, "events", notifications * p["eventbridge_event"]),
    ]
    counts = {
        "api_requests": api_requests,
        "api_ops": api_ops,
        "worker_ops": worker_ops,
        "notifications": notifications,
        "rru": rru,
        "job_kb": job_kb,
        "history_kb": history_kb,
        "api_ms": api_ms,
        "worker_ms_per_event": worker_ms_per_event,
        "index_wru": index_wru,
    }
    return lines, counts


def sweeper_month(memory_gb: float, latency_ms: float) -> float:
    """The sweeper's fixed cost per month: one invocation a minute, each querying every shard of both
    deadline indexes (eventually consistent: 0.5 RRU per query that finds nothing), one SSM read per
    container per 5 minutes left out (fractions of a cent)."""
    p = PRICES
    minutes = 30 * 24 * 60
    queries = DEADLINE_SHARDS * len(DEADLINE_INDEXES)
    duration_s = (2 + queries * latency_ms) / 1000
    return minutes * (
        p["lambda_request"] + duration_s * memory_gb * p["lambda_gb_s"] + queries * 0.5 * p["dynamodb_rru"]
    )


def function_memory() -> tuple[float, str]:
    """The functions' memory (GB) and architecture, from template.yaml's Globals."""
    from pipelinejobs.local.template import load_template

    function = load_template(ROOT / "template.yaml")["Globals"]["Function"]
    return int(function["MemorySize"]) / 1024, str(function["Architectures"][0])


def kb(size: int, unit: int = 1024) -> int:
    return max(1, math.ceil(size / unit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5, help="lifecycles measured")
    parser.add_argument("--batch", type=int, default=10, help="messages per worker invocation (Lambda's)")
    parser.add_argument("--stream-batch", type=int, default=10, help="stream records per notifier invocation")
    parser.add_argument(
        "--aws-latency-ms", type=float, default=10.0, help="wall time of one AWS request inside Lambda"
    )
    args = parser.parse_args(argv)
    m = measure(args.jobs)
    memory_gb, architecture = function_memory()
    assert architecture == "arm64", f"the prices below are arm64's, the template says {architecture}"
    api: Side = m["api"]
    worker: Side = m["worker"]
    events: int = m["events"]
    per_event = 1 / events
    latency = args.aws_latency_ms
    lines, counts = bill(m, args, memory_gb)
    api_requests, api_ops, worker_ops = counts["api_requests"], counts["api_ops"], counts["worker_ops"]
    notifications, rru = counts["notifications"], counts["rru"]
    job_kb, history_kb = counts["job_kb"], counts["history_kb"]
    api_ms, worker_ms_per_event = counts["api_ms"], counts["worker_ms_per_event"]
    p = PRICES
    total = sum(line[3] for line in lines) * 1e6
    log_gb = m["log_bytes"] * per_event / 1e9
    sfn_transitions = (2 + 3 * EVENTS_PER_JOB) / EVENTS_PER_JOB
    sfn_alone = sfn_transitions * p["sfn_transition"] * 1e6
    # The front door Step Functions needs as well for the same producers: the HTTP API and a function
    # that reads the job (its task token) and hands the event over, priced as ours.
    front_door = sum(d for name, _, _, d in lines if name.startswith(("API Gateway", "Lambda API"))) * 1e6
    front_door += rru * p["dynamodb_rru"] * 1e6
    sfn = sfn_alone + front_door
    ratio = sfn / total
    # Levers (what would reach the cost target), from the same counts.
    apply_wru = worker_ops.get("TransactWriteItems", 0) * (2 * job_kb + 2 * history_kb)
    two_writes = total - (apply_wru / 2) * p["dynamodb_wru"] * 1e6
    queue_only = total - front_door - api_ops.get("UpdateItem", 0) * job_kb * p["dynamodb_wru"] * 1e6

    print(
        f"lifecycle: create, run, {UPDATES_PER_JOB} updates, finish ({EVENTS_PER_JOB} events), "
        f"{m['jobs']} jobs measured through the handlers on moto"
    )
    print(
        "measured per event: "
        f"API {api_requests:.2f} requests ({', '.join(f'{op} {n:.2f}' for op, n in sorted(api_ops.items()))}), "
        f"{api.own_ms / api.invocations:.1f} ms own time per request; "
        f"worker {', '.join(f'{op} {n:.2f}' for op, n in sorted(worker_ops.items()))}, "
        f"{worker.own_ms * per_event:.2f} ms own time; state changes {notifications:.2f}; "
        f"item sizes: job {m['job_bytes']} B, history {m['history_bytes']} B, data {m['data_bytes']} B"
    )
    print(
        f"assumed: {args.batch} messages per worker invocation, {args.stream_batch} stream records per "
        f"notifier invocation, {latency:g} ms per AWS request inside Lambda (so API {api_ms:.0f} ms per "
        f"request, worker {worker_ms_per_event:.1f} ms per event); {memory_gb * 1024:.0f} MB {architecture} "
        f"(template.yaml)"
    )
    print(
        "prices (us-east-1 list, 2025): Lambda $0.20/M requests + $0.0000133334/GB-s (arm64); "
        "HTTP API $1.00/M; SQS FIFO $0.50/M requests (per 64 KB); DynamoDB on-demand $0.625/M WRU, "
        "$0.125/M RRU (transactional writes 2 WRU/KB); EventBridge $1.00/M; Step Functions Standard "
        "$25/M transitions\n"
    )
    print(f"{'item':<34} {'per event':>10} {'unit':<12} {'$ per M events':>14}")
    for name, quantity, unit, dollars in lines:
        print(f"{name:<34} {quantity:10.3f} {unit:<12} {dollars * 1e6:14.3f}")
    print(f"{'total':<34} {'':>10} {'':<12} {total:14.3f}")
    print(
        f"(also billed, outside the issue's list: CloudWatch Logs ingestion of the INFO logs and metrics, "
        f"{log_gb * 1e9:.0f} B per event measured: ${log_gb * p['logs_gb'] * 1e6:.2f} per M events)"
    )
    print(
        f"\nStep Functions Standard, same lifecycle: {sfn_transitions:.1f} transitions per event "
        f"(2 per job + 3 per event) = ${sfn_alone:.2f} per M events, plus the same HTTP front door "
        f"(API Gateway, a function reading the job's task token) ${front_door:.2f} = ${sfn:.2f} "
        f"(its DynamoDB records and EventBridge events left out); transitions alone are "
        f"{sfn_alone / total:.1f}x ours"
    )
    print(
        f"\nlevers, from the same counts: the apply as one conditional write + one put (2 WRU, not 4 "
        f"transactional) ${two_writes:.2f}; events sent straight to the queue (SPEC section 6: no HTTP "
        f"API, API function, read or rotation) ${queue_only:.2f}; both "
        f"${queue_only - (apply_wru / 2) * p['dynamodb_wru'] * 1e6:.2f} per M events"
    )
    index_line = ", ".join(f"{name} {u:.2f}" for name, u in counts["index_wru"].items() if u)
    print(f"index write units per event, measured from the stream: {index_line}")
    # The API's acceptance changes no index key; with listing indexes that project keys only (reading
    # the listed jobs back from the table), it would write no index entry at all.
    listing_indexes = [n for n in counts["index_wru"] if n not in DEADLINE_INDEXES]
    keys_only = api_ops.get("UpdateItem", 0) * len(listing_indexes) * job_kb * p["dynamodb_wru"] * 1e6
    print(
        f"lever: listing indexes projecting keys only (a listing page then reads its jobs back with one "
        f"BatchGetItem) -${keys_only:.2f}, ${total - keys_only:.2f} per M events"
    )

    # -- deadlines (issue 12) -------------------------------------------------------------------------
    with_deadlines = measure(args.jobs, deadlines={"heartbeat_seconds": 3600, "timeout_seconds": 86400})
    d_lines, d_counts = bill(with_deadlines, args, memory_gb)
    d_total = sum(line[3] for line in d_lines) * 1e6
    extra_per_job = (d_total - total) * EVENTS_PER_JOB / 1e6  # $ per job, the lifecycle's 10 events
    month = sweeper_month(memory_gb, latency)
    deadline_units = {n: u for n, u in d_counts["index_wru"].items() if n in DEADLINE_INDEXES}
    # a missed deadline: one more event (the sweeper's message, the system's fail applied, notified)
    missed = total / 1e6
    print(
        f"\nwith deadlines (heartbeat 3600 s and timeout 86400 s on every job; the same lifecycle): "
        f"${d_total:.2f} per M events (+${d_total - total:.2f}: deadline index writes "
        f"{', '.join(f'{n} {u:.2f}' for n, u in deadline_units.items())} WRU per event; job item "
        f"{with_deadlines['job_bytes']} B), i.e. +${extra_per_job * 1e6:.2f} per M jobs; "
        f"a job failed at its deadline: + one event, ${missed * 1e6:.2f} per M such jobs; "
        f"the sweeper's schedule: ${month:.2f} per month whatever the load "
        f"({DEADLINE_SHARDS} shards x {len(DEADLINE_INDEXES)} indexes queried a minute)"
    )
    cost_ok, ratio_ok = total <= TARGET_DOLLARS, ratio >= TARGET_RATIO
    print(
        f"\n$ per million events: {total:.2f} (target <= {TARGET_DOLLARS:g}) {'PASS' if cost_ok else 'MISS'}"
    )
    print(
        f"cheaper than Step Functions: {ratio:.1f}x (target >= {TARGET_RATIO:g}x) {'PASS' if ratio_ok else 'MISS'}"
    )
    return 0 if cost_ok and ratio_ok else 3


if __name__ == "__main__":
    raise SystemExit(main())
