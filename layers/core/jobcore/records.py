"""The job record and history entries as the core sees them, and the commands it gives its repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from jobcore.clock import iso
from jobcore.states import Actor, State, allowed_events
from jobcore.tokens import TokenState

# One timestamp field per reached state (SPEC section 2).
STATE_TIME_FIELDS: Final = {
    State.CREATED: "created_at",
    State.RUNNING: "run_at",
    State.FAILED: "failed_at",
    State.FINISHED: "finished_at",
    State.INDEXING: "indexing_at",
    State.VALIDATING: "validating_at",
    State.VALIDATED: "validated_at",
    State.REJECTED: "rejected_at",
    State.FINALIZED: "finalized_at",
    State.RETIRED: "retired_at",
    State.RESET: "reset_at",
    State.CANCELED: "canceled_at",
}


# Deadlines (SPEC section 3a): the states in which each one runs. The heartbeat restarts with every
# event applied in them; the timeout starts when the job enters RUNNING (a `run` while RUNNING keeps
# it). Leaving them clears the deadline, in the same write.
HEARTBEAT: Final = "heartbeat"
TIMEOUT: Final = "timeout"
# The longest deadline: a leap year (a job's own, and a pipeline's default).
MAX_DEADLINE_SECONDS: Final = 366 * 24 * 3600
DEADLINE_STATES: Final = {
    HEARTBEAT: frozenset({State.RUNNING, State.INDEXING, State.VALIDATING}),
    TIMEOUT: frozenset({State.RUNNING}),
}
# Who fails a job that missed one, as its history entry names it.
SYSTEM: Final = "system"


# The projected state of a job whose `delete` the API accepted and the worker has not applied yet.
DELETING: Final = "DELETED"


class Outcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    REJECTED = "rejected"
    QUEUED = "queued"


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _seconds(value: float) -> float:
    return round(max(0.0, value), 3)  # (never negative: another machine's clock may be a little behind)


def _earliest_end(times: dict[str, str]) -> str | None:
    """The end of a run recorded before run_ended_at was: the earliest of the states a run ends in."""
    ends = [times[name] for name in ("finished_at", "failed_at", "reset_at") if name in times]
    return min(ends, default=None)


@dataclass(frozen=True, slots=True)
class Job:
    uuid: str
    pipeline_uuid: str
    state: State
    generation: int
    archive_path: str
    created_at: str
    updated_at: str
    state_entered_at: str
    tokens: TokenState
    last_event: str | None = None
    last_event_id: str | None = None
    child_of: tuple[str, ...] = ()
    name: str | None = None
    tags: tuple[str, ...] = ()
    session: str | None = None
    agent: str | None = None
    task: str | None = None
    state_times: dict[str, str] = field(default_factory=dict)
    # When the current generation's run ended (it left RUNNING: finish, fail, reset). Kept apart from
    # finished_at, which `indexed` moves when it brings the job back to FINISHED.
    run_ended_at: str | None = None
    deleted_at: str | None = None
    erased_objects: int = 0
    # The API's order (SPEC section 3, "a 202 is a promise"): the state and generation the job will
    # have once every event the API accepted is applied (None: those of the record), the number of
    # events it accepted, and the number of those the worker has applied or recorded, in that order.
    accepted_state: str | None = None
    accepted_generation: int | None = None
    accepted_seq: int = 0
    applied_seq: int = 0
    # 1 for a job's first life; a job deleted and created again from the same inputs is the next.
    incarnation: int = 1
    # With the admin key, this gives the callback token (jobcore.keyring); None: no callback token.
    callback_nonce: str | None = None
    # The producer key that created the job (its id); None: an admin did (SPEC section 2, `owner`).
    owner_key: str | None = None
    # Deadlines (SPEC section 3a): the durations set at creation, when each is due next (epoch
    # milliseconds; None: not running), and which one the job missed (while it is FAILED by it).
    heartbeat_seconds: int | None = None
    timeout_seconds: int | None = None
    heartbeat_due: int | None = None
    timeout_due: int | None = None
    deadline_missed: str | None = None
    # The indexer (SPEC section 3, `index`): the run under way (the id of the `index` event that
    # started it, while it lists the archive), and the manifest the last run that completed recorded
    # (its run's id, and the number of outputs in it); a new `index`, a reset and a delete clear it.
    index_run: str | None = None
    manifest: str | None = None
    manifest_count: int | None = None

    @property
    def owner(self) -> str:
        """The principal that created the job, as the job shows it: a producer key's id, or `admin`."""
        return self.owner_key or str(Actor.ADMIN)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def projected_state(self) -> str:
        """The state once every accepted event is applied (`DELETING` once a delete is accepted)."""
        return self.accepted_state or str(self.state)

    @property
    def projected_generation(self) -> int:
        return self.accepted_generation if self.accepted_generation is not None else self.generation

    @property
    def queued_events(self) -> int:
        """Events the API accepted that the worker has not applied (or recorded) yet."""
        return max(0, self.accepted_seq - self.applied_seq)

    def durations(self, now: float) -> tuple[float | None, float | None]:
        """(pending_seconds, run_seconds) of the current generation, in seconds to the millisecond.

        Pending is created -> run: None until the job runs. Run is run -> the run's end (finish,
        fail, or a reset while running), or -> `now` while it is RUNNING: None until it runs. Both
        stay fixed once the run ended, whatever follows (index, validate, retire); a new generation
        (after a reset) starts afresh, from its own created_at."""
        run_at = self.state_times.get("run_at")
        if run_at is None:
            return None, None
        started = _epoch(run_at)
        pending = _seconds(started - _epoch(self.created_at))
        if self.state is State.RUNNING:
            return pending, _seconds(now - started)
        ended = self.run_ended_at or _earliest_end(self.state_times)
        return pending, None if ended is None else _seconds(_epoch(ended) - started)

    def public(
        self, data: dict[str, Any] | None = None, callback_url: str | None = None, *, now: float
    ) -> dict[str, Any]:
        """The job as users see it: no token, no hash, nothing secret. `now`: the clock's time, for
        the run_seconds of a running job."""
        pending_seconds, run_seconds = self.durations(now)
        body: dict[str, Any] = {
            "uuid": self.uuid,
            "pipeline_uuid": self.pipeline_uuid,
            "state": str(self.state),
            "last_event": self.last_event,
            "generation": self.generation,
            "archive_path": self.archive_path,
            "child_of": list(self.child_of),
            "name": self.name,
            "tags": list(self.tags),
            "session": self.session,
            "agent": self.agent,
            "task": self.task,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "state_entered_at": self.state_entered_at,
            "pending_seconds": pending_seconds,
            "run_seconds": run_seconds,
            "owner": self.owner,
        }
        body.update(self.state_times)
        body["heartbeat_seconds"] = self.heartbeat_seconds
        body["timeout_seconds"] = self.timeout_seconds
        body["heartbeat_due"] = _due(self.heartbeat_due)
        body["timeout_due"] = _due(self.timeout_due)
        body["deadline_missed"] = self.deadline_missed
        body["queued_events"] = self.queued_events
        body["allowed_events"] = (
            allowed_events(State(self.projected_state)) if self.projected_state in State.__members__ else []
        )
        if data is not None:
            body["data"] = data
        if callback_url is not None:
            body["callback_url"] = callback_url
        return body


