"""Build the stateful resources of template.yaml in an emulated AWS (moto), by reading the template.

Nothing about a resource is repeated here: key schemas, indexes, queue attributes, bucket settings and
the functions' environment come from template.yaml, so the local stack and the tests cannot drift
from what `sam deploy` creates. Each resource type has one small translation from its CloudFormation
properties to the API calls that create it:

| template type | API calls |
|---|---|
| `AWS::DynamoDB::Table` | CreateTable, UpdateContinuousBackups (PITR), UpdateTimeToLive |
| `AWS::SQS::Queue` | CreateQueue (or SetQueueAttributes when it exists), every property an attribute |
| `AWS::S3::Bucket` | CreateBucket, PutBucketVersioning, PutBucketEncryption, PutPublicAccessBlock, |
| | PutBucketOwnershipControls |
| `AWS::Events::EventBus` | CreateEventBus |
| `Custom::AdminKey` | PutParameter (SecureString) at its `ParameterName`, as the custom resource does |

Everything else (functions, layer, HTTP API, alarm, bucket policy, IAM) is not emulated: the local
stack runs the handlers in-process, over plain HTTP on loopback, with moto's permissive IAM.

Physical names are `{stack_name}-{logical id in lowercase}` (`pipelinejobs-local-jobstable`), with
`.fifo` appended for FIFO queues, unless the template names the resource itself (the event bus,
the admin key parameter).

Clients come from `client_factory(service_name)`, by default `boto3.client(service_name)`, which
honours `AWS_ENDPOINT_URL` (moto's server) and works inside moto's `mock_aws` alike. Creation is
idempotent: resources that exist are kept (queues get their attributes re-applied).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from pipelinejobs.local.template import INTRINSIC_FUNCTIONS, load_template

__all__ = [
    "DEFAULT_TEMPLATE",
    "LocalStackError",
    "StackResources",
    "create_stack_resources",
    "read_admin_key",
]

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"

ClientFactory = Callable[[str], Any]

# Lambda's defaults, where the template leaves a value out.
_LAMBDA_DEFAULT_TIMEOUT = 3
_SQS_DEFAULT_BATCH_SIZE = 10
_SQS_DEFAULT_VISIBILITY_TIMEOUT = 30

# Variables of the functions' environment that name a resource, and the field holding that name.
_RESOURCE_VARIABLES = {
    "TABLE_NAME": "table_name",
    "QUEUE_URL": "queue_url",
    "ARCHIVE_BUCKET": "bucket",
    "ARCHIVE_PREFIX": "archive_prefix",
    "EVENT_BUS_NAME": "event_bus_name",
    "ADMIN_KEY_PARAMETER": "admin_key_parameter",
}

_NO_VALUE = object()  # AWS::NoValue: the property or list element disappears


class LocalStackError(RuntimeError):
    """The template holds something the local stack cannot build, or the emulator refused it."""


@dataclass(frozen=True)
class StackResources:
    """The names and the queue semantics of one built stack, as the functions and the worker see them."""

    table_name: str
    queue_url: str
    dead_letter_queue_url: str
    bucket: str
    archive_prefix: str
    event_bus_name: str
    admin_key_parameter: str
    visibility_timeout: int
    max_receive_count: int
    worker_batch_size: int
    worker_report_batch_item_failures: bool
    worker_timeout: int
    # The table's change stream (NotifierFunction's source), when the template enables one.
    table_stream_arn: str = ""
    # The rest of the functions' environment (token settings, POWERTOOLS_*), resolved from the template.
    settings_environment: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def environment(self) -> dict[str, str]:
        """The environment every function gets (template Globals), with this object's resource names."""
        variables = dict(self.settings_environment)
        variables.update({name: str(getattr(self, attr)) for name, attr in _RESOURCE_VARIABLES.items()})
        return variables


