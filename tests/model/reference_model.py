"""A reference model of SPEC section 3 (states and events) and section 4 (tokens), from the SPEC's text.

Deliberately independent of jobcore: the table is SPEC section 3's, copied as literals, so a wrong entry
in jobcore.states.TRANSITIONS, a wrong guard in the worker's write or a wrong token rule shows up as a
divergence. Time is the scenario's nominal clock: the system's clock ticks a millisecond per read on
top of it, and the scenarios keep every deadline at least 50 s away from a boundary.

What the SPEC promises, as the model states it:

- The API checks an event against the state the job will be in once every event it accepted before is
  applied (the *projection*), and an event it answered 202 is applied, in the order accepted, or (a
  callback the job's state had left) recorded as ignored. Only a reset or delete applied in between
  revokes it: one a producer posted straight to the queue, which the API's order did not include.
- A rotated-out job token works for its whole grace period, whatever it is used for: its use is
  answered with the current token, never with another rotation, and never pushes a token out early.
  At most MAX_GRACE rotated-out tokens are in grace; while that many are, a rotation that is due waits,
  and one asked for is refused (429).
- An event a producer sends straight to the queue is checked when it is applied; if it changes the
  state (other than reset and delete) while events the API accepted are still queued, it is rejected:
  they were promised the state it would change.
- The same Idempotency-Key on the same job is the same event: the same 202 and event id, applied once,
  whatever the job's state is by then; with another request, 422.
- A producer key (SPEC section 4 item 4) acts on the jobs it created, and may send what a job token may;
  on another owner's job, as on a deleted one, it is 404. Revoked or expired, it is refused at once
  (401) and, straight on the queue, rejected by the worker. An event a key had accepted (202) is
  rejected if the key is revoked before the event is applied, the job unchanged: the events accepted
  after it against the state it would have made are rejected in turn. Expiry after the 202 undoes
  nothing (it was known in advance). Once nothing accepted is still queued, the API checks the next
  event against the job as it is.
- Deadlines (SPEC section 3a): a job's heartbeat is due `heartbeat_seconds` after the last event applied
  while it is (or that left it) in RUNNING, INDEXING or VALIDATING; its timeout `timeout_seconds` after it
  entered RUNNING (a `run` while RUNNING keeps it); leaving those states clears them (nothing else
  changes them: a rejected or ignored event is not applied). A sweep finds the jobs whose due time has
  passed, as they are, and queues the system's `fail` for each; the worker applies it (FAILED, `by:
  system`, the job then names the deadline it missed) only while the job is still in the state,
  generation and deadline the sweep saw, and, being a state change outside the API's order, only once no
  accepted event is still queued: it goes back behind them (an event applied meanwhile moves or clears
  the deadline, and so wins), overtaking them only once it has waited `order_wait_seconds` for them,
  which no scenario makes it do (nothing accepted is lost). Otherwise it is dropped, unrecorded.
- The indexer (section 3, `index`): an applied `index` starts a run; once the queue holds nothing else
  of the job's, the system posts `indexed` (`by: system`, INDEXING -> FINISHED, outside the API's
  order: the projection follows) if the job is still in INDEXING (a `fail`, an `indexed` by hand, a
  reset or a delete came first: the run is dropped, unrecorded); an `index` sent again starts another
  run, which the system's `indexed` then ends. Where it lands among the system's fails that waited
  behind accepted events, the history says (the model checks it could be there).
- An event sent through the API with a job, callback or admin token (no Idempotency-Key) that is not
  allowed because the system failed the job for a missed deadline is refused (409) and queued to be
  recorded as ignored in its place, the token's use counted but not rotated (the 409 hands none back).
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
# The event id of the system's `indexed` that ends the index run started by event `{run}`.
INDEXED_ID = "{run}:indexed"
# Rotated-out tokens in grace at once (the README's token table).
MAX_GRACE = 4
# The projection of a job whose delete was accepted.
DELETING = "DELETED"
# SPEC section 3a: the states each deadline runs in, and who fails a job that missed one.
HEARTBEAT, TIMEOUT = "heartbeat", "timeout"
DEADLINE_STATES = {
    HEARTBEAT: frozenset({"RUNNING", "INDEXING", "VALIDATING"}),
    TIMEOUT: frozenset({"RUNNING"}),
}
SYSTEM = "system"
# No nominal due time is closer than this to a check (the system's clock ticks on top of the nominal one).
MARGIN = 50


def event_for_status(status: str) -> str:
    return STATUS_EVENTS.get(status, "resource" if status in KNOWN_STATUSES else "update")


def changes_state(state: str, name: str) -> bool:
    """Whether `name` in `state` changes the state or the generation (or deletes the job)."""
    target = TABLE[name][1]
    return name in ("reset", "ready", "delete") or (target is not None and target != state)


@dataclass(frozen=True)
class Credential:
    kind: str  # "job", "callback", "admin", "key" (a producer key), or "none" (not a credential at all)
    value: str
    window: int = 0  # admin tokens: the time window they were computed for
    key_id: str = ""  # producer keys: the key's (public) id

    @property
    def principal(self) -> str:
        """Who the history names (SPEC section 4: `key:<id>` for a producer key)."""
        return f"key:{self.key_id}" if self.kind == "key" else self.kind

    @property
    def role(self) -> str:
        """The credential's row in the 'who' column: a key may send exactly what a job token may."""
        return "job" if self.kind == "key" else self.kind


