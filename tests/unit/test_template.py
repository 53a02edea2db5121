"""template.yaml: the security and wiring rules of SPEC section 8, cfn-lint and the SAM translator. No AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelinejobs.local import validate
from pipelinejobs.local.template import TemplateError, load_template
from tests.template_helpers import with_condition

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
DATA_SERVICES = ("dynamodb", "s3", "sqs", "ssm", "events", "kms")
_POLICY_DOCUMENT_TYPES = (
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SQS::QueuePolicy",
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return validate.translate(template)


def _resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of the template: SAM function policies, roles, policies, bucket policies."""
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties") or {}
        documents: list[Any] = []
        if resource["Type"] == "AWS::Serverless::Function":
            documents += [p for p in properties.get("Policies") or [] if isinstance(p, dict)]
        elif resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in properties.get("Policies") or []]
        elif resource["Type"] in _POLICY_DOCUMENT_TYPES:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            for statement in _as_list(document.get("Statement", [])):
                yield logical_id, statement


@pytest.mark.parametrize("which", ["sam", "translated"])
def test_template_allows_no_wildcard_action(
    template: dict[str, Any], translated: dict[str, Any], which: str
) -> None:
    # given every Allow statement, before and after the SAM transform
    statements = list(_policy_statements(template if which == "sam" else translated))
    allows = [(lid, s) for lid, s in statements if s["Effect"] == "Allow"]
    assert allows, "no IAM statements found; the test would prove nothing"

    # when looking for wildcards in their actions
    wildcards = [
        (lid, action) for lid, s in allows for action in _as_list(s.get("Action", [])) if "*" in str(action)
    ]

    # then there are none (a Deny with s3:* is fine: it only takes away)
    assert wildcards == []


@pytest.mark.parametrize("which", ["sam", "translated"])
def test_template_allows_data_actions_only_on_named_resources(
    template: dict[str, Any], translated: dict[str, Any], which: str
) -> None:
    # given every Allow statement that touches data
    statements = _policy_statements(template if which == "sam" else translated)
    data_statements = [
        (lid, s)
        for lid, s in statements
        if s["Effect"] == "Allow"
        and any(str(a).split(":", 1)[0] in DATA_SERVICES for a in _as_list(s.get("Action", [])))
    ]
    assert data_statements

    # when looking at their resources
    open_ended = [(lid, s.get("Sid")) for lid, s in data_statements if "*" in _as_list(s.get("Resource"))]

    # then none is granted on every resource
    assert open_ended == []


def test_the_api_reads_archives_only_under_the_archive_prefix(template: dict[str, Any]) -> None:
    # given the API function's S3 statements
    statements = [
        statement
        for policy in template["Resources"]["ApiFunction"]["Properties"]["Policies"]
        for statement in policy["Statement"]
        if any(str(action).startswith("s3:") for action in _as_list(statement["Action"]))
    ]
    # then it lists the bucket only for keys under the prefix, and gets only the prefix's objects (the
    # outputs' presigned links act with its role); nothing else of S3
    by_action = {action: s for s in statements for action in _as_list(s["Action"])}
    assert set(by_action) == {"s3:ListBucket", "s3:GetObject"}
    listing, getting = by_action["s3:ListBucket"], by_action["s3:GetObject"]
    assert listing["Resource"] == {"Fn::GetAtt": ["ArchiveBucket", "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${ArchivePrefix}/*"}}}
    assert getting["Resource"] == {"Fn::Sub": "${ArchiveBucket.Arn}/${ArchivePrefix}/*"}
    assert "Condition" not in getting


def test_template_grants_no_kms_action(template: dict[str, Any]) -> None:
    # given the statements granting KMS actions
    kms = [
        s
        for _, s in _policy_statements(template)
        if any(str(a).startswith("kms:") for a in _as_list(s["Action"]))
    ]

    # then there are none: the admin key is a SecureString under the AWS managed key aws/ssm, whose key
    # policy already lets SSM use it for the account's principals; a grant would only widen that
    assert kms == []