def create_stack_resources(
    template_path: str | Path = DEFAULT_TEMPLATE,
    *,
    stack_name: str = "pipelinejobs-local",
    admin_key: str | None = None,
    client_factory: ClientFactory | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> StackResources:
    """Create (or find) the template's stateful resources in the emulator and describe them.

    `admin_key`: the key to store (replacing any stored one); without it an existing key is kept and
    a missing one generated. `overrides`: per logical id, properties merged (deeply, for mappings) into
    the template's, e.g. `{"EventsQueue": {"VisibilityTimeout": 2}}`; function properties count too
    (`{"WorkerFunction": {"Timeout": 5}}`). `parameters`: template parameter values replacing defaults.

    Raises LocalStackError for an unknown override, parameter or intrinsic, a resource type or
    property that cannot be emulated, or a template whose wiring is incomplete; botocore's errors
    pass through when the emulator is unreachable.
    """
    template = load_template(template_path)
    resources = _with_overrides(template.get("Resources") or {}, overrides or {})
    stack = _Stack(
        stack_name=stack_name,
        resources=resources,
        parameters=_parameter_values(template, parameters or {}),
        client_factory=client_factory or _boto3_client,
        admin_key=admin_key,
        conditions=template.get("Conditions") or {},
    )
    for logical_id in stack.creation_order():
        stack.create(logical_id)
    return stack.describe(template)


def read_admin_key(parameter_name: str, *, client_factory: ClientFactory | None = None) -> str:
    """The admin key stored at `parameter_name` (decrypted). Raises botocore's ParameterNotFound."""
    ssm = (client_factory or _boto3_client)("ssm")
    return str(ssm.get_parameter(Name=parameter_name, WithDecryption=True)["Parameter"]["Value"])


def _boto3_client(service_name: str) -> Any:
    import boto3

    return boto3.client(service_name)  # type: ignore[call-overload,unused-ignore]


# ------------------------------------------------------------------------------------------------
# Template inputs: overrides and parameters
# ------------------------------------------------------------------------------------------------


def _is_intrinsic(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in INTRINSIC_FUNCTIONS


def _merged(base: Any, change: Any) -> Any:
    # Mappings merge key by key; anything else, an intrinsic function included, replaces; None removes.
    if (
        isinstance(base, dict)
        and isinstance(change, Mapping)
        and not (_is_intrinsic(base) or _is_intrinsic(change))
    ):
        result = dict(base)
        for key, value in change.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = _merged(base.get(key), value)
        return result
    return copy.deepcopy(change)


def _with_overrides(
    resources: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    result = copy.deepcopy(dict(resources))
    for logical_id, properties in overrides.items():
        if logical_id not in result:
            raise LocalStackError(f"override for {logical_id}, which is not a resource of the template")
        resource = result[logical_id]
        resource["Properties"] = _merged(resource.get("Properties") or {}, properties)
    return result


def _parameter_values(template: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, str]:
    declared = template.get("Parameters") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise LocalStackError(f"unknown template parameter(s): {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, declaration in declared.items():
        if name in given:
            values[name] = str(given[name])
        elif "Default" in declaration:
            values[name] = str(declaration["Default"])
        else:
            raise LocalStackError(f"template parameter {name} has no default; pass it in `parameters`")
    return values


# ------------------------------------------------------------------------------------------------
# Intrinsic functions: the subset a resource template needs, resolved against built resources
# ------------------------------------------------------------------------------------------------

_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _references(value: Any) -> set[str]:
    """Logical ids (and parameters) a value refers to through Ref, GetAtt or Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        if _is_intrinsic(value):
            (key, argument), *_ = value.items()
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                target = argument.split(".", 1)[0] if isinstance(argument, str) else argument[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                local = set(argument[1]) if isinstance(argument, list) and len(argument) > 1 else set()
                for name in _SUB_VARIABLE.findall(text):
                    if not name.startswith("!"):
                        target = name.split(".", 1)[0]
                        if target not in local:
                            found.add(target)
                if isinstance(argument, list) and len(argument) > 1:
                    found |= _references(argument[1])
                return found
        for item in value.values():
            found |= _references(item)
    return found


# ------------------------------------------------------------------------------------------------
# The stack under construction
# ------------------------------------------------------------------------------------------------


@dataclass
class _Built:
    ref: str
    attributes: dict[str, str]
    properties: dict[str, Any]  # resolved


class _Stack:
    def __init__(
        self,
        *,
        stack_name: str,
        resources: dict[str, dict[str, Any]],
        parameters: dict[str, str],
        client_factory: ClientFactory,
        admin_key: str | None,
        conditions: dict[str, Any] | None = None,
    ) -> None:
        self.conditions = conditions or {}
        self.stack_name = stack_name
        self.resources = resources
        self.parameters = parameters
        self.admin_key = admin_key
        self._client_factory = client_factory
        self._clients: dict[str, Any] = {}
        self._pseudo: dict[str, str] = {}
        self.built: dict[str, _Built] = {}

    # -- plumbing ---------------------------------------------------------------------------------

    def client(self, service_name: str) -> Any:
        if service_name not in self._clients:
            self._clients[service_name] = self._client_factory(service_name)
        return self._clients[service_name]

    def physical_name(self, logical_id: str, suffix: str = "") -> str:
        return f"{self.stack_name}-{logical_id.lower()}{suffix}"

    def pseudo(self, name: str) -> str:
        if name not in self._pseudo:
            if name == "AWS::StackName":
                value = self.stack_name
            elif name == "AWS::Region":
                value = self.client("sts").meta.region_name
            elif name == "AWS::AccountId":
                value = self.client("sts").get_caller_identity()["Account"]
            elif name == "AWS::Partition":
                value = "aws-cn" if self.pseudo("AWS::Region").startswith("cn-") else "aws"
            elif name == "AWS::URLSuffix":
                value = (
                    "amazonaws.com.cn" if self.pseudo("AWS::Region").startswith("cn-") else "amazonaws.com"
                )
            elif name == "AWS::StackId":
                value = (
                    f"arn:{self.pseudo('AWS::Partition')}:cloudformation:{self.pseudo('AWS::Region')}:"
                    f"{self.pseudo('AWS::AccountId')}:stack/{self.stack_name}/local"
                )
            else:
                raise LocalStackError(f"pseudo parameter {name} is not emulated")
            self._pseudo[name] = value
        return self._pseudo[name]

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.built:
            return self.built[name].ref
        raise LocalStackError(f"!Ref {name}: not a parameter nor an emulated resource")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        built = self.built.get(logical_id)
        if built is None:
            raise LocalStackError(f"!GetAtt {logical_id}.{attribute}: {logical_id} is not emulated")
        if attribute not in built.attributes:
            raise LocalStackError(f"!GetAtt {logical_id}.{attribute}: attribute not emulated")
        return built.attributes[attribute]

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function replaced by its result."""
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if not _is_intrinsic(value):
            resolved = {key: self.resolve(v) for key, v in value.items()}
            return {key: v for key, v in resolved.items() if v is not _NO_VALUE}
        (key, argument), *_ = value.items()
        if key == "Ref":
            return self._ref(argument)
        if key == "Fn::GetAtt":
            logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self._get_att(logical_id, self.resolve(attribute))
        if key == "Fn::Sub":
            return self._sub(argument)
        if key == "Fn::Join":
            delimiter, items = argument
            return str(delimiter).join(str(item) for item in self.resolve(items))
        if key == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            delimiter, text = argument
            return str(self.resolve(text)).split(delimiter)
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(argument), separators=(",", ":"))
        if key == "Fn::If":
            name, when_true, when_false = argument
            return self.resolve(when_true if self.condition(name) else when_false)
        raise LocalStackError(f"{key} is not emulated by the local stack")

    def condition(self, name: str) -> bool:
        """The value of one of the template's Conditions (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition)."""
        if name not in self.conditions:
            raise LocalStackError(f"Fn::If names the condition {name}, which the template does not define")
        return self._truth(self.conditions[name])

    def _truth(self, value: Any) -> bool:
        if not isinstance(value, dict) or len(value) != 1:
            raise LocalStackError(f"condition {value!r} is not emulated by the local stack")
        (key, argument), *_ = value.items()
        if key == "Fn::Equals":
            left, right = (self.resolve(v) for v in argument)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self._truth(argument[0])
        if key == "Fn::And":
            return all(self._truth(v) for v in argument)
        if key == "Fn::Or":
            return any(self._truth(v) for v in argument)
        if key == "Condition":
            return self.condition(argument)
        raise LocalStackError(f"condition function {key} is not emulated by the local stack")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        local = {name: self.resolve(v) for name, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att(logical_id, attribute)
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    # -- building ---------------------------------------------------------------------------------

    def creation_order(self) -> list[str]:
        """Emulated resources, each after the ones it refers to (DependsOn, Ref, GetAtt, Sub)."""
        emulated = [lid for lid, r in self.resources.items() if r.get("Type") in _CREATORS]
        graph = TopologicalSorter[str]()
        for logical_id in emulated:
            resource = self.resources[logical_id]
            depends_on = resource.get("DependsOn") or []
            depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
            wanted = _references(resource.get("Properties") or {}) | set(depends_on)
            graph.add(logical_id, *sorted(wanted & set(emulated)))
        try:
            return list(graph.static_order())
        except CycleError as exc:
            raise LocalStackError(f"circular references between resources: {exc.args[1]}") from exc

    def create(self, logical_id: str) -> None:
        resource = self.resources[logical_id]
        creator = _CREATORS[resource["Type"]]
        self.built[logical_id] = creator(self, logical_id, resource.get("Properties") or {})

    # -- describing -------------------------------------------------------------------------------

    def _logical_id_of(self, ref: str) -> str:
        for logical_id, built in self.built.items():
            if built.ref == ref:
                return logical_id
        raise LocalStackError(f"{ref!r} is not the name of an emulated resource")

    def describe(self, template: Mapping[str, Any]) -> StackResources:
        function_globals = (template.get("Globals") or {}).get("Function") or {}
        variables: dict[str, str] = {}
        for name, value in ((function_globals.get("Environment") or {}).get("Variables") or {}).items():
            try:
                variables[name] = str(self.resolve(value))
            except LocalStackError:
                # Names a resource that is not emulated (say, the HTTP API's URL): the local stack
                # supplies its own value for such a variable, or the function does without.
                if name in _RESOURCE_VARIABLES:
                    raise
        missing = sorted(set(_RESOURCE_VARIABLES) - set(variables))
        if missing:
            raise LocalStackError(f"Globals.Function.Environment lacks {', '.join(missing)}")

        queue_id = self._logical_id_of(variables["QUEUE_URL"])
        queue = self.built[queue_id].properties
        redrive = _json_property(queue.get("RedrivePolicy"))
        if not redrive:
            raise LocalStackError(
                f"{queue_id} has no RedrivePolicy; the local stack needs a dead-letter queue"
            )
        dead_letter_id = next(
            (
                lid
                for lid, b in self.built.items()
                if b.attributes.get("Arn") == redrive["deadLetterTargetArn"]
            ),
            None,
        )
        if dead_letter_id is None:
            raise LocalStackError(f"the dead-letter queue of {queue_id} is not a queue of the template")

        admin_keys = {
            b.ref for lid, b in self.built.items() if self.resources[lid]["Type"] == "Custom::AdminKey"
        }
        if variables["ADMIN_KEY_PARAMETER"] not in admin_keys:
            raise LocalStackError(
                f"ADMIN_KEY_PARAMETER {variables['ADMIN_KEY_PARAMETER']} is not the parameter an "
                f"AdminKey resource creates ({', '.join(sorted(admin_keys)) or 'none'})"
            )

        table = self.built[self._logical_id_of(variables["TABLE_NAME"])]
        batch_size, report_failures, timeout = self._consumer_of(queue_id, function_globals)
        return StackResources(
            table_name=variables["TABLE_NAME"],
            queue_url=variables["QUEUE_URL"],
            dead_letter_queue_url=self.built[dead_letter_id].ref,
            bucket=variables["ARCHIVE_BUCKET"],
            archive_prefix=variables["ARCHIVE_PREFIX"],
            event_bus_name=variables["EVENT_BUS_NAME"],
            admin_key_parameter=variables["ADMIN_KEY_PARAMETER"],
            visibility_timeout=int(queue.get("VisibilityTimeout", _SQS_DEFAULT_VISIBILITY_TIMEOUT)),
            max_receive_count=int(redrive["maxReceiveCount"]),
            worker_batch_size=batch_size,
            worker_report_batch_item_failures=report_failures,
            worker_timeout=timeout,
            table_stream_arn=table.attributes.get("StreamArn", ""),
            settings_environment=tuple(
                sorted((name, value) for name, value in variables.items() if name not in _RESOURCE_VARIABLES)
            ),
        )

    def _consumer_of(self, queue_id: str, function_globals: Mapping[str, Any]) -> tuple[int, bool, int]:
        """Batch size, partial batch failures and timeout of the function that consumes the queue.

        The consumer is wired either by an AWS::Lambda::EventSourceMapping or by an SQS entry under a
        SAM function's Events.
        """
        for logical_id, resource in self.resources.items():
            properties = resource.get("Properties") or {}
            subscriptions: list[tuple[str, Mapping[str, Any]]] = []
            if resource.get("Type") == "AWS::Lambda::EventSourceMapping":
                if queue_id in _references(properties.get("EventSourceArn")):
                    functions = _references(properties.get("FunctionName")) & set(self.resources)
                    subscriptions += [(function_id, properties) for function_id in sorted(functions)]
            elif resource.get("Type") == "AWS::Serverless::Function":
                for event in (properties.get("Events") or {}).values():
                    event_properties = event.get("Properties") or {}
                    if event.get("Type") == "SQS" and queue_id in _references(event_properties.get("Queue")):
                        subscriptions.append((logical_id, event_properties))
            for function_id, source in subscriptions:
                function = self.resources[function_id].get("Properties") or {}
                timeout = function.get("Timeout", function_globals.get("Timeout", _LAMBDA_DEFAULT_TIMEOUT))
                return (
                    int(self.resolve(source.get("BatchSize", _SQS_DEFAULT_BATCH_SIZE))),
                    "ReportBatchItemFailures" in (self.resolve(source.get("FunctionResponseTypes")) or []),
                    int(self.resolve(timeout)),
                )
        raise LocalStackError(f"no function of the template consumes {queue_id}")


# ------------------------------------------------------------------------------------------------
# One creator per resource type: CloudFormation properties -> API calls
# ------------------------------------------------------------------------------------------------

# Properties that change nothing a local run can observe.
_UNOBSERVABLE = frozenset(
    {"Tags", "ContributorInsightsSpecification", "LifecycleConfiguration", "MetricsConfigurations"}
)


def _check_properties(logical_id: str, properties: Mapping[str, Any], handled: frozenset[str]) -> None:
    unknown = sorted(set(properties) - handled - _UNOBSERVABLE)
    if unknown:
        raise LocalStackError(
            f"{logical_id}: the local stack does not emulate {', '.join(unknown)}; "
            "teach pipelinejobs/local/resources.py or drop it"
        )


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _json_property(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return dict(json.loads(value))
    return dict(value or {})


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


_TABLE_PROPERTIES = frozenset(
    {
        "TableName",
        "KeySchema",
        "AttributeDefinitions",
        "BillingMode",
        "ProvisionedThroughput",
        "LocalSecondaryIndexes",
        "GlobalSecondaryIndexes",
        "SSESpecification",
        "StreamSpecification",
        "TableClass",
        "DeletionProtectionEnabled",
        "PointInTimeRecoverySpecification",
        "TimeToLiveSpecification",
    }
)


def _create_table(stack: _Stack, logical_id: str, raw: Mapping[str, Any]) -> _Built:
    _check_properties(logical_id, raw, _TABLE_PROPERTIES)
    properties = stack.resolve(raw)
    dynamodb = stack.client("dynamodb")
    name = properties.get("TableName") or stack.physical_name(logical_id)

    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for key in ("ProvisionedThroughput", "TableClass", "DeletionProtectionEnabled"):
        if key in properties:
            request[key] = properties[key]
    index_keys = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
    if properties.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [
            {k: index[k] for k in index_keys[:3] if k in index}
            for index in properties["LocalSecondaryIndexes"]
        ]
    if properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [
            {k: index[k] for k in index_keys if k in index} for index in properties["GlobalSecondaryIndexes"]
        ]
    if "SSESpecification" in properties:
        sse = properties["SSESpecification"]
        request["SSESpecification"] = {
            "Enabled": _truthy(sse.get("SSEEnabled")),
            **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
        }
    if "StreamSpecification" in properties:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": properties["StreamSpecification"]["StreamViewType"],
        }

    try:
        dynamodb.create_table(**request)
    except dynamodb.exceptions.ResourceInUseException:
        _check_existing_table(dynamodb, request)
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    if _truthy((properties.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")):
        dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and _truthy(ttl.get("Enabled")):
        current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )

    table = dynamodb.describe_table(TableName=name)["Table"]
    attributes = {"Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
    return _Built(ref=name, attributes=attributes, properties=properties)


def _check_existing_table(dynamodb: Any, request: Mapping[str, Any]) -> None:
    """A table left by an earlier run must have today's keys and indexes, or nothing would work."""
    table = dynamodb.describe_table(TableName=request["TableName"])["Table"]

    def index_names(key: str, wanted: Mapping[str, Any] | Any) -> set[str]:
        return {index["IndexName"] for index in (wanted.get(key) or [])}

    if (
        table["KeySchema"] != request["KeySchema"]
        or index_names("LocalSecondaryIndexes", table) != index_names("LocalSecondaryIndexes", request)
        or index_names("GlobalSecondaryIndexes", table) != index_names("GlobalSecondaryIndexes", request)
    ):
        raise LocalStackError(
            f"table {request['TableName']} exists with other keys or indexes than template.yaml; "
            "delete it (or the local state) and start again"
        )


def _queue_attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _create_queue(stack: _Stack, logical_id: str, raw: Mapping[str, Any]) -> _Built:
    # Every CloudFormation property of a queue but its name and tags is an SQS attribute of that name.
    properties = stack.resolve(raw)
    sqs = stack.client("sqs")
    fifo = _truthy(properties.get("FifoQueue"))
    name = properties.get("QueueName") or stack.physical_name(logical_id, ".fifo" if fifo else "")
    attributes = {
        key: _queue_attribute(value) for key, value in properties.items() if key not in ("QueueName", "Tags")
    }
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except Exception as exc:
        if _error_code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    else:
        # An earlier run made it: bring its attributes to today's template and overrides.
        mutable = {key: value for key, value in attributes.items() if key != "FifoQueue"}
        if mutable:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return _Built(ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url}, properties=properties)


_BUCKET_PROPERTIES = frozenset(
    {
        "BucketName",
        "VersioningConfiguration",
        "BucketEncryption",
        "PublicAccessBlockConfiguration",
        "OwnershipControls",
    }
)


def _bucket_name(stack: _Stack, logical_id: str) -> str:
    name = re.sub(r"[^a-z0-9.-]+", "-", stack.physical_name(logical_id).lower()).strip("-.")
    name = name[:63].rstrip("-.")
    if len(name) < 3:
        raise LocalStackError(
            f"{logical_id}: {name!r} is too short for a bucket name; use a longer stack name"
        )
    return name


def _create_bucket(stack: _Stack, logical_id: str, raw: Mapping[str, Any]) -> _Built:
    _check_properties(logical_id, raw, _BUCKET_PROPERTIES)
    properties = stack.resolve(raw)
    s3 = stack.client("s3")
    name = properties.get("BucketName") or _bucket_name(stack, logical_id)
    region = s3.meta.region_name
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=name, **location)
    except Exception as exc:
        if _error_code(exc) != "BucketAlreadyOwnedByYou":
            raise
    if "VersioningConfiguration" in properties:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": properties["VersioningConfiguration"]["Status"]}
        )
    if "BucketEncryption" in properties:
        # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
        rules = [
            {
                ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                for k, v in rule.items()
            }
            for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in properties:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                key: _truthy(value) for key, value in properties["PublicAccessBlockConfiguration"].items()
            },
        )
    if "OwnershipControls" in properties:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=properties["OwnershipControls"])
    partition = stack.pseudo("AWS::Partition")
    attributes = {
        "Arn": f"arn:{partition}:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
    }
    return _Built(ref=name, attributes=attributes, properties=properties)


def _create_event_bus(stack: _Stack, logical_id: str, raw: Mapping[str, Any]) -> _Built:
    _check_properties(logical_id, raw, frozenset({"Name", "Description"}))
    properties = stack.resolve(raw)
    events = stack.client("events")
    name = properties.get("Name") or stack.physical_name(logical_id)
    with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
        events.create_event_bus(Name=name)
    arn = events.describe_event_bus(Name=name)["Arn"]
    return _Built(ref=name, attributes={"Arn": arn, "Name": name}, properties=properties)


def _create_admin_key(stack: _Stack, logical_id: str, raw: Mapping[str, Any]) -> _Built:
    # Only ParameterName matters: ServiceToken points at the function that does this in AWS.
    if "ParameterName" not in raw:
        raise LocalStackError(f"{logical_id}: a Custom::AdminKey needs ParameterName")
    name = str(stack.resolve(raw["ParameterName"]))
    ssm = stack.client("ssm")
    if stack.admin_key is not None:
        ssm.put_parameter(Name=name, Value=stack.admin_key, Type="SecureString", Overwrite=True)
    else:
        # Keep the key of an earlier run, and every admin token computed with it.
        with contextlib.suppress(ssm.exceptions.ParameterAlreadyExists):
            ssm.put_parameter(
                Name=name, Value=secrets.token_urlsafe(48), Type="SecureString", Overwrite=False
            )
    return _Built(ref=name, attributes={"ParameterName": name}, properties={"ParameterName": name})


_CREATORS: dict[str, Callable[[_Stack, str, Mapping[str, Any]], _Built]] = {
    "AWS::DynamoDB::Table": _create_table,
    "AWS::SQS::Queue": _create_queue,
    "AWS::S3::Bucket": _create_bucket,
    "AWS::Events::EventBus": _create_event_bus,
    "Custom::AdminKey": _create_admin_key,
}
