"""The local stack's data folder (SPEC section 9, "the local stack keeps its data").

    .pipelinejobs/            (`pipelinejobs serve --data-dir`; LocalStack(data_dir=...))
        manifest.json         format and version of the folder, the ports of the last run
        admin-key             the admin key (mode 0600): every admin token computed from it keeps working
        state.json            the emulated services' data, as of the last snapshot
        blobs/<sha256>        the archive's object contents, one file per distinct content
        lock                  held (flock) by the `serve` that uses the folder, and by its emulator

What the snapshot holds: every item of every DynamoDB table (jobs, history, producer keys, idempotency
records), every message of every SQS queue (the events queue and its dead-letter queue, with their
group ids, deduplication ids, receive counts), every version and delete marker of every S3 object
(content, metadata, ETag, modified time, version id). The resources themselves come from template.yaml
at every start; the snapshot fills them before the API and the worker start. Not kept: the table's
stream (notifications still pending at a crash are not sent again), SQS visibility (a message in flight
when the stack stopped is visible again at once, and the worker's deduplication by event id applies it
once), multipart uploads in progress.

How it is written (in the emulator's process, `run_emulator`): every request to moto runs through a
gate; a snapshot closes the gate between requests (a long poll waiting for messages does not hold it),
so it sees the services as they were between two answered requests, never half a transaction or a
message between two queues. The copy is taken with the gate closed, written with it open: to a
temporary file, fsync'ed, renamed over state.json (a crash mid-write leaves the previous snapshot
whole). Snapshots are taken when a request changed something, at most every `interval` seconds (and
never more often than a fifth of the time one takes), when the stack stops, and when `serve` dies
without stopping it (kill -9: the emulator, in its own process, sees its control pipe close and saves
before it exits). What a crash of the emulator itself (or of the machine) loses is bounded by that
interval: the changes answered since the last snapshot began.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipelinejobs.local.resources import LocalStackError

__all__ = [
    "DATA_FORMAT",
    "DEFAULT_DATA_DIR",
    "DEFAULT_SNAPSHOT_SECONDS",
    "DataFolder",
    "run_emulator",
]

DATA_FORMAT = 1  # of manifest.json and state.json; bump it (and teach _upgrade) when either changes
DEFAULT_DATA_DIR = ".pipelinejobs"
DEFAULT_SNAPSHOT_SECONDS = 1.0
FORMAT_NAME = "pipelinejobs-local-data"
MANIFEST = "manifest.json"
STATE = "state.json"
ADMIN_KEY = "admin-key"
BLOBS = "blobs"
LOCK = "lock"

_ACCOUNT = "123456789012"  # moto's default account: the one the stack's dummy credentials map to
_REGION = "us-east-1"


def _fresh_hint(folder: Path) -> str:
    return f"start afresh with `pipelinejobs serve --fresh --data-dir {folder}` (deletes it)"


def _fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a temporary file beside `path`, fsync it, rename it over `path`: whole or not at all."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_directory(path.parent)


# ------------------------------------------------------------------------------------------------
# The folder, as `serve` sees it
# ------------------------------------------------------------------------------------------------


class DataFolder:
    """A data folder, locked for one stack while open (`open()` ... `close()`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()
        self.lock_fd: int | None = None
        self.manifest: dict[str, Any] = {}
        self.restored = False  # whether open() found data of an earlier run

    # -- locking ------------------------------------------------------------------------------------

    def open(self, *, fresh: bool = False) -> DataFolder:
        """Create or check the folder and lock it. Raises LocalStackError: in use, unreadable, written by
        an unknown version. `fresh`: delete what it holds first (after taking the lock)."""
        if self.path.exists() and not self.path.is_dir():
            raise LocalStackError(
                f"the data folder {self.path} is a file, not a folder; choose another --data-dir"
            )
        with contextlib.suppress(OSError):
            entries = {entry.name for entry in self.path.iterdir()} if self.path.is_dir() else set()
            if entries and not entries & {MANIFEST, STATE, ADMIN_KEY, LOCK}:
                raise LocalStackError(
                    f"{self.path} holds other files than a pipelinejobs data folder; give --data-dir an "
                    "empty or new folder"
                )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise LocalStackError(f"cannot use the data folder {self.path}: {error.strerror}") from None
        try:
            self._lock(fd)
        except BaseException:
            os.close(fd)
            raise
        self.lock_fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            if fresh:
                self.wipe()
            self.manifest = self._read_manifest()
            self.restored = (self.path / STATE).exists()
            if self.restored and not self.manifest:
                raise LocalStackError(
                    f"the data folder {self.path} holds {STATE} but no {MANIFEST}; it was not written "
                    f"by `pipelinejobs serve`, or is damaged: {_fresh_hint(self.path)}"
                )
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self, fd: int) -> None:
        """Take the folder's lock, or raise LocalStackError naming who holds it. When the `serve` that
        held it is gone (killed) and only its emulator holds it, saving its last snapshot, wait for that."""
        deadline = time.monotonic() + 120
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            pids: list[int] = []
            with contextlib.suppress(OSError, ValueError):
                pids = [int(word) for word in os.pread(fd, 200, 0).decode().split()]
            if len(pids) == 2 and not _alive(pids[0]) and _alive(pids[1]) and time.monotonic() < deadline:
                time.sleep(0.1)  # serve died; its emulator is saving the last snapshot, then exits
                continue
            by = f" (pid {pids[0]})" if pids else ""
            raise LocalStackError(
                f"the data folder {self.path} is in use by another `pipelinejobs serve`{by}; "
                "stop that one, or give this one another --data-dir"
            )

    def note_emulator(self, pid: int) -> None:
        """Record the emulator's pid beside serve's in the lock file (for an operator, and the tests)."""
        if self.lock_fd is not None:
            os.ftruncate(self.lock_fd, 0)
            os.pwrite(self.lock_fd, f"{os.getpid()} {pid}\n".encode(), 0)

    def close(self) -> None:
        fd, self.lock_fd = self.lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- contents -----------------------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            return {}
        try:
            manifest = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            raise LocalStackError(f"{path} is not readable ({error}); {_fresh_hint(self.path)}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise LocalStackError(
                f"{path} is not a pipelinejobs data manifest; {_fresh_hint(self.path)}, "
                "or choose another --data-dir"
            )
        version = manifest.get("version")
        if not isinstance(version, int) or version < 1:
            raise LocalStackError(f"{path} has no valid version; {_fresh_hint(self.path)}")
        if version > DATA_FORMAT:
            raise LocalStackError(
                f"the data folder {self.path} was written by a newer pipelinejobs (data format {version}, "
                f"this one reads up to {DATA_FORMAT}); upgrade pipelinejobs (`pip install -U "
                f"'pipelinejobs[local]'`), or {_fresh_hint(self.path)}"
            )
        # Older formats are upgraded here, whole, before anything is read (there is none yet: 1 is the
        # first). A format this code cannot upgrade is refused above, never half-read.
        return manifest

    @property
    def aws_port(self) -> int:
        port = self.manifest.get("aws_port")
        return port if isinstance(port, int) and 0 < port < 65536 else 0

    def write_manifest(self, *, aws_port: int, api_port: int) -> None:
        self.manifest = {
            "format": FORMAT_NAME,
            "version": DATA_FORMAT,
            "aws_port": aws_port,
            "api_port": api_port,
            "written_by": f"pipelinejobs {_package_version()}",
            "created_at": self.manifest.get("created_at") or _now_iso(),
            "started_at": _now_iso(),
        }
        write_atomically(self.path / MANIFEST, (json.dumps(self.manifest, indent=2) + "\n").encode())

    def read_admin_key(self) -> str | None:
        path = self.path / ADMIN_KEY
        if not path.exists():
            if self.restored:
                raise LocalStackError(
                    f"{path} is missing: the data folder holds data but not its admin key; put the key back "
                    f"(or give it with --admin-key), or {_fresh_hint(self.path)}"
                )
            return None
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise LocalStackError(f"{path} is not readable ({error}); {_fresh_hint(self.path)}") from None
        if not key or any(c.isspace() for c in key):
            raise LocalStackError(f"{path} does not hold an admin key; {_fresh_hint(self.path)}")
        return key

    def write_admin_key(self, key: str) -> None:
        write_atomically(self.path / ADMIN_KEY, (key + "\n").encode(), mode=0o600)

    def wipe(self) -> None:
        """Delete what the folder holds (not the lock, which this process holds)."""
        for name in (MANIFEST, STATE, ADMIN_KEY, f".{STATE}.tmp", f".{MANIFEST}.tmp", f".{ADMIN_KEY}.tmp"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        shutil.rmtree(self.path / BLOBS, ignore_errors=True)
        self.manifest = {}
        self.restored = False

    def holds_data(self) -> bool:
        return (self.path / STATE).exists() or (self.path / ADMIN_KEY).exists()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pipelinejobs")
    except PackageNotFoundError:
        return "(source)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) holds no lock: count it as gone.
    with contextlib.suppress(OSError):
        status = Path(f"/proc/{pid}/stat").read_text()
        return status.rpartition(")")[2].split()[0] != "Z"
    return True


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------
# The emulator's side: the gate, the snapshot and its restore (runs in moto's server process)
# ------------------------------------------------------------------------------------------------


class Gate:
    """Requests pass together (shared); a snapshot passes alone (exclusive), between requests."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._inside = 0
        self._closing = 0
        self._closed = False
        self._local = threading.local()

    def enter(self) -> None:
        with self._condition:
            while self._closed or self._closing:
                self._condition.wait()
            self._inside += 1
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def leave(self) -> None:
        self._local.depth -= 1
        with self._condition:
            self._inside -= 1
            if self._inside == 0:
                self._condition.notify_all()

    @contextlib.contextmanager
    def outside(self) -> Iterator[None]:
        """Step out for a while (a long poll's wait), so that a snapshot need not wait for it."""
        if getattr(self._local, "depth", 0) <= 0:
            yield
            return
        self.leave()
        try:
            yield
        finally:
            self.enter()

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        with self._condition:
            self._closing += 1
            while self._closed or self._inside:
                self._condition.wait()
            self._closing -= 1
            self._closed = True
        try:
            yield
        finally:
            with self._condition:
                self._closed = False
                self._condition.notify_all()


# Requests that change nothing a snapshot keeps (besides GET and HEAD), by X-Amz-Target. A receive
# changes only a message's receive count and visibility, which a restore does not need to be exact.
_READ_TARGETS = frozenset(
    {
        "DynamoDB_20120810.GetItem",
        "DynamoDB_20120810.BatchGetItem",
        "DynamoDB_20120810.Query",
        "DynamoDB_20120810.Scan",
        "DynamoDB_20120810.DescribeTable",
        "DynamoDB_20120810.DescribeTimeToLive",
        "DynamoDB_20120810.DescribeContinuousBackups",
        "DynamoDB_20120810.ListTables",
        "DynamoDB_20120810.TransactGetItems",
        "AmazonSQS.ReceiveMessage",
        "AmazonSQS.GetQueueAttributes",
        "AmazonSQS.GetQueueUrl",
        "AmazonSQS.ListQueues",
        "AmazonSQS.ListDeadLetterSourceQueues",
        "AmazonSSM.GetParameter",
        "AmazonSSM.GetParameters",
        "AWSEvents.PutEvents",
        "AWSEvents.DescribeEventBus",
    }
)


def _changes_state(environ: Mapping[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
        return False
    target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
    if target.startswith("DynamoDBStreams_"):
        return False
    return target not in _READ_TARGETS


class GatedApplication:
    """moto's WSGI application, each request served whole inside the gate; notes the changing ones (and,
    for a DynamoDB write, the items it names: see Snapshots.note_write)."""

    def __init__(self, app: Callable[..., Any], gate: Gate, snapshots: Snapshots) -> None:
        self.app = app
        self.gate = gate
        self.snapshots = snapshots

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        changes = _changes_state(environ)
        target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
        request = b""
        if changes and target.startswith("DynamoDB_"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = environ["wsgi.input"].read(length) if length > 0 else b""
            environ["wsgi.input"] = io.BytesIO(request)
        self.gate.enter()
        try:
            result = self.app(environ, start_response)
            try:
                body = list(result)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            if changes:
                if target.startswith("DynamoDB_"):
                    self.snapshots.note_write(target.partition(".")[2], request)
                self.snapshots.changed()
            return body
        finally:
            self.gate.leave()


def _install_wait_outside_gate(gate: Gate) -> None:
    """A long poll waits for messages outside the gate (after moto_patches' own wait is installed)."""
    from moto.sqs.models import Queue

    wait = Queue.wait_for_messages

    def wait_for_messages(self: Any, timeout: int) -> None:
        with gate.outside():
            wait(self, timeout)

    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


# -- values that JSON cannot carry as such ---------------------------------------------------------


def _wire_value(value: Any) -> Any:
    """A binary value nested in a DynamoDB map or list (moto holds it as bytes) as the wire has it."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return [_plain(v) for v in sorted(value, key=repr)]
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    return value


def _unplain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        if set(value) == {"$datetime"}:
            return dt.datetime.fromisoformat(value["$datetime"])
        return {k: _unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return value


class StateError(Exception):
    """The state file cannot be read or does not fit the stack (the message says which and why)."""


class Snapshots:
    """Takes snapshots of moto's services into a data folder, and restores the last one."""

    def __init__(self, folder: Path, gate: Gate, interval: float) -> None:
        self.folder = folder
        self.gate = gate
        self.interval = max(0.05, interval)
        self.restored = False  # no snapshot is written before the folder's data is back in moto
        self.warnings: Any = sys.stderr  # where a failed snapshot is said (serve's terminal)
        self.taken = 0
        self.last_seconds = 0.0
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # The tables' items, serialized (JSON text) per key as of the last snapshot; a snapshot refreshes
        # only the keys written since (`_written`), or every item when `_full` (the first snapshot, a
        # write it cannot read the keys of, a table made or dropped).
        self._items: dict[str, dict[tuple[Any, Any], str]] = {}
        self._written: dict[str, set[tuple[str, str | None]]] = {}
        self._full = True
        self._written_lock = threading.Lock()
        self._blob_of: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._written_blobs: set[str] = set()

    def warn(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(f"pipelinejobs: {text}", file=self.warnings, flush=True)

    def changed(self) -> None:
        self._changed.set()

    def note_write(self, action: str, request: bytes) -> None:
        """A DynamoDB write was answered: note the items it names (their keys), for the next snapshot to
        read again. Any write whose items it cannot name makes the next snapshot read every item."""
        try:
            keys = _written_keys(action, json.loads(request or b"{}"))
        except (ValueError, TypeError, KeyError, AttributeError):
            keys = None
        with self._written_lock:
            if keys is None:
                self._full = True
                return
            for table, key in keys:
                self._written.setdefault(table, set()).add(key)

    # -- taking -----------------------------------------------------------------------------------------

    def _backends(self) -> tuple[Any, Any, Any]:
        from moto.dynamodb.models import dynamodb_backends
        from moto.s3.models import s3_backends
        from moto.sqs.models import sqs_backends

        return (
            dynamodb_backends[_ACCOUNT][_REGION],
            sqs_backends[_ACCOUNT][_REGION],
            s3_backends[_ACCOUNT]["aws"],
        )

    def _capture(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The state (with the gate closed), and the new blobs to write {sha: content}. The tables'
        items come as JSON text (`_tables_json`), the rest as plain values."""
        dynamodb, sqs, s3 = self._backends()
        self._capture_items(dynamodb.tables)
        tables = {name: len(self._items[name]) for name in sorted(self._items)}
        queues = {
            name: [_message_state(m) for m in queue._messages] for name, queue in sorted(sqs.queues.items())
        }
        buckets: dict[str, Any] = {}
        new_blobs: dict[str, Any] = {}
        for name, bucket in sorted(s3.buckets.items()):
            objects: dict[str, list[dict[str, Any]]] = {}
            for key_name, versions in bucket.keys.iterlists():
                states = []
                for version in versions:
                    if hasattr(version, "value"):
                        blob = self._blob_of.get(version)
                        if blob is None:
                            content = version.value
                            blob = hashlib.sha256(content).hexdigest()
                            self._blob_of[version] = blob
                            if blob not in self._written_blobs:
                                new_blobs[blob] = content
                        elif blob not in self._written_blobs:
                            new_blobs[blob] = version.value
                        states.append(_key_state(version, blob))
                    else:
                        states.append(
                            {
                                "delete_marker": True,
                                "version_id": version.version_id,
                                "last_modified": version.last_modified.isoformat(),
                            }
                        )
                objects[key_name] = states
            buckets[name] = objects
        state = {
            "format": FORMAT_NAME,
            "version": DATA_FORMAT,
            "saved_at": _now_iso(),
            "dynamodb": tables,
            "sqs": queues,
            "s3": buckets,
        }
        return state, new_blobs

    def _capture_items(self, tables: Mapping[str, Any]) -> None:
        with self._written_lock:
            written, self._written = self._written, {}
            full, self._full = self._full or set(tables) != set(self._items), False
        if not full:
            try:
                self._refresh_items(tables, written)
                return
            except Exception as error:  # a key it cannot look up: read everything, as the first time
                print(f"pipelinejobs: reading every item ({type(error).__name__}: {error})", file=sys.stderr)
        self._items = {
            name: {(item.hash_key, item.range_key): _item_json(item) for item in table.all_items()}
            for name, table in tables.items()
        }

    def _refresh_items(
        self, tables: Mapping[str, Any], written: Mapping[str, set[tuple[str, str | None]]]
    ) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        for name, keys in written.items():
            table, items = tables.get(name), self._items.get(name)
            if table is None or items is None:
                continue
            for hash_json, range_json in keys:
                hash_value = DynamoType(json.loads(hash_json))
                range_value = DynamoType(json.loads(range_json)) if range_json is not None else None
                item = table.get_item(hash_value, range_value)
                if item is None:
                    items.pop((hash_value, range_value), None)
                else:
                    items[(item.hash_key, item.range_key)] = _item_json(item)

    def full_items(self) -> dict[str, list[str]]:
        """Every table's items read whole now (with the gate closed), sorted: for a test that the items
        kept up to date key by key are what a full read gives."""
        dynamodb, _, _ = self._backends()
        with self.gate.closed():
            return {
                name: sorted(_item_json(item) for item in table.all_items())
                for name, table in dynamodb.tables.items()
            }

    def kept_items(self) -> dict[str, list[str]]:
        """The items the next snapshot would write, brought up to date now (with the gate closed)."""
        dynamodb, _, _ = self._backends()
        with self.gate.closed():
            self._capture_items(dynamodb.tables)
            return {name: sorted(items.values()) for name, items in self._items.items()}

    def _tables_json(self) -> bytes:
        parts = []
        for name in sorted(self._items):
            parts.append(json.dumps(name) + ":[" + ",".join(self._items[name].values()) + "]")
        return ("{" + ",".join(parts) + "}").encode()

    def take(self) -> dict[str, int]:
        """One snapshot, whole; returns what it holds (counts) and what it cost."""
        with self._write_lock:
            self._changed.clear()
            started = time.monotonic()
            with self.gate.closed():
                closed = time.monotonic()
                state, new_blobs = self._capture()
                closed = time.monotonic() - closed
            blobs = self.folder / BLOBS
            blobs.mkdir(exist_ok=True)
            for sha, content in new_blobs.items():
                path = blobs / sha
                if not path.exists():
                    write_atomically(path, content)
                self._written_blobs.add(sha)
            # The header, then the tables' items (already JSON), then the queues and the archive.
            head = json.dumps({k: v for k, v in state.items() if k not in ("dynamodb", "sqs", "s3")})
            data = b"".join(
                [
                    head[:-1].encode(),
                    b',"dynamodb":',
                    self._tables_json(),
                    b',"sqs":',
                    json.dumps(state["sqs"], separators=(",", ":")).encode(),
                    b',"s3":',
                    json.dumps(state["s3"], separators=(",", ":")).encode(),
                    b"}",
                ]
            )
            write_atomically(self.folder / STATE, data)
            self._collect_blobs(state)
            self.taken += 1
            self.last_seconds = time.monotonic() - started
            # What it holds, and what it cost: snapshots so far, this one's time (all of it, and with the
            # gate closed: requests waited that long), its size.
            jobs = [
                json.loads(text)
                for items in self._items.values()
                for (_, range_value), text in items.items()
                if getattr(range_value, "value", None) == "JOB"
            ]
            return {
                **_counts({**state, "dynamodb": {"jobs": jobs}}),
                "items": sum(len(items) for items in self._items.values()),
                "taken": self.taken,
                "ms": round(self.last_seconds * 1000),
                "closed_ms": round(closed * 1000),
                "bytes": len(data),
            }

    def _collect_blobs(self, state: Mapping[str, Any]) -> None:
        used = {
            v["blob"]
            for objects in state["s3"].values()
            for vs in objects.values()
            for v in vs
            if "blob" in v
        }
        for path in (self.folder / BLOBS).iterdir():
            if path.name not in used and not path.name.startswith("."):
                with contextlib.suppress(OSError):
                    path.unlink()
                self._written_blobs.discard(path.name)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._changed.wait(0.5):
                continue
            try:
                self.take()
            except Exception as error:  # a full disk: say so where serve prints, keep serving, try again
                self._changed.set()
                self.warn(f"could not save the data folder {self.folder}: {type(error).__name__}: {error}")
            # Never more than a fifth of the time in snapshots: a large data set is saved less often.
            self._stop.wait(max(self.interval, 4 * self.last_seconds))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- restoring --------------------------------------------------------------------------------------

    def read(self) -> dict[str, Any] | None:
        """The state file, checked whole (every blob it names present) before anything is applied."""
        path = self.folder / STATE
        if not path.exists():
            return None
        try:
            state = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            raise StateError(f"{path} is not readable ({error})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
            raise StateError(f"{path} is not a pipelinejobs state file")
        if state.get("version") != DATA_FORMAT:
            raise StateError(
                f"{path} has data format {state.get('version')!r}, this pipelinejobs reads {DATA_FORMAT}"
            )
        try:
            for items in state["dynamodb"].values():
                assert isinstance(items, list) and all(isinstance(item, dict) for item in items)
            for messages in state["sqs"].values():
                assert isinstance(messages, list)
                for message in messages:
                    assert isinstance(message["id"], str) and isinstance(message["body"], str)
            for objects in state["s3"].values():
                for versions in objects.values():
                    for version in versions:
                        assert isinstance(version["version_id"], str)
                        if not version.get("delete_marker"):
                            blob = self.folder / BLOBS / str(version["blob"])
                            if not blob.is_file():
                                raise StateError(f"{blob} is missing (named by {path})")
        except (AssertionError, KeyError, TypeError, AttributeError):
            raise StateError(f"{path} does not have the shape of a pipelinejobs state file") from None
        return state

    def restore(self) -> dict[str, int]:
        """Put the last snapshot's data into moto's (template-made, empty) resources. All or nothing:
        everything is checked before the first item is written."""
        state = self.read()
        if state is None:
            self.restored = True
            return {}
        dynamodb, sqs, s3 = self._backends()
        missing = (
            [f"table {name}" for name in state["dynamodb"] if name not in dynamodb.tables]
            + [f"queue {name}" for name in state["sqs"] if name not in sqs.queues]
            + [f"bucket {name}" for name in state["s3"] if name not in s3.buckets]
        )
        if missing:
            raise StateError(
                f"{self.folder / STATE} holds data of {', '.join(missing)}, which template.yaml does not "
                "create here (another template or stack name?)"
            )
        with self.gate.closed():
            for name, items in state["dynamodb"].items():
                self._items[name] = _restore_table(dynamodb.tables[name], name, items)
            for name, messages in state["sqs"].items():
                _restore_queue(sqs.queues[name], messages)
            for name, objects in state["s3"].items():
                self._restore_bucket(s3.buckets[name], objects)
        for objects in state["s3"].values():
            for versions in objects.values():
                self._written_blobs.update(v["blob"] for v in versions if "blob" in v)
        # The items kept for the snapshots are the ones just restored: the next snapshot reads only the
        # items written after (unless the template made a table the state did not have).
        with self._written_lock:
            self._full = set(self._items) != set(dynamodb.tables)
        self.restored = True
        return _counts(state)

    def _restore_bucket(self, bucket: Any, objects: Mapping[str, list[dict[str, Any]]]) -> None:
        from moto.s3.models import FakeDeleteMarker, FakeKey
        from moto.utilities.utils import LowercaseDict

        for key_name, versions in objects.items():
            restored: list[Any] = []
            for version in versions:
                modified = dt.datetime.fromisoformat(version["last_modified"])
                if version.get("delete_marker"):
                    target = (
                        restored[-1]
                        if restored
                        else FakeKey(key_name, b"", _ACCOUNT, _REGION, bucket_name=bucket.name)
                    )
                    marker = FakeDeleteMarker(target)
                    marker._version_id = version["version_id"]
                    marker.last_modified = modified
                    restored.append(marker)
                    continue
                content = (self.folder / BLOBS / version["blob"]).read_bytes()
                key = FakeKey(
                    name=key_name,
                    value=content,
                    account_id=_ACCOUNT,
                    region_name=_REGION,
                    storage=version.get("storage_class") or "STANDARD",
                    etag=version.get("etag"),
                    is_versioned=bool(version.get("is_versioned")),
                    version_id=version["version_id"],
                    bucket_name=bucket.name,
                    encryption=version.get("encryption"),
                    kms_key_id=version.get("kms_key_id"),
                    bucket_key_enabled=version.get("bucket_key_enabled"),
                    checksum_value=version.get("checksum_value"),
                )
                key.last_modified = modified
                key._metadata = LowercaseDict()
                for name, value in (version.get("metadata") or {}).items():
                    key._metadata[name] = value
                key.checksum_algorithm = version.get("checksum_algorithm")
                self._blob_of[key] = version["blob"]
                restored.append(key)
            bucket.keys.setlist(key_name, restored)


def _canonical(tables: Mapping[str, list[str]]) -> dict[str, list[str]]:
    return {
        name: [json.dumps(json.loads(text), sort_keys=True) for text in items]
        for name, items in tables.items()
    }


def _item_json(item: Any) -> str:
    return json.dumps(item.to_json()["Attributes"], separators=(",", ":"), default=_wire_value)


def _key_json(table: str, value: Mapping[str, Any]) -> tuple[str, str | None]:
    """The key of an item named in a request, as JSON text: (hash, range), by the table's key schema."""
    hash_name, range_name = _KEY_NAMES[table]
    return (
        json.dumps(value[hash_name], sort_keys=True),
        json.dumps(value[range_name], sort_keys=True) if range_name else None,
    )


_KEY_NAMES: dict[str, tuple[str, str | None]] = {}  # table name -> (hash key, range key), from moto


def _written_keys(action: str, body: Mapping[str, Any]) -> list[tuple[str, tuple[str, str | None]]] | None:
    """The items a DynamoDB write names, as (table, key); None when it is not a write of named items
    (CreateTable, PartiQL...): then the next snapshot reads every item."""
    from moto.dynamodb.models import dynamodb_backends

    def key(table: str, value: Mapping[str, Any]) -> tuple[str, tuple[str, str | None]]:
        if table not in _KEY_NAMES:
            model = dynamodb_backends[_ACCOUNT][_REGION].tables[table]
            _KEY_NAMES[table] = (model.hash_key_attr, model.range_key_attr)
        return table, _key_json(table, value)

    if action == "PutItem":
        return [key(body["TableName"], body["Item"])]
    if action in ("UpdateItem", "DeleteItem"):
        return [key(body["TableName"], body["Key"])]
    if action == "BatchWriteItem":
        return [
            key(
                table,
                request["PutRequest"]["Item"] if "PutRequest" in request else request["DeleteRequest"]["Key"],
            )
            for table, requests in body["RequestItems"].items()
            for request in requests
        ]
    if action == "TransactWriteItems":
        keys = []
        for entry in body["TransactItems"]:
            for kind, operation in entry.items():
                if kind == "Put":
                    keys.append(key(operation["TableName"], operation["Item"]))
                elif kind in ("Update", "Delete"):
                    keys.append(key(operation["TableName"], operation["Key"]))
        return keys
    return None


def _message_state(message: Any) -> dict[str, Any]:
    return {
        "id": message.id,
        "body": message.body,
        "message_attributes": _plain(message.message_attributes),
        "system_attributes": _plain(message.system_attributes),
        "sender_id": message.sender_id,
        "sent_timestamp": message.sent_timestamp,
        "first_receive_timestamp": message.approximate_first_receive_timestamp,
        "receive_count": message.approximate_receive_count,
        "deduplication_id": message.deduplication_id,
        "group_id": message.group_id,
        "sequence_number": message.sequence_number,
        "delayed_until": message.delayed_until,
    }


def _key_state(key: Any, blob: str) -> dict[str, Any]:
    return {
        "version_id": key.version_id,
        "is_versioned": bool(getattr(key, "_is_versioned", False)),
        "last_modified": key.last_modified.isoformat(),
        "blob": blob,
        "size": key.size,
        "etag": key.etag.strip('"'),
        "metadata": {str(name): str(value) for name, value in key.metadata.items()},
        "storage_class": key.storage_class,
        "encryption": key.encryption,
        "kms_key_id": key.kms_key_id,
        "bucket_key_enabled": key.bucket_key_enabled,
        "checksum_algorithm": key.checksum_algorithm,
        "checksum_value": key.checksum_value,
    }


def _restore_table(table: Any, name: str, items: list[dict[str, Any]]) -> dict[tuple[Any, Any], str]:
    """The items as moto holds them, written straight into the table: no stream records (the notifier
    sent its notifications back then), and none of put_item's checks, which each item passed when it was
    first written (moto's own copy of an item skips them too: they cost O(attributes²) per item)."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    hash_name, range_name = table.hash_key_attr, table.range_key_attr
    kept: dict[tuple[Any, Any], str] = {}
    for attributes in items:
        if hash_name not in attributes or (range_name and range_name not in attributes):
            raise StateError(f"an item of table {name} in the state file lacks its key")
        item: Any = Item.__new__(Item)
        item.hash_key = DynamoType(attributes[hash_name])
        item.range_key = DynamoType(attributes[range_name]) if range_name else None
        values = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.__init__(values)
        for key, value in attributes.items():
            dict.__setitem__(values, key, DynamoType(value))
        item.attrs = values
        if item.range_key is not None:
            table.items[item.hash_key][item.range_key] = item
        else:
            table.items[item.hash_key] = item
        kept[(item.hash_key, item.range_key)] = json.dumps(attributes, separators=(",", ":"))
    return kept


def _restore_queue(queue: Any, messages: list[dict[str, Any]]) -> None:
    from moto.sqs.models import Message

    restored = []
    for state in messages:
        message = Message(state["id"], state["body"], _unplain(state.get("system_attributes")) or {})
        message.message_attributes = _unplain(state.get("message_attributes")) or {}
        message.sender_id = state.get("sender_id") or message.sender_id
        message.sent_timestamp = state.get("sent_timestamp")
        message.approximate_first_receive_timestamp = state.get("first_receive_timestamp")
        message.approximate_receive_count = int(state.get("receive_count") or 0)
        message.deduplication_id = state.get("deduplication_id")
        message.group_id = state.get("group_id")
        message.sequence_number = state.get("sequence_number")
        message.delayed_until = float(state.get("delayed_until") or 0)
        message.visible_at = 0.0  # its consumer stopped with the stack: visible at once
        restored.append(message)
    with queue._messages_lock:
        queue._messages.extend(restored)
        queue._messages_lock.notify_all()


def _counts(state: Mapping[str, Any]) -> dict[str, int]:
    items = [item for items in state["dynamodb"].values() for item in items]
    return {
        # (a deleted job's record stays, marked deleted_at, for its history: it is not counted)
        "jobs": sum(
            1 for item in items if (item.get("sk") or {}).get("S") == "JOB" and "deleted_at" not in item
        ),
        "items": len(items),
        "messages": sum(len(messages) for messages in state["sqs"].values()),
        "objects": sum(
            1
            for objects in state["s3"].values()
            for vs in objects.values()
            if vs and not vs[-1].get("delete_marker")
        ),
    }


# ------------------------------------------------------------------------------------------------
# The emulator process: moto's server with a data folder
# ------------------------------------------------------------------------------------------------


def run_emulator(port: int, folder: str | None, interval: float, warnings_fd: int = -1) -> None:
    """moto's server on 127.0.0.1:<port>, driven by lines on stdin (the local stack's control pipe):

    - prints the port it listens on;
    - `restore`: puts the folder's last snapshot into moto (the resources must exist), answers
      `restored {counts}` or `error {message}`; snapshots start after it;
    - `snapshot`: one now, answers `saved {counts}`;
    - `check`: compares the items kept up to date key by key with a full read, answers
      `checked {"items": n, "differ": n}` (for the tests);
    - end of input (the stack stopped, or died): a last snapshot, then exit.

    Without a folder it only serves, as moto's ThreadedMotoServer does, until its input ends.
    """
    import logging

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from pipelinejobs.local.moto_patches import install

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    install()  # DynamoDB transactions without whole-table copies: a flat cost per event
    app: Any = DomainDispatcherApplication(create_backend_app)
    gate = Gate()
    snapshots = Snapshots(Path(folder), gate, interval) if folder else None
    if snapshots is not None and warnings_fd >= 0:
        snapshots.warnings = os.fdopen(warnings_fd, "w")
    if snapshots is not None:
        _install_wait_outside_gate(gate)
        app = GatedApplication(app, gate, snapshots)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    print(server.server_address[1], flush=True)

    def answer(line: str) -> None:
        sys.stdout.write(line.replace("\n", " ") + "\n")
        sys.stdout.flush()

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM (systemd stops every process of the service at once; `kill`): save, then exit, as at the
    # end of input. (Ctrl-C in a terminal does not reach this process: it has its own session.)
    signal.signal(signal.SIGTERM, terminate)
    try:
        for line in sys.stdin:
            command = line.strip()
            if snapshots is None:
                continue
            try:
                if command == "restore":
                    counts = snapshots.restore()
                    snapshots.start()
                    answer("restored " + json.dumps(counts))
                elif command == "snapshot" and snapshots.restored:
                    answer("saved " + json.dumps(snapshots.take()))
                elif command == "check" and snapshots.restored:
                    kept, full = snapshots.kept_items(), snapshots.full_items()
                    kept, full = _canonical(kept), _canonical(full)
                    differ = sum(
                        len(set(kept.get(t, [])) ^ set(full.get(t, []))) for t in set(kept) | set(full)
                    )
                    answer("checked " + json.dumps({"items": sum(map(len, full.values())), "differ": differ}))
                else:
                    answer(f"error unknown command {command!r}")
            except StateError as error:
                answer(f"error {error}")
            except Exception as error:
                answer(f"error {type(error).__name__}: {error}")
    except (KeyboardInterrupt, OSError):
        pass
    if snapshots is not None and snapshots.restored:
        snapshots.stop()
        try:
            snapshots.take()
        except Exception as error:
            snapshots.warn(
                f"could not save the data folder {snapshots.folder} at the stop: {type(error).__name__}: "
                f"{error}; it holds the data of the last snapshot"
            )
    server.shutdown()
