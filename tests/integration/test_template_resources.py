"""The local stack's resources, built from template.yaml in moto (in-process), match the template."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipelinejobs.local.resources import (
    LocalStackError,
    StackResources,
    create_stack_resources,
    read_admin_key,
)
from pipelinejobs.local.template import load_template
from tests.template_helpers import with_condition

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ADMIN_KEY = "local-admin-key-for-tests-0123456789abcdef"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture
def stack(aws: None) -> StackResources:
    return create_stack_resources(TEMPLATE, stack_name="test-stack", admin_key=ADMIN_KEY)


def test_create_stack_resources_builds_the_table_of_the_template(
    stack: StackResources, template: dict[str, Any]
) -> None:
    # given the table of the template, as deployed by default
    wanted = with_condition(template["Resources"]["JobsTable"]["Properties"], "HasTimeoutIndex", True)

    # when describing the table that was built
    dynamodb = boto3.client("dynamodb")
    table = dynamodb.describe_table(TableName=stack.table_name)["Table"]
    backups = dynamodb.describe_continuous_backups(TableName=stack.table_name)["ContinuousBackupsDescription"]

    # then its keys, indexes, billing, encryption and point-in-time recovery are the template's
    assert stack.table_name == "test-stack-jobstable"
    assert table["KeySchema"] == wanted["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        wanted["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {(i["IndexName"], json.dumps(i["KeySchema"])) for i in table["LocalSecondaryIndexes"]} == {
        (i["IndexName"], json.dumps(i["KeySchema"])) for i in wanted["LocalSecondaryIndexes"]
    }
    assert {
        (i["IndexName"], json.dumps(i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in table["GlobalSecondaryIndexes"]
    } == {
        (i["IndexName"], json.dumps(i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in wanted["GlobalSecondaryIndexes"]
    }
    assert len(table["GlobalSecondaryIndexes"]) == 6
    assert table["SSEDescription"]["Status"] in ("ENABLED", "ENABLING")
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert stack.table_stream_arn == table["LatestStreamArn"]


def test_the_first_deploy_of_an_upgrade_builds_no_timeout_index(aws: None) -> None:
    """TimeoutIndex=false (an older stack's first upgrade deploy): the local stack builds what
    CloudFormation would, and the functions are told (TIMEOUT_INDEX)."""
    stack = create_stack_resources(
        TEMPLATE, stack_name="upgrade-stack", admin_key=ADMIN_KEY, parameters={"TimeoutIndex": "false"}
    )
    table = boto3.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    assert "by_timeout" not in {i["IndexName"] for i in table["GlobalSecondaryIndexes"]}
    assert "by_heartbeat" in {i["IndexName"] for i in table["GlobalSecondaryIndexes"]}
    assert stack.environment()["TIMEOUT_INDEX"] == "false"


def test_create_stack_resources_builds_fifo_queue_with_redrive(stack: StackResources) -> None:
    # given the built queues
    sqs = boto3.client("sqs")

    # when reading their attributes
    queue = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]
    dead_letter = sqs.get_queue_attributes(QueueUrl=stack.dead_letter_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]

    # then the events queue is FIFO, per-job deduplicated, and redrives to the FIFO dead-letter queue
    assert stack.queue_url.endswith("/test-stack-eventsqueue.fifo")
    assert stack.dead_letter_queue_url.endswith("/test-stack-eventsdeadletterqueue.fifo")
    assert queue["FifoQueue"] == "true"
    assert queue["ContentBasedDeduplication"] == "false"
    assert queue["DeduplicationScope"] == "messageGroup"
    assert queue["FifoThroughputLimit"] == "perMessageGroupId"
    assert queue["VisibilityTimeout"] == "360"
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead_letter["QueueArn"],
        "maxReceiveCount": 5,
    }
    assert dead_letter["FifoQueue"] == "true"
    assert dead_letter["MessageRetentionPeriod"] == "1209600"


def test_create_stack_resources_reads_the_worker_semantics_from_the_template(stack: StackResources) -> None:
    # then the local worker can mimic Lambda's SQS event source exactly as deployed
    assert stack.visibility_timeout == 360
    assert stack.max_receive_count == 5
    assert stack.worker_batch_size == 10
    assert stack.worker_report_batch_item_failures is True
    assert stack.worker_timeout == 60


def test_create_stack_resources_builds_a_versioned_encrypted_private_bucket(stack: StackResources) -> None:
    # given the built bucket
    s3 = boto3.client("s3")

    # when reading its settings
    versioning = s3.get_bucket_versioning(Bucket=stack.bucket)
    encryption = s3.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"]
    public_access = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    ownership = s3.get_bucket_ownership_controls(Bucket=stack.bucket)["OwnershipControls"]

    # then it is versioned, encrypted, and blocks public access, as in the template
    assert stack.bucket == "test-stack-archivebucket"
    assert versioning["Status"] == "Enabled"
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert public_access == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert ownership["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_create_stack_resources_creates_the_event_bus(stack: StackResources) -> None:
    # when looking the bus up by its name
    bus = boto3.client("events").describe_event_bus(Name=stack.event_bus_name)

    # then it exists under the template's name
    assert stack.event_bus_name == "test-stack-jobs"
    assert bus["Name"] == "test-stack-jobs"


def test_create_stack_resources_stores_the_given_admin_key_as_secure_string(stack: StackResources) -> None:
    # when reading the parameter the functions are told about
    parameter = boto3.client("ssm").get_parameter(Name=stack.admin_key_parameter, WithDecryption=True)

    # then it is the given key, stored encrypted where the custom resource would put it
    assert stack.admin_key_parameter == "/test-stack/admin-key"
    assert parameter["Parameter"]["Type"] == "SecureString"
    assert parameter["Parameter"]["Value"] == ADMIN_KEY
    assert read_admin_key(stack.admin_key_parameter) == ADMIN_KEY


def test_create_stack_resources_generates_an_admin_key_and_keeps_it(aws: None) -> None:
    # given a stack built without a key
    first = create_stack_resources(TEMPLATE, stack_name="keygen")
    generated = read_admin_key(first.admin_key_parameter)

    # when it is built again
    second = create_stack_resources(TEMPLATE, stack_name="keygen")

    # then a strong key was generated once and kept
    assert len(generated) >= 64
    assert read_admin_key(second.admin_key_parameter) == generated


def test_create_stack_resources_is_idempotent(stack: StackResources) -> None:
    # given a message waiting in the queue of the built stack
    sqs = boto3.client("sqs")
    sqs.send_message(
        QueueUrl=stack.queue_url, MessageBody="{}", MessageGroupId="job-1", MessageDeduplicationId="event-1"
    )

    # when the stack is built again against the same emulator
    again = create_stack_resources(TEMPLATE, stack_name="test-stack")

    # then the same resources come back, untouched: the message and the key are still there
    assert again == stack
    received = sqs.receive_message(QueueUrl=again.queue_url, MaxNumberOfMessages=10)
    assert [m["Body"] for m in received.get("Messages", [])] == ["{}"]
    assert read_admin_key(again.admin_key_parameter) == ADMIN_KEY


def test_create_stack_resources_applies_overrides(stack: StackResources) -> None:
    # when the stack is built with a short visibility timeout, fewer receives, and a faster worker
    overridden = create_stack_resources(
        TEMPLATE,
        stack_name="test-stack",
        overrides={
            "EventsQueue": {"VisibilityTimeout": 2, "RedrivePolicy": {"maxReceiveCount": 2}},
            "WorkerFunction": {"Timeout": 1},
        },
        parameters={"AdminTokenLifetime": 60, "ArchivePrefix": "jobs/archive"},
    )

    # then the queue itself and the description follow, and the redrive target is kept
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=overridden.queue_url, AttributeNames=["All"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "2"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 2
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(
        "eventsdeadletterqueue.fifo"
    )
    assert (overridden.visibility_timeout, overridden.max_receive_count, overridden.worker_timeout) == (
        2,
        2,
        1,
    )
    assert overridden.archive_prefix == "jobs/archive"
    assert overridden.environment()["ADMIN_TOKEN_LIFETIME"] == "60"
    assert overridden.queue_url == stack.queue_url


@pytest.mark.parametrize(
    ("overrides", "parameters", "problem"),
    [
        ({"NoSuchQueue": {"VisibilityTimeout": 2}}, None, "NoSuchQueue"),
        (None, {"NoSuchParameter": 1}, "NoSuchParameter"),
        ({"ArchiveBucket": {"WebsiteConfiguration": {"IndexDocument": "x"}}}, None, "WebsiteConfiguration"),
    ],
)
def test_create_stack_resources_rejects_what_it_cannot_emulate(
    aws: None, overrides: Any, parameters: Any, problem: str
) -> None:
    # when asked for an unknown resource, an unknown parameter or a property it cannot emulate
    # then it says so instead of building something else than the template describes
    with pytest.raises(LocalStackError, match=problem):
        create_stack_resources(TEMPLATE, stack_name="bad", overrides=overrides, parameters=parameters)


def test_stack_resources_environment_has_every_variable(stack: StackResources) -> None:
    # when asking for the functions' environment
    environment = stack.environment()

    # then every variable of the template's Globals is there, resolved to the built resources
    assert environment == {
        "TABLE_NAME": "test-stack-jobstable",
        "QUEUE_URL": stack.queue_url,
        "DEAD_LETTER_QUEUE_URL": stack.dead_letter_queue_url,
        "ARCHIVE_BUCKET": "test-stack-archivebucket",
        "ARCHIVE_PREFIX": "archive",
        "EVENT_BUS_NAME": "test-stack-jobs",
        "ADMIN_KEY_PARAMETER": "/test-stack/admin-key",
        "ADMIN_TOKEN_LIFETIME": "3600",
        "TOKEN_ROTATE_USES": "50",
        "TOKEN_ROTATE_SECONDS": "3600",
        "TOKEN_GRACE_SECONDS": "600",
        "PIPELINE_DEADLINES": "",
        "TIMEOUT_INDEX": "true",
        "POWERTOOLS_SERVICE_NAME": "pipelinejobs",
        "POWERTOOLS_METRICS_NAMESPACE": "PipelineJobs",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def test_stack_resources_environment_follows_replaced_names(stack: StackResources) -> None:
    # given a description pointing at another table
    other = dataclasses.replace(stack, table_name="other-table")

    # when asking for its environment
    # then the functions are told about the other table, and nothing else changes
    assert other.environment() == {**stack.environment(), "TABLE_NAME": "other-table"}


def test_stack_resources_environment_satisfies_the_settings(stack: StackResources) -> None:
    # given the settings object every function reads its configuration with
    from jobcore.settings import Settings

    # when it reads the local stack's environment
    settings = Settings.from_env(stack.environment())

    # then nothing is missing and the template's defaults arrive
    assert settings.table_name == stack.table_name
    assert settings.queue_url == stack.queue_url
    assert settings.admin_key_parameter == stack.admin_key_parameter
    assert settings.event_bus_name == stack.event_bus_name
    assert settings.admin_token_lifetime == 3600


def test_create_stack_resources_finds_a_worker_wired_by_a_sam_sqs_event(aws: None, tmp_path: Path) -> None:
    # given a variant of the template where the worker subscribes through an SQS entry under Events
    text = TEMPLATE.read_text(encoding="utf-8")
    start = text.index("  WorkerQueueMapping:")
    end = text.index("\n\n", start)
    text = text[:start] + text[end + 2 :]
    text = text.replace(
        "      Handler: worker_handler.handler\n",
        "      Handler: worker_handler.handler\n"
        "      Events:\n"
        "        Queue:\n"
        "          Type: SQS\n"
        "          Properties:\n"
        "            Queue: !GetAtt EventsQueue.Arn\n"
        "            BatchSize: 7\n",
    )
    variant = tmp_path / "template.yaml"
    variant.write_text(text, encoding="utf-8")

    # when the stack is built from it
    stack = create_stack_resources(variant, stack_name="variant")

    # then the worker's batch size and partial-failure mode come from that event
    assert (stack.worker_batch_size, stack.worker_report_batch_item_failures, stack.worker_timeout) == (
        7,
        False,
        60,
    )
