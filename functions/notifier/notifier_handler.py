"""Notifier: turns job state changes on the table's stream into EventBridge `Job State Changed` events."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore.notifications import state_change

logger = Logger()


@cache
def _notifier() -> Any:
    import os

    import boto3

    from jobcore.adapters.eventbridge import EventBridgeNotifier

    return EventBridgeNotifier(boto3.client("events"), os.environ.get("EVENT_BUS_NAME") or "default")


def record_handler(record: DynamoDBRecord) -> dict[str, Any] | None:
    change = record.dynamodb
    detail = state_change(change.old_image if change else None, change.new_image if change else None)
    if detail is not None:
        _notifier().publish([detail])
        logger.info(
            "state change published",
            uuid=detail["uuid"],
            event=detail["event"],
            from_state=detail["from_state"],
            to_state=detail["to_state"],
        )
    return detail


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
