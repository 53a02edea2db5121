"""Lambda's event sources, emulated: the SQS queue feeding the worker and the table's stream feeding
the notifier, with the semantics Lambda gives them.

SQS (`SqsEventSource`), as Lambda's SQS event source mapping:

- long-polls ReceiveMessage (short waits, so that shutdown is prompt) for up to `BatchSize` messages,
  with every system attribute, and hands them over in Lambda's event shape (`Records` of
  `messageId, receiptHandle, body, attributes, messageAttributes, md5OfBody, eventSource,
  eventSourceARN, awsRegion`);
- deletes what succeeded: everything when the function returns, nothing when it raises or overruns its
  Timeout; with `ReportBatchItemFailures`, everything but the `batchItemFailures` (an invalid
  response fails the whole batch, as in Lambda);
- leaves the rest alone: failed messages become visible again after the queue's visibility timeout,
  and the queue's redrive policy moves them to the dead-letter queue after `maxReceiveCount`
  receives. The emulator does that itself (moto moves a message whose receive count has reached
  `maxReceiveCount` when a ReceiveMessage finds it visible again, as SQS does), so the loop never
  counts receives.

DynamoDB streams (`StreamEventSource`), as Lambda's stream event source mapping: polls every shard from
`StartingPosition` about four times a second (at once again only after a full batch: a backlog), lists
the shards again every few seconds, drops the records the mapping's `FilterCriteria` do not match, hands up to
`BatchSize` records in Lambda's event shape (`eventSourceARN`, `ApproximateCreationDateTime` in epoch
seconds, binary values base64), checkpoints after success, and retries from the first failed record
(`ReportBatchItemFailures`) or the whole batch (an error) with a growing pause, up to
`MaximumRetryAttempts` (-1, the default, retries until the record would expire).
Not emulated: BisectBatchOnFunctionError, parallelization factor, batching windows, on-failure
destinations.

Each message's outcome is printed as one short line (`12:00:01 applied   run      3f2a1b2c… CREATED→RUNNING`)
through the `log` callable, instead of the functions' JSON logs; no line ever holds a token (the
worker's reasons never do, SPEC section 2) or a query string.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pipelinejobs.local.functions import DEFAULT_REGION, FunctionPool, Invocation

__all__ = [
    "EventLog",
    "SqsEventSource",
    "StreamEventSource",
    "matches_filters",
    "observe_record_handler",
    "sqs_record",
    "stream_record",
]

# log(text, kind): kind is an outcome (applied, rejected, ignored, duplicate, unrecorded), "retry",
# "error", "notified" or "http"; the local stack styles lines by it.
EventLog = Callable[[str, str], None]

_SQS_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)
_MAX_SQS_WAIT = 20
SHARD_REFRESH_SECONDS = 5.0
_BLOCKED_POLL_PAUSE = 0.5


def _now() -> str:
    return time.strftime("%H:%M:%S")


def _short(uuid: Any) -> str:
    text = str(uuid or "-")
    return text[:8] + "…" if len(text) > 9 else text


def _no_log(text: str, kind: str) -> None:
    return None


# ------------------------------------------------------------------------------------------------
# Seeing each record's outcome
# ------------------------------------------------------------------------------------------------


def observe_record_handler(
    module: Any, on_result: Callable[[Any, Any], None], on_error: Callable[[Any, BaseException], None]
) -> bool:
    """Wrap the module's `record_handler` (the per-record function its batch processor calls) so that
    each record's result or exception is seen. Returns False when the module has none.

    The wrapper keeps the wrapped signature (`functools.wraps`): Powertools' batch processors pass
    `lambda_context` only to a record handler that declares it.
    """
    original = getattr(module, "record_handler", None)
    if not callable(original) or getattr(original, "_observed", False):
        return False

    @functools.wraps(original)
    def observed(record: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = original(record, *args, **kwargs)
        except BaseException as error:
            on_error(record, error)
            raise
        on_result(record, result)
        return result

    observed._observed = True  # type: ignore[attr-defined]
    module.record_handler = observed
    return True


def worker_line(result: Any) -> tuple[str, str]:
    """`12:00:01 applied   run      3f2a1b2c… CREATED→RUNNING` for a jobcore Result."""
    status = str(getattr(result, "status", "done"))
    name = getattr(result, "name", None) or "message"
    from_state, to_state = getattr(result, "from_state", None), getattr(result, "to_state", None)
    reason = getattr(result, "reason", None)
    if status == "applied" and from_state and to_state:
        detail = f"{from_state}→{to_state}" if from_state != to_state else str(to_state)
        if reason:
            detail += f" ({reason})"
    else:
        detail = reason or ""
    return (
        f"{_now()} {status:<9} {name:<9} {_short(getattr(result, 'uuid', None)):<10} {detail}".rstrip(),
        status,
    )


def _record_body(record: Any) -> dict[str, Any]:
    try:
        body = json.loads(getattr(record, "body", None) or "")
    except (ValueError, TypeError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


def retry_line(record: Any, error: BaseException) -> str:
    body = _record_body(record)
    name = "erase" if body.get("internal") == "erase" else str(body.get("name") or "message")[:9]
    return f"{_now()} {'retry':<9} {name:<9} {_short(body.get('uuid')):<10} {type(error).__name__}: {error}"


# ------------------------------------------------------------------------------------------------
# SQS
# ------------------------------------------------------------------------------------------------


def _lambda_message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    converted = {}
    for name, value in attributes.items():
        item: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            item["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
        converted[name] = item
    return converted


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str = DEFAULT_REGION) -> dict[str, Any]:
    """One ReceiveMessage message in the shape of a record of Lambda's SQS event."""
    attributes = message.get("Attributes") or {}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {name: attributes[name] for name in _SQS_RECORD_ATTRIBUTES if name in attributes},
        "messageAttributes": _lambda_message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _failed_message_ids(response: Any, message_ids: set[str]) -> set[str] | None:
    """The ids a ReportBatchItemFailures response names; None when Lambda would fail the whole batch."""
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not identifier or identifier not in message_ids:
            return None  # empty, null, misnamed or unknown: the whole batch failed
        failed.add(identifier)
    return failed


