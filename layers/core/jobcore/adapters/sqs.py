"""The events queue (SQS FIFO)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from jobcore.errors import TransientError

_MAX_DEDUP_ID: Final = 128  # SQS's longest MessageDeduplicationId


def dedup_id_for(text: str) -> str:
    """A deduplication id SQS takes for `text`: itself up to 128 characters, else a hash of it. (Cut
    short instead, the ids of an event and of its follow-ups -- `<event id>:index:<step>`, built on a
    producer's own event id of up to 128 characters -- would be one id, and SQS would drop them.)"""
    if len(text) <= _MAX_DEDUP_ID:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


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
                MessageDeduplicationId=dedup_id_for(dedup_id),
            )
        except (ClientError, BotoCoreError) as error:
            raise TransientError(f"sending to the events queue failed: {type(error).__name__}") from error
