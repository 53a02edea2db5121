"""The least-privilege recorder (tests/aws_calls.py): what a call needs, and what the comparison says."""

from __future__ import annotations

import pytest

from tests import aws_calls


@pytest.mark.parametrize(
    ("service", "operation", "params", "needed"),
    [
        (
            "dynamodb",
            "TransactWriteItems",
            {"TransactItems": [{"Update": {}}, {"ConditionCheck": {}}, {"Put": {}}]},
            {
                ("dynamodb:UpdateItem", "table"),
                ("dynamodb:ConditionCheckItem", "table"),
                ("dynamodb:PutItem", "table"),
            },
        ),
        ("dynamodb", "Query", {"IndexName": "by_owner"}, {("dynamodb:Query", "index")}),
        ("dynamodb", "GetItem", {}, {("dynamodb:GetItem", "table")}),
        (
            "s3",
            "DeleteObjects",
            {"Delete": {"Objects": [{"Key": "a", "VersionId": "v1"}]}},
            {("s3:DeleteObjectVersion", "object")},
        ),
        ("s3", "DeleteObjects", {"Delete": {"Objects": [{"Key": "a"}]}}, {("s3:DeleteObject", "object")}),
        ("s3", "ListObjectVersions", {}, {("s3:ListBucketVersions", "bucket")}),
        ("sqs", "SendMessageBatch", {}, {("sqs:SendMessage", "*")}),
        ("events", "PutEvents", {}, {("events:PutEvents", "*")}),
    ],
)
def test_a_call_needs_the_actions_iam_checks_for_it(service, operation, params, needed):
    assert aws_calls.needs(service, operation, params) == needed


def test_the_template_grants_each_function_what_it_calls_and_no_more():
    # given the template's grants
    grants = aws_calls.granted()
    # then, e.g., the worker may delete archive versions but never an item, nor read an index
    worker = grants["WorkerFunction"]
    assert ("s3:DeleteObjectVersion", "object") in worker
    assert not {need for need in worker if need[1] == "index" or need[0] == "dynamodb:DeleteItem"}
    assert ("dynamodb:Query", "index") in grants["ApiFunction"]


def test_a_call_without_a_grant_fails_and_an_unused_grant_fails_only_on_a_whole_run(monkeypatch):
    # given a worker that called one thing it may not, and nothing else
    monkeypatch.setattr(aws_calls, "_recorded", {"WorkerFunction": {("dynamodb:DeleteItem", "table")}})
    # when compared on a partial run, then on the whole suite
    _, partial = aws_calls.compare(full_run=False)
    _, whole = aws_calls.compare(full_run=True)
    # then the call without a grant fails both; unused grants only the whole run (the event source
    # mapping's grants excepted)
    assert partial == ["WorkerFunction calls dynamodb:DeleteItem on table, which its policy does not grant"]
    assert "WorkerFunction is granted dynamodb:GetItem on table, which nothing in the suite called" in whole
    assert not [p for p in whole if p.startswith("WorkerFunction") and "sqs:ReceiveMessage" in p]
