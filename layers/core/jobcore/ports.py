"""What the core needs from the outside world. Adapters (DynamoDB, S3, SQS, EventBridge, SSM) implement
these; the core imports no AWS library."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from jobcore.records import (
    Acceptance,
    AcceptResult,
    ApplyCommand,
    Conflict,
    HistoryEntry,
    HistoryPage,
    IdempotencyRecord,
    InOrderRecord,
    Job,
    JobFilter,
    JobPage,
    OutputObject,
    OutputPage,
    Overdue,
    ProducerKey,
)
from jobcore.tokens import TokenState


class JobRepository(Protocol):
    def create(self, job: Job, data: dict[str, Any], replaces: Job | None = None) -> Job | None:
        """Store a new job and its data; None when stored.

        Without `replaces`: returns, without writing, the tombstone of a deleted job with this uuid (the
        caller makes the next incarnation and passes it as `replaces`). With it: stored only if that
        tombstone is still the one there. Raises JobExists (with the uuid) if a live job has this uuid.
        """

    def accept(self, acceptance: Acceptance) -> AcceptResult:
        """The API's one write for an accepted event (see Acceptance). Raises TransientError."""

    def idempotency(self, uuid: str, incarnation: int, key_hash: str) -> IdempotencyRecord | None:
        """What an Idempotency-Key was first used for on this job, if it was."""

    def get(self, uuid: str) -> Job | None:
        """The job (deleted ones included, see Job.deleted), strongly consistent; None if never created."""

    def get_data(self, uuid: str) -> dict[str, Any]: ...

    def apply(self, command: ApplyCommand, entry: HistoryEntry) -> Conflict | None:
        """Apply one event in ONE conditional write that also records `entry` in the history.

        Returns None when applied, or the Conflict (with the job as it was) when the condition failed.
        Raises TransientError for throttling and transaction conflicts.
        """

    def record(self, uuid: str, entry: HistoryEntry, now: float) -> bool:
        """Record a rejected or ignored event (ordered at `now`); False if this event id is already recorded."""

    def record_in_order(self, record: InOrderRecord) -> Conflict | None:
        """Record a refused or ignored event of the API's order and take its place, in one write.

        Returns the Conflict (duplicate, or the job as it was) when the event is recorded already or its
        place is not the next one."""

    def event(self, uuid: str, event_id: str) -> HistoryEntry | None: ...

    def history(self, uuid: str, limit: int, cursor: str | None) -> HistoryPage: ...

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None) -> JobPage:
        """A page of jobs, newest first, never by a scan; `cursor` from a page of the same listing
        (else InvalidRequest). With `where.child_of`, ordered by creation and possibly short."""

    def count_jobs(self, where: JobFilter, most: int) -> tuple[dict[str, int], bool]:
        """Jobs per state for a listing's filters, reading at most `most` jobs: (counts, complete)."""
        ...

    def overdue(
        self, now_ms: int, limit: int, reasons: tuple[str, ...] = ("heartbeat", "timeout")
    ) -> list[Overdue]:
        """Jobs whose deadline of `reasons` (heartbeat, timeout) was due before `now_ms`, from the
        deadline indexes (never a scan), at most `limit`, the longest overdue first within each shard."""
        ...

    def replace_tokens(
        self, uuid: str, expected_hash: str | None, tokens: TokenState, callback_nonce: str | None = None
    ) -> bool:
        """Swap the job's token material if its current token hash is still `expected_hash` (and
        the callback token's nonce, when `callback_nonce` is given)."""

    def add_erased(self, uuid: str, count: int) -> None: ...

    def index_progress(self, uuid: str, run: str, generation: int, now: float) -> bool:
        """An index run that is still the job's made progress at `now`: its heartbeat restarts (SPEC
        section 3a: the job is not silent, the system is working on it). False when the run is no
        longer the job's. Raises TransientError."""

    def put_manifest(self, uuid: str, run: str, outputs: list[OutputObject]) -> None:
        """Record outputs in the manifest of the index run `run` (one item per key: writing the same
        outputs again changes nothing). Raises TransientError."""

    def manifest(self, uuid: str, run: str, limit: int, cursor: str | None) -> OutputPage:
        """A page of the manifest of run `run`, in key order; `cursor` from a page of the same manifest
        (else InvalidRequest)."""

    def put_key(self, key: ProducerKey) -> bool:
        """Store a new producer key (its hash only); False if its id is taken."""

    def get_key(self, key_id: str) -> ProducerKey | None:
        """The key with this id, strongly consistent; None if there is none."""

    def list_keys(self) -> list[ProducerKey]:
        """Every producer key, newest first (a query, never a scan)."""

    def revoke_key(self, key_id: str, now: float) -> ProducerKey | None:
        """Revoke the key (idempotent: the first revocation's time stays); None if there is no such key."""


class ArchiveStore(Protocol):
    def erase(self, archive_path: str, deadline: Callable[[], bool]) -> tuple[int, bool]:
        """Delete objects (every version) under the path until done or `deadline()` is true.

        Returns (objects deleted in this call, whether nothing is left). Safe to repeat and to resume.
        """

    def list_objects(
        self, archive_path: str, start_after: str | None, limit: int
    ) -> tuple[list[OutputObject], str | None]:
        """One page of the current objects under the path whose relative key comes after `start_after`
        (None: from the first), in key order, at most `limit` (folder markers left out); and the
        relative key to continue after, None when the listing is complete. Raises TransientError."""


class ArchiveReader(Protocol):
    """What the API reads of an archive: its outputs, and links to download them."""

    def list_outputs(self, archive_path: str, limit: int, cursor: str | None) -> OutputPage:
        """A page of the objects under the path (current versions), in key order, at most `limit`;
        `next` is an opaque cursor for the following page (None at the end). A page may be short, even
        empty, with a `next` (folder markers are not outputs). Raises InvalidRequest for a cursor not
        from a listing of this path, TransientError when the store fails."""

    def download_url(self, archive_path: str, key: str, expires_in: int) -> str:
        """A link that downloads the object `key` (relative to the path) for `expires_in` seconds,
        without any other credential. Makes no request: it is signed where it is made."""


class DeadLetters(Protocol):
    """The events queue's dead-letter queue, for an admin (jobcore.adapters.dead_letters on SQS). Each
    method raises TransientError when the queue fails."""

    def depth(self) -> int:
        """About how many messages wait in it."""

    def peek(self, maximum: int) -> list[dict[str, Any]]:
        """Up to `maximum` of its messages, described (job, event, receives, sent; never a token), left
        in the queue."""

    def redrive(self, maximum: int) -> int:
        """Move up to `maximum` messages back to the events queue; returns how many moved."""


class EventQueue(Protocol):
    def send(self, body: dict[str, Any], group_id: str, dedup_id: str) -> None: ...


class Notifier(Protocol):
    def state_changed(self, detail: dict[str, Any]) -> None: ...


class AdminKeys(Protocol):
    def key(self) -> str:
        """The admin key (cached by the adapter)."""
