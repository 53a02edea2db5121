"""Cold start of each handler against the floor any boto3 handler pays, side by side in one run.

Each measurement is a fresh Python process (as a new Lambda container is) that starts a clock before its
first import and stops it:

- `init`: the handler module imported and its cached dependencies built (`_deps()` / `_notifier()`),
  its AWS clients created: the point where it could serve its first event;
- `first`: after that, one real event handled (worker: a batch of one `update`; API: a job token's
  `POST /jobs/{uuid}/events`; notifier: one stream record of a state change), with every AWS call
  answered in-process by a canned response (no network), so that cost merely moved from init into the
  first event shows up.

The baseline (`bare`) is a script that only imports boto3 and creates the same AWS clients, then makes
the same AWS calls with the same canned answers. Interpreter start-up (before the first import) is
left out of both: it is the same for every process and would only dilute the ratio.

Targets (issue 5): worker <= 1.3x, API <= 1.5x the bare script; notifier is reported without a target.

Two tables. **Built artifacts** (first; issue 11): what Lambda loads. The handlers run from the output of
`sam build` for this CPU (`make check-build` writes `.aws-sam/build-x86_64`): the function's folder, then
the layer's `python/` (with its shipped bytecode), then a stand-in for the runtime's own boto3 (the
locked boto3 and botocore, compiled, as /var/runtime holds them), with no site-packages (`-S`) and
`PYTHONDONTWRITEBYTECODE=1` (/opt and /var/task are read-only: nothing compiled is kept). The bare
script runs under the same conditions with only the runtime's boto3. **Dev venv** (second): the same
processes from the source tree and .venv, where bytecode is cached.

    python benchmarks/cold_start.py [--runs 7] [--importtime worker|api|notifier|bare-worker|...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UUID = "0b4f2a1e-7c3d-5e8f-9a0b-1c2d3e4f5a6b"
JOB_TOKEN = "pjt_" + "A" * 43  # the shape of a job token; its hash goes into the canned job item

# The AWS clients each handler creates (PynamoDB's DynamoDB client counted as `dynamodb`).
CLIENTS: dict[str, tuple[str, ...]] = {
    "worker": ("dynamodb", "sqs", "s3", "ssm"),
    "api": ("dynamodb", "sqs", "ssm"),
    "notifier": ("events",),
}
TARGETS: dict[str, float | None] = {"worker": 1.3, "api": 1.5, "notifier": None}
FUNCTIONS = {"worker": "WorkerFunction", "api": "ApiFunction", "notifier": "NotifierFunction"}
BUILT = ROOT / ".aws-sam" / "build-x86_64"
# What the runtime's /var/runtime holds of boto3 (copied from the built layer: the locked versions).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")

# Runs in the fresh process. The clock starts before the first import.
CHILD = r"""
import time
T0 = time.perf_counter()
import json, os, sys

KIND = sys.argv[1]
SETUP = json.loads(os.environ["COLD_START_SETUP"])

if KIND.startswith("bare-"):
    import boto3

    clients = {name: boto3.client(name) for name in SETUP["clients"]}
elif KIND == "powertools-api":
    # A reference, not a handler: Powertools' HTTP resolver with validation and one route whose body
    # is one small pydantic model, making the bare script's calls, with Powertools' Logger.
    import types
    from typing import Annotated, Any

    import boto3
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from aws_lambda_powertools.event_handler.openapi.params import Body
    from pydantic import BaseModel

    class EventBody(BaseModel):
        name: str
        data: dict[str, Any] = {}

    logger = Logger()
    app = APIGatewayHttpResolver(enable_validation=True)
    clients = {name: boto3.client(name) for name in SETUP["clients"]}

    @app.post("/jobs/<uuid>/events")
    def post_event(uuid: str, event: Annotated[EventBody, Body()]):
        for service, operation, params in SETUP["bare_calls"]:
            getattr(clients[service], operation)(**params)
        return 202, {"event": event.name}

    module = types.SimpleNamespace(handler=logger.inject_lambda_context(lambda e, c: app.resolve(e, c)))