def test_translated_roles_attach_only_the_basic_execution_policy(translated: dict[str, Any]) -> None:
    # given the roles SAM generates for the functions
    roles = _resources_of_type(translated, "AWS::IAM::Role")
    assert roles

    # when collecting their managed policies
    managed = {arn for role in roles.values() for arn in role["Properties"].get("ManagedPolicyArns", [])}

    # then only CloudWatch Logs access is managed by AWS; e.g. AWSLambdaSQSQueueExecutionRole, which SAM
    # adds for an SQS entry under Events, would grant ReceiveMessage/DeleteMessage on every queue
    assert {str(arn).rsplit("/", 1)[-1] for arn in managed} == {"AWSLambdaBasicExecutionRole"}


def test_template_table_is_on_demand_with_pitr_and_encryption(template: dict[str, Any]) -> None:
    # given the jobs table
    (table,) = _resources_of_type(template, "AWS::DynamoDB::Table").values()
    properties = table["Properties"]

    # then it is on-demand, recoverable to a point in time, encrypted, and outlives the stack
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert "TableName" not in properties
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_template_table_has_the_listing_and_history_indexes(template: dict[str, Any]) -> None:
    # given the jobs table, as deployed by default
    (table,) = _resources_of_type(template, "AWS::DynamoDB::Table").values()
    properties = with_condition(table["Properties"], "HasTimeoutIndex", True)

    def keys(index: dict[str, Any]) -> tuple[str, ...]:
        return tuple(f"{k['AttributeName']}:{k['KeyType']}" for k in index["KeySchema"])

    # then the keys and every index are the ones the adapters query, projecting everything
    assert keys(properties) == ("pk:HASH", "sk:RANGE")
    assert {i["IndexName"]: keys(i) for i in properties["LocalSecondaryIndexes"]} == {
        "history": ("pk:HASH", "hist:RANGE")
    }
    assert {i["IndexName"]: keys(i) for i in properties["GlobalSecondaryIndexes"]} == {
        "by_updated": ("idx_all:HASH", "updated_at:RANGE"),
        "by_state": ("idx_state:HASH", "updated_at:RANGE"),
        "by_pipeline": ("idx_pipeline:HASH", "updated_at:RANGE"),
        "by_owner": ("idx_owner:HASH", "updated_at:RANGE"),
        # the deadlines' (SPEC section 3a): due times, in epoch ms, per shard
        "by_heartbeat": ("idx_hb:HASH", "hb_at:RANGE"),
        "by_timeout": ("idx_to:HASH", "to_at:RANGE"),
    }
    deadline_indexes = ("by_heartbeat", "by_timeout")
    indexes = properties["LocalSecondaryIndexes"] + [
        i for i in properties["GlobalSecondaryIndexes"] if i["IndexName"] not in deadline_indexes
    ]
    assert {i["Projection"]["ProjectionType"] for i in indexes} == {"ALL"}
    # the sweeper reads only what its fail names: the state and generation it saw
    for index in properties["GlobalSecondaryIndexes"]:
        if index["IndexName"] in deadline_indexes:
            assert index["Projection"] == {
                "ProjectionType": "INCLUDE",
                "NonKeyAttributes": ["state", "generation"],
            }
    assert {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]} == {
        **{
            name: "S"
            for name in (
                "pk",
                "sk",
                "hist",
                "idx_all",
                "idx_state",
                "idx_pipeline",
                "idx_owner",
                "updated_at",
            )
        },
        **{"idx_hb": "S", "idx_to": "S", "hb_at": "N", "to_at": "N"},
    }