@dataclass
class ModelKey:
    expires_at: float | None  # None: never
    revoked: bool = False


def key_of(principal: str) -> str | None:
    """The key id in a `key:<id>` principal (None for any other)."""
    return principal.removeprefix("key:") if principal.startswith("key:") else None


@dataclass(frozen=True)
class Entry:
    name: str
    outcome: str  # applied / ignored / rejected
    from_state: str
    to_state: str
    generation: int
    by: str | None = None  # checked for applied entries, and for every entry of a 202


@dataclass(frozen=True)
class Accepted:
    """What the API answered 202 for: what its message carries."""

    event_id: str
    name: str
    data: dict
    by: str
    expect: tuple[str, int]  # the projection it was accepted against
    ignore: bool = False  # a callback the projection had left
    retried: bool = False  # an Idempotency-Key seen before: no new message


@dataclass
class ModelJob:
    token: str | None
    callback: str | None
    issued_at: float
    owner: str = "admin"  # the producer key that created the job (its id), or "admin"
    objects: int = 0
    state: str = "CREATED"
    generation: int = 1
    deleted: bool = False
    last_event: str | None = None
    uses: int = 0
    grace: list[tuple[str, float]] = field(default_factory=list)  # rotated-out token, valid until
    chain: list[str] = field(default_factory=list)  # the current token and those it descends from
    old_callbacks: list[str] = field(default_factory=list)
    callback_unknown: bool = False  # a reset issued one the scenario has not read yet
    last_applied: str | None = None
    erase_for: str | None = None  # the reset whose archive erasure (or, keeping it, completion) is queued
    erase_keep: bool = False
    purge: bool = False
    index_for: str | None = None  # the `index` whose run is the job's (its event id)
    # the projection: where the job will be once every accepted event is applied
    pstate: str = "CREATED"
    pgen: int = 1
    keys: dict[str, tuple[str, str, dict, Accepted]] = field(default_factory=dict)  # key -> (name, ...)
    entries: dict[str, Entry] = field(default_factory=dict)  # every event id -> its one history entry
    applied: list[Entry] = field(default_factory=list)  # applied entries, in order
    # deadlines (section 3a): durations, due times (nominal; None: not running), and a count of the
    # changes of each due time (a sweep's fail names the one it saw); the deadline that failed the job
    heartbeat: int | None = None
    timeout: int | None = None
    due: dict[str, float | None] = field(default_factory=lambda: {HEARTBEAT: None, TIMEOUT: None})
    stamps: dict[str, int] = field(default_factory=lambda: {HEARTBEAT: 0, TIMEOUT: 0})
    missed: str | None = None
    fails: dict[str, str] = field(default_factory=dict)  # the system's applied fails: event id -> reason


