"""The events queue (SQS FIFO)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from jobcore.errors import TransientError


class SqsEventQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url

    def send(self, body: dict[str, Any], group_id: str, dedup_id: str) -> None:
        try:
            self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=json.dumps(body, separators=(",", ":")),
                MessageGroupId=group_id,
                MessageDeduplicationId=dedup_id[:128],
            )
        except (ClientError, BotoCoreError) as error:
            raise TransientError(f"sending to the events queue failed: {type(error).__name__}") from error