def _due(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else iso(epoch_ms / 1000)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    event_id: str
    name: str
    data: dict[str, Any]
    at: str
    outcome: Outcome
    from_state: State | None
    to_state: State | None
    generation: int | None
    # the principal: an Actor, or `key:<id>` for a producer key (jobcore.states.principal)
    by: str | None
    reason: str | None = None

    def public(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "name": self.name,
            "data": self.data,
            "at": self.at,
            "outcome": str(self.outcome),
            "from_state": self.from_state and str(self.from_state),
            "to_state": self.to_state and str(self.to_state),
            "generation": self.generation,
            "by": self.by and str(self.by),
        }
        if self.reason:
            body["reason"] = self.reason
        return body


class Effect(StrEnum):
    """What the one write of an applied event does to the job record beyond the state change."""

    NONE = "none"
    REVOKE = "revoke"  # reset: all job and callback tokens revoked
    NEXT_GENERATION = "next_generation"  # ready, erased: back to CREATED, generation + 1
    DELETE = "delete"  # removed from listings and lookups, tokens revoked


@dataclass(frozen=True, slots=True)
class Acceptance:
    """The API's one write for an event it accepts: its place in the job's order (SPEC section 3).

    The write's condition is the API's guard: the job exists and is not deleted, the credential is
    valid for it (an admin token was verified before), and -- unless `sources` is None -- the job's
    projected state (after every event accepted before) allows the event. It takes the next place in
    the order (accepted_seq + 1), moves the projection to `to_state` (and the generation on `ready`),
    and counts a use of the job token.
    """

    uuid: str
    by: Actor
    token_hash: str | None
    sources: frozenset[State] | None
    to_state: str | None
    next_generation: bool
    count_use: bool
    now: float
    # With an Idempotency-Key: the place the API read (the write is then a compare-and-set on it) and
    # the record that makes a retry find the same event.
    expected_seq: int | None = None
    idempotency: IdempotencyRecord | None = None
    # A producer key (by is Actor.KEY): the job must be its own, and the key valid now -- checked in
    # the same transaction as the job's write (a ConditionCheck of the key's item).
    key: KeyCheck | None = None
    # With a key, the projection the API last knew (state, generation) at `expected_seq`: a transaction
    # returns no item when it succeeds, so the place the event takes must be known before the write.
    expected_projection: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """A producer key presented with a request: its id and the hash of the whole key."""

    key_id: str
    key_hash: str


@dataclass(frozen=True, slots=True)
class ProducerKey:
    """A producer key as stored (SPEC section 4 item 4): never the key, only its hash."""

    key_id: str
    key_hash: str
    label: str
    pipelines: tuple[str, ...]  # ("*",): every pipeline
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None

    def valid(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def status(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.valid(now) else "expired"

    def covers(self, pipeline_uuid: str) -> bool:
        return "*" in self.pipelines or pipeline_uuid in self.pipelines


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What an Idempotency-Key was first used for, kept with the job (never the key itself)."""

    key_hash: str
    incarnation: int
    event_id: str
    request_hash: str
    name: str
    seq: int
    expect_state: str
    expect_generation: int
    at: float
    by: str


@dataclass(frozen=True, slots=True)
class AcceptResult:
    """`accepted`: the write was made; `job`: the job as it was before it (for a refusal, what refused
    it; None: no such job); `retry_of`: an Idempotency-Key already used on this job."""

    accepted: bool
    job: Job | None
    retry_of: IdempotencyRecord | None = None
    key_refused: bool = False  # the producer key is unknown, wrong, revoked or expired


@dataclass(frozen=True, slots=True)
class ApplyCommand:
    """Everything the repository needs for the single conditional write that applies one event."""

    uuid: str
    event_id: str
    name: str
    data: dict[str, Any]
    by: Actor
    token_hash: str | None  # None: an admin token, already verified against the key
    expected_state: State
    expected_generation: int
    to_state: State
    effect: Effect
    now: float
    # For internal events (erased): the write is valid only if the job's last event is this one.
    expected_last_event_id: str | None = None
    count_use: bool = False
    # The API's mark authorized the event: no credential clause (only what revokes it: the state).
    authorized: bool = False
    # An event in the API's order: applied only right after the event at `after_seq` (the one before
    # it, or the last one applied when the worker gave up waiting for a lost one); takes place `seq`.
    seq: int | None = None
    after_seq: int | None = None
    # A state change outside the API's order (straight on the queue, or the end of a reset): only when
    # no accepted event is still queued, unless it revokes them (reset, delete); it moves the
    # projection along with the state.
    outside_order: bool = False
    overtakes: bool = False
    # reset: the new callback token (nonce, hash); delete revokes it.
    callback: tuple[str, str] | None = None
    # A producer key's event: applied only while the key is not revoked (a ConditionCheck of its item,
    # in the same transaction), and, unless `authorized`, only on the key's own jobs.
    key_id: str | None = None
    # The system's fail of a job that missed a deadline: (which, when it was due in epoch ms); applied
    # only while that deadline is still the job's (an event applied meanwhile moves or clears it).
    deadline: tuple[str, int] | None = None
    # `index`: the run it starts (its event id); the job's manifest, if it had one, is no longer current.
    starts_index: str | None = None
    # The system's `indexed`: (the run, the outputs its manifest holds); applied only while that run is
    # still the job's, and its manifest becomes the job's.
    completes_index: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Overdue:
    """A job whose deadline has passed, as the sweeper finds it in the deadline index."""

    uuid: str
    reason: str  # HEARTBEAT or TIMEOUT
    deadline: int  # epoch ms
    state: str
    generation: int


@dataclass(frozen=True, slots=True)
class InOrderRecord:
    """A refused or ignored event of the API's order: recorded, and its place taken."""

    uuid: str
    entry: HistoryEntry
    seq: int
    after_seq: int
    now: float
    # A refused state change the API had projected (a revoked producer key's): when nothing was
    # accepted after it, the projection goes back to (state, generation), as the job still is.
    projection: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """Why the apply write's condition failed, from the item as it was (ReturnValuesOnConditionCheckFailure)."""

    duplicate: bool  # the event id is already in the history: applied (or recorded) before
    job: Job | None  # None: there is no such job
    key_revoked: bool = False  # the producer key it was sent with is revoked (or gone)


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next: str | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next: str | None


@dataclass(frozen=True, slots=True)
class OutputObject:
    """One object under a job's archive path (its current version)."""

    key: str  # relative to the archive path: `results/summary.csv`
    size: int  # bytes
    modified: float  # epoch seconds
    etag: str  # S3's ETag without its quotes
    level: str | None = None  # the manifest's: from the index event's `index_patterns`


@dataclass(frozen=True, slots=True)
class OutputPage:
    outputs: list[OutputObject]
    next: str | None


@dataclass(frozen=True, slots=True)
class JobFilter:
    state: State | None = None
    owner: str | None = None  # a producer key's id, or `admin`
    pipeline_uuid: str | None = None
    tag: str | None = None
    updated_after: str | None = None
    updated_before: str | None = None
    # an id in the jobs' child_of: the jobs that analysed this input (ordered by creation, not update)
    child_of: str | None = None