elif KIND == "powertools-worker":
    # A reference, not a handler: Powertools' SQS FIFO batch processing, Logger and Metrics, each
    # message body validated by one small pydantic model, making the bare script's calls.
    import types
    from typing import Any

    import boto3
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
    from pydantic import BaseModel

    class Message(BaseModel):
        uuid: str
        name: str
        token: str
        data: dict[str, Any] = {}

    logger, metrics = Logger(), Metrics(namespace="ColdStart")
    clients = {name: boto3.client(name) for name in SETUP["clients"]}

    def record_handler(record):
        Message.model_validate_json(record["body"])
        for service, operation, params in SETUP["bare_calls"]:
            getattr(clients[service], operation)(**params)
        metrics.add_metric(name="EventsApplied", unit=MetricUnit.Count, value=1)

    @logger.inject_lambda_context
    @metrics.log_metrics
    def _handler(event, context):
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)

    module = types.SimpleNamespace(handler=_handler)
else:
    import importlib

    module = importlib.import_module(SETUP["module"])
    getattr(module, SETUP["init"])()
T_INIT = time.perf_counter()


# -- the first event, every AWS call answered in-process ------------------------------------------
import hashlib
from botocore.awsrequest import AWSResponse
from botocore.endpoint import Endpoint


class _Raw:
    def __init__(self, body):
        self._body = body

    def stream(self, **kwargs):
        yield self._body


CALLS = []


def _canned(self, request):
    target = request.headers.get("X-Amz-Target") or b""
    operation = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[-1]
    CALLS.append(operation)
    body = SETUP["responses"].get(operation, {})
    if operation == "SendMessage":
        sent = json.loads(request.body)["MessageBody"].encode()
        body = {"MessageId": "m-1", "MD5OfMessageBody": hashlib.md5(sent).hexdigest()}  # noqa: S324
    headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "r-1"}
    return AWSResponse(request.url, 200, headers, _Raw(json.dumps(body).encode()))


Endpoint._send = _canned


class Context:
    function_name = "ColdStart"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ColdStart"
    aws_request_id = "cold-start"

    def get_remaining_time_in_millis(self):
        return 30_000


if KIND.startswith("bare-"):
    for service, operation, params in SETUP["bare_calls"]:
        getattr(clients[service], operation)(**params)
    outcome = "ok"
else:
    result = module.handler(SETUP["event"], Context())
    outcome = json.dumps(result)[:200]
T_FIRST = time.perf_counter()
print("COLD_START " + json.dumps(
    {"init": T_INIT - T0, "first": T_FIRST - T_INIT, "calls": CALLS, "outcome": outcome}
))
"""


def _dynamo_job_item(now: float) -> dict[str, Any]:
    """The job item a GetItem (or the acceptance's UpdateItem) returns: RUNNING, its token fresh (no rotation due)."""
    sys.path[:0] = [str(ROOT / "layers/core")]
    from jobcore.tokens import hash_token

    stamp = "2026-01-01T00:00:00.000Z"
    return {
        "pk": {"S": f"JOB#{UUID}"},
        "sk": {"S": "JOB"},
        "uuid": {"S": UUID},
        "pipeline_uuid": {"S": "pipeline-1"},
        "state": {"S": "RUNNING"},
        "generation": {"N": "1"},
        "archive_path": {"S": f"s3://bucket/archive/pipeline-1/{UUID}/"},
        "created_at": {"S": stamp},
        "updated_at": {"S": stamp},
        "state_entered_at": {"S": stamp},
        "run_at": {"S": stamp},
        "last_event": {"S": "run"},
        "token_hash": {"S": hash_token(JOB_TOKEN)},
        "token_issued_at": {"N": str(now)},
        "token_uses": {"N": "1"},
        "callback_hash": {"S": hash_token("pjc_" + "B" * 43)},
        "idx_all": {"S": "JOB"},
        "idx_state": {"S": "RUNNING"},
        "idx_pipeline": {"S": "pipeline-1"},
    }


def _sample(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / name).read_text())