def test_an_older_stack_upgrades_in_two_deploys_each_adding_one_index(template: dict[str, Any]) -> None:
    """CloudFormation creates one global secondary index per stack update, and deadlines add two: the
    first deploy of an upgrade (TimeoutIndex=false) adds by_heartbeat alone, the second by_timeout."""
    (table,) = _resources_of_type(template, "AWS::DynamoDB::Table").values()
    before = {"by_updated", "by_state", "by_pipeline", "by_owner"}
    first = with_condition(table["Properties"], "HasTimeoutIndex", False)
    second = with_condition(table["Properties"], "HasTimeoutIndex", True)
    first_names = {i["IndexName"] for i in first["GlobalSecondaryIndexes"]}
    second_names = {i["IndexName"] for i in second["GlobalSecondaryIndexes"]}
    assert first_names - before == {"by_heartbeat"}
    assert second_names - first_names == {"by_timeout"}
    # no attribute defined that no key uses (CloudFormation refuses it)
    for properties in (first, second):
        used = {k["AttributeName"] for k in properties["KeySchema"]}
        for index in properties["GlobalSecondaryIndexes"] + properties["LocalSecondaryIndexes"]:
            used |= {k["AttributeName"] for k in index["KeySchema"]}
        assert {a["AttributeName"] for a in properties["AttributeDefinitions"]} == used
    assert template["Parameters"]["TimeoutIndex"]["Default"] == "true"


def test_template_bucket_is_encrypted_private_versioned_and_tls_only(template: dict[str, Any]) -> None:
    # given the archive bucket and its policy
    (bucket_id,) = _resources_of_type(template, "AWS::S3::Bucket")
    bucket = template["Resources"][bucket_id]
    properties = bucket["Properties"]
    (policy,) = _resources_of_type(template, "AWS::S3::BucketPolicy").values()

    # then it is encrypted, blocks every kind of public access, is versioned and refuses plain HTTP
    rule = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert properties["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["DeletionPolicy"] == "Retain"
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_template_queue_is_fifo_with_redrive_to_a_fifo_dead_letter_queue(template: dict[str, Any]) -> None:
    # given the events queue
    queue = template["Resources"]["EventsQueue"]["Properties"]

    # then it is FIFO, deduplicates by the producer's event id per job, and redrives to a FIFO queue
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False
    assert queue["DeduplicationScope"] == "messageGroup"
    assert queue["FifoThroughputLimit"] == "perMessageGroupId"
    dead_letter_id, attribute = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"]
    assert attribute == "Arn"
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    dead_letter = template["Resources"][dead_letter_id]["Properties"]
    assert dead_letter["FifoQueue"] is True
    assert dead_letter["MessageRetentionPeriod"] == 1209600


def test_template_visibility_timeout_is_six_times_the_worker_timeout(template: dict[str, Any]) -> None:
    # given the queue, its event source mapping and the function it feeds
    (mapping,) = [
        m
        for m in _resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    ]
    worker_id = mapping["Properties"]["FunctionName"]["Ref"]
    worker = template["Resources"][worker_id]["Properties"]
    queue = template["Resources"]["EventsQueue"]["Properties"]

    # then a message is not redelivered while a batch may still be running, and failures are per message
    assert template["Resources"][worker_id]["Properties"]["Handler"] == "worker_handler.handler"
    assert queue["VisibilityTimeout"] == 6 * worker["Timeout"]
    assert mapping["Properties"]["BatchSize"] == 10
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_template_notifies_state_changes_from_the_table_stream(template: dict[str, Any]) -> None:
    # given the table's stream and what consumes it
    table = template["Resources"]["JobsTable"]["Properties"]
    (mapping,) = [
        m
        for m in _resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["JobsTable", "StreamArn"]}
    ]
    notifier_id = mapping["Properties"]["FunctionName"]["Ref"]
    notifier = template["Resources"][notifier_id]["Properties"]
    grants = {
        (action, json.dumps(s["Resource"]))
        for s in notifier["Policies"][0]["Statement"]
        for action in s["Action"]
    }

    # then the notifier sees old and new images of job updates only, and may publish on the bus alone
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert notifier["Handler"] == "notifier_handler.handler"
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["Properties"]["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"sk": {"S": ["JOB"]}}}}
    assert ("events:PutEvents", json.dumps({"Fn::GetAtt": ["JobsEventBus", "Arn"]})) in grants
    assert ("dynamodb:GetRecords", json.dumps({"Fn::Sub": "${JobsTable.Arn}/stream/*"})) in grants


def test_template_alarms_on_any_message_in_the_dead_letter_queue(template: dict[str, Any]) -> None:
    # given the alarms
    alarms = _resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    dead_letter_id = template["Resources"]["EventsQueue"]["Properties"]["RedrivePolicy"][
        "deadLetterTargetArn"
    ]["Fn::GetAtt"][0]

    # when picking the one watching the dead-letter queue
    watching = [
        a["Properties"]
        for a in alarms
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letter_id, "QueueName"]}}
        in a["Properties"]["Dimensions"]
    ]

    # then it fires on the first visible message, and stays quiet when SQS reports nothing
    assert len(watching) == 1
    alarm = watching[0]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["TreatMissingData"] == "notBreaching"


