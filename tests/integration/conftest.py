"""Integration fixtures: moto in-process, every resource built from template.yaml, the worker handler
fed real SQS messages in Lambda's event shape."""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from integration_helpers import ADMIN_KEY
from moto import mock_aws

from jobcore.adapters.dynamodb import DynamoJobRepository
from jobcore.adapters.s3 import S3ArchiveStore
from jobcore.adapters.sqs import SqsEventQueue
from jobcore.adapters.ssm import StaticAdminKeys
from jobcore.clock import FakeClock
from jobcore.models import JobSpec
from jobcore.service import CreatedJob, JobService
from jobcore.settings import Settings
from jobcore.tokens import admin_token
from pipelinejobs.local.event_source import sqs_record
from pipelinejobs.local.resources import StackResources, create_stack_resources

ROOT = Path(__file__).resolve().parents[2]


def metric_totals(out: str) -> dict[str, float]:
    """The EMF metric lines (Powertools Metrics) in captured stdout, summed by metric name."""
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if line.startswith('{"_aws"'):
            blob = json.loads(line)
            for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = blob[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return totals


@pytest.fixture(scope="module")
def aws() -> Iterator[None]:
    """moto in-process for one test module (building the stack per test would cost ~1.4 s each)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_REGION", "us-east-1")
        with mock_aws():
            yield


@pytest.fixture(scope="module")
def stack(aws: None, request: pytest.FixtureRequest) -> Iterator[StackResources]:
    # moto keeps every stream record and copies them with the table on each transaction, so modules
    # that do not test the notifier build the table without its stream (STACK_OVERRIDES to change).
    overrides = getattr(request.module, "STACK_OVERRIDES", {"JobsTable": {"StreamSpecification": None}})
    resources = create_stack_resources(ROOT / "template.yaml", admin_key=ADMIN_KEY, overrides=overrides)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in resources.environment().items():
            mp.setenv(name, value)
        yield resources


class FakeContext:
    """Enough of Lambda's context for the handlers; time left is whatever the test says."""

    function_name = "WorkerFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WorkerFunction"
    aws_request_id = "test-request"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Harness:
    """Drives the worker the way Lambda's SQS event source would, one batch at a time."""

    resources: StackResources
    clock: FakeClock
    service: JobService
    sqs: Any
    s3: Any
    queue_arn: str
    handler_results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def repo(self) -> DynamoJobRepository:
        return self.service.repo  # type: ignore[return-value]

    def admin(self, now: float | None = None) -> str:
        return admin_token(ADMIN_KEY, self.clock.now() if now is None else now, 3600)

    def create(self, **spec: Any) -> CreatedJob:
        spec.setdefault("pipeline_uuid", "pipeline-1")
        spec.setdefault("data", {"sample": str(uuidlib.uuid4())})
        return self.service.create_job(JobSpec(**spec))

    def body(
        self,
        uuid: str,
        name: str,
        token: str,
        data: dict[str, Any] | None = None,
        event_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "uuid": uuid,
            "name": name,
            "token": token,
            "event_id": event_id or str(uuidlib.uuid4()),
        }
        if data is not None:
            body["data"] = data
        body.update(extra)
        return body

    def send(
        self,
        uuid: str,
        name: str,
        token: str,
        data: dict[str, Any] | None = None,
        event_id: str | None = None,
        **extra: Any,
    ) -> str:
        body = self.body(uuid, name, token, data, event_id, **extra)
        self.send_raw(json.dumps(body), group=uuid, dedup=body["event_id"])
        return str(body["event_id"])

    def send_raw(self, text: str, group: str = "raw", dedup: str | None = None) -> None:
        self.sqs.send_message(
            QueueUrl=self.resources.queue_url,
            MessageBody=text,
            MessageGroupId=group,
            MessageDeduplicationId=dedup or str(uuidlib.uuid4()),
        )

    def receive(self, max_messages: int = 10) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.resources.queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def invoke(self, messages: list[dict[str, Any]], context: FakeContext | None = None) -> dict[str, Any]:
        import worker_handler

        event = {"Records": [sqs_record(m, queue_arn=self.queue_arn) for m in messages]}
        response: dict[str, Any] = worker_handler.handler(event, context or FakeContext())
        self.handler_results.append(response)
        return response

    def delete_succeeded(self, messages: list[dict[str, Any]], response: dict[str, Any]) -> None:
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def work_once(self, batch_size: int = 10) -> int:
        """One batch: receive, invoke, delete what succeeded. Returns messages handled."""
        messages = self.receive(batch_size)
        if messages:
            self.delete_succeeded(messages, self.invoke(messages))
        return len(messages)

    def work(self, max_batches: int = 50, batch_size: int = 10) -> int:
        """Receive, invoke, delete what succeeded, until the queue is empty. Returns messages handled."""
        handled = 0
        for _ in range(max_batches):
            messages = self.receive(batch_size)
            if not messages:
                return handled
            response = self.invoke(messages)
            self.delete_succeeded(messages, response)
            handled += len(messages)
        raise AssertionError("the queue did not drain")

    def drop_queued(self) -> None:
        """Delete whatever is waiting (PurgeQueue may run only once a minute)."""
        while messages := self.receive(10):
            for m in messages:
                self.sqs.delete_message(QueueUrl=self.resources.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def history(self, uuid: str) -> list[dict[str, Any]]:
        return [e.public() for e in self.repo.history(uuid, 1000, None).entries]

    def state(self, uuid: str) -> str:
        job = self.repo.get(uuid)
        assert job is not None
        return str(job.state)


class TickingClock(FakeClock):
    """A fake clock that moves 1 ms each time it is read, as a real one would between two writes."""

    def now(self) -> float:
        self.advance(0.001)
        return super().now()


@pytest.fixture
def harness(stack: StackResources, monkeypatch: pytest.MonkeyPatch) -> Harness:
    import worker_handler

    clock = TickingClock(start=1_800_000_000.0)
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    settings = Settings.from_env()
    service = JobService(
        settings,
        DynamoJobRepository(settings.table_name),
        queue=SqsEventQueue(sqs, settings.queue_url),
        archive=S3ArchiveStore(s3),
        admin_keys=StaticAdminKeys(ADMIN_KEY),
        clock=clock,
        sleep=clock.advance,
    )
    monkeypatch.setattr(worker_handler, "_deps", lambda: service)
    arn = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    harness = Harness(stack, clock, service, sqs, s3, arn)
    harness.drop_queued()  # each test starts from an empty queue ...
    clear_table(stack.table_name)  # ... and table (moto copies the whole table on every transaction)
    return harness


def clear_table(table_name: str) -> None:
    table = boto3.resource("dynamodb").Table(table_name)
    scan: dict[str, Any] = {"ProjectionExpression": "pk, sk"}
    with table.batch_writer() as batch:
        while True:
            page = table.scan(**scan)
            for key in page["Items"]:
                batch.delete_item(Key=key)
            if "LastEvaluatedKey" not in page:
                break
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
