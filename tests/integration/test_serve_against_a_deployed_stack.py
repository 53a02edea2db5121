"""`pipelinejobs serve --aws`: the API served here against a deployed stack's resources.

"Deployed" is moto in-process: the stack's resources are built from template.yaml under another stack
name, and a CloudFormation stack carries the outputs `sam deploy` would give. Nothing is emulated by
the local stack itself: it must find every resource through the stack's outputs, read the admin key
from its SSM parameter, and leave the queue to the deployed worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelinejobs import Client
from pipelinejobs.local.resources import StackResources, create_stack_resources
from pipelinejobs.local.stack import LocalStack, LocalStackError

ROOT = Path(__file__).resolve().parents[2]
STACK = "pipelinejobs-deployed"
ADMIN_KEY = "deployed-admin-key"


def deployed_stack(resources: StackResources, *, outputs: dict[str, str] | None = None) -> None:
    """A CloudFormation stack with the outputs of template.yaml, naming the given resources."""
    values = outputs or {
        "ApiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com",
        "TableName": resources.table_name,
        "QueueUrl": resources.queue_url,
        "DeadLetterQueueUrl": resources.dead_letter_queue_url,
        "ArchiveBucketName": resources.bucket,
        "ArchivePrefix": resources.archive_prefix,
        "EventBusName": resources.event_bus_name,
        "AdminKeyParameterName": resources.admin_key_parameter,
        "AdminTokenLifetime": "3600",
    }
    body = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": f"{STACK}-marker"}}},
        "Outputs": {name: {"Value": value} for name, value in values.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(body))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[StackResources]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield create_stack_resources(
            ROOT / "template.yaml",
            stack_name=STACK,
            admin_key=ADMIN_KEY,
            overrides={"JobsTable": {"StreamSpecification": None}},
        )


def queued(resources: StackResources) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(
        QueueUrl=resources.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"]
    ).get("Messages", [])
    return [{"body": json.loads(m["Body"]), "group": m["Attributes"]["MessageGroupId"]} for m in messages]


def test_serve_aws_finds_the_resources_in_the_stack_outputs_and_queues_for_the_deployed_worker(
    aws: StackResources,
) -> None:
    # given a deployed stack (its outputs name its resources; its admin key is in SSM)
    deployed_stack(aws)
    # when `serve --aws` starts and a client drives it over HTTP
    with LocalStack(port=0, aws=True, stack_name=STACK, quiet=True) as stack:
        client = Client(stack.api_url, admin_key=stack.admin_key)
        job = client.create_job("deployed-pipeline", {"sample": "S1"})
        job.run({"host": "node-7"})
        shown = client.get_job(job.uuid)
        banner = (stack.admin_key_source, stack.deployed_api_url, stack.aws_endpoint)
    # then the admin key came from the stack's SSM parameter
    assert stack.admin_key == ADMIN_KEY
    assert banner == (
        f"SSM parameter {aws.admin_key_parameter} of stack {STACK}",
        "https://abc123.execute-api.us-east-1.amazonaws.com",
        "",
    )
    # and the job is in the deployed table, its archive path in the deployed bucket
    assert shown.state == "CREATED"  # no local worker: the deployed one applies the event
    assert shown.archive_path.startswith(f"s3://{aws.bucket}/{aws.archive_prefix}/deployed-pipeline/")
    # and the event waits in the deployed queue, in the job's message group
    [message] = queued(aws)
    assert message["group"] == job.uuid
    assert (message["body"]["uuid"], message["body"]["name"]) == (job.uuid, "run")


def test_serve_aws_without_the_stack_says_which_stack_it_could_not_read(aws: StackResources) -> None:
    with pytest.raises(LocalStackError, match=f"cannot read the stack {STACK}"):
        LocalStack(port=0, aws=True, stack_name=STACK, quiet=True).start()


def test_serve_aws_names_the_outputs_a_stack_lacks(aws: StackResources) -> None:
    deployed_stack(aws, outputs={"ApiUrl": "https://x", "TableName": aws.table_name})
    with pytest.raises(LocalStackError, match=r"lacks the output.*QueueUrl.*AdminKeyParameterName"):
        LocalStack(port=0, aws=True, stack_name=STACK, quiet=True).start()
