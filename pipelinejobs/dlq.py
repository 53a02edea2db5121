"""Dead-letter redrive: move messages from the events queue's dead-letter queue back to the queue.

Only failures of the machinery reach the dead-letter queue (SPEC section 6); once the cause is fixed, an
admin moves them back with `pipelinejobs dlq redrive`, the local stack's tests with `redrive()`.

What a redriven message keeps, and why:

- its body and message attributes, unchanged, except for one case below;
- its `MessageGroupId` (the job's uuid), so one job's events stay in order;
- its identity as an event: the worker uses the body's `event_id`, else the original
  `MessageDeduplicationId`. A body that is a JSON object without `event_id` gets the original
  deduplication id written into it as `event_id`, so the worker sees the same event and applies it
  at most once, whatever happened to the first attempt.

What it does not keep: the deduplication id. FIFO deduplication would silently drop a message sent
again within five minutes of the first send, so the new id is derived from the dead-lettered message's
id: sending the same message again after a crash is deduplicated by SQS, and in any case by the
worker, which applies each event id once. (A redriven message that fails again is a new message
with a new id, so it can be redriven again.)

Each message is sent first, then deleted from the dead-letter queue, so a crash in between leaves a
copy in both places, never none.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["redrive"]

# What the worker accepts as an event id (jobcore.models.Identifier).
_EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_BATCH = 10  # SQS's maximum per ReceiveMessage
# Long enough to send and delete a batch; a message not deleted by then is visible again and is
# picked up by a later redrive, not lost.
_HOLD_SECONDS = 60


def redrive(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    max: int | None = None,
    *,
    on_moved: Callable[[], None] | None = None,
) -> int:
    """Move up to `max` (all when None) messages from `dlq_url` back to `queue_url`; returns how many.

    `sqs` is a boto3 SQS client. `on_moved` is called after each message (for progress bars).
    Stops when a receive from the dead-letter queue comes back empty. Raises botocore's errors.
    """
    moved = 0
    fifo = queue_url.endswith(".fifo")
    seen: set[str] = set()
    while max is None or moved < max:
        response = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=_BATCH if max is None else min(_BATCH, max - moved),
            VisibilityTimeout=_HOLD_SECONDS,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
        if not messages:
            break
        for message in messages:
            seen.add(message["MessageId"])
            sqs.send_message(**_resend_request(message, queue_url, fifo))
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
            if on_moved is not None:
                on_moved()
    return moved


def _resend_request(message: dict[str, Any], queue_url: str, fifo: bool) -> dict[str, Any]:
    attributes = message.get("Attributes") or {}
    original_dedup = attributes.get("MessageDeduplicationId")
    request: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MessageBody": _with_event_id(message["Body"], original_dedup),
    }
    if message.get("MessageAttributes"):
        request["MessageAttributes"] = message["MessageAttributes"]
    if fifo:
        request["MessageGroupId"] = (
            attributes.get("MessageGroupId") or _body_uuid(message["Body"]) or "redrive"
        )
        tag = f"redrive:{message['MessageId']}".encode()
        request["MessageDeduplicationId"] = hashlib.sha256(tag).hexdigest()
    return request


def _with_event_id(body: str, original_dedup: str | None) -> str:
    """The body, with the original deduplication id as `event_id` when the body has none."""
    if not original_dedup or not _EVENT_ID.match(original_dedup):
        return body
    try:
        decoded = json.loads(body)
    except ValueError:
        return body  # malformed: the worker records and acknowledges it whatever its id
    if not isinstance(decoded, dict) or decoded.get("event_id") or decoded.get("internal"):
        return body
    decoded["event_id"] = original_dedup
    return json.dumps(decoded, separators=(",", ":"))


def _body_uuid(body: str) -> str | None:
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    value = decoded.get("uuid") if isinstance(decoded, dict) else None
    return str(value) if value else None
