"""Worker: applies lifecycle events from the FIFO queue to job records.

Permanent problems (malformed message, bad credential, event not allowed) are recorded in the job's
history and acknowledged; only failures of the machinery raise, so that SQS retries them and, after
maxReceiveCount, moves them to the dead-letter queue. A failure fails only its own message group.

Cold start: the batch loop below does what Powertools' `SqsFifoPartialProcessor(skip_group_on_error=True)`
did, without loading its batch utility (asyncio and every event data class, ~45 ms of each cold start);
and no pydantic is loaded for a well-formed message (see jobcore.messages). benchmarks/cold_start.py
measures it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from jobcore.service import JobService, Result

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()

# Time kept back from an erasure step for deleting the batch's messages and returning.
_SAFETY_MS = 10_000

_METRIC_NAMES = {
    "applied": "EventsApplied",
    "rejected": "EventsRejected",
    "ignored": "EventsIgnored",
    "duplicate": "EventsDuplicate",
    "unrecorded": "EventsUnrecorded",
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


class SqsRecord:
    """One record of Lambda's SQS event, read as Powertools' SQSRecord reads it (what the worker uses)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    @property
    def body(self) -> str:
        return self.raw["body"]

    @property
    def message_id(self) -> str:
        return str(self.raw["messageId"])

    @property
    def group_id(self) -> str | None:
        return (self.raw.get("attributes") or {}).get("MessageGroupId")

    @property
    def deduplication_id(self) -> str | None:
        return (self.raw.get("attributes") or {}).get("MessageDeduplicationId")


def _body(record: SqsRecord) -> Any:
    try:
        return json.loads(record.body)
    except (ValueError, TypeError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return None  # recorded as malformed by the service


def record_handler(record: SqsRecord, lambda_context: LambdaContext | None = None) -> Result:
    service = _deps()
    # An erasure step hands over to a follow-up message after its budget, and always before Lambda's
    # timeout, keeping enough time back to report the batch.
    budget_ms = service.settings.erase_batch_seconds * 1000
    started_ms = lambda_context.get_remaining_time_in_millis() if lambda_context else None

    def deadline() -> bool:
        if lambda_context is None or started_ms is None:
            return False
        remaining = lambda_context.get_remaining_time_in_millis()
        return remaining < _SAFETY_MS or started_ms - remaining >= budget_ms

    fallback = record.deduplication_id or record.message_id
    result = service.handle_message(_body(record), fallback_event_id=fallback, deadline=deadline)
    metrics.add_metric(name=_METRIC_NAMES.get(result.status, "EventsApplied"), unit=MetricUnit.Count, value=1)
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


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    """A partial batch response (ReportBatchItemFailures) for a batch from the FIFO queue.

    Records are handled in order. When one fails (its handler raises), the later records of its
    message group are not handled and fail too, so a group's order is kept; other groups go on. A batch
    whose every record failed is reported like any other, not raised: the messages return to the
    queue either way, without an invocation error.
    """
    failures: list[dict[str, str]] = []
    failed_groups: set[str] = set()
    for raw in event["Records"]:
        record = SqsRecord(raw)
        group = record.group_id
        if group in failed_groups:
            failures.append({"itemIdentifier": record.message_id})
            continue
        try:
            # looked up on each call: the local stack wraps `record_handler` to watch each outcome
            record_handler(record=record, lambda_context=context)
        except Exception:
            if group:
                failed_groups.add(group)
            failures.append({"itemIdentifier": record.message_id})
    return {"batchItemFailures": failures}