class SqsEventSource:
    """Feeds a function from an SQS queue the way Lambda's SQS event source mapping does."""

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function: FunctionPool,
        batch_size: int = 10,
        report_batch_item_failures: bool = False,
        region: str = DEFAULT_REGION,
        wait_seconds: int = 1,
        log: EventLog | None = None,
        concurrency: int = 1,
    ) -> None:
        """concurrency: batches in flight at once (pollers), as Lambda works several message groups of a
        FIFO queue at once; the queue hands a group to one of them at a time, so each group stays in order.
        The function's pool needs as many instances."""
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function = function
        self.batch_size = max(1, min(int(batch_size), 10))
        self.report_batch_item_failures = report_batch_item_failures
        self.region = region
        self.wait_seconds = max(0, min(int(wait_seconds), _MAX_SQS_WAIT))
        self.log = log or _no_log
        self.concurrency = max(1, int(concurrency))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._in_flight = 0  # batches received and not yet settled
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # notified when a batch is settled
        self._receive_lock = threading.Lock()
        # Per poller: visible messages that a receive did not return (their groups have messages in flight).
        self._poller = threading.local()
        self.batches = 0
        self.failed_batches = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> SqsEventSource:
        for number in range(self.concurrency):
            name = "pipelinejobs-sqs-source" + (f"-{number + 1}" if self.concurrency > 1 else "")
            thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling; a batch being processed is finished first (as Lambda finishes an invocation)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No batch is received while the block runs, as if the mapping were disabled for a while; a
        batch in flight is settled before the block starts. Messages sent meanwhile wait on the queue
        (for a test of what the worker does with events accepted before something changed)."""
        with self._receive_lock:  # what every receive takes first
            with self._settled:
                while self._in_flight > 0:
                    self._settled.wait()
            yield

    @property
    def busy(self) -> bool:
        """True between receiving a batch and settling it (deletes done), in any poller."""
        with self._lock:
            return self._in_flight > 0

    @property
    def _groups_blocked(self) -> bool:
        return bool(getattr(self._poller, "groups_blocked", False))

    @_groups_blocked.setter
    def _groups_blocked(self, value: bool) -> None:
        self._poller.groups_blocked = value

    def _run(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            try:
                self.poll_once()
                pause = 1.0
            except Exception as error:  # the emulator going away at shutdown, or a network blip
                if self._stop.is_set():
                    break
                self.log(
                    f"{_now()} {'error':<9} polling the queue failed: {type(error).__name__}: {error}",
                    "error",
                )
                self._stop.wait(pause)
                pause = min(pause * 2, 30.0)

    # -- one poll -------------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Receive one batch, invoke the function, settle the batch; returns how many messages came."""
        # One receive at a time: the emulator picks the message groups not in flight without a lock, so
        # two receives at once could both take messages of one group, and work them out of order.
        with self._receive_lock:
            with self._lock:
                others_busy = self._in_flight > 0
            # A long poll only while no batch is in flight: the emulator decides which groups are in
            # flight when a receive starts, so a long poll begun beside a busy poller would miss their
            # groups being freed for its whole wait (and hold the receive back from everyone).
            wait = 0 if self._groups_blocked or others_busy else self.wait_seconds
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages") or []
            if messages:
                with self._lock:
                    self._in_flight += 1  # before the next receive starts
        if not messages:
            if others_busy:  # look again when a batch is settled (its groups freed, perhaps more to do)
                with self._settled:
                    if self._in_flight > 0:
                        self._settled.wait(_BLOCKED_POLL_PAUSE)
            else:
                self._note_empty_receive()
            return 0
        self._groups_blocked = False
        try:
            self._process(messages)
        finally:
            with self._settled:
                self._in_flight -= 1
                self._settled.notify_all()
        return len(messages)

    def _note_empty_receive(self) -> None:
        # A long poll that finds only messages of groups with messages in flight returns nothing, but
        # the emulator spins through its whole wait doing so. While that is the case, poll briefly and
        # pause in between instead.
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        self._groups_blocked = int(attributes.get("ApproximateNumberOfMessages", 0)) > 0
        if self._groups_blocked:
            self._stop.wait(_BLOCKED_POLL_PAUSE)

    def _process(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, queue_arn=self.queue_arn, region=self.region) for m in messages]}
        invocation = self.function.invoke(event)
        to_delete = self._settle(messages, invocation)
        with self._lock:
            self.batches += 1
            if len(to_delete) < len(messages):
                self.failed_batches += 1
        self._delete(to_delete)

    def _settle(self, messages: list[dict[str, Any]], invocation: Invocation) -> list[dict[str, Any]]:
        """The messages Lambda would delete after this invocation."""
        count = len(messages)
        if invocation.error is not None:
            self.log(
                f"{_now()} {'error':<9} the function failed on a batch of {count}: "
                f"{type(invocation.error).__name__}: {invocation.error}; the batch returns to the queue",
                "error",
            )
            return []
        if invocation.timed_out:
            self.log(
                f"{_now()} {'error':<9} the function overran its Timeout ({invocation.duration:.1f} s) on a "
                f"batch of {count}; the batch returns to the queue",
                "error",
            )
            return []
        if not self.report_batch_item_failures:
            return messages
        failed = _failed_message_ids(invocation.response, {m["MessageId"] for m in messages})
        if failed is None:
            self.log(
                f"{_now()} {'error':<9} invalid batchItemFailures in the response; the batch of {count} "
                "returns to the queue",
                "error",
            )
            return []
        return [m for m in messages if m["MessageId"] not in failed]

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            result = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in result.get("Failed") or []:
                self.log(
                    f"{_now()} {'error':<9} deleting a processed message failed: {failure.get('Code')}; "
                    "it will be delivered again (and recognised as a duplicate)",
                    "error",
                )


