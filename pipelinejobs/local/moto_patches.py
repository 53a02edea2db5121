"""moto's DynamoDB as the local stack needs it: isolated requests, and a cost per event that stays flat.

- Isolation. moto's server handles requests in threads, and its DynamoDB has no lock: a transaction that
  fails puts back the copy it took before it ran, undoing any write another request made meanwhile (a
  token rotation by the API while the worker's write of a stale expectation failed: the new token was
  lost, and refused). DynamoDB applies each request atomically and isolated; here each DynamoDB request
  is served whole (parsed, run and answered) under one lock.
- `TransactWriteItems` backs up every table a transaction touches with `copy.deepcopy` (every item and
  every stream record) before it runs, so that it can put the copy back if any part fails; the worker
  applies each event with one transaction, so each event cost time in proportion to every event before
  it (seconds per event a few thousand events in). Here only what the transaction can change is backed
  up: the items it names (one deep copy each) and the length of the table's stream. On a rollback moto
  puts its "backup" in place of the table; here that backup is a marker, replaced by the real table
  with those items restored and the stream records the failed transaction added removed. What moto
  answers (the cancellation reasons, the old items of ALL_OLD) is unchanged: moto's own code runs it.
- `Query` on the table itself (not an index) sorts every item of the table to pick the partition's;
  every history page is such a query. Here it reads the partition alone (an index query is unchanged).
- moto's SQS counts a queue's messages (its approximate numbers of messages, in flight, delayed) by
  reading the clock twice per message, for each of the three numbers, four times per SendMessage (the
  queue's attributes are built whole to read one of them): most of a send's cost, growing with the
  queue. Here each count reads the clock once, and the attributes' names are converted once, not on
  every build. And a long poll that finds only messages of groups in flight waited for "any visible
  message", found those at once, and looked again without pause for its whole wait (a busy core, with
  a few pollers at once); here it looks again every 50 ms, or as soon as a message is sent.
- moto writes every DynamoDB answer by walking botocore's model of it (names, aliases, types), which
  costs more than running the request (4 ms of a 4.5 ms GetItem, 50 ms of a 100-item Query). An answer
  made only of plain JSON values under the model's own names is written directly, member by member as
  the model says, with the same result; anything else (binary values, dates, objects) goes the long way.

The local stack installs them in the emulator's process (moto server), before serving.
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

__all__ = ["install", "installed", "uninstall"]

_state = threading.local()
_DYNAMODB_LOCK = threading.RLock()
_ORIGINAL_ATTRIBUTE = "_pipelinejobs_original"


class _TableBackup:
    """Stands where moto's deep copy of a table would; restores the touched items on rollback."""

    def __init__(self, table: Any) -> None:
        self.table = table
        shard = getattr(table, "stream_shard", None)
        self.stream_length = len(shard.items) if shard is not None else None
        self.items: list[tuple[Any, Any, Any]] = []  # (hash, range, the item before, or None)

    def remember(self, hash_value: Any, range_value: Any) -> None:
        if any(h == hash_value and r == range_value for h, r, _ in self.items):
            return
        before = self.table.get_item(hash_value, range_value)
        self.items.append((hash_value, range_value, copy.deepcopy(before)))

    def restore(self) -> Any:
        table = self.table
        for hash_value, range_value, before in reversed(self.items):
            if range_value is not None:
                if before is None:
                    table.items[hash_value].pop(range_value, None)
                else:
                    table.items[hash_value][range_value] = before
            elif before is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = before
        shard = getattr(table, "stream_shard", None)
        if shard is not None and self.stream_length is not None:
            del shard.items[self.stream_length :]
        return table


def _backups() -> dict[int, _TableBackup] | None:
    return getattr(_state, "backups", None)


def _deepcopy(value: Any, memo: Any = None) -> Any:
    backups = _backups()
    if backups is not None and id(value) in backups:
        return backups[id(value)]
    return copy.deepcopy(value, memo)


@contextmanager
def _recording(backups: dict[int, _TableBackup]) -> Iterator[None]:
    _state.backups = backups
    try:
        yield
    finally:
        _state.backups = None