def test_template_every_function_has_the_core_layer(translated: dict[str, Any]) -> None:
    # given every Lambda function after the SAM transform
    functions = _resources_of_type(translated, "AWS::Lambda::Function")
    layers = set(_resources_of_type(translated, "AWS::Lambda::LayerVersion"))
    assert functions and len(layers) == 1

    # then each one loads the shared layer, on Python 3.12 and arm64, without X-Ray tracing
    for function in functions.values():
        properties = function["Properties"]
        assert [layer["Ref"] for layer in properties["Layers"]] == sorted(layers)
        assert properties["Runtime"] == "python3.12"
        assert properties["Architectures"] == ["arm64"]
        assert "TracingConfig" not in properties


def test_template_admin_key_name_is_the_same_everywhere(template: dict[str, Any]) -> None:
    # given the custom resource, the functions' environment and the IAM grants naming the admin key
    name = template["Resources"]["AdminKey"]["Properties"]["ParameterName"]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    ssm_resources = {
        s["Resource"]["Fn::Sub"]
        for _, s in _policy_statements(template)
        if any(str(a).startswith("ssm:") for a in s["Action"])
    }

    # then they all name one parameter
    assert name == {"Fn::Sub": "/${AWS::StackName}/admin-key"}
    assert variables["ADMIN_KEY_PARAMETER"] == name
    assert ssm_resources == {
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/${AWS::StackName}/admin-key"
    }
    assert template["Outputs"]["AdminKeyParameterName"]["Value"] == {
        "Fn::GetAtt": ["AdminKey", "ParameterName"]
    }


def test_template_environment_names_every_resource_the_settings_need(template: dict[str, Any]) -> None:
    # given the environment every function gets
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    # then it wires the resources and the token settings to the template's parameters
    assert variables["TABLE_NAME"] == {"Ref": "JobsTable"}
    assert variables["QUEUE_URL"] == {"Ref": "EventsQueue"}
    assert variables["ARCHIVE_BUCKET"] == {"Ref": "ArchiveBucket"}
    assert variables["EVENT_BUS_NAME"] == {"Ref": "JobsEventBus"}
    parameters = template["Parameters"]
    for variable, parameter, default in [
        ("ARCHIVE_PREFIX", "ArchivePrefix", "archive"),
        ("ADMIN_TOKEN_LIFETIME", "AdminTokenLifetime", 3600),
        ("TOKEN_ROTATE_USES", "TokenRotateUses", 50),
        ("TOKEN_ROTATE_SECONDS", "TokenRotateSeconds", 3600),
        ("TOKEN_GRACE_SECONDS", "TokenGraceSeconds", 600),
    ]:
        assert variables[variable] == {"Ref": parameter}
        assert parameters[parameter]["Default"] == default


def test_template_outputs_what_the_cli_needs(template: dict[str, Any]) -> None:
    # then the outputs name everything `pipelinejobs --aws` looks up
    assert set(template["Outputs"]) >= {
        "ApiUrl",
        "TableName",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "ArchiveBucketName",
        "ArchivePrefix",
        "EventBusName",
        "AdminKeyParameterName",
        "AdminTokenLifetime",
    }


