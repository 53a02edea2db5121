"""Least privilege, proven both ways: every AWS call each function makes during the suite, against that
function's policy in template.yaml.

Every botocore API call made in a test process is recorded (PynamoDB's too: it uses botocore) and
attributed to the function whose code is on the call's stack (`functions/<folder>/`: the handler called
by a test, or by the local stack's function pool), as the IAM actions it needs (a transaction needs its
items' actions; a batch, its single action's) on the kind of resource it names (a table or an index; a
bucket or its objects). Calls with no function on the stack (a test's own setup, the local stack's
event sources, which play Lambda's event source mappings) are not the functions' own.

- No call without a grant: checked on every run; a call its function's policy does not allow fails the
  run, naming it.
- No grant without a call: checked when the whole suite ran (no paths, -k or -m given), so that every
  code path had its chance; a grant nothing used fails the run, unless it is one of EXCEPTIONS, each
  with its reason.

The figures are printed with the others ("least privilege").
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.client

from pipelinejobs.local.template import load_template

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = str(ROOT / "functions") + "/"
FUNCTIONS = {
    "worker": "WorkerFunction",
    "api": "ApiFunction",
    "notifier": "NotifierFunction",
    "admin_key": "AdminKeyFunction",
    "sweeper": "SweeperFunction",
}
WORKER_OUTPUT_KEY = "pipelinejobs_aws_calls"

# Grants no test can show used by the function's own code, and why each is there.
EXCEPTIONS: dict[tuple[str, str, str], str] = {
    (
        "WorkerFunction",
        "sqs:ReceiveMessage",
        "*",
    ): "Lambda's SQS event source mapping polls with the function's role",
    (
        "WorkerFunction",
        "sqs:DeleteMessage",
        "*",
    ): "the event source mapping deletes what the function settled",
    (
        "WorkerFunction",
        "sqs:GetQueueAttributes",
        "*",
    ): "the event source mapping reads the queue's attributes",
    ("ApiFunction", "s3:GetObject", "object"): (
        "the outputs' download links: presigning makes no call, the downloads through the links use the "
        "function's role (tests download through them: test_api_outputs.py, tests/e2e/test_outputs.py)"
    ),
    ("NotifierFunction", "dynamodb:DescribeStream", "stream"): "Lambda's stream event source mapping",
    ("NotifierFunction", "dynamodb:GetRecords", "stream"): "Lambda's stream event source mapping",
    ("NotifierFunction", "dynamodb:GetShardIterator", "stream"): "Lambda's stream event source mapping",
    ("NotifierFunction", "dynamodb:ListStreams", "stream"): (
        "Lambda names it among the actions a stream mapping's role must have; on the table's streams it "
        "reveals nothing more (the action takes only `*`, so this grant is inert)"
    ),
}

_SQS_BATCHES = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
_S3_ACTIONS = {
    "ListObjectsV2": ("ListBucket", "bucket"),
    "ListObjects": ("ListBucket", "bucket"),
    "ListObjectVersions": ("ListBucketVersions", "bucket"),
    "HeadObject": ("GetObject", "object"),
    "GetObject": ("GetObject", "object"),
    "PutObject": ("PutObject", "object"),
    "DeleteObject": ("DeleteObject", "object"),
}
_TRANSACT_ITEMS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}

Need = tuple[str, str]  # (IAM action, resource kind)
_recorded: dict[str, set[Need]] = {}
_aside = threading.local()


@contextlib.contextmanager
def not_the_function() -> Iterator[None]:
    """Calls a test makes from inside a function's call (a hook run between two of its AWS calls, as
    the model test's racing revocation) are the test's, not the function's."""
    _aside.depth = getattr(_aside, "depth", 0) + 1
    try:
        yield
    finally:
        _aside.depth -= 1


