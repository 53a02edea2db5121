"""Job State Changed notifications: from the table's stream (moto's), through the notifier, to EventBridge."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config

STACK_OVERRIDES: dict[str, Any] = {}  # this module needs the table's stream


def stream_event(stream_arn: str) -> dict[str, Any]:
    """Every record of the stream so far, in the shape Lambda's DynamoDB event source gives."""
    # moto routes only the regional streams endpoint, not botocore's newer account-based one
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    for r in records:
        r["eventSourceARN"] = stream_arn
    return {"Records": records}


@pytest.fixture
def published(stack, monkeypatch) -> list[dict[str, Any]]:
    import notifier_handler
    from jobcore.adapters.eventbridge import EventBridgeNotifier

    notifier_handler._notifier.cache_clear()
    sent: list[dict[str, Any]] = []
    client = boto3.client("events")
    real = client.put_events

    def recording_put_events(**kwargs):
        sent.extend(kwargs["Entries"])
        return real(**kwargs)

    monkeypatch.setattr(client, "put_events", recording_put_events)
    monkeypatch.setattr(
        notifier_handler, "_notifier", lambda: EventBridgeNotifier(client, stack.event_bus_name)
    )
    return sent


def test_every_applied_state_change_is_published_once(harness, published) -> None:
    import notifier_handler
    from tests.integration.conftest import FakeContext

    # given a job that runs, reports progress, finishes, and is reset with its archive kept
    created = harness.create()
    uuid = created.job.uuid
    ids = {name: harness.send(uuid, name, created.token) for name in ("run", "update", "finish")}
    ids["reset"] = harness.send(uuid, "reset", harness.admin(), data={"keep_archive": True})
    harness.work()
    # when the table's stream is handed to the notifier
    response = notifier_handler.handler(stream_event(harness.resources.table_stream_arn), FakeContext())
    # then each state change is published once, with SPEC section 7's detail; the update is not
    assert response == {"batchItemFailures": []}
    details = [json.loads(e["Detail"]) for e in published]
    assert all(e["Source"] == "pipelinejobs" and e["DetailType"] == "Job State Changed" for e in published)
    assert [(d["event"], d["from_state"], d["to_state"], d["generation"]) for d in details] == [
        ("run", "CREATED", "RUNNING", 1),
        ("finish", "RUNNING", "FINISHED", 1),
        ("reset", "FINISHED", "RESET", 1),
        ("erased", "RESET", "CREATED", 2),
    ]
    assert details[0]["event_id"] == ids["run"] and details[0]["uuid"] == uuid
    assert details[0]["pipeline_uuid"] == "pipeline-1" and details[0]["at"].endswith("Z")
    assert set(details[0]) == {
        "uuid",
        "pipeline_uuid",
        "event",
        "event_id",
        "from_state",
        "to_state",
        "generation",
        "at",
    }
    # and nothing secret travels with them
    text = json.dumps(published)
    assert created.token not in text and created.callback_token not in text and "hash" not in text