def _key(table: Any, operation_type: str, operation: dict[str, Any]) -> tuple[Any, Any] | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    attributes = operation.get("Item") if operation_type == "Put" else operation.get("Key")
    if not isinstance(attributes, dict) or table.hash_key_attr not in attributes:
        return None  # moto refuses it, and rolls back nothing it did not change
    range_attribute = table.range_key_attr
    if range_attribute is not None and range_attribute not in attributes:
        return None
    hash_value = DynamoType(attributes[table.hash_key_attr])
    range_value = DynamoType(attributes[range_attribute]) if range_attribute is not None else None
    return hash_value, range_value


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    original = getattr(type(self).transact_write_items, _ORIGINAL_ATTRIBUTE)
    backups: dict[int, _TableBackup] = {}
    by_name: dict[str, _TableBackup] = {}
    for item in transact_items[:100]:  # moto refuses more, before it copies anything
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((operation_type, operation),) = item.items()
        if not isinstance(operation, dict):
            continue
        table = self.tables.get(operation.get("TableName"))
        if table is None:
            continue
        backup = backups.setdefault(id(table), _TableBackup(table))
        by_name[operation["TableName"]] = backup
        key = _key(table, operation_type, operation)
        if key is not None:
            backup.remember(*key)
    try:
        with _recording(backups):
            original(self, transact_items)
    finally:
        for name, backup in by_name.items():
            if self.tables.get(name) is backup:  # moto rolled back: the marker stands for the table
                self.tables[name] = backup.restore()


def _query(self: Any, *args: Any, **kwargs: Any) -> Any:
    original = getattr(type(self).query, _ORIGINAL_ATTRIBUTE)
    arguments = inspect.signature(original).bind(self, *args, **kwargs).arguments
    hash_key, index_name = arguments.get("hash_key"), arguments.get("index_name")
    if index_name is not None or hash_key is None or self.range_key_attr is None:
        return original(self, *args, **kwargs)
    _state.partition = (self, hash_key)
    try:
        return original(self, *args, **kwargs)
    finally:
        _state.partition = None


def _all_items(self: Any) -> Any:
    partition = getattr(_state, "partition", None)
    if partition is not None and partition[0] is self:
        items = self.items.get(partition[1], {})  # (a defaultdict: get adds no partition)
        return sorted(items.values(), key=lambda item: item.range_key)
    return getattr(type(self).all_items, _ORIGINAL_ATTRIBUTE)(self)


def _call_action(self: Any) -> Any:
    with _DYNAMODB_LOCK:
        return getattr(type(self).call_action, _ORIGINAL_ATTRIBUTE)(self)


class _NotPlain(Exception):
    """The answer holds something only moto's serializer knows how to write."""


def _plain(value: Any, shape: Any) -> Any:
    """`value` as moto's JSON serializer writes it for `shape`, for plain values only (else _NotPlain)."""
    kind = shape.type_name
    if kind == "structure":
        if getattr(shape, "is_document_type", False) or not isinstance(value, dict):
            raise _NotPlain
        members = shape.members
        if not members.keys() >= value.keys():
            raise _NotPlain  # another spelling of a member name, which moto's value picker would find
        written = {}
        for key, member in members.items():
            item = value.get(key)
            if item is not None:
                written[member.serialization.get("name", key)] = _plain(item, member)
        return written
    if kind == "map":
        # (moto writes an empty key's value into the map itself; leave that to moto)
        if not isinstance(value, dict) or any(
            not isinstance(k, str) or not k or v is None for k, v in value.items()
        ):
            raise _NotPlain
        return {k: _plain(v, shape.value) for k, v in value.items()}
    if kind == "list":
        if not isinstance(value, list) or any(item is None for item in value):
            raise _NotPlain
        return [_plain(item, shape.member) for item in value]
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind in ("integer", "long") and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in ("float", "double") and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _NotPlain


def _serialize_result(self: Any, resp: Any, result: Any) -> Any:
    original = getattr(type(self)._serialize_result, _ORIGINAL_ATTRIBUTE)
    output_shape = self.operation_model.output_shape
    if output_shape is None or self.operation_model.service_model.service_name != "dynamodb":
        return original(self, resp, result)
    try:
        written = _plain(result, output_shape)
    except _NotPlain:
        return original(self, resp, result)
    return self._serialized_result_to_response(resp, result, output_shape, written)


def _now_ms() -> float:
    from moto.core.utils import unix_time_millis

    return float(unix_time_millis())


def _counted(original_name: str, keep: Callable[[Any, float], bool]) -> property:
    """A count of the queue's messages, reading the clock once (moto read it twice per message)."""

    def count(self: Any) -> Any:
        messages = list(self._messages)
        if not all(hasattr(m, "visible_at") and hasattr(m, "delayed_until") for m in messages):
            return _COUNTS_ORIGINAL[original_name].fget(self)  # a moto laid out otherwise
        now = _now_ms()
        return len([m for m in messages if keep(m, now)])

    return property(count)


def _visible(message: Any, now: float) -> bool:
    return bool(now > message.visible_at)  # moto's Message.visible


def _delayed(message: Any, now: float) -> bool:
    return bool(now < message.delayed_until)  # moto's Message.delayed


def _messages(self: Any) -> list[Any]:
    messages = list(self._messages)
    if not all(hasattr(m, "visible_at") and hasattr(m, "delayed_until") for m in messages):
        return list(_COUNTS_ORIGINAL["messages"].fget(self))
    now = _now_ms()
    return [m for m in messages if _visible(m, now) and not _delayed(m, now)]