# ------------------------------------------------------------------------------------------------
# DynamoDB streams
# ------------------------------------------------------------------------------------------------


def _lambda_attribute_value(value: Any) -> Any:
    """boto3's AttributeValue (bytes for B/BS) -> the JSON Lambda sends (base64 strings)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {key: _lambda_attribute_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_lambda_attribute_value(item) for item in value]
    return value


def stream_record(record: Mapping[str, Any], *, stream_arn: str) -> dict[str, Any]:
    """One GetRecords record in the shape of a record of Lambda's DynamoDB stream event."""
    change = dict(record.get("dynamodb") or {})
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, _dt.datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in change:
            change[image] = _lambda_attribute_value(change[image])
    converted = {key: value for key, value in record.items() if key != "dynamodb" and value is not None}
    converted["eventVersion"] = "1.1"
    converted["dynamodb"] = change
    converted["eventSourceARN"] = stream_arn
    return converted


def _matches(pattern: Any, value: Any, present: bool) -> bool:
    """EventBridge-style pattern matching, as Lambda's event filtering applies it."""
    if isinstance(pattern, Mapping):
        if not present or not isinstance(value, Mapping):
            return False
        return all(_matches(sub, value.get(key), key in value) for key, sub in pattern.items())
    if isinstance(pattern, list):
        candidates = value if isinstance(value, list) else [value]
        return any(
            _matches_one(rule, candidate, present) for rule in pattern for candidate in candidates
        ) or (
            not present and any(isinstance(rule, Mapping) and rule.get("exists") is False for rule in pattern)
        )
    return present and pattern == value


