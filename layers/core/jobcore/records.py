"""The job record and history entries as the core sees them, and the commands it gives its repository."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

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


class Outcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    REJECTED = "rejected"
    QUEUED = "queued"


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
    deleted_at: str | None = None
    erased_objects: int = 0

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    def public(self, data: dict[str, Any] | None = None, callback_url: str | None = None) -> dict[str, Any]:
        """The job as users see it: no token, no hash, nothing secret."""
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
        }
        body.update(self.state_times)
        body["allowed_events"] = allowed_events(self.state)
        if data is not None:
            body["data"] = data
        if callback_url is not None:
            body["callback_url"] = callback_url
        return body


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
    by: Actor | None
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


@dataclass(frozen=True, slots=True)
class Conflict:
    """Why the apply write's condition failed, from the item as it was (ReturnValuesOnConditionCheckFailure)."""

    duplicate: bool  # the event id is already in the history: applied (or recorded) before
    job: Job | None  # None: there is no such job


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next: str | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next: str | None


@dataclass(frozen=True, slots=True)
class JobFilter:
    state: State | None = None
    pipeline_uuid: str | None = None
    tag: str | None = None
    updated_after: str | None = None
    updated_before: str | None = None
