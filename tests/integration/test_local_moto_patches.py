"""The local stack's patches of moto (pipelinejobs.local.moto_patches): a DynamoDB transaction copies only
the items it names, never the whole table, and a cancelled one still leaves no trace; a query of the table
reads its partition, not every item, and answers as before; requests are isolated from each other; an
answer written directly is the one moto's serializer writes."""

from __future__ import annotations

import contextlib
import copy
import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from pipelinejobs.local import moto_patches

TABLE = "patched"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        assert moto_patches.install()
        try:
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName=TABLE,
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "v", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
                GlobalSecondaryIndexes=[
                    {
                        "IndexName": "by-v",
                        "KeySchema": [{"AttributeName": "v", "KeyType": "HASH"}],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            )
            yield client
        finally:
            moto_patches.uninstall()


@pytest.fixture
def no_table_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any deep copy of a whole table fails the test (moto made one per transaction)."""
    from moto.dynamodb.models.table import Table

    def refuse(self: Any, memo: Any) -> Any:
        raise AssertionError("a whole table was copied")

    monkeypatch.setattr(Table, "__deepcopy__", refuse, raising=False)


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "job"}, "sk": {"S": sk}}


def _item(client: Any, sk: str) -> dict[str, Any] | None:
    return client.get_item(TableName=TABLE, Key=_key(sk), ConsistentRead=True).get("Item")


def _stream_records(client: Any) -> int:
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE]
    return len(table.stream_shard.items)


def _update(sk: str, value: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": _key(sk),
            "UpdateExpression": "SET v = :v",
            "ExpressionAttributeValues": {":v": {"S": value}},
        }
    }


def _put_new(sk: str) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": TABLE,
            "Item": {**_key(sk), "v": {"S": "new"}},
            "ConditionExpression": "attribute_not_exists(sk)",
        }
    }


def test_a_committed_transaction_applies_every_part_without_copying_the_table(
    dynamodb, no_table_copies
) -> None:
    # given an item
    dynamodb.put_item(TableName=TABLE, Item={**_key("job"), "v": {"S": "before"}})
    records = _stream_records(dynamodb)
    # when a transaction updates it and adds another
    dynamodb.transact_write_items(TransactItems=[_update("job", "after"), _put_new("history#1")])
    # then both parts are there, with their stream records
    assert _item(dynamodb, "job")["v"] == {"S": "after"}
    assert _item(dynamodb, "history#1")["v"] == {"S": "new"}
    assert _stream_records(dynamodb) == records + 2


def test_a_cancelled_transaction_leaves_items_and_stream_as_they_were(dynamodb, no_table_copies) -> None:
    # given an item, and a history entry that exists already
    dynamodb.put_item(TableName=TABLE, Item={**_key("job"), "v": {"S": "before"}})
    dynamodb.put_item(TableName=TABLE, Item={**_key("history#1"), "v": {"S": "first"}})
    records = _stream_records(dynamodb)
    # when a transaction updates the item, adds a new entry and re-adds the existing one (its condition fails)
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[_update("job", "after"), _put_new("history#2"), _put_new("history#1")]
        )
    # then it is cancelled for that reason, and nothing of it remains: not the update, not the new entry,
    # not a stream record
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert _item(dynamodb, "job")["v"] == {"S": "before"}
    assert _item(dynamodb, "history#2") is None
    assert _item(dynamodb, "history#1")["v"] == {"S": "first"}
    assert _stream_records(dynamodb) == records


def test_a_cancelled_transaction_hands_back_the_old_item(dynamodb) -> None:
    # given an item, and a conditional update that fails with ALL_OLD asked for (the worker relies on it)
    dynamodb.put_item(TableName=TABLE, Item={**_key("job"), "state": {"S": "RUNNING"}})
    update = _update("job", "x")
    update["Update"]["ConditionExpression"] = "#s = :created"
    update["Update"]["ExpressionAttributeNames"] = {"#s": "state"}
    update["Update"]["ExpressionAttributeValues"][":created"] = {"S": "CREATED"}
    update["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    # when it runs
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[update, _put_new("history#1")])
    # then the reason holds the item as it is
    (first, _) = raised.value.response["CancellationReasons"]
    assert first["Code"] == "ConditionalCheckFailed"
    assert first["Item"]["state"] == {"S": "RUNNING"}
    assert _item(dynamodb, "history#1") is None


@pytest.fixture
def no_table_sorts(dynamodb: Any) -> Iterator[None]:
    """Sorting every item of the table (what a query of one partition did) fails the test. Undone before
    the patches are uninstalled, which put back what this replaces."""

    def refuse(self: Any) -> Any:
        raise AssertionError("every item of the table was read")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(moto_patches._all_items, "_pipelinejobs_original", refuse)
        yield


def _fill(client: Any) -> None:
    for pk in ("a", "b", "c"):
        for i in range(12):
            item = {"pk": {"S": pk}, "sk": {"S": f"event#{i:03d}"}, "v": {"S": "even" if i % 2 else "odd"}}
            client.put_item(TableName=TABLE, Item=item)


def _sks(items: list[dict[str, Any]]) -> list[str]:
    return [item["sk"]["S"] for item in items]


def test_a_query_of_the_table_reads_its_partition_in_order_and_pages(dynamodb, no_table_sorts) -> None:
    # given three partitions of twelve items
    _fill(dynamodb)
    query = {
        "TableName": TABLE,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": "b"}},
    }
    # when one is queried forwards in pages of five, backwards, and by a key prefix
    pages, start = [], None
    while True:
        page = dynamodb.query(**query, Limit=5, **({"ExclusiveStartKey": start} if start else {}))
        pages.append(_sks(page["Items"]))
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    backwards = dynamodb.query(**query, ScanIndexForward=False)["Items"]
    prefixed = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": {"S": "c"}, ":p": {"S": "event#01"}},
    )["Items"]
    nothing = dynamodb.query(**{**query, "ExpressionAttributeValues": {":pk": {"S": "none"}}})["Items"]
    # then each answer is that partition's items, in key order
    every = [f"event#{i:03d}" for i in range(12)]
    assert [sk for page in pages for sk in page] == every and [len(p) for p in pages[:3]] == [5, 5, 2]
    assert _sks(backwards) == every[::-1]
    assert _sks(prefixed) == ["event#010", "event#011"] and prefixed[0]["pk"] == {"S": "c"}
    assert nothing == []


def test_a_query_of_an_index_still_sees_every_partition(dynamodb) -> None:
    _fill(dynamodb)
    items = dynamodb.query(
        TableName=TABLE,
        IndexName="by-v",
        KeyConditionExpression="v = :v",
        ExpressionAttributeValues={":v": {"S": "even"}},
    )["Items"]
    assert len(items) == 18 and {item["pk"]["S"] for item in items} == {"a", "b", "c"}


def test_install_is_idempotent_and_uninstall_restores_moto() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    originals = (DynamoDBBackend.transact_write_items, Table.query, Table.all_items)
    assert moto_patches.install() and moto_patches.install()
    assert moto_patches.installed()
    moto_patches.uninstall()
    assert not moto_patches.installed()
    assert (DynamoDBBackend.transact_write_items, Table.query, Table.all_items) == originals


def test_a_failed_transaction_never_undoes_a_write_made_meanwhile(dynamodb) -> None:
    # given an item that one thread counts up while another keeps trying a transaction whose condition
    # fails (moto put back what it had copied before, losing the counts made in between)
    dynamodb.put_item(TableName=TABLE, Item={**_key("job"), "state": {"S": "RUNNING"}, "n": {"N": "0"}})
    failing = _update("job", "x")
    failing["Update"]["ConditionExpression"] = "#s = :created"
    failing["Update"]["ExpressionAttributeNames"] = {"#s": "state"}
    failing["Update"]["ExpressionAttributeValues"][":created"] = {"S": "CREATED"}
    stop = threading.Event()

    def keep_failing() -> None:
        while not stop.is_set():
            with contextlib.suppress(ClientError):
                dynamodb.transact_write_items(TransactItems=[failing, _put_new("history#1")])

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads take turns often, as requests on a busy server do
    other = threading.Thread(target=keep_failing)
    other.start()
    try:
        # when it counts 200 times
        for _ in range(200):
            dynamodb.update_item(
                TableName=TABLE,
                Key=_key("job"),
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
    finally:
        stop.set()
        other.join()
        sys.setswitchinterval(switch)
    # then no count was lost
    assert _item(dynamodb, "job")["n"] == {"N": "200"}


attribute_values = st.recursive(
    st.one_of(
        st.builds(lambda text: {"S": text}, st.text(max_size=20)),
        st.builds(lambda n: {"N": str(n)}, st.integers() | st.floats(allow_nan=False, allow_infinity=False)),
        st.builds(lambda b: {"BOOL": b}, st.booleans()),
        st.just({"NULL": True}),
        st.builds(
            lambda texts: {"SS": texts}, st.lists(st.text(max_size=5), min_size=1, max_size=3, unique=True)
        ),
    ),
    lambda children: st.one_of(
        st.builds(lambda items: {"L": items}, st.lists(children, max_size=3)),
        st.builds(lambda fields: {"M": fields}, st.dictionaries(st.text(max_size=8), children, max_size=3)),
    ),
    max_leaves=12,
)
items = st.dictionaries(st.text(min_size=1, max_size=8), attribute_values, min_size=1, max_size=5)
RESULTS = {
    "GetItem": st.one_of(st.just({}), st.builds(lambda item: {"Item": item}, items)),
    "UpdateItem": st.builds(lambda item: {"Attributes": item}, items),
    "Query": st.builds(
        lambda found, key: {"Items": found, "Count": len(found), "ScannedCount": len(found), **key},
        st.lists(items, max_size=4),
        st.one_of(st.just({}), st.builds(lambda item: {"LastEvaluatedKey": item}, items)),
    ),
    "TransactWriteItems": st.just({}),
    "BatchGetItem": st.builds(
        lambda found: {"Responses": {"jobs": found}, "UnprocessedKeys": {}}, st.lists(items, max_size=3)
    ),
}


def _serialize(operation: str, result: Any) -> Any:
    from moto.core.serialize import XFormedAttributePicker, get_serializer_class
    from moto.core.utils import get_service_model

    model = get_service_model("dynamodb")
    serializer = get_serializer_class("dynamodb", model.protocol)(
        operation_model=model.operation_model(operation),
        pretty_print=False,
        value_picker=XFormedAttributePicker(response_transformers=None),
    )
    written = serializer.serialize(result)
    return written["headers"]["Content-Type"], json.loads(written["body"])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), operation=st.sampled_from(sorted(RESULTS)))
def test_an_answer_written_directly_is_what_moto_writes(data: st.DataObject, operation: str) -> None:
    result = data.draw(RESULTS[operation])
    moto_patches.uninstall()
    expected = _serialize(operation, copy.deepcopy(result))
    assert moto_patches.install()
    try:
        assert _serialize(operation, copy.deepcopy(result)) == expected
    finally:
        moto_patches.uninstall()


def test_an_answer_with_binary_values_goes_the_long_way() -> None:
    result = {"Item": {"blob": {"B": b"\x00\xff"}, "name": {"S": "x"}}}
    assert moto_patches.install()
    try:
        _, written = _serialize("GetItem", result)
    finally:
        moto_patches.uninstall()
    assert written == {"Item": {"blob": {"B": "AP8="}, "name": {"S": "x"}}}


def test_a_queue_counts_its_messages_as_moto_did(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a queue with messages waiting, in flight and delayed
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="counted")["QueueUrl"]
        for i in range(7):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
        for i in range(2):
            sqs.send_message(QueueUrl=url, MessageBody=f"later{i}", DelaySeconds=60)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=60)["Messages"]

        def counts() -> dict[str, str]:
            return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]

        # when it is counted with the patches and without
        before = counts()
        assert moto_patches.install()
        try:
            patched = counts()
            # then the numbers are the same, and the waiting messages are the ones a receive gets
            waiting = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        finally:
            moto_patches.uninstall()
    assert len(received) == 3
    assert patched == before == {names[0]: "4", names[1]: "3", names[2]: "2"}
    assert sorted(m["Body"] for m in waiting) == [f"m{i}" for i in range(3, 7)]


def test_a_long_poll_finding_only_groups_in_flight_waits_instead_of_spinning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a FIFO queue whose only group has a message in flight and another waiting behind it
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        assert moto_patches.install()
        try:
            sqs = boto3.client("sqs", region_name="us-east-1")
            url = sqs.create_queue(QueueName="g.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
            for i in range(2):
                sqs.send_message(
                    QueueUrl=url, MessageBody=str(i), MessageGroupId="g", MessageDeduplicationId=str(i)
                )
            assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]) == 1
            # when another receive long-polls for a second
            started, cpu = time.monotonic(), time.process_time()
            second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
            waited, used = time.monotonic() - started, time.process_time() - cpu
        finally:
            moto_patches.uninstall()
    # then it waits out its second with nothing (the group is in flight), mostly asleep
    assert "Messages" not in second
    assert waited >= 0.9
    assert used < 0.5 * waited, (used, waited)
