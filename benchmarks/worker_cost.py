"""What one applied event costs the worker in DynamoDB, and whether that grows with history or data.

For a job with 10 and with 10,000 history entries, and with 0 and 60 KiB of `data`, applies a few
`update` events through the worker handler (moto in-process, resources from template.yaml) and prints:
DynamoDB requests and reads per applied event, the size of each item the write touched (by DynamoDB's
item-size rules) and the write units that costs (a transactional write is 2 WRU per started KB).

Targets (issue 2): 1 request, 0 reads, item sizes flat across history length and data size.

    python benchmarks/worker_cost.py
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid as uuidlib
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS_PER_CASE = 5
READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}


def attribute_size(value: Any) -> int:
    """Bytes of one attribute value by DynamoDB's item-size rules."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, int | float | Decimal):
        digits = len(str(abs(value)).replace(".", "").lstrip("0")) or 1
        return 1 + math.ceil(digits / 2)
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, dict):
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in value.items())
    if isinstance(value, list | set | tuple):
        return 3 + sum(attribute_size(v) + 1 for v in value)
    raise TypeError(type(value))


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


def main() -> int:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    sys.path[:0] = [str(ROOT / "layers/core"), str(ROOT / "functions/worker"), str(ROOT)]

    import boto3
    import botocore.client
    from moto import mock_aws

    calls: Counter[str] = Counter()
    real_call = botocore.client.BaseClient._make_api_call

    def counting_call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls[operation] += 1
        return real_call(self, operation, params)

    botocore.client.BaseClient._make_api_call = counting_call  # type: ignore[method-assign]

    with mock_aws():
        from jobcore.adapters.dynamodb import DynamoJobRepository, pk
        from jobcore.adapters.s3 import S3ArchiveStore
        from jobcore.adapters.sqs import SqsEventQueue
        from jobcore.adapters.ssm import StaticAdminKeys
        from jobcore.models import JobSpec
        from jobcore.service import JobService
        from jobcore.settings import Settings
        from pipelinejobs.local.resources import create_stack_resources

        # The stream is left out: moto keeps every stream record in memory (AWS does not bill it).
        stack = create_stack_resources(
            ROOT / "template.yaml",
            admin_key="bench-key",
            overrides={"JobsTable": {"StreamSpecification": None}},
        )
        os.environ.update(stack.environment())
        settings = Settings.from_env()
        repo = DynamoJobRepository(settings.table_name)
        service = JobService(
            settings,
            repo,
            queue=SqsEventQueue(boto3.client("sqs"), settings.queue_url),
            archive=S3ArchiveStore(boto3.client("s3")),
            admin_keys=StaticAdminKeys("bench-key"),
        )
        table = boto3.resource("dynamodb").Table(settings.table_name)

        rows = []
        for history_len in (10, 10_000):
            for data_kib in (0, 60):
                data = {"blob": "x" * (data_kib * 1024 - 20)} if data_kib else {}
                data["case"] = str(uuidlib.uuid4())
                created = service.create_job(JobSpec(pipeline_uuid="bench", data=data))
                job_uuid = created.job.uuid
                service.handle_message(
                    {"uuid": job_uuid, "name": "run", "token": created.token}, fallback_event_id="run"
                )
                # Pre-existing history, written directly (not part of what is measured).
                with table.batch_writer() as batch:
                    for i in range(history_len - 1):
                        eid = f"old-{i:06d}"
                        batch.put_item(
                            Item={
                                "pk": pk(job_uuid),
                                "sk": f"EVT#{eid}",
                                "hist": f"0000-{eid}",
                                "event_id": eid,
                                "name": "update",
                                "data": "{}",
                                "at": "x",
                                "outcome": "applied",
                            }
                        )
                calls.clear()
                job_sizes, history_sizes = [], []
                for i in range(EVENTS_PER_CASE):
                    event_id = str(uuidlib.uuid4())
                    result = service.handle_message(
                        {
                            "uuid": job_uuid,
                            "name": "update",
                            "token": created.token,
                            "event_id": event_id,
                            "data": {"progress": i},
                        },
                        fallback_event_id=event_id,
                    )
                    assert result.applied, result
                    measured = dict(calls)
                    job_sizes.append(item_size(table.get_item(Key={"pk": pk(job_uuid), "sk": "JOB"})["Item"]))
                    history_sizes.append(
                        item_size(table.get_item(Key={"pk": pk(job_uuid), "sk": f"EVT#{event_id}"})["Item"])
                    )
                    calls.clear()
                    calls.update(measured)
                total = sum(calls.values())
                reads = sum(n for op, n in calls.items() if op in READS)
                job_b, hist_b = max(job_sizes), max(history_sizes)
                wru = 2 * math.ceil(job_b / 1024) + 2 * math.ceil(hist_b / 1024)
                rows.append(
                    (
                        history_len,
                        data_kib,
                        total / EVENTS_PER_CASE,
                        reads / EVENTS_PER_CASE,
                        ", ".join(sorted(calls)),
                        job_b,
                        hist_b,
                        wru,
                    )
                )

    header = (
        "history",
        "data KiB",
        "requests/event",
        "reads/event",
        "operations",
        "job item B",
        "history item B",
        "WRU/event",
    )
    print(json.dumps({"events_per_case": EVENTS_PER_CASE}))
    print(" | ".join(header))
    for r in rows:
        print(" | ".join(str(v) for v in r))
    # Counters (token_uses, timestamps' digits) may add a byte or two; growth with history or data would
    # show as kilobytes.
    flat = max(r[5] for r in rows) - min(r[5] for r in rows) <= 8 and len({r[6] for r in rows}) == 1
    ok = all(r[2] == 1 and r[3] == 0 for r in rows)
    wru_ok = max(r[7] for r in rows) <= 4
    print(f"\nrequests per applied event: target 1, reads 0 -> {'PASS' if ok else 'MISS'}")
    print(
        f"item bytes flat across history length and data size (within 8 B of counter width) -> "
        f"{'PASS' if flat else 'MISS'}"
    )
    print(f"write units per event: target <= 4 -> {max(r[7] for r in rows)} ({'PASS' if wru_ok else 'MISS'})")
    return 0 if ok and flat and wru_ok else 3


if __name__ == "__main__":
    raise SystemExit(main())