def setups() -> tuple[dict[str, dict[str, Any]], dict[str, Any], str]:
    """What each process needs (its module, the first event, the bare calls, the AWS calls expected),
    the canned AWS answers, and the queue URL."""
    update = {"uuid": UUID, "name": "update", "data": {"progress": 1}, "token": JOB_TOKEN}
    worker_event = _sample("worker_sqs_run.json")
    record = worker_event["Records"][0]
    record["body"] = json.dumps({**update, "event_id": "e-1", "expect": ["RUNNING", 1]})
    record["attributes"]["MessageDeduplicationId"] = "e-1"

    api_event = _sample("api_post_event.json")
    api_event["headers"]["authorization"] = f"Bearer {JOB_TOKEN}"
    api_event["body"] = json.dumps({"name": "update", "data": {"progress": 1}})

    notifier_event = _sample("notifier_stream_finish.json")

    item = _dynamo_job_item(time.time())
    key = {"pk": {"S": f"JOB#{UUID}"}, "sk": {"S": "JOB"}}
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/pipelinejobs-EventsQueue.fifo"
    bare_write = (
        "dynamodb",
        "transact_write_items",
        {
            "TransactItems": [
                {
                    "Update": {
                        "TableName": "jobs",
                        "Key": key,
                        "UpdateExpression": "SET #s = :s",
                        "ConditionExpression": "#s = :s",
                        "ExpressionAttributeNames": {"#s": "state"},
                        "ExpressionAttributeValues": {":s": {"S": "RUNNING"}},
                    }
                },
                {
                    "Put": {
                        "TableName": "jobs",
                        "Item": {"pk": key["pk"], "sk": {"S": "EVT#e-1"}},
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                },
            ]
        },
    )
    send = (
        "sqs",
        "send_message",
        {
            "QueueUrl": queue,
            "MessageBody": json.dumps(update),
            "MessageGroupId": UUID,
            "MessageDeduplicationId": "e",
        },
    )
    responses = {
        "TransactWriteItems": {},
        "GetItem": {"Item": item},
        "UpdateItem": {"Attributes": item},  # the acceptance (ReturnValues ALL_OLD)
        # the admin key, which signs the acceptance's mark (read once per container, cached 5 minutes)
        "GetParameter": {
            "Parameter": {"Name": "/stack/admin-key", "Type": "SecureString", "Value": "k" * 32}
        },
        "PutEvents": {"FailedEntryCount": 0, "Entries": [{"EventId": "ev-1"}]},
    }
    admin_key = ("ssm", "get_parameter", {"Name": "/stack/admin-key", "WithDecryption": True})
    accept = (
        "dynamodb",
        "update_item",
        {
            "TableName": "jobs",
            "Key": key,
            "UpdateExpression": "ADD #n :one",
            "ConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#n": "acc_seq", "#s": "acc_state"},
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":s": {"S": "RUNNING"}},
            "ReturnValues": "ALL_OLD",
        },
    )
    put_events = (
        "events",
        "put_events",
        {"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": "bus"}]},
    )
    handlers = {
        "worker": {
            "module": "worker_handler",
            "init": "_deps",
            "event": worker_event,
            "bare_calls": [bare_write],
            "expected_calls": ["TransactWriteItems"],
            "expected_outcome": '{"batchItemFailures": []}',
        },
        "api": {
            "module": "api_handler",
            "init": "_deps",
            "event": api_event,
            "bare_calls": [accept, admin_key, send],
            "expected_calls": ["UpdateItem", "GetParameter", "SendMessage"],
            "expected_outcome": '"statusCode": 202',
        },
        "notifier": {
            "module": "notifier_handler",
            "init": "_notifier",
            "event": notifier_event,
            "bare_calls": [put_events],
            "expected_calls": ["PutEvents"],
            "expected_outcome": '{"batchItemFailures": []}',
        },
    }
    return handlers, responses, queue