def test_template_routes_every_api_path_to_the_api_function(translated: dict[str, Any]) -> None:
    # given the HTTP API after the transform
    (api,) = _resources_of_type(translated, "AWS::ApiGatewayV2::Api").values()
    routes = {
        (method.upper(), path)
        for path, operations in api["Properties"]["Body"]["paths"].items()
        for method in operations
    }

    # then every route of SPEC section 5 exists, and CORS is off
    assert routes == {
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", "/jobs/counts"),
        ("GET", "/jobs/{uuid}"),
        ("POST", "/jobs/{uuid}/events"),
        ("GET", "/jobs/{uuid}/events"),
        ("GET", "/jobs/{uuid}/events/{event_id}"),
        ("GET", "/jobs/{uuid}/outputs"),
        ("POST", "/jobs/{uuid}/callback"),
        ("POST", "/jobs/{uuid}/token"),
        ("POST", "/keys"),
        ("GET", "/keys"),
        ("DELETE", "/keys/{key_id}"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/"),
        ("GET", "/ui/{asset}"),
        ("GET", "/dlq"),
        ("POST", "/dlq/redrive"),
        # and every other request, so that 404 and 405 come in the API's error shape
        ("X-AMAZON-APIGATEWAY-ANY-METHOD", "$default"),
    }
    assert "CorsConfiguration" not in api["Properties"]
    assert "x-amazon-apigateway-cors" not in api["Properties"]["Body"]


def test_template_passes_the_sam_translator(capsys: pytest.CaptureFixture[str]) -> None:
    # given the template on disk
    # when the validate command runs
    status = validate.main([str(TEMPLATE)])

    # then it reports success with the number of CloudFormation resources
    assert status == 0
    assert capsys.readouterr().out.startswith("SAM translator: OK (")


def test_template_passes_cfn_lint() -> None:
    # given cfn-lint with its default rules
    from cfnlint.api import lint_file

    # when it lints the template
    matches = lint_file(TEMPLATE)

    # then it finds neither errors nor warnings
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_validate_reports_translator_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a template whose function has a malformed event
    broken = tmp_path / "template.yaml"
    broken.write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      CodeUri: src/\n"
        "      Handler: app.handler\n"
        "      Runtime: python3.12\n"
        "      Events:\n"
        "        Queue:\n"
        "          Type: SQS\n"
        "          Properties:\n"
        "            BatchSize: 10\n",
        encoding="utf-8",
    )

    # when the validate command runs
    status = validate.main([str(broken)])

    # then it fails and names the problem
    assert status == 1
    assert "Queue" in capsys.readouterr().err


def test_load_template_turns_short_tags_into_long_form(tmp_path: Path) -> None:
    # given a template using the short form of every kind of tag
    path = tmp_path / "t.yaml"
    path.write_text(
        "AWSTemplateFormatVersion: 2010-09-09\n"
        "Conditions:\n"
        "  IsProd: !Equals [!Ref Env, prod]\n"
        "  NotProd: !Not [!Condition IsProd]\n"
        "Resources:\n"
        "  R:\n"
        "    Properties:\n"
        "      A: !GetAtt Bucket.Arn\n"
        "      B: !GetAtt Stack.Outputs.Name\n"
        "      C: !Sub '${AWS::StackName}-x'\n"
        "      D: !Join [',', [!Ref X, !Select [0, !Split ['-', !ImportValue Y]]]]\n"
        "      E: !If [IsProd, !Base64 x, !FindInMap [M, K, V]]\n"
        "      F: !GetAZs ''\n"
        "      G: !Cidr [10.0.0.0/16, 2, 8]\n"
        "      H: !And [!Or [!Condition IsProd, !Condition NotProd], !Condition IsProd]\n",
        encoding="utf-8",
    )

    # when it is loaded
    template = load_template(path)

    # then every tag has its long form, and the date-like version stays a string
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Conditions"] == {
        "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
        "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
    }
    assert template["Resources"]["R"]["Properties"] == {
        "A": {"Fn::GetAtt": ["Bucket", "Arn"]},
        "B": {"Fn::GetAtt": ["Stack", "Outputs.Name"]},
        "C": {"Fn::Sub": "${AWS::StackName}-x"},
        "D": {
            "Fn::Join": [
                ",",
                [{"Ref": "X"}, {"Fn::Select": [0, {"Fn::Split": ["-", {"Fn::ImportValue": "Y"}]}]}],
            ]
        },
        "E": {"Fn::If": ["IsProd", {"Fn::Base64": "x"}, {"Fn::FindInMap": ["M", "K", "V"]}]},
        "F": {"Fn::GetAZs": ""},
        "G": {"Fn::Cidr": ["10.0.0.0/16", 2, 8]},
        "H": {
            "Fn::And": [
                {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "NotProd"}]},
                {"Condition": "IsProd"},
            ]
        },
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("A: !Bogus x\n", "unknown CloudFormation tag !Bogus"),
        ("A: !GetAtt NoDot\n", "Resource.Attribute"),
        ("- just a list\n", "a template is a mapping"),
    ],
)
def test_load_template_rejects_malformed_templates(tmp_path: Path, text: str, problem: str) -> None:
    # given a malformed template
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")

    # when / then loading it names the problem
    with pytest.raises(TemplateError, match=problem):
        load_template(path)


