"""Sweeper: once a minute (an EventBridge schedule), fails the jobs that missed a deadline.

It reads the overdue end of the sparse deadline indexes (never the table) and queues, for each job
found, the system's signed `fail` (SPEC section 3a); the worker applies it through the same guarded
write as any event, so an event that got there first wins. Nothing is changed here directly.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore.service import JobService

logger = Logger()
metrics = Metrics()


@cache
def _deps() -> JobService:
    """Built on the first invocation of a container, not at import time (moto must start first)."""
    import boto3
    import botocore.session

    from jobcore.adapters.dynamodb import DynamoJobRepository
    from jobcore.adapters.sqs import SqsEventQueue
    from jobcore.adapters.ssm import SsmAdminKeys
    from jobcore.settings import Settings

    settings = Settings.from_env()
    session = botocore.session.get_session()
    aws = boto3.session.Session(botocore_session=session)
    return JobService(
        settings,
        DynamoJobRepository(settings.table_name, host=os.environ.get("AWS_ENDPOINT_URL"), session=session),
        queue=SqsEventQueue(aws.client("sqs"), settings.queue_url),
        admin_keys=SsmAdminKeys(settings.admin_key_parameter, aws.client("ssm")),
    )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    overdue = _deps().sweep()
    reasons = {
        reason: sum(1 for job in overdue if job.reason == reason) for reason in ("heartbeat", "timeout")
    }
    metrics.add_metric(name="DeadlinesOverdue", unit=MetricUnit.Count, value=len(overdue))
    if overdue:
        logger.info(f"{len(overdue)} overdue jobs sent to be failed", extra={"overdue_by_reason": reasons})
    return {"overdue": len(overdue), **reasons}