def environment(
    handler: str, setup: dict[str, Any], responses: dict[str, Any], queue: str, path: list[Path] | None = None
) -> dict[str, str]:
    """A Lambda-like environment: the template's variables, dummy credentials, an endpoint nobody
    listens on (every call is answered in-process), the function and layer folders on the path (or
    `path`: the built artifacts', with nothing compiled kept)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "cold",
            "AWS_SECRET_ACCESS_KEY": "cold",
            "AWS_SESSION_TOKEN": "cold",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": f"{handler}-cold-start",
            "TABLE_NAME": "jobs",
            "QUEUE_URL": queue,
            "ARCHIVE_BUCKET": "bucket",
            "ARCHIVE_PREFIX": "archive",
            "EVENT_BUS_NAME": "bus",
            "ADMIN_KEY_PARAMETER": "/pipelinejobs/admin-key",
            "POWERTOOLS_SERVICE_NAME": "pipelinejobs",
            "POWERTOOLS_METRICS_NAMESPACE": "PipelineJobs",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "functions" / handler), str(ROOT / "layers/core")]
                if path is None
                else map(str, path)
            ),
            "COLD_START_SETUP": json.dumps(
                {
                    "module": setup["module"],
                    "init": setup["init"],
                    "event": setup["event"],
                    "clients": CLIENTS[handler],
                    "bare_calls": setup["bare_calls"],
                    "responses": responses,
                }
            ),
        }
    )
    if path is not None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def runtime_boto3() -> Path:
    """A stand-in for the runtime's own boto3 (/var/runtime): the built layer's boto3 and botocore,
    with their bytecode."""
    layer, runtime = BUILT / "CoreLayer" / "python", ROOT / ".aws-sam" / "runtime-boto3"
    if not layer.is_dir():
        raise SystemExit(f"no built artifacts at {BUILT.relative_to(ROOT)}: run `make check-build` first")
    shutil.rmtree(runtime, ignore_errors=True)
    runtime.mkdir(parents=True)
    for name in RUNTIME_PACKAGES:
        source = layer / name
        if source.is_dir():
            shutil.copytree(source, runtime / name)
        else:
            shutil.copy2(source, runtime / name)
            cached = layer / "__pycache__"
            (runtime / "__pycache__").mkdir(exist_ok=True)
            for pyc in cached.glob(f"{Path(name).stem}.*.pyc"):
                shutil.copy2(pyc, runtime / "__pycache__" / pyc.name)
    return runtime


def run_once(kind: str, env: dict[str, str], extra_args: tuple[str, ...] = ()) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 (this interpreter, our own code)
        [sys.executable, *extra_args, "-c", CHILD, kind],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("COLD_START ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("COLD_START "))
    result["stderr"] = out.stderr
    return result


def importtime(kind: str, env: dict[str, str], top: int = 25) -> None:
    """The modules that cost the most to import (self time), as `python -X importtime` reports them."""
    result = run_once(kind, env, ("-X", "importtime"))
    rows = []
    for line in result["stderr"].splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, cumulative_us, name = (
            part.strip() for part in line.split("|", 1)[0].split(":", 1) + line.split("|")[1:]
        )
        rows.append((int(self_us), int(cumulative_us), name))
    print(
        f"{kind}: init {result['init'] * 1000:.0f} ms (inflated by -X importtime), top imports by self time:"
    )
    for self_us, cumulative_us, name in sorted(rows, reverse=True)[:top]:
        print(f"  {self_us / 1000:7.1f} ms self  {cumulative_us / 1000:7.1f} ms cumulative  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per measurement (median)")
    parser.add_argument("--importtime", metavar="KIND", help="profile one process's imports instead")
    args = parser.parse_args(argv)

    all_setups, responses, queue = setups()
    envs = {handler: environment(handler, setup, responses, queue) for handler, setup in all_setups.items()}
    if args.importtime:
        handler = args.importtime.removeprefix("bare-")
        importtime(args.importtime, envs[handler])
        return 0

    runtime = runtime_boto3()
    built_envs: dict[str, dict[str, str]] = {}
    for handler, setup in all_setups.items():
        function = [BUILT / FUNCTIONS[handler], BUILT / "CoreLayer" / "python", runtime]
        built_envs[handler] = environment(handler, setup, responses, queue, function)
        built_envs[f"bare-{handler}"] = environment(handler, setup, responses, queue, [runtime])
    print(
        f"runs: {args.runs} fresh processes each (median); Python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
    )
    print("\nbuilt artifacts, as Lambda loads them (sam build for this CPU; no bytecode written; -S):")
    ok = table(all_setups, built_envs, args.runs, ("-S",), references=False)
    print("\ndev venv (source tree and .venv, bytecode cached):")
    dev_envs = {**envs, **{f"bare-{handler}": env for handler, env in envs.items()}}
    table(all_setups, dev_envs, args.runs, (), references=True)  # for comparison: its verdict decides nothing
    print("\ninit: import + cached dependencies with AWS clients; +1st event: init plus one event handled,")
    print("AWS answered in-process. A target holds when both ratios are within it; the built artifacts'")
    print("table decides (it is what Lambda runs), the dev venv's is kept for comparison.")
    print("* references, not handlers: the floor of any handler built on the libraries this project uses.")
    print("  worker: Powertools' SQS FIFO batch processing, Logger and Metrics, one pydantic model per body;")
    print("  api: Powertools' HTTP resolver with validation, Logger, one route with a one-model body;")
    print("  both making the bare script's calls.")
    return 0 if ok else 3


def table(
    all_setups: dict[str, dict[str, Any]],
    envs: dict[str, dict[str, str]],
    runs: int,
    extra_args: tuple[str, ...],
    *,
    references: bool,
) -> bool:
    """Measure every handler beside its bare script (and the references), print one table; True when
    every target holds."""
    kinds = [(kind, kind) for handler in all_setups for kind in (handler, f"bare-{handler}")]
    if references:
        kinds += [("powertools-api", "api"), ("powertools-worker", "worker")]
    samples: dict[str, list[dict[str, Any]]] = {}
    for kind, env in kinds:
        run_once(kind, envs[env], extra_args)  # compile caches warm, the import system's too
    for _ in range(runs):
        # Interleaved, so that a slow moment of the machine hits every side alike.
        for kind, env in kinds:
            samples.setdefault(kind, []).append(run_once(kind, envs[env], extra_args))

    def median(kind: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[kind]) * 1000

    def median_total(kind: str) -> float:
        return statistics.median((s["init"] + s["first"]) for s in samples[kind]) * 1000

    print(
        f"{'handler':<13} {'AWS clients':<24} {'init ms':>8} {'bare':>6} {'ratio':>6}   "
        f"{'+1st event ms':>13} {'bare':>6} {'ratio':>6}   {'target':>7}  result"
    )
    ok = True
    for handler in all_setups:
        bare = f"bare-{handler}"
        init, bare_init = median(handler, "init"), median(bare, "init")
        total, bare_total = median_total(handler), median_total(bare)
        for sample in samples[handler]:
            if sample["calls"] != all_setups[handler]["expected_calls"]:
                raise RuntimeError(f"{handler}: unexpected AWS calls on the first event: {sample['calls']}")
            if all_setups[handler]["expected_outcome"] not in sample["outcome"]:
                raise RuntimeError(f"{handler}: the first event failed: {sample['outcome']}")
        target = TARGETS[handler]
        ratio, total_ratio = init / bare_init, total / bare_total
        verdict = "-"
        if target is not None:
            met = ratio <= target and total_ratio <= target
            ok &= met
            verdict = "PASS" if met else "MISS"
        print(
            f"{handler:<13} {', '.join(CLIENTS[handler]):<24} {init:8.0f} {bare_init:6.0f} {ratio:5.2f}x   "
            f"{total:13.0f} {bare_total:6.0f} {total_ratio:5.2f}x   "
            f"{f'<= {target:.1f}x' if target else 'none':>7}  {verdict}"
        )
    if references:
        for handler in ("worker", "api"):
            floor, bare = median(f"powertools-{handler}", "init"), median(f"bare-{handler}", "init")
            floor_total, bare_total = median_total(f"powertools-{handler}"), median_total(f"bare-{handler}")
            label = f"{handler} floor*"
            print(
                f"{label:<13} {', '.join(CLIENTS[handler]):<24} {floor:8.0f} {bare:6.0f} {floor / bare:5.2f}x   "
                f"{floor_total:13.0f} {bare_total:6.0f} {floor_total / bare_total:5.2f}x   {'none':>7}  -"
            )
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
