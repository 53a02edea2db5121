"""The events queue's dead-letter queue: its depth, a look at its messages, and redrive back to the queue.

Only failures of the machinery reach the dead-letter queue (SPEC section 6); once the cause is fixed, an
admin moves them back: `pipelinejobs dlq redrive`, the dashboard (`POST /dlq/redrive`), the local stack's
tests with `redrive()`. Every function takes a boto3 SQS client and raises botocore's errors.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from jobcore.errors import TransientError

__all__ = ["SqsDeadLetters", "depth", "describe", "peek", "redrive"]


class SqsDeadLetters:
    """jobcore.ports.DeadLetters on SQS: the API's look at the dead-letter queue and its redrive."""

    def __init__(self, sqs: Any, dlq_url: str, queue_url: str) -> None:
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.queue_url = queue_url

    def depth(self) -> int:
        with _transient("reading the dead-letter queue"):
            return depth(self.sqs, self.dlq_url)

    def peek(self, maximum: int) -> list[dict[str, Any]]:
        with _transient("reading the dead-letter queue"):
            return [describe(message) for message in peek(self.sqs, self.dlq_url, maximum)]

    def redrive(self, maximum: int) -> int:
        with _transient("moving dead-lettered messages"):
            return redrive(self.sqs, self.dlq_url, self.queue_url, max=maximum)


@contextmanager
def _transient(what: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise TransientError(f"{what} failed: {type(error).__name__}") from error


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


def depth(sqs: Any, queue_url: str) -> int:
    """About how many messages the queue holds (visible ones; SQS's approximation)."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))


def peek(sqs: Any, dlq_url: str, maximum: int, hold: int = 30) -> list[dict[str, Any]]:
    """Up to `maximum` messages of the queue, left in it: received with a short hold, then made
    visible again at once. (In a FIFO queue, messages of a group behind a held one are not seen.)"""
    seen: dict[str, dict[str, Any]] = {}
    try:
        while len(seen) < maximum:
            response = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(_BATCH, maximum - len(seen)),
                VisibilityTimeout=hold,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
            )
            messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            for message in messages:
                seen[message["MessageId"]] = message
    finally:
        handles = [m["ReceiptHandle"] for m in seen.values()]
        for start in range(0, len(handles), _BATCH):
            sqs.change_message_visibility_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(handles[start : start + _BATCH])
                ],
            )
    return list(seen.values())


def describe(message: dict[str, Any]) -> dict[str, Any]:
    """A dead-lettered message, for display: its job, event and delivery, never its token."""
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        body = None
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    described: dict[str, Any] = {
        "message_id": message.get("MessageId"),
        "uuid": body.get("uuid") if isinstance(body, dict) else None,
        "name": body.get("name") if isinstance(body, dict) else None,
        "event_id": body.get("event_id") if isinstance(body, dict) else None,
        "receive_count": int(attributes.get("ApproximateReceiveCount", 0) or 0),
        "sent_at": _iso(int(sent)) if sent else None,
        "group_id": attributes.get("MessageGroupId"),
    }
    if isinstance(body, dict) and "data" in body:
        described["data"] = body["data"]
    if not isinstance(body, dict):
        described["body"] = "(not JSON)"
    return described


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
