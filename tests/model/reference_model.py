"""A reference model of SPEC section 3 (states and events) and section 4 (tokens), from the SPEC's text.

Deliberately independent of jobcore: the table is SPEC section 3's, copied as literals, so a wrong entry
in jobcore.states.TRANSITIONS, a wrong guard in the worker's write or a wrong token rule shows up as a
divergence. Time is the scenario's nominal clock: the system's clock ticks a millisecond per read on
top of it, and the scenarios keep every deadline at least 50 s away from a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY = frozenset(
    [
        "CREATED",
        "RUNNING",
        "FAILED",
        "FINISHED",
        "INDEXING",
        "VALIDATING",
        "VALIDATED",
        "REJECTED",
        "FINALIZED",
        "RETIRED",
        "RESET",
        "CANCELED",
    ]
)
_JCA, _JA, _A = frozenset({"job", "callback", "admin"}), frozenset({"job", "admin"}), frozenset({"admin"})

# SPEC section 3: event -> (from, to (None: unchanged), who).
TABLE: dict[str, tuple[frozenset[str], str | None, frozenset[str]]] = {
    "run": (frozenset({"CREATED", "RUNNING"}), "RUNNING", _JCA),
    "update": (frozenset({"CREATED", "RUNNING", "INDEXING", "VALIDATING"}), None, _JCA),
    "resource": (frozenset({"CREATED", "RUNNING"}), None, _JCA),
    "fail": (frozenset({"CREATED", "RUNNING", "INDEXING", "VALIDATING"}), "FAILED", _JCA),
    "finish": (frozenset({"RUNNING", "FINISHED"}), "FINISHED", _JCA),
    "index": (frozenset({"FINISHED", "INDEXING"}), "INDEXING", _JA),
    "indexed": (frozenset({"FINISHED", "INDEXING"}), "FINISHED", _JA),
    "validate": (frozenset({"FINISHED", "VALIDATED"}), "VALIDATING", _JA),
    "validated": (frozenset({"VALIDATING", "VALIDATED"}), "VALIDATED", _JA),
    "reject": (frozenset({"VALIDATING"}), "REJECTED", _JA),
    "finalize": (frozenset({"VALIDATED"}), "FINALIZED", _JA),
    "retire": (
        frozenset({"FAILED", "FINISHED", "VALIDATING", "VALIDATED", "REJECTED", "FINALIZED"}),
        "RETIRED",
        _JA,
    ),
    "cancel": (frozenset({"CREATED"}), "CANCELED", _JA),
    "reset": (ANY, "RESET", _A),
    "ready": (frozenset({"RESET"}), "CREATED", _A),
    "delete": (ANY, None, _A),
}
# SPEC section 5: a compute platform's status -> event. "Known" statuses are those the scenarios send.
STATUS_EVENTS = {
    "RUNNING": "run",
    "FINISHED": "finish",
    "FAILED": "fail",
    "STOPPED": "fail",
    "KILLED": "fail",
}
KNOWN_STATUSES = frozenset({"QUEUED", "ARCHIVING", "PENDING"})
# The history's name for the internal "archive erased, back to CREATED" step (SPEC leaves it unnamed).
COMPLETION = "erased"


def event_for_status(status: str) -> str:
    return STATUS_EVENTS.get(status, "resource" if status in KNOWN_STATUSES else "update")


@dataclass(frozen=True)
class Credential:
    kind: str  # "job", "callback", "admin", or "none" (not a credential at all)
    value: str
    window: int = 0  # admin tokens: the time window they were computed for


@dataclass(frozen=True)
class Entry:
    name: str
    outcome: str  # applied / ignored / rejected
    from_state: str
    to_state: str
    generation: int
    by: str | None = None  # checked for applied entries only


@dataclass
class ModelJob:
    token: str | None
    callback: str | None
    issued_at: float
    objects: int = 0
    state: str = "CREATED"
    generation: int = 1
    deleted: bool = False
    last_event: str | None = None
    uses: int = 0
    grace: list[tuple[str, float]] = field(default_factory=list)  # rotated-out token, valid until
    last_applied: str | None = None
    erase_for: str | None = None  # the reset whose archive erasure is queued
    purge: bool = False
    entries: dict[str, Entry] = field(default_factory=dict)  # every event id -> its one history entry
    applied: list[Entry] = field(default_factory=list)  # applied entries, in order


class ReferenceModel:
    def __init__(self, *, grace: float, rotate_uses: int, rotate_seconds: float, admin_lifetime: int) -> None:
        self.grace, self.rotate_uses, self.rotate_seconds = grace, rotate_uses, rotate_seconds
        self.admin_lifetime = admin_lifetime
        self.jobs: dict[str, ModelJob] = {}

    # -- section 4: credentials -------------------------------------------------------------------

    def valid(self, job: ModelJob, cred: Credential, now: float) -> bool:
        """Whether `cred` authorizes anything on `job` now (the 'who' column is checked separately)."""
        if cred.kind == "admin":  # the current and the previous window
            return int(now // self.admin_lifetime) - cred.window in (0, 1)
        if cred.kind == "callback":
            return cred.value == job.callback
        if cred.kind == "job":
            return cred.value == job.token or any(t == cred.value and until > now for t, until in job.grace)
        return False

    def rotate(self, job: ModelJob, fresh: str, now: float) -> None:
        """A rotated-out token stays valid for the grace period (SPEC section 4)."""
        job.grace = [(t, until) for t, until in job.grace if until > now]
        if job.token is not None:
            job.grace.append((job.token, now + self.grace))
        job.token, job.issued_at, job.uses = fresh, now, 0

    def _revoke(self, job: ModelJob) -> None:
        job.token, job.callback, job.grace = None, None, []

    # -- section 5: what the API accepts (it checks against the job as stored) ----------------------

    def api_submit(self, uuid: str, cred: Credential, name: str, now: float) -> tuple[str | None, bool]:
        """(error code or None, whether the job token rotates)."""
        job = self.jobs[uuid]
        if cred.kind == "none" or (cred.kind == "admin" and not self.valid(job, cred, now)):
            return "unauthorized", False
        if job.deleted:
            return "job_not_found", False
        if cred.kind != "admin" and not self.valid(job, cred, now):
            return "unauthorized", False
        sources, target, who = TABLE[name]
        if cred.kind not in who:
            return "forbidden", False
        if job.state not in sources:
            return "event_not_allowed", False
        if cred.kind != "job":
            return None, False
        due = (
            cred.value != job.token  # a rotated-out token presented: hand back a fresh one
            or (target is not None and target != job.state)  # state-changing
            or job.uses + 1 >= self.rotate_uses
            or now - job.issued_at >= self.rotate_seconds
        )
        return None, due

    def api_callback(self, uuid: str, cred: Credential, now: float) -> str | None:
        job = self.jobs[uuid]
        if cred.kind != "callback" or job.deleted:
            return "unauthorized" if cred.kind != "callback" else "job_not_found"
        return None if self.valid(job, cred, now) else "unauthorized"

    def api_issue_token(self, uuid: str, cred: Credential, now: float) -> str | None:
        job = self.jobs[uuid]
        if cred.kind == "none" or (cred.kind == "admin" and not self.valid(job, cred, now)):
            return "unauthorized"
        if job.deleted:
            return "job_not_found"
        if cred.kind != "admin" and not self.valid(job, cred, now):
            return "unauthorized"
        return "forbidden" if cred.kind == "callback" else None

    # -- sections 3 and 6: what the worker does with each queued event, in order ------------------

    def apply(self, uuid: str, event_id: str, name: str, data: dict, cred: Credential, now: float) -> Entry:
        job = self.jobs[uuid]
        if event_id in job.entries:  # a duplicate: applied (or recorded) once
            return job.entries[event_id]
        sources, target, who = TABLE.get(name, (frozenset(), None, frozenset()))
        outcome = "applied"
        if cred.kind not in who or job.deleted or not self.valid(job, cred, now):
            outcome = "rejected"
        elif job.state not in sources:  # a late callback is ignored, anything else rejected
            outcome = "ignored" if cred.kind == "callback" else "rejected"
        if outcome != "applied":
            return self._record(job, event_id, Entry(name, outcome, job.state, job.state, job.generation))
        entry = Entry(
            name, outcome, job.state, target or job.state, job.generation + (name == "ready"), cred.kind
        )
        job.state, job.generation, job.last_event, job.last_applied = (
            entry.to_state,
            entry.generation,
            name,
            event_id,
        )
        job.uses += cred.kind == "job"
        if name in ("reset", "delete"):
            self._revoke(job)
        if name == "delete":
            job.deleted, job.purge = True, bool(data.get("purge_archive"))
        self._record(job, event_id, entry)
        if name == "reset":
            job.erase_for = event_id
            if data.get("keep_archive"):
                self._complete_reset(job, erase=False)
        return entry

    def drained(self, uuid: str) -> None:
        """The queue is empty: the erasure a reset queued has run, if nothing superseded it."""
        job = self.jobs[uuid]
        if job.erase_for is not None and job.last_applied == job.erase_for:
            self._complete_reset(job, erase=True)
        if job.purge:  # the archive of a job deleted with purge_archive is erased, once
            job.objects, job.purge = 0, False

    def _complete_reset(self, job: ModelJob, *, erase: bool) -> None:
        entry = Entry(COMPLETION, "applied", "RESET", "CREATED", job.generation + 1, "admin")
        job.state, job.generation, job.last_event, job.erase_for = (
            "CREATED",
            entry.generation,
            COMPLETION,
            None,
        )
        job.applied.append(entry)
        job.objects = 0 if erase else job.objects

    def _record(self, job: ModelJob, event_id: str, entry: Entry) -> Entry:
        job.entries[event_id] = entry
        if entry.outcome == "applied":
            job.applied.append(entry)
        return entry
