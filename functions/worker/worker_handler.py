"""Worker: applies lifecycle events from the FIFO queue to job records.

Permanent problems (malformed message, bad credential, event not allowed) are recorded in the job's
history and acknowledged; only failures of the machinery raise, so that SQS retries them and, after
maxReceiveCount, moves them to the dead-letter queue. A failure fails only its own message group.

Batches go through Powertools' `SqsFifoPartialProcessor(skip_group_on_error=True)`: a failed record
fails the rest of its message group only, and the response lists them (ReportBatchItemFailures).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore.payloads import strict_json_loads
from jobcore.service import JobService, Result

logger = Logger()
metrics = Metrics()

# Time kept back from an erasure or indexer step for deleting the batch's messages and returning.
_SAFETY_MS = 10_000

_METRIC_NAMES = {
    "applied": "EventsApplied",
    "rejected": "EventsRejected",
    "ignored": "EventsIgnored",
    "duplicate": "EventsDuplicate",
    "unrecorded": "EventsUnrecorded",
    "requeued": "EventsRequeued",
}


@cache
def _deps() -> JobService:
    """Built on the first event of a container, not at import time (moto must start first in tests)."""
    import boto3
    import botocore.session

    from jobcore.adapters.dynamodb import DynamoJobRepository
    from jobcore.adapters.s3 import S3ArchiveStore
    from jobcore.adapters.sqs import SqsEventQueue
    from jobcore.adapters.ssm import SsmAdminKeys
    from jobcore.settings import Settings

    settings = Settings.from_env()
    # One botocore session for every client (PynamoDB's included): they share its endpoint rules.
    session = botocore.session.get_session()
    aws = boto3.session.Session(botocore_session=session)
    return JobService(
        settings,
        DynamoJobRepository(settings.table_name, host=os.environ.get("AWS_ENDPOINT_URL"), session=session),
        queue=SqsEventQueue(aws.client("sqs"), settings.queue_url),
        archive=S3ArchiveStore(aws.client("s3")),
        admin_keys=SsmAdminKeys(settings.admin_key_parameter, aws.client("ssm")),
    )


def _body(record: SQSRecord) -> tuple[Any, str | None]:
    """The message's body, and what makes it malformed when it is not JSON (recorded by the service)."""
    try:
        return strict_json_loads(record.body), None
    except RecursionError:
        return None, "nested deeper than the JSON parser goes"
    except ValueError as error:
        if "NaN" not in str(error):
            return None, "the body is not JSON"
    # NaN or Infinity: JSON otherwise, so the job it names can record the refusal
    return json.loads(record.body), "NaN and Infinity are not JSON numbers"


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> Result:
    service = _deps()
    # An erasure or indexer step hands over to a follow-up message after its budget, and always before
    # Lambda's timeout, keeping enough time back to report the batch.
    budget_ms = service.settings.erase_batch_seconds * 1000
    started_ms = lambda_context.get_remaining_time_in_millis() if lambda_context else None

    def deadline() -> bool:
        if lambda_context is None or started_ms is None:
            return False
        remaining = lambda_context.get_remaining_time_in_millis()
        return remaining < _SAFETY_MS or started_ms - remaining >= budget_ms

    fallback = record.attributes.message_deduplication_id or record.message_id
    body, malformed = _body(record)
    result = service.handle_message(body, fallback_event_id=fallback, deadline=deadline, malformed=malformed)
    metrics.add_metric(name=_METRIC_NAMES.get(result.status, "EventsApplied"), unit=MetricUnit.Count, value=1)
    if result.timed_out:
        # a job failed by the system for a missed deadline (SPEC section 3a); the template alarms on it
        metrics.add_metric(name="JobsTimedOut", unit=MetricUnit.Count, value=1)
    logger.info(
        f"{result.name or 'message'} {result.status}",
        uuid=result.uuid,
        event=result.name,
        event_id=result.event_id,
        outcome=result.status,
        reason=result.reason,
        from_state=result.from_state and str(result.from_state),
        to_state=result.to_state and str(result.to_state),
    )
    return result


def in_accepted_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch with each message group's events in the API's order (their `seq`), the groups' places
    kept. Two API requests whose sends crossed reach the queue out of order; within a batch they are
    put back in order here, across batches the worker waits for the one before (jobcore.service).

    Only accepted events with no other message of their group between them are reordered: a message the
    API did not order (sent straight to the queue, an internal one) is checked against the accepted
    events still queued when it is handled, so no accepted event may move from before it to after it
    (a retry re-sent with its old place would otherwise take an earlier event's)."""
    runs: list[list[tuple[int, int]]] = []  # (place in the batch, seq) of consecutive accepted events
    current: dict[str, list[tuple[int, int]]] = {}  # group -> the run it is in
    for i, record in enumerate(records):
        group = (record.get("attributes") or {}).get("MessageGroupId") or ""
        seq = _seq(record)
        if not seq:
            current.pop(group, None)  # another message of the group ends its run
            continue
        if group not in current:
            current[group] = []
            runs.append(current[group])
        current[group].append((i, seq))
    ordered = list(records)
    for found in runs:
        if any(a[1] > b[1] for a, b in itertools.pairwise(found)):
            by_seq = sorted(found, key=lambda place: place[1])
            for (i, _), (j, _) in zip(found, by_seq, strict=True):
                ordered[i] = records[j]
    return ordered


def _seq(record: dict[str, Any]) -> int:
    """An accepted event's place in its job's order; 0 for any other message (left where it is)."""
    body = record.get("body") or ""
    if '"seq"' not in body:
        return 0
    try:
        seq = json.loads(body).get("seq")
    except (ValueError, AttributeError, RecursionError):
        return 0
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    records = event.get("Records")
    if isinstance(records, list) and len(records) > 1:
        event = {**event, "Records": in_accepted_order(records)}
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    # A batch whose every message failed is reported as such, like any other partial failure, rather
    # than raised: the messages return to the queue either way, without an invocation error.
    processor.raise_on_entire_batch_failure = False
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # Messages handed back to the queue (a failure of the machinery, and the rest of its group): SQS
    # delivers them again, and after maxReceiveCount moves them to the dead-letter queue.
    returned = len(response.get("batchItemFailures") or ())
    if returned:
        metrics.add_metric(name="EventsRetried", unit=MetricUnit.Count, value=returned)
    return response
