"""The AdminKey custom resource: SSM emulated by moto in-process, CloudFormation's response URL stubbed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

import admin_key_handler

PARAMETER = "/teststack/admin-key"
CONTEXT = SimpleNamespace(log_stream_name="2024/01/01/[$LATEST]abc")


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    admin_key_handler._ssm.cache_clear()
    with mock_aws():
        yield boto3.client("ssm")
    admin_key_handler._ssm.cache_clear()


@pytest.fixture
def responses(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def record(url: str, body: dict[str, Any]) -> None:
        sent.append({"url": url, **json.loads(json.dumps(body))})

    monkeypatch.setattr(admin_key_handler, "_send_response", record)
    return sent


def _event(request_type: str, *, physical_id: str | None = None, name: str = PARAMETER) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/abc",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/teststack/guid",
        "RequestId": "request-1",
        "LogicalResourceId": "AdminKey",
        "ResourceType": "Custom::AdminKey",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:fn", "ParameterName": name},
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    return event


def test_admin_key_create_stores_a_random_secure_string(ssm: Any, responses: list[dict[str, Any]]) -> None:
    # given no admin key yet
    # when CloudFormation creates the resource
    admin_key_handler.handler(_event("Create"), CONTEXT)

    # then the key is a SecureString of at least 256 bits, and CloudFormation hears of success
    parameter = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString"
    assert len(parameter["Value"]) >= 64
    assert responses == [
        {
            "url": "https://cloudformation-custom-resource-response.example/abc",
            "Status": "SUCCESS",
            "Reason": "OK",
            "PhysicalResourceId": PARAMETER,
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/teststack/guid",
            "RequestId": "request-1",
            "LogicalResourceId": "AdminKey",
            "NoEcho": False,
            "Data": {"ParameterName": PARAMETER},
        }
    ]


def test_admin_key_second_create_keeps_the_existing_key(ssm: Any, responses: list[dict[str, Any]]) -> None:
    # given a key from an earlier stack of the same name
    ssm.put_parameter(Name=PARAMETER, Value="existing-key", Type="SecureString")

    # when the resource is created again
    admin_key_handler.handler(_event("Create"), CONTEXT)

    # then the key is unchanged and the create still succeeds
    assert ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"] == "existing-key"
    assert [r["Status"] for r in responses] == ["SUCCESS"]


def test_admin_key_update_leaves_the_key_alone(ssm: Any, responses: list[dict[str, Any]]) -> None:
    # given a created key
    admin_key_handler.handler(_event("Create"), CONTEXT)
    before = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]

    # when the stack is updated
    admin_key_handler.handler(_event("Update", physical_id=PARAMETER), CONTEXT)

    # then the key is the same and the physical id did not change (no replacement)
    assert ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"] == before
    assert [(r["Status"], r["PhysicalResourceId"]) for r in responses] == [
        ("SUCCESS", PARAMETER),
        ("SUCCESS", PARAMETER),
    ]


def test_admin_key_delete_removes_the_parameter(ssm: Any, responses: list[dict[str, Any]]) -> None:
    # given a created key
    admin_key_handler.handler(_event("Create"), CONTEXT)

    # when the stack is deleted
    admin_key_handler.handler(_event("Delete", physical_id=PARAMETER), CONTEXT)

    # then the parameter is gone
    with pytest.raises(ClientError) as raised:
        ssm.get_parameter(Name=PARAMETER)
    assert raised.value.response["Error"]["Code"] == "ParameterNotFound"
    assert [r["Status"] for r in responses] == ["SUCCESS", "SUCCESS"]


def test_admin_key_delete_of_a_missing_parameter_succeeds(ssm: Any, responses: list[dict[str, Any]]) -> None:
    # given no parameter at all (deleted by hand)
    # when the stack is deleted
    admin_key_handler.handler(_event("Delete", physical_id=PARAMETER), CONTEXT)

    # then the delete succeeds rather than blocking the stack deletion
    assert [r["Status"] for r in responses] == ["SUCCESS"]


def test_admin_key_delete_after_a_failed_create_touches_nothing(
    ssm: Any, responses: list[dict[str, Any]]
) -> None:
    # given a parameter of that name that this resource never created
    ssm.put_parameter(Name=PARAMETER, Value="someone-elses", Type="SecureString")

    # when CloudFormation rolls back a create that answered with another physical id
    admin_key_handler.handler(_event("Delete", physical_id="admin-key-without-name"), CONTEXT)

    # then the parameter is untouched and the rollback succeeds
    assert ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"] == "someone-elses"
    assert [r["Status"] for r in responses] == ["SUCCESS"]


def test_admin_key_failure_still_answers_failed(
    ssm: Any, responses: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an SSM that refuses the write
    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "PutParameter")

    monkeypatch.setattr(admin_key_handler._ssm(), "put_parameter", refuse)

    # when CloudFormation creates the resource
    admin_key_handler.handler(_event("Create"), CONTEXT)

    # then CloudFormation hears FAILED with a reason, instead of waiting for an answer
    assert len(responses) == 1
    assert responses[0]["Status"] == "FAILED"
    assert "AccessDeniedException" in responses[0]["Reason"]
    assert responses[0]["PhysicalResourceId"] == PARAMETER


def test_admin_key_create_with_an_unqualified_name_fails(ssm: Any, responses: list[dict[str, Any]]) -> None:
    # given a ParameterName that is not a full path
    # when CloudFormation creates the resource
    admin_key_handler.handler(_event("Create", name="admin-key"), CONTEXT)

    # then it fails, and nothing was written
    assert [r["Status"] for r in responses] == ["FAILED"]
    assert ssm.describe_parameters()["Parameters"] == []


def test_admin_key_is_never_logged_nor_returned(
    ssm: Any, responses: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    # given the handler's logging at its most verbose (botocore's own DEBUG output dumps request
    # bodies of every client; Lambda keeps it at WARNING)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger=admin_key_handler.logger.name)

    # when the key is created and the stack later deleted
    admin_key_handler.handler(_event("Create"), CONTEXT)
    key = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]
    admin_key_handler.handler(_event("Delete", physical_id=PARAMETER), CONTEXT)

    # then neither the log nor the responses to CloudFormation hold the key
    assert key not in caplog.text
    assert key not in json.dumps(responses)


def test_send_response_refuses_a_non_https_url() -> None:
    # given a response URL that is not CloudFormation's pre-signed https URL
    # when / then nothing is sent
    with pytest.raises(ValueError, match="https"):
        admin_key_handler._send_response("file:///etc/passwd", {"Status": "SUCCESS"})
