"""The worker's event source, as Lambda's: the event shape, poison messages acknowledged, failures of the
machinery retried after the visibility timeout, dead-lettered after maxReceiveCount, redriven."""

from __future__ import annotations

import json
import uuid as uuidlib
from typing import Any

import pytest
from typer.testing import CliRunner

from jobcore.errors import TransientError
from pipelinejobs.cli import app
from pipelinejobs.dlq import redrive
from tests.e2e.conftest import VISIBILITY_TIMEOUT, Api, queue_depth, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker(stack) -> Any:
    (instance,) = stack.worker.instances
    return instance


def _send(sqs, stack, body: str, group: str) -> None:
    sqs.send_message(
        QueueUrl=stack.resources.queue_url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=uuidlib.uuid4().hex,
    )


def test_worker_gets_lambdas_sqs_event_shape(stack, sqs, worker, monkeypatch) -> None:
    # given a recording of what the worker function is invoked with
    events: list[dict] = []
    real = worker.handler

    def recording(event, context):
        events.append(event)
        return real(event, context)

    monkeypatch.setattr(worker, "handler", recording)
    group = str(uuidlib.uuid4())
    # when a message is sent straight to the queue
    sqs.send_message(
        QueueUrl=stack.resources.queue_url,
        MessageBody="{}",
        MessageGroupId=group,
        MessageDeduplicationId="dedup-1",
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "e2e"}},
    )
    stack.drain()
    # then the record has every field Lambda's SQS event source gives
    (record,) = [r for e in events for r in e["Records"] if r["attributes"].get("MessageGroupId") == group]
    assert set(record) >= {
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
        "eventSource", "eventSourceARN", "awsRegion",
    }  # fmt: skip
    assert record["eventSource"] == "aws:sqs" and record["awsRegion"] == "us-east-1"
    assert record["eventSourceARN"].endswith(":pipelinejobs-e2e-eventsqueue.fifo")
    assert record["attributes"]["MessageDeduplicationId"] == "dedup-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp", "SequenceNumber"} <= set(
        record["attributes"]
    )
    assert record["messageAttributes"]["origin"]["stringValue"] == "e2e"
    assert record["messageAttributes"]["origin"]["dataType"] == "String"
    # and at most BatchSize messages per invocation
    assert all(len(e["Records"]) <= stack.resources.worker_batch_size for e in events)


def test_poison_message_is_acknowledged_and_changes_nothing(api: Api, stack, sqs) -> None:
    # given a job, and messages no producer should send: not JSON, and a forged token for the job
    created = api.create_job()
    uuid = created["job"]["uuid"]
    before = api.job(uuid).body
    _send(sqs, stack, "this is not json {", group=str(uuidlib.uuid4()))
    forged = {"uuid": uuid, "name": "finish", "token": "forged-token", "event_id": "poison-1"}
    _send(sqs, stack, json.dumps(forged), group=uuid)
    # when the worker has had them
    stack.drain()
    # then both are gone from the queue, none went to the dead-letter queue, the job is unchanged,
    assert queue_depth(sqs, stack.resources.queue_url) == 0
    assert queue_depth(sqs, stack.resources.dead_letter_queue_url) == 0
    after = api.job(uuid).body
    assert (after["state"], after["generation"], after["updated_at"]) == (
        before["state"],
        before["generation"],
        before["updated_at"],
    )
    # and the forged event is in the job's history as rejected
    (entry,) = api.history(uuid)
    assert (entry["event_id"], entry["outcome"]) == ("poison-1", "rejected")


def test_failure_of_the_machinery_is_dead_lettered_then_redriven_and_applied(
    api: Api, stack, sqs, worker, monkeypatch
) -> None:
    # given a job whose writes fail as if DynamoDB were throttling, while another job's still work
    created, other = api.create_job(), api.create_job()
    uuid = created["job"]["uuid"]
    repository = worker.module._deps().repo
    real_apply = repository.apply
    attempts: list[str] = []

    def throttled(command, entry):
        if command.uuid == uuid:
            attempts.append(command.event_id)
            raise TransientError("throttled (simulated)")
        return real_apply(command, entry)

    monkeypatch.setattr(repository, "apply", throttled)
    # when it is sent an event, and the other job one too
    accepted = api.post_event(uuid, "run", created["token"])
    assert accepted.status == 202, accepted.body
    assert api.post_event(other["job"]["uuid"], "run", other["token"]).status == 202
    # then after maxReceiveCount receives, one visibility timeout apart, the message is dead-lettered
    dlq = stack.resources.dead_letter_queue_url
    wait_until(
        lambda: queue_depth(sqs, dlq) == 1,
        timeout=(stack.resources.max_receive_count + 2) * (VISIBILITY_TIMEOUT + 1),
        what="the message in the dead-letter queue",
    )
    assert len(attempts) == stack.resources.max_receive_count
    assert queue_depth(sqs, stack.resources.queue_url) == 0
    assert api.job(uuid).body["state"] == "CREATED"
    assert api.job(other["job"]["uuid"]).body["state"] == "RUNNING"  # a failure fails only its group
    # when the cause is fixed and an admin redrives the dead-letter queue with the CLI
    monkeypatch.setattr(repository, "apply", real_apply)
    result = CliRunner().invoke(
        app,
        ["dlq", "redrive", "--dlq-url", dlq, "--queue-url", stack.resources.queue_url, "--yes", "--json"],
        env={"AWS_ENDPOINT_URL": stack.aws_endpoint},
    )
    stack.drain()
    # then the event is applied once, under its original id
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["moved"] == 1
    assert queue_depth(sqs, dlq) == 0
    assert api.job(uuid).body["state"] == "RUNNING"
    history = api.history(uuid)
    assert [(e["event_id"], e["name"], e["outcome"]) for e in history] == [
        (accepted.body["event_id"], "run", "applied")
    ]


def test_redrive_moves_at_most_max_and_keeps_group_and_event_identity(stack, sqs) -> None:
    # given three messages in the dead-letter queue, one without an event id in its body
    dlq, queue = stack.resources.dead_letter_queue_url, stack.resources.queue_url
    group = str(uuidlib.uuid4())
    bodies = [
        json.dumps({"uuid": group, "name": "run", "token": "t", "event_id": "kept-1"}),
        json.dumps({"uuid": group, "name": "update", "token": "t"}),
        "not json",
    ]
    for i, body in enumerate(bodies):
        sqs.send_message(
            QueueUrl=dlq, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=f"orig-{i}"
        )
    stack.drain()  # nothing of ours in the events queue first
    # when an admin redrives at most two, then the rest
    first = redrive(sqs, dlq, queue, max=2)
    rest = redrive(sqs, dlq, queue)
    # then two moved, then one; the worker has them all acknowledged (they are poison for it)
    assert (first, rest) == (2, 1)
    stack.drain()
    assert queue_depth(sqs, dlq) == 0 and queue_depth(sqs, queue) == 0
    # and the results show each kept its event identity: the body's id, or the original dedup id
    seen = {r.event_id for r in stack.results if r.uuid == group}
    assert {"kept-1", "orig-1"} <= seen