def _matches_one(rule: Any, value: Any, present: bool) -> bool:
    if not isinstance(rule, Mapping):
        return present and rule == value
    if "exists" in rule:
        return present is bool(rule["exists"])
    if not present:
        return False
    if "prefix" in rule:
        return isinstance(value, str) and value.startswith(str(rule["prefix"]))
    if "suffix" in rule:
        return isinstance(value, str) and value.endswith(str(rule["suffix"]))
    if "anything-but" in rule:
        excluded = rule["anything-but"]
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return value not in excluded
    if "equals-ignore-case" in rule:
        return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
    if "numeric" in rule:
        return _numeric(rule["numeric"], value)
    raise ValueError(f"the local stack cannot evaluate the filter rule {json.dumps(rule)}")


def _numeric(conditions: list[Any], value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    operators = {
        "=": number.__eq__,
        "<": number.__lt__,
        "<=": number.__le__,
        ">": number.__gt__,
        ">=": number.__ge__,
    }
    pairs = zip(conditions[::2], conditions[1::2], strict=False)
    return all(operators[str(op)](float(bound)) for op, bound in pairs)


def matches_filters(record: Mapping[str, Any], filters: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a record passes a mapping's FilterCriteria.Filters (any filter; none means all pass)."""
    patterns = [f.get("Pattern") for f in filters]
    patterns = [json.loads(p) if isinstance(p, str) else p for p in patterns if p]
    return not patterns or any(_matches(pattern, record, True) for pattern in patterns)


class StreamEventSource:
    """Feeds a function from a DynamoDB stream the way Lambda's stream event source mapping does."""

    def __init__(
        self,
        *,
        streams: Any,
        stream_arn: str,
        function: FunctionPool,
        batch_size: int = 100,
        starting_position: str = "TRIM_HORIZON",
        filters: Iterable[Mapping[str, Any]] = (),
        report_batch_item_failures: bool = False,
        maximum_retry_attempts: int = -1,
        poll_interval: float = 0.25,
        log: EventLog | None = None,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.function = function
        self.batch_size = max(1, min(int(batch_size), 1000))
        self.starting_position = starting_position
        self.filters = list(filters)
        self.report_batch_item_failures = report_batch_item_failures
        self.maximum_retry_attempts = int(maximum_retry_attempts)
        self.poll_interval = poll_interval
        self.log = log or _no_log
        self._iterators: dict[str, str | None] = {}
        self._last_sequence: dict[str, str] = {}
        self._attempts: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._cycles_started = 0
        self._last_idle_cycle = 0  # the latest cycle that found nothing to do and nothing pending
        self._cycle_done = threading.Condition()
        self._shard_ids: list[str] | None = None
        self._shards_listed_at = 0.0

    def start(self) -> StreamEventSource:
        self._thread = threading.Thread(target=self._run, name="pipelinejobs-stream-source", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait for a poll that started after this call and found the stream fully processed."""
        with self._cycle_done:
            mark = self._cycles_started
            self._wake.set()
            return self._cycle_done.wait_for(lambda: self._last_idle_cycle > mark, timeout)

    def _run(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            try:
                handed = self.poll_once()
                pause = 1.0
            except Exception as error:
                if self._stop.is_set():
                    break
                self.log(
                    f"{_now()} {'error':<9} polling the stream failed: {type(error).__name__}: {error}",
                    "error",
                )
                self._stop.wait(pause)
                pause = min(pause * 2, 30.0)
                continue
            if handed < self.batch_size:  # a backlog (a full batch) is read on at once
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def _shards(self) -> list[str]:
        """The stream's shards, listed again every SHARD_REFRESH_SECONDS (they change rarely)."""
        now = time.monotonic()
        if self._shard_ids is None or now - self._shards_listed_at >= SHARD_REFRESH_SECONDS:
            description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
            self._shard_ids = [shard["ShardId"] for shard in description.get("Shards") or []]
            self._shards_listed_at = now
        return self._shard_ids

    def _iterator(self, shard_id: str, kind: str, sequence: str | None = None) -> str:
        request = {"StreamArn": self.stream_arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence is not None:
            request["SequenceNumber"] = sequence
        return str(self.streams.get_shard_iterator(**request)["ShardIterator"])

    def poll_once(self) -> int:
        """One pass over every shard; returns how many records were handed to the function."""
        with self._cycle_done:
            self._cycles_started += 1
            cycle = self._cycles_started
        for shard_id in self._shards():
            if shard_id not in self._iterators:
                last = self._last_sequence.get(shard_id)
                self._iterators[shard_id] = (
                    self._iterator(shard_id, "AFTER_SEQUENCE_NUMBER", last)
                    if last
                    else self._iterator(shard_id, self.starting_position)
                )
        handed = 0
        pending = False
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue  # a closed shard, read to its end
            if time.monotonic() < self._retry_at.get(shard_id, 0):
                pending = True
                continue
            try:
                response = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size)
            except Exception as error:
                if "ExpiredIterator" not in type(error).__name__ and "ExpiredIterator" not in str(error):
                    raise
                del self._iterators[shard_id]  # re-made from the checkpoint on the next pass
                pending = True
                continue
            records = response.get("Records") or []
            if not records:
                self._iterators[shard_id] = response.get("NextShardIterator")
                continue
            handed += len(records)
            if self._process(shard_id, records):
                self._iterators[shard_id] = response.get("NextShardIterator")
            pending = True  # more may follow at once
        if not pending and handed == 0:
            with self._cycle_done:
                self._last_idle_cycle = cycle
                self._cycle_done.notify_all()
        return handed

    def _process(self, shard_id: str, raw_records: list[dict[str, Any]]) -> bool:
        """Invoke for one batch; True when the shard may move past it."""
        records = [stream_record(r, stream_arn=self.stream_arn) for r in raw_records]
        chosen = [r for r in records if matches_filters(r, self.filters)]
        if not chosen:
            self._checkpoint(shard_id, records[-1])
            return True
        invocation = self.function.invoke({"Records": chosen})
        failed_at = self._failure_point(chosen, invocation)
        if failed_at is None:
            self._checkpoint(shard_id, records[-1])
            return True
        # Retry from the first failed record: everything before it is done.
        done = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) < int(failed_at)]
        if done:
            self._checkpoint(shard_id, done[-1])
        attempts = self._attempts.get(shard_id, 0) + 1
        if 0 <= self.maximum_retry_attempts < attempts:
            self.log(
                f"{_now()} {'error':<9} stream batch discarded after {attempts - 1} retries "
                f"(MaximumRetryAttempts {self.maximum_retry_attempts})",
                "error",
            )
            self._checkpoint(shard_id, records[-1])
            return True
        self._attempts[shard_id] = attempts
        delay = min(30.0, 0.5 * 2 ** (attempts - 1))
        self._retry_at[shard_id] = time.monotonic() + delay
        self._iterators[shard_id] = self._iterator(shard_id, "AT_SEQUENCE_NUMBER", failed_at)
        reason = (
            f"{type(invocation.error).__name__}: {invocation.error}"
            if invocation.error is not None
            else ("overran its Timeout" if invocation.timed_out else "reported failed records")
        )
        self.log(
            f"{_now()} {'retry':<9} stream batch failed ({reason}); retry {attempts} in {delay:.1f} s",
            "retry",
        )
        return False

    def _failure_point(self, records: list[dict[str, Any]], invocation: Invocation) -> str | None:
        """The sequence number to retry from, or None when the batch succeeded."""
        first = str(records[0]["dynamodb"]["SequenceNumber"])
        if invocation.error is not None or invocation.timed_out:
            return first
        if not self.report_batch_item_failures:
            return None
        sequences = {str(r["dynamodb"]["SequenceNumber"]) for r in records}
        failed = _failed_message_ids(invocation.response, sequences)
        if failed is None:
            return first
        return min(failed, key=int) if failed else None

    def _checkpoint(self, shard_id: str, record: Mapping[str, Any]) -> None:
        self._last_sequence[shard_id] = str(record["dynamodb"]["SequenceNumber"])
        self._attempts.pop(shard_id, None)
        self._retry_at.pop(shard_id, None)