def needs(service: str, operation: str, params: Mapping[str, Any]) -> set[Need]:
    """The IAM actions (with the kind of resource) one API call needs."""
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            return {
                (f"dynamodb:{_TRANSACT_ITEMS[kind]}", "table")
                for item in params.get("TransactItems", [])
                for kind in item
            }
        if operation == "TransactGetItems":
            return {("dynamodb:GetItem", "table")}
        return {(f"dynamodb:{operation}", "index" if params.get("IndexName") else "table")}
    if service == "s3":
        if operation == "DeleteObjects":
            objects = params.get("Delete", {}).get("Objects", [])
            actions = {"DeleteObjectVersion" if o.get("VersionId") else "DeleteObject" for o in objects}
            return {(f"s3:{action}", "object") for action in actions or {"DeleteObject"}}
        action, kind = _S3_ACTIONS.get(operation, (operation, "object"))
        return {(f"s3:{action}", kind)}
    if service == "sqs":
        return {(f"sqs:{_SQS_BATCHES.get(operation, operation)}", "*")}
    return {(f"{service}:{operation}", "*")}


def _function_on_stack() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(FUNCTIONS_DIR):
            folder = filename[len(FUNCTIONS_DIR) :].split("/", 1)[0]
            return FUNCTIONS.get(folder)
        frame = frame.f_back  # type: ignore[assignment]
    return None


_original = botocore.client.BaseClient._make_api_call


def _recording(self: Any, operation_name: str, api_params: Mapping[str, Any]) -> Any:
    function = None if getattr(_aside, "depth", 0) else _function_on_stack()
    if function is not None:
        service = self.meta.service_model.endpoint_prefix
        service = {"streams.dynamodb": "dynamodb"}.get(service, service)
        _recorded.setdefault(function, set()).update(needs(service, operation_name, api_params))
    return _original(self, operation_name, api_params)


def install() -> None:
    """Record every botocore call in this process from now on."""
    botocore.client.BaseClient._make_api_call = _recording  # type: ignore[method-assign]


def recorded() -> dict[str, list[list[str]]]:
    return {function: sorted(map(list, calls)) for function, calls in _recorded.items()}


def merge(other: Mapping[str, Iterable[Iterable[str]]]) -> None:
    for function, calls in other.items():
        _recorded.setdefault(function, set()).update((action, kind) for action, kind in calls)


# -- the template's side ----------------------------------------------------------------------------------


def _resource_kind(resource: Any) -> str:
    text = repr(resource)
    if "/stream/" in text:
        return "stream"
    if "/index/" in text:
        return "index"
    if "ArchiveBucket" in text:
        return "object" if "/" in text.split("ArchiveBucket", 1)[1] else "bucket"
    if "JobsTable" in text:
        return "table"
    return "*"


def granted(template: Mapping[str, Any] | None = None) -> dict[str, set[Need]]:
    """Each function's grants from template.yaml, as (action, resource kind); KMS is left out (it is
    reached through SSM, never called)."""
    template = template or load_template(ROOT / "template.yaml")
    grants: dict[str, set[Need]] = {}
    for function in FUNCTIONS.values():
        properties = template["Resources"][function]["Properties"]
        for policy in properties.get("Policies") or []:
            for statement in policy.get("Statement", []):
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                for action in actions:
                    if action.startswith("kms:"):
                        continue
                    for resource in resources:
                        kind = _resource_kind(resource) if action.split(":")[0] in ("dynamodb", "s3") else "*"
                        grants.setdefault(function, set()).add((action, kind))
    return grants


def compare(full_run: bool) -> tuple[list[str], list[str]]:
    """(lines to print, problems): calls without a grant; on a full run, grants without a call."""
    grants = granted()
    lines, problems = [], []
    for function in FUNCTIONS.values():
        calls = _recorded.get(function, set())
        allowed = grants.get(function, set())
        for action, kind in sorted(calls - allowed):
            problems.append(f"{function} calls {action} on {kind}, which its policy does not grant")
        unused = sorted(need for need in allowed - calls if (function, *need) not in EXCEPTIONS)
        if full_run:
            for action, kind in unused:
                problems.append(
                    f"{function} is granted {action} on {kind}, which nothing in the suite called"
                )
        excepted = sum(1 for need in allowed - calls if (function, *need) in EXCEPTIONS)
        lines.append(
            f"{function}: {len(calls)} actions called, {len(allowed)} granted "
            f"({excepted} used outside its code, see EXCEPTIONS)"
            + ("" if full_run else "; unused grants not checked (not the whole suite)")
        )
        if calls:
            lines.append(
                "  called: "
                + ", ".join(
                    f"{action}{'' if kind == '*' else f' ({kind})'}" for action, kind in sorted(calls)
                )
            )
    return lines, problems