_BLOCKED_POLL_SECONDS = 0.05


def _wait_for_messages(self: Any, timeout: int) -> None:
    with self._messages_lock:
        if self.messages:  # visible, yet the receive took none: their groups have messages in flight
            self._messages_lock.wait(timeout=min(timeout, _BLOCKED_POLL_SECONDS))
        else:
            self._messages_lock.wait_for(lambda: self.messages, timeout=timeout)


_COUNTS_ORIGINAL: dict[str, Any] = {}
_QUEUE_PROPERTIES = {
    "approximate_number_of_messages_delayed": _counted(
        "approximate_number_of_messages_delayed", lambda m, now: _delayed(m, now)
    ),
    "approximate_number_of_messages_not_visible": _counted(
        "approximate_number_of_messages_not_visible", lambda m, now: not _visible(m, now)
    ),
    "approximate_number_of_messages": _counted(
        "approximate_number_of_messages", lambda m, now: _visible(m, now) and not _delayed(m, now)
    ),
    "messages": property(_messages),
}


def _install_queue_counts() -> None:
    import moto.sqs.models as sqs_models
    from moto.sqs.models import Queue

    convert = getattr(sqs_models, "camelcase_to_underscores", None)
    if callable(convert) and not hasattr(convert, "cache_info"):
        _COUNTS_ORIGINAL["camelcase_to_underscores"] = convert
        sqs_models.camelcase_to_underscores = functools.lru_cache(maxsize=256)(convert)
    wait = Queue.__dict__.get("wait_for_messages")
    if callable(wait) and wait is not _wait_for_messages:
        _COUNTS_ORIGINAL["wait_for_messages"] = wait
        Queue.wait_for_messages = _wait_for_messages  # type: ignore[method-assign]
    for name, replacement in _QUEUE_PROPERTIES.items():
        current = Queue.__dict__.get(name)
        if not isinstance(current, property) or current in _QUEUE_PROPERTIES.values():
            continue
        _COUNTS_ORIGINAL[name] = current
        setattr(Queue, name, replacement)


def _uninstall_queue_counts() -> None:
    import moto.sqs.models as sqs_models
    from moto.sqs.models import Queue

    for name, original in list(_COUNTS_ORIGINAL.items()):
        setattr(sqs_models if name == "camelcase_to_underscores" else Queue, name, original)
        del _COUNTS_ORIGINAL[name]


_PATCHES = (
    ("DynamoHandler", "call_action", _call_action),
    ("BaseJSONSerializer", "_serialize_result", _serialize_result),
    ("DynamoDBBackend", "transact_write_items", _transact_write_items),
    ("Table", "query", _query),
    ("Table", "all_items", _all_items),
)


def _classes() -> dict[str, Any]:
    from moto.core.serialize import BaseJSONSerializer
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    return {
        "BaseJSONSerializer": BaseJSONSerializer,
        "DynamoDBBackend": DynamoDBBackend,
        "DynamoHandler": DynamoHandler,
        "Table": Table,
    }


def installed() -> bool:
    classes = _classes()
    return all(
        hasattr(getattr(classes[owner], name), _ORIGINAL_ATTRIBUTE) for owner, name, _ in _PATCHES
    ) and (set(_COUNTS_ORIGINAL) >= set(_QUEUE_PROPERTIES))


def install() -> bool:
    """Patch moto's DynamoDB in this process. Returns False (and changes nothing) when this moto is not
    laid out as expected; the emulator then works as before, only slower."""
    try:
        import moto.dynamodb.models as models

        classes = _classes()
    except ImportError:
        return False
    if installed():
        return True
    if getattr(models, "copy", None) is not copy:
        return False
    for owner, name, _ in _PATCHES:
        if not callable(getattr(classes[owner], name, None)):
            return False
    if "hash_key" not in inspect.signature(classes["Table"].query).parameters:
        return False
    for owner, name, replacement in _PATCHES:
        setattr(replacement, _ORIGINAL_ATTRIBUTE, getattr(classes[owner], name))
        setattr(classes[owner], name, replacement)
    models.copy = SimpleNamespace(deepcopy=_deepcopy, copy=copy.copy)  # type: ignore[assignment]
    _install_queue_counts()
    return True


def uninstall() -> None:
    """Undo install() (for tests that patch moto in their own process)."""
    import moto.dynamodb.models as models

    classes = _classes()
    for owner, name, _ in _PATCHES:
        current = getattr(classes[owner], name)
        if hasattr(current, _ORIGINAL_ATTRIBUTE):
            setattr(classes[owner], name, getattr(current, _ORIGINAL_ATTRIBUTE))
    models.copy = copy
    _uninstall_queue_counts()