class ReferenceModel:
    def __init__(self, *, grace: float, rotate_uses: int, rotate_seconds: float, admin_lifetime: int) -> None:
        self.grace, self.rotate_uses, self.rotate_seconds = grace, rotate_uses, rotate_seconds
        self.admin_lifetime = admin_lifetime
        self.jobs: dict[str, ModelJob] = {}
        self.keys: dict[str, ModelKey] = {}  # producer keys by id

    def new_job(
        self,
        token: str,
        callback: str,
        now: float,
        owner: str = "admin",
        heartbeat: int | None = None,
        timeout: int | None = None,
    ) -> ModelJob:
        return ModelJob(
            token, callback, issued_at=now, owner=owner, chain=[token], heartbeat=heartbeat, timeout=timeout
        )

    # -- section 4: credentials -------------------------------------------------------------------

    def key_live(self, key_id: str, now: float, revoked: frozenset[str] | None = None) -> bool:
        """Whether producer key `key_id` is valid now: issued, not revoked (`revoked`: the keys revoked
        at that moment, if not the model's own), not expired."""
        key = self.keys.get(key_id)
        if key is None:
            return False
        gone = key.revoked if revoked is None else key_id in revoked
        return not gone and (key.expires_at is None or now < key.expires_at)

    def valid(
        self, job: ModelJob, cred: Credential, now: float, revoked: frozenset[str] | None = None
    ) -> bool:
        """Whether `cred` authorizes anything on `job` now (the 'who' column is checked separately)."""
        if cred.kind == "key":  # a live key, on the jobs it created
            return self.key_live(cred.key_id, now, revoked) and job.owner == cred.key_id
        if cred.kind == "admin":  # the current and the previous window
            return int(now // self.admin_lifetime) - cred.window in (0, 1)
        if cred.kind == "callback":
            return cred.value == job.callback
        if cred.kind == "job":
            return cred.value == job.token or any(t == cred.value and until > now for t, until in job.grace)
        return False

    def live_grace(self, job: ModelJob, now: float) -> int:
        return sum(until > now for _, until in job.grace)

    def may_rotate(self, job: ModelJob, now: float) -> bool:
        return job.token is None or self.live_grace(job, now) < MAX_GRACE

    def rotate(self, job: ModelJob, fresh: str, now: float, *, successor: bool) -> None:
        """A rotated-out token stays valid for its whole grace period (SPEC section 4). `successor`: the
        fresh token descends from the current one (a rotation), else it starts anew (an admin's)."""
        job.grace = [(t, until) for t, until in job.grace if until > now]
        if job.token is not None:
            job.grace.append((job.token, now + self.grace))
        job.chain = [*job.chain, fresh] if successor and job.token is not None else [fresh]
        job.token, job.issued_at, job.uses = fresh, now, 0

    def current_for(self, job: ModelJob, cred: Credential, now: float) -> str | None:
        """The current token, for a job token (current or in grace) it descends from."""
        if cred.kind != "job" or not self.valid(job, cred, now) or cred.value not in job.chain:
            return None
        return job.token

    def _revoke(self, job: ModelJob, *, reissue_callback: bool) -> None:
        if job.callback is not None:
            job.old_callbacks.append(job.callback)
        job.token, job.callback, job.grace, job.chain = None, None, [], []
        job.callback_unknown = reissue_callback

    # -- section 5: what the API accepts -----------------------------------------------------------

    def _checked(self, job: ModelJob, cred: Credential, now: float) -> str | None:
        """The credential and job checks every job route makes first (401, 404, 401); a producer key is
        checked before the job is named (401), and another owner's job is as unknown (404)."""
        if cred.kind == "key":
            if not self.key_live(cred.key_id, now):
                return "unauthorized"
            return "job_not_found" if job.deleted or job.owner != cred.key_id else None
        if cred.kind == "none" or (cred.kind == "admin" and not self.valid(job, cred, now)):
            return "unauthorized"
        if job.deleted:
            return "job_not_found"
        if cred.kind != "admin" and not self.valid(job, cred, now):
            return "unauthorized"
        return None

    def api_submit(
        self, uuid: str, cred: Credential, name: str, data: dict, now: float, key: str | None = None
    ) -> tuple[str | None, Accepted | None, bool]:
        """POST /jobs/{uuid}/events: (error code, what was accepted, whether the job token is due to
        rotate). The caller then learns the token the API handed back and calls `handed_back`."""
        job = self.jobs[uuid]
        error = self._checked(job, cred, now)
        if error is not None:
            return error, None, False
        sources, _target, who = TABLE[name]
        if cred.role not in who:
            return "forbidden", None, False
        if key is not None and key in job.keys:
            first_name, first_data, accepted = job.keys[key][0], job.keys[key][1], job.keys[key][3]
            if (first_name, first_data) != (name, data):
                return "idempotency_key_reused", None, False
            return None, Accepted(**{**accepted.__dict__, "retried": True}), False
        if job.pstate == DELETING:
            return "job_not_found", None, False
        if job.pstate not in sources:
            if key is None and cred.kind != "key" and job.missed is not None and job.pstate == "FAILED":
                # refused, and queued to be recorded as ignored (a use of the token, not a rotation)
                return "event_not_allowed", self._accept(job, cred, name, data, now, None, ignore=True), False
            return "event_not_allowed", None, False
        due = self._due(job, cred, name, now)  # before the projection moves
        return None, self._accept(job, cred, name, data, now, key), due

    def _due(self, job: ModelJob, cred: Credential, name: str, now: float) -> bool:
        """Whether this use makes the current token rotate (computed before the projection moves)."""
        if cred.kind != "job" or self.current_for(job, cred, now) is None or not self.may_rotate(job, now):
            return False
        return (
            changes_state(job.pstate, name)
            or job.uses + 1 >= self.rotate_uses
            or now - job.issued_at >= self.rotate_seconds
        )

    def _accept(
        self,
        job: ModelJob,
        cred: Credential,
        name: str,
        data: dict,
        now: float,
        key: str | None,
        *,
        ignore=False,
    ) -> Accepted:
        accepted = Accepted("", name, data, cred.principal, (job.pstate, job.pgen), ignore)
        if cred.kind == "job":
            job.uses += 1  # every use of a job token counts toward its rotation
        if not ignore:
            target = TABLE[name][1]
            if name == "delete":
                job.pstate = DELETING
            elif name == "ready":
                job.pstate, job.pgen = "CREATED", job.pgen + 1
            elif target is not None:
                job.pstate = target
        if key is not None:
            job.keys[key] = (name, data, "", accepted)
        return accepted

    def learned(self, uuid: str, key: str | None, accepted: Accepted, event_id: str) -> Accepted:
        """The event id the API gave an acceptance (the model cannot compute one)."""
        job = self.jobs[uuid]
        accepted = Accepted(**{**accepted.__dict__, "event_id": event_id})
        if key is not None and not accepted.retried:
            job.keys[key] = (accepted.name, accepted.data, event_id, accepted)
        return accepted

    def handed_back(self, uuid: str, cred: Credential, now: float, due: bool, returned: str | None) -> None:
        """Check (by assertion) the token the API handed back, and follow it if it rotated."""
        job = self.jobs[uuid]
        if cred.kind != "job":
            assert returned is None, "a token was handed back to a non-job credential"
            return
        if due:
            assert returned not in (None, cred.value, job.token), "a due rotation did not happen"
            assert returned is not None
            self.rotate(job, returned, now, successor=True)
            return
        current = self.current_for(job, cred, now)
        expected = current if current is not None else cred.value
        assert returned == expected, "the API handed back another token than the current one"

    def api_callback(
        self, uuid: str, cred: Credential, name: str, data: dict, now: float
    ) -> tuple[str | None, Accepted | None]:
        job = self.jobs[uuid]
        if cred.kind != "callback":
            return "unauthorized", None
        error = self._checked(job, cred, now)
        if error is not None:
            return error, None
        if job.pstate == DELETING:
            return "job_not_found", None
        late = job.pstate not in TABLE[name][0]
        return None, self._accept(job, cred, name, data, now, None, ignore=late)

    def api_issue_token(self, uuid: str, cred: Credential, now: float) -> str | None:
        job = self.jobs[uuid]
        error = self._checked(job, cred, now)
        if error is not None:
            return error
        if cred.kind == "callback":
            return "forbidden"
        return None if self.may_rotate(job, now) else "too_many_rotations"

    def issued(self, uuid: str, cred: Credential, fresh: str, now: float) -> None:
        """A token issued on request: the successor of the current one for a job token on its chain."""
        job = self.jobs[uuid]
        self.rotate(job, fresh, now, successor=self.current_for(job, cred, now) is not None)

    # -- sections 3 and 6: what the worker does with each queued event, in order ------------------

    def apply_accepted(
        self, uuid: str, a: Accepted, now: float, pending: int, revoked: frozenset[str] = frozenset()
    ) -> Entry:
        """An event the API answered 202 for, in its place: applied, or ignored (a late callback), or
        rejected only if what it was promised was revoked before it was applied: a reset or delete
        applied in between, or its producer key (`revoked`: the keys revoked by the time it is applied),
        or an event before it that one of these undid (it was promised the state that one would make).
        Expiry after the 202 revokes nothing."""
        job = self.jobs[uuid]
        if a.event_id in job.entries:
            return job.entries[a.event_id]
        if a.ignore:
            state, generation = a.expect
            return self._record(job, a.event_id, Entry(a.name, "ignored", state, state, generation, a.by))
        if job.deleted or (job.state, job.generation) != a.expect or key_of(a.by) in revoked:
            entry = self._record(
                job, a.event_id, Entry(a.name, "rejected", job.state, job.state, job.generation, a.by)
            )
            if not pending and not job.deleted:
                # nothing accepted is queued any more: the next event is checked against the job as it is
                job.pstate, job.pgen = job.state, job.generation
            return entry
        return self._applied(job, a.event_id, a.name, a.data, a.by, pending=pending, now=now)

    def apply_direct(
        self,
        uuid: str,
        event_id: str,
        name: str,
        data: dict,
        cred: Credential,
        now: float,
        pending: int,
        revoked: frozenset[str] | None = None,
    ) -> Entry:
        """An event straight from the queue (section 6), with `pending` accepted events still queued;
        a producer key is checked as it is when the event is applied (`revoked`: the keys revoked then)."""
        job = self.jobs[uuid]
        if event_id in job.entries:  # a duplicate: applied (or recorded) once
            return job.entries[event_id]
        sources, _target, who = TABLE.get(name, (frozenset(), None, frozenset()))
        outcome = "applied"
        if cred.role not in who or job.deleted or not self.valid(job, cred, now, revoked):
            outcome = "rejected"
        elif job.state not in sources:  # a late callback is ignored, anything else rejected
            outcome = "ignored" if cred.kind == "callback" else "rejected"
        elif pending and changes_state(job.state, name) and name not in ("reset", "delete"):
            outcome = "rejected"  # it would overtake what the API promised
        if outcome != "applied":
            return self._record(job, event_id, Entry(name, outcome, job.state, job.state, job.generation))
        job.uses += cred.kind == "job"
        entry = self._applied(job, event_id, name, data, cred.principal, pending=pending, now=now)
        if changes_state(entry.from_state, name) or name in ("reset", "delete"):
            # the projection follows a state change outside the API's order
            job.pstate = DELETING if name == "delete" else job.state
            job.pgen = job.generation
        return entry

    def _applied(
        self, job: ModelJob, event_id: str, name: str, data: dict, by: str, pending: int, now: float
    ) -> Entry:
        target = TABLE[name][1]
        entry = Entry(name, "applied", job.state, target or job.state, job.generation + (name == "ready"), by)
        job.state, job.generation, job.last_event, job.last_applied = (
            entry.to_state,
            entry.generation,
            name,
            event_id,
        )
        if name in ("reset", "delete"):
            self._revoke(job, reissue_callback=name == "reset")
        if name == "delete":
            job.deleted, job.purge = True, bool(data.get("purge_archive"))
        self._deadlines(job, entry.from_state, now, changed=changes_state(entry.from_state, name))
        self._record(job, event_id, entry)
        if name == "index":
            job.index_for = event_id
        if name == "reset":
            job.erase_for, job.erase_keep = event_id, bool(data.get("keep_archive"))
            if job.erase_keep and not pending:  # else it waits behind the accepted events
                self._complete_reset(job)
        return entry

    def index_run(self, uuid: str) -> str | None:
        """The event id of the system's `indexed` the job's index run will post, if a run is under way."""
        job = self.jobs[uuid]
        if job.deleted or job.state != "INDEXING" or job.index_for is None:
            return None
        return INDEXED_ID.format(run=job.index_for)

    def complete_index(self, uuid: str, now: float) -> Entry | None:
        """The system's `indexed` at the end of the job's index run (None: no run is under way)."""
        job = self.jobs[uuid]
        event_id = self.index_run(uuid)
        if event_id is None:
            return None
        entry = Entry("indexed", "applied", "INDEXING", "FINISHED", job.generation, SYSTEM)
        job.state, job.last_event, job.last_applied, job.index_for = "FINISHED", "indexed", event_id, None
        job.pstate, job.pgen = "FINISHED", job.generation
        self._deadlines(job, "INDEXING", now, changed=True)
        return self._record(job, event_id, entry)

    def drained(self, uuid: str) -> None:
        """The queue is empty: the erasure a reset queued has run (and a completion that waited for
        accepted events), if nothing superseded it."""
        job = self.jobs[uuid]
        if job.erase_for is not None and job.last_applied == job.erase_for:
            self._complete_reset(job)
        if job.purge:  # the archive of a job deleted with purge_archive is erased, once
            job.objects, job.purge = 0, False

    def _complete_reset(self, job: ModelJob) -> None:
        entry = Entry(COMPLETION, "applied", "RESET", "CREATED", job.generation + 1, "admin")
        job.state, job.generation, job.last_event, job.erase_for = (
            "CREATED",
            entry.generation,
            COMPLETION,
            None,
        )
        job.pstate, job.pgen = "CREATED", job.generation
        job.applied.append(entry)
        job.objects = job.objects if job.erase_keep else 0
        self._deadlines(job, "RESET", 0.0, changed=True)

    # -- section 3a: deadlines ---------------------------------------------------------------------

    def _deadlines(
        self, job: ModelJob, from_state: str, now: float, *, changed: bool, missed: str | None = None
    ) -> None:
        """An event applied at `now`, which took the job from `from_state` to where it is (`changed`: its
        state, generation or existence): the heartbeat restarts in its states, the timeout starts on
        entering RUNNING; leaving their states clears them."""
        running = {
            HEARTBEAT: job.heartbeat if not job.deleted and job.state in DEADLINE_STATES[HEARTBEAT] else None,
            TIMEOUT: job.timeout if not job.deleted and job.state in DEADLINE_STATES[TIMEOUT] else None,
        }
        for reason, seconds in running.items():
            if seconds is None:
                if job.due[reason] is not None:
                    job.due[reason] = None
                    job.stamps[reason] += 1
            elif reason == HEARTBEAT or from_state not in DEADLINE_STATES[TIMEOUT]:
                job.due[reason] = now + seconds
                job.stamps[reason] += 1
        job.missed = missed if missed is not None else (job.missed if not changed else None)

    def overdue(self, now: float) -> list[tuple[str, str, str, int, int]]:
        """What a sweep at `now` finds: (uuid, reason, state, generation, the due time's stamp) for each
        running deadline whose due time has passed."""
        found = []
        for uuid, job in self.jobs.items():
            for reason in (HEARTBEAT, TIMEOUT):
                due = job.due[reason]
                if due is None or job.deleted:
                    continue
                assert abs(due - now) >= MARGIN, (
                    f"job {uuid}: its {reason} is due {due - now:+.0f} s from a sweep"
                )
                if due < now:
                    found.append((uuid, reason, job.state, job.generation, job.stamps[reason]))
        return found

    def deadline_holds(self, uuid: str, seen: tuple[str, str, int, int]) -> bool:
        """Whether the job is still as the sweep saw it: state, generation and that very due time."""
        job = self.jobs[uuid]
        reason, state, generation, stamp = seen
        return (
            not job.deleted
            and (job.state, job.generation) == (state, generation)
            and job.stamps[reason] == stamp
            and job.due[reason] is not None
        )

    def apply_deadline(self, uuid: str, event_id: str, seen: tuple[str, str, int, int], now: float) -> Entry:
        """The system's fail of a missed deadline, where it holds and nothing accepted is queued: FAILED,
        outside the API's order (the projection follows)."""
        job = self.jobs[uuid]
        assert self.deadline_holds(uuid, seen)
        reason, state, generation, _ = seen
        entry = Entry("fail", "applied", state, "FAILED", generation, SYSTEM)
        job.state, job.last_event, job.last_applied = "FAILED", "fail", event_id
        self._deadlines(job, state, now, changed=True, missed=reason)
        job.pstate, job.pgen = "FAILED", generation
        job.fails[event_id] = reason
        return self._record(job, event_id, entry)

    def _record(self, job: ModelJob, event_id: str, entry: Entry) -> Entry:
        job.entries[event_id] = entry
        if entry.outcome == "applied":
            job.applied.append(entry)
        return entry
