"""The local stack's SQS event source with several pollers: message groups of the FIFO queue are worked
on at once, each group in order, every message once (as Lambda's event source does for a FIFO queue)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelinejobs.local.event_source import SqsEventSource
from pipelinejobs.local.functions import Invocation

GROUPS = 4
PER_GROUP = 12


class SlowFunction:
    """Records each record it gets, taking a while per batch, and how many batches ran at once."""

    def __init__(self) -> None:
        self.bodies: defaultdict[str, list[int]] = defaultdict(list)
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any], timeout: float | None = None) -> Invocation:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.05)
        with self._lock:
            for record in event["Records"]:
                self.bodies[record["attributes"]["MessageGroupId"]].append(int(record["body"]))
            self.running -= 1
        return Invocation({"batchItemFailures": []}, None, 0.05, False)


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_several_pollers_work_groups_at_once_each_in_order(sqs) -> None:
    # given a FIFO queue holding twelve messages in each of four groups
    url = sqs.create_queue(
        QueueName="events.fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "30"}
    )["QueueUrl"]
    for i in range(PER_GROUP):
        for group in range(GROUPS):
            sqs.send_message(
                QueueUrl=url,
                MessageBody=str(i),
                MessageGroupId=f"g{group}",
                MessageDeduplicationId=f"{group}-{i}",
            )
    function = SlowFunction()
    source = SqsEventSource(
        sqs=sqs,
        queue_url=url,
        queue_arn="arn:aws:sqs:us-east-1:123456789012:events.fifo",
        function=function,  # type: ignore[arg-type]
        batch_size=3,
        report_batch_item_failures=True,
        wait_seconds=0,
        concurrency=3,
    )
    # when three pollers work the queue until it is empty
    source.start()
    deadline = time.monotonic() + 20
    while sum(len(b) for b in function.bodies.values()) < GROUPS * PER_GROUP and time.monotonic() < deadline:
        time.sleep(0.05)
    source.stop(timeout=5)
    # then every message was handled once, each group in the order it was sent, several batches at once
    assert {group: bodies for group, bodies in function.bodies.items()} == {
        f"g{group}": list(range(PER_GROUP)) for group in range(GROUPS)
    }
    assert function.most_at_once > 1
    assert not source.busy