def test_template_encrypts_every_resource_that_holds_data_at_rest(template: dict[str, Any]) -> None:
    # given every resource that keeps data: the table, the bucket, and the queues, whose messages carry
    # job tokens until the worker has them (SPEC section 6)
    tables = _resources_of_type(template, "AWS::DynamoDB::Table")
    buckets = _resources_of_type(template, "AWS::S3::Bucket")
    queues = _resources_of_type(template, "AWS::SQS::Queue")
    assert tables and buckets and len(queues) == 2

    # then each is encrypted at rest
    unencrypted = [
        lid
        for lid, t in tables.items()
        if t["Properties"].get("SSESpecification", {}).get("SSEEnabled") is not True
    ]
    unencrypted += [lid for lid, b in buckets.items() if not b["Properties"].get("BucketEncryption")]
    unencrypted += [
        lid
        for lid, q in queues.items()
        if q["Properties"].get("SqsManagedSseEnabled") is not True
        and not q["Properties"].get("KmsMasterKeyId")
    ]
    assert unencrypted == []


def test_template_keeps_every_functions_logs_for_a_set_number_of_days(translated: dict[str, Any]) -> None:
    # given
    groups = _resources_of_type(translated, "AWS::Logs::LogGroup")
    functions = _resources_of_type(translated, "AWS::Lambda::Function")
    # then: each function logs to its own group of the stack, and every group has a retention
    assert len(functions) == 5
    for logical_id, function in functions.items():
        target = function["Properties"]["LoggingConfig"]["LogGroup"]
        assert target == {"Ref": target["Ref"]} and target["Ref"] in groups, logical_id
    for logical_id, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical_id


def test_template_throttles_the_api_and_logs_each_request_without_its_query_string(
    translated: dict[str, Any],
) -> None:
    # given
    (stage,) = _resources_of_type(translated, "AWS::ApiGatewayV2::Stage").values()
    properties = stage["Properties"]
    # then
    assert properties["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
    }
    log = properties["AccessLogSettings"]
    assert log["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(log["Format"])
    assert "$context.routeKey" in fields.values()
    # a callback URL carries its token in the query string: no field may hold the path or the query
    assert not [v for v in fields.values() if "path" in v.lower() or "querystring" in v.lower()]


def test_template_reserves_concurrency_for_the_api_unless_set_to_zero(template: dict[str, Any]) -> None:
    # given
    api = template["Resources"]["ApiFunction"]["Properties"]
    # then
    assert api["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveApiConcurrency", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"]["ReserveApiConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ApiReservedConcurrency"}, 0]}]
    }
    assert template["Parameters"]["ApiReservedConcurrency"]["Default"] > 0
