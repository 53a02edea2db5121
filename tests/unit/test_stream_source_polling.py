"""The local stack's stream event source polls like Lambda's: a few times a second, at once again only
after a full batch, and lists the stream's shards now and then rather than before every read."""

from __future__ import annotations

import time
from typing import Any

from pipelinejobs.local.event_source import StreamEventSource
from pipelinejobs.local.functions import Invocation


class TrickleStream:
    """A stream with one shard that always has one new record (a table written steadily)."""

    def __init__(self) -> None:
        self.calls = {"describe_stream": 0, "get_shard_iterator": 0, "get_records": 0}
        self.sequence = 0

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        self.calls["describe_stream"] += 1
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        self.calls["get_shard_iterator"] += 1
        return {"ShardIterator": "iterator"}

    def get_records(self, **_: Any) -> dict[str, Any]:
        self.calls["get_records"] += 1
        self.sequence += 1
        record = {
            "eventID": str(self.sequence),
            "eventName": "MODIFY",
            "dynamodb": {"SequenceNumber": str(self.sequence), "Keys": {}},
        }
        return {"Records": [record], "NextShardIterator": "iterator"}


class Recorder:
    def __init__(self) -> None:
        self.records = 0

    def invoke(self, event: dict[str, Any], timeout: float | None = None) -> Invocation:
        self.records += len(event["Records"])
        return Invocation(None, None, 0.0, False)


def test_a_steady_trickle_is_read_a_few_times_a_second_with_the_shards_listed_once() -> None:
    # given a stream that always has a new record, read for one second
    stream, function = TrickleStream(), Recorder()
    source = StreamEventSource(streams=stream, stream_arn="arn:stream", function=function, batch_size=100)
    source.start()
    time.sleep(1.0)
    source.stop(timeout=5)
    # then it was read about four times (not as fast as the emulator answers), each record handed over,
    # and the shards listed once
    assert 2 <= stream.calls["get_records"] <= 8, stream.calls
    assert function.records == stream.calls["get_records"]
    assert stream.calls["describe_stream"] == 1
