"""The service that creates jobs and applies lifecycle events. Plain Python: every AWS call goes through
the ports it is given.

Applying an event is one conditional write (JobRepository.apply) whose condition is the guard. The
worker never reads before it writes; when its expectation of the state was stale, the failed write hands
back the item as it was, and the write is tried once more with the truth.

Two kinds of message reach the worker:

- **Accepted by the API** (marked, jobcore.keyring): the API already checked the credential and the
  state, and answered 202. Each has a place in the job's order (`seq`), and is applied right after the
  one before it, without its credential being checked again: a token that rotated out meanwhile, or an
  admin window that closed, does not undo a 202 (SPEC section 3, "a 202 is a promise"). Only what
  revokes it does: a reset or delete applied in between, which leaves the job in another state or
  generation than the one it was accepted for. A message that arrives before the one before it (two
  API requests whose sends crossed) goes back to the end of the queue, for at most
  `order_wait_seconds` after its acceptance; an event that never arrives in that time is given up,
  and, if it comes after all, is applied where the job then is, if it still can be.
  An event accepted with a producer key is the one exception to "not checked again": its apply
  carries a ConditionCheck that the key is not revoked (in the same transaction), and if it was
  revoked after the acceptance the event is recorded rejected in its place, the job unchanged; events
  accepted after it against the state it would have made are rejected too, saying why. Expiry
  after the acceptance does not revoke a 202: it was known in advance; revocation is an explicit act.
  An accepted event refused in its place (whatever revoked it) that is the last one accepted puts the
  projection back to the job as it is: the API checks the next event against the truth, not against
  the state the refused events would have made.
- **Sent straight to the queue** by a producer (SPEC section 6): checked in full, credential included.
  A producer key there is read and compared (constant time; not revoked or expired), the job must be
  its own, and the apply carries the same ConditionCheck. A state change of that kind waits for no
  one, so it is applied only while no accepted event is still queued (each of those was promised
  against the state it would find); reset and delete are the exception, and revoke what is queued.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from pydantic import ValidationError

from jobcore.archive_paths import check_archive_path, default_archive_path
from jobcore.clock import Clock, SystemClock, iso
from jobcore.errors import (
    Forbidden,
    InvalidRequest,
    JobError,
    JobExists,
    TransientError,
    Unauthorized,
)
from jobcore.ids import is_uuid, job_uuid
from jobcore.indexing import patterns_of
from jobcore.keyring import Keyring, acceptance_fields, new_nonce
from jobcore.models import (
    DeadlineMessage,
    EraseMessage,
    IndexMessage,
    JobSpec,
    QueueMessage,
    check_data,
    describe,
    event_data,
    parse_event,
)
from jobcore.ports import AdminKeys, ArchiveStore, EventQueue, JobRepository
from jobcore.records import (
    DEADLINE_STATES,
    HEARTBEAT,
    SYSTEM,
    TIMEOUT,
    ApplyCommand,
    Conflict,
    Effect,
    HistoryEntry,
    InOrderRecord,
    Job,
    Outcome,
    Overdue,
)
from jobcore.settings import Settings
from jobcore.states import ERASED, Actor, State, is_plain_name, parse_principal, principal, transition
from jobcore.tokens import (
    DUMMY_KEY_HASH,
    KEY_REFUSED,
    KEY_REVOKED_AFTER,
    TokenState,
    credential_kind,
    hash_token,
    is_admin_token,
    new_job_token,
    producer_key_id,
    same_hash,
)

logger = logging.getLogger("jobcore")

_MAX_ATTEMPTS: Final = 4
_STATE_CACHE_SIZE: Final = 10_000
_STATE_ORDER: Final = {state: i for i, state in enumerate(State)}
_EFFECTS: Final = {"reset": Effect.REVOKE, "ready": Effect.NEXT_GENERATION, "delete": Effect.DELETE}
REQUEUED: Final = "requeued"
# Pauses before an accepted event goes back to wait for the one before it: 50 ms, doubling, at most 1 s.
_FIRST_PAUSE: Final = 0.05
_LONGEST_PAUSE: Final = 1.0
# Overdue jobs one sweep sends at most (the next sweep, a minute later, takes the rest).
SWEEP_LIMIT: Final = 1000
# The indexer: objects listed (and recorded) per page; the name of the system's event that ends a run.
INDEX_PAGE: Final = 1000
INDEXED: Final = "indexed"


@dataclass(frozen=True, slots=True)
class CreatedJob:
    job: Job
    data: dict[str, Any]
    token: str
    callback_token: str


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one queue message. `status` is an Outcome value, or `duplicate` / `unrecorded` /
    `requeued` (sent back to the end of the queue to wait for the event before it)."""

    status: str
    uuid: str | None = None
    name: str | None = None
    event_id: str | None = None
    reason: str | None = None
    from_state: State | None = None
    to_state: State | None = None
    # the system failed the job for a missed deadline (metric JobsTimedOut)
    timed_out: bool = False

    @property
    def applied(self) -> bool:
        return self.status == Outcome.APPLIED


@dataclass(frozen=True, slots=True)
class _Accepted:
    """An accepted event's message, its mark verified."""

    message: QueueMessage
    body: dict[str, Any]
    event: Any
    event_id: str
    seq: int
    state: State
    generation: int
    by: Actor
    principal: str  # as the history names it (`key:<id>` for a producer key)
    key_id: str | None = None


class JobService:
    def __init__(
        self,
        settings: Settings,
        repo: JobRepository,
        *,
        queue: EventQueue | None = None,
        archive: ArchiveStore | None = None,
        admin_keys: AdminKeys | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.queue = queue
        self.archive = archive
        self.admin_keys = admin_keys
        self.clock = clock or SystemClock()
        self.sleep = sleep or time.sleep
        self.index_page = INDEX_PAGE
        # Last known (state, generation) of recently seen jobs: a FIFO group is worked by one consumer
        # at a time, so this is almost always right, and a wrong guess costs one more write, not a bug.
        self._known: OrderedDict[str, tuple[State, int]] = OrderedDict()
        self._keyrings: dict[str, Keyring] = {}

    def keyring(self) -> Keyring:
        """The values derived from the admin key (which its adapter caches and may rotate)."""
        key = self.admin_keys.key() if self.admin_keys is not None else ""
        keyring = self._keyrings.get(key)
        if keyring is None:
            self._keyrings = {key: (keyring := Keyring(key))}
        return keyring

    # -- creating ------------------------------------------------------------------------------------

    def create_job(self, spec: JobSpec, owner_key: str | None = None) -> CreatedJob:
        """Create a job. Raises JobExists (details: uuid) if it exists, InvalidArchivePath, PayloadTooLarge.

        A job deleted and created again from the same inputs is its next incarnation: its generation
        continues above every one it had, its place in the API's order after every event accepted
        before, and its default archive path is a fresh one (`<uuid>.i<n>/`), so that it inherits
        neither the old history's generations nor the old outputs (SPEC section 3).

        `owner_key`: the producer key creating it (its id; the job's `owner`); None for an admin.
        """
        check_data(spec.data)
        uuid = job_uuid(spec.pipeline_uuid, spec.data, spec.child_of)
        now = self.clock.now()
        stamp = iso(now)
        token, nonce = new_job_token(), new_nonce()
        callback_token = self.keyring().callback_token(uuid, nonce)
        deadlines = self._deadlines(spec)
        job = Job(
            uuid=uuid,
            pipeline_uuid=spec.pipeline_uuid,
            state=State.CREATED,
            generation=1,
            archive_path=self._archive_path(spec, uuid, 1),
            created_at=stamp,
            updated_at=stamp,
            state_entered_at=stamp,
            tokens=TokenState(hash_token(token), now, 0, {}, hash_token(callback_token)),
            child_of=tuple(spec.child_of),
            name=spec.name,
            tags=tuple(spec.tags),
            session=spec.session,
            agent=spec.agent,
            task=spec.task,
            callback_nonce=nonce,
            owner_key=owner_key,
            heartbeat_seconds=deadlines.get("heartbeat_seconds"),
            timeout_seconds=deadlines.get("timeout_seconds"),
        )
        tombstone = self.repo.create(job, spec.data)
        if tombstone is not None:
            incarnation = tombstone.incarnation + 1
            place = max(tombstone.accepted_seq, tombstone.applied_seq)
            job = replace(
                job,
                generation=max(tombstone.generation, tombstone.projected_generation) + 1,
                incarnation=incarnation,
                accepted_seq=place,
                applied_seq=place,
                archive_path=self._archive_path(spec, uuid, incarnation),
            )
            self.repo.create(job, spec.data, replaces=tombstone)
        return CreatedJob(job, spec.data, token, callback_token)

    def _deadlines(self, spec: JobSpec) -> dict[str, int | None]:
        """The job's deadlines: its own (a null is "none"), else its pipeline's default (SPEC 3a)."""
        defaults = self.settings.default_deadlines(spec.pipeline_uuid)
        given = spec.model_fields_set
        return {
            name: getattr(spec, name) if name in given else defaults.get(name)
            for name in ("heartbeat_seconds", "timeout_seconds")
        }

    def _archive_path(self, spec: JobSpec, uuid: str, incarnation: int) -> str:
        s = self.settings
        if spec.archive_path is None:
            return default_archive_path(
                s.archive_bucket, s.archive_prefix, spec.pipeline_uuid, uuid, incarnation
            )
        return check_archive_path(
            spec.archive_path,
            bucket=s.archive_bucket,
            prefix=s.archive_prefix,
            pipeline_uuid=spec.pipeline_uuid,
            uuid=uuid,
        )

    # -- applying (the worker) -----------------------------------------------------------------------

    def handle_message(
        self,
        body: Any,
        *,
        fallback_event_id: str,
        deadline: Callable[[], bool] | None = None,
        malformed: str | None = None,
    ) -> Result:
        """Apply one queue message. Permanent problems are recorded and returned, never raised.

        `malformed`: why the body is not valid JSON, if it is not (it is recorded as malformed; `body`
        is then what could be read of it, or None). Raises TransientError (retry the message) for
        failures of the machinery.
        """
        if malformed is not None:
            return self._reject_malformed(body, fallback_event_id, f"malformed message: {malformed}")
        if isinstance(body, dict) and body.get("internal") == "erase":
            return self._erase_step(body, fallback_event_id, deadline or (lambda: False))
        if isinstance(body, dict) and body.get("internal") == "deadline":
            return self._deadline_fail(body, fallback_event_id)
        if isinstance(body, dict) and body.get("internal") == "index":
            return self._index_step(body, fallback_event_id, deadline or (lambda: False))
        try:
            message = QueueMessage.model_validate(body)
        except ValidationError as error:
            return self._reject_malformed(body, fallback_event_id, f"malformed message: {describe(error)}")
        event_id = message.event_id or fallback_event_id
        try:
            event = parse_event({"name": message.name, "data": message.data})
            accepted = self._accepted(message, body, event, event_id)
            if accepted is not None:
                return self._apply_accepted(accepted)
            by, token_hash = self._credential(message.token)
            row = transition(event.name)
            if by not in row.actors:
                what = "producer key" if by is Actor.KEY else f"{by} token"
                raise Forbidden(f"a {what} may not send {event.name}")
        except JobError as error:
            return self._reject(message.uuid, event_id, message.name, message.data, error.message, None)
        key_id = producer_key_id(message.token) if by is Actor.KEY else None
        return self._apply(message, event, event_id, by, token_hash, key_id=key_id)

    def _credential(self, token: str) -> tuple[Actor, str | None]:
        """The credential's kind and hash. A producer key is checked here in full (one read of its
        item, a constant-time compare, not revoked or expired); a job or callback token by the write."""
        kind = credential_kind(token)
        if kind is Actor.ADMIN:
            if self.admin_keys is None or not is_admin_token(
                token, self.admin_keys.key(), self.clock.now(), self.settings.admin_token_lifetime
            ):
                raise Unauthorized("the admin token is not valid (expired window or wrong key)")
            return Actor.ADMIN, None
        if kind is None:
            raise Unauthorized("the token is not a pipelinejobs credential")
        if kind is Actor.KEY:
            key_id = producer_key_id(token) or ""
            stored = self.repo.get_key(key_id)
            matches = same_hash(hash_token(token), stored.key_hash if stored else DUMMY_KEY_HASH)
            if stored is None or not matches or not stored.valid(self.clock.now()):
                raise Unauthorized(KEY_REFUSED)
        return kind, hash_token(token)

    def _accepted(self, message: QueueMessage, body: Any, event: Any, event_id: str) -> _Accepted | None:
        """The message as the API accepted it, if its mark is the API's; None for a producer's message."""
        m = message
        if m.mark is None or m.seq is None or m.expect is None or m.by is None or m.at is None:
            return None
        who = parse_principal(m.by)
        if not m.event_id or m.expect[0] not in State.__members__ or who is None:
            return None
        fields = acceptance_fields(
            uuid=m.uuid,
            event_id=m.event_id,
            name=m.name,
            data=m.data or {},
            expect=m.expect,
            seq=m.seq,
            by=m.by,
            at=m.at,
            ignore=m.ignore,
        )
        if not self.keyring().marked(fields, m.mark):
            return None  # not the API's (or from before an admin key rotation): checked in full
        return _Accepted(
            m, body, event, event_id, m.seq, State(m.expect[0]), m.expect[1], who[0], m.by, who[1]
        )

    def _expectation(self, message: QueueMessage, sources: frozenset[State]) -> tuple[State, int]:
        if message.expect is not None:
            try:
                state = State(message.expect[0])
            except ValueError:
                pass
            else:
                return state, message.expect[1]
        known = self._known.get(message.uuid)
        if known is not None:
            return known
        return min(sources, key=_STATE_ORDER.__getitem__), 1

    def _remember(self, uuid: str, state: State, generation: int) -> None:
        self._known[uuid] = (state, generation)
        self._known.move_to_end(uuid)
        while len(self._known) > _STATE_CACHE_SIZE:
            self._known.popitem(last=False)

    # -- events the API accepted: in its order -------------------------------------------------------

    def _apply_accepted(self, a: _Accepted) -> Result:
        uuid, name, seq = a.message.uuid, a.event.name, a.seq
        data = event_data(a.event)
        row = transition(name)
        effect = _EFFECTS.get(name, Effect.NONE)
        after, gave_up = seq - 1, False
        for _ in range(_MAX_ATTEMPTS):
            now = self.clock.now()
            if a.message.ignore:
                # a callback the job's state had left when it was accepted: recorded, in its place
                entry = HistoryEntry(
                    a.event_id, name, _trim(data), iso(now), Outcome.IGNORED, a.state, a.state,
                    a.generation, a.principal, f"cannot {name} a job in {a.state} ({_late_what(a.by)})",
                )  # fmt: skip
                conflict = self.repo.record_in_order(InOrderRecord(uuid, entry, seq, after, now))
                if conflict is None:
                    return Result(Outcome.IGNORED, uuid, name, a.event_id, entry.reason, a.state, a.state)
            else:
                to_state = row.target or a.state
                generation = a.generation + (1 if effect is Effect.NEXT_GENERATION else 0)
                command = ApplyCommand(
                    uuid=uuid,
                    event_id=a.event_id,
                    name=name,
                    data=data,
                    by=a.by,
                    token_hash=None,
                    expected_state=a.state,
                    expected_generation=a.generation,
                    to_state=to_state,
                    effect=effect,
                    now=now,
                    authorized=True,
                    seq=seq,
                    after_seq=after,
                    callback=self._new_callback(uuid) if effect is Effect.REVOKE else None,
                    key_id=a.key_id,
                    starts_index=a.event_id if name == "index" else None,
                )
                entry = HistoryEntry(
                    a.event_id, name, data, iso(now), Outcome.APPLIED, a.state, to_state, generation,
                    a.principal,
                )  # fmt: skip
                conflict = self.repo.apply(command, entry)
                if conflict is None:
                    self._remember(uuid, to_state, generation)
                    self._after_applied(uuid, name, a.event_id, data, generation)
                    return Result(Outcome.APPLIED, uuid, name, a.event_id, None, a.state, to_state)
                if conflict.key_revoked and not conflict.duplicate:
                    # The key was revoked after this event was accepted: recorded in its place, the job
                    # unchanged. (Expiry after acceptance does not undo a 202: it was known in advance.
                    # Revocation, an explicit act, does, as a reset does for a job token.)
                    # No item back: the job's own condition held, so it is as accepted for. Else it is
                    # as the item says (an event before this one was refused too, or a reset applied
                    # in between), and the entry records the state it is in.
                    found = conflict.job
                    state, generation = (
                        (a.state, a.generation) if found is None else (found.state, found.generation)
                    )
                    entry = HistoryEntry(
                        a.event_id, name, _trim(data), iso(now), Outcome.REJECTED, state, state,
                        generation, a.principal, KEY_REVOKED_AFTER,
                    )  # fmt: skip
                    last = found is None or (found.accepted_seq == seq and not found.deleted)
                    recorded = self._record_in_place(
                        InOrderRecord(uuid, entry, seq, after, now),
                        (str(state), generation) if last else None,
                    )
                    if recorded is None:
                        return Result(
                            Outcome.REJECTED, uuid, name, a.event_id, KEY_REVOKED_AFTER, state, state
                        )
                    conflict = recorded  # not its place (yet): as for any other refusal below
            if conflict.duplicate:
                return self._redelivered(uuid, name, a.event_id, data, seq=seq)
            job = conflict.job
            if job is None:
                return Result("unrecorded", uuid, name, a.event_id, "no such job")
            if job.applied_seq >= seq:
                return self._late(a, job)
            if job.applied_seq < after:
                # An event accepted before this one has not arrived: its send crossed this one's, or
                # it was lost. Wait for it behind the events queued now, for a while.
                if now - (a.message.at or 0) < self.settings.order_wait_seconds:
                    return self._requeue(a)
                logger.warning(
                    "job %s: gave up waiting for events %d to %d; applying event %d", uuid,
                    job.applied_seq + 1, seq - 1, seq,
                )  # fmt: skip
                after, gave_up = job.applied_seq, True
                continue
            # In its place, but the job is not as it was accepted for: a reset or delete applied in
            # between revoked it (or, after a lost event, it no longer applies).
            if gave_up:
                reason = f"an event accepted before it was lost, and the job is now in {job.state}"
            elif job.deleted:
                reason = "the job was deleted after this event was accepted"
            elif job.state is not State.RESET and job.generation == a.generation:
                reason = (
                    f"the job is in {job.state}, not {a.state}: an event accepted before this one was "
                    "refused (its producer key was revoked)"
                )
            else:
                reason = "the job was reset after this event was accepted"
            entry = HistoryEntry(
                a.event_id, name, _trim(data), iso(now), Outcome.REJECTED, job.state, job.state,
                job.generation, a.principal, reason,
            )  # fmt: skip
            last = job.accepted_seq == seq and not job.deleted
            conflict = self._record_in_place(
                InOrderRecord(uuid, entry, seq, after, now),
                (str(job.state), job.generation) if last else None,
            )
            if conflict is None:
                return Result(Outcome.REJECTED, uuid, name, a.event_id, reason, job.state, job.state)
            if conflict.duplicate:
                return Result("duplicate", uuid, name, a.event_id, "already processed")
        raise TransientError(f"job {uuid} kept changing while {name} {a.event_id} was applied")

    def _record_in_place(self, record: InOrderRecord, job_is: tuple[str, int] | None) -> Conflict | None:
        """Record an accepted event refused, in its place. `job_is`: the job's state and generation, when
        nothing was accepted after this event (as far as the caller knows): the same write then puts the
        projection back to them, so that the API checks the next event against the job as it is, not
        against what refused events would have made of it. Events accepted after it keep the projection
        they were accepted on (the write's condition tells; the last of them puts it back in turn)."""
        if job_is is None:
            return self.repo.record_in_order(record)
        recorded = self.repo.record_in_order(replace(record, projection=job_is))
        if (
            recorded is not None
            and not recorded.duplicate
            and recorded.job is not None
            and recorded.job.applied_seq == record.after_seq
        ):
            # its place, but an event was accepted after it meanwhile: recorded, the projection kept
            recorded = self.repo.record_in_order(record)
        return recorded

    def _late(self, a: _Accepted, job: Job) -> Result:
        """An accepted event whose place in the order was given up (it was lost, or dead-lettered, and
        came back): applied where the job is now, if it still applies and nothing revoked it."""
        data = event_data(a.event)
        if job.deleted or job.generation != a.generation:
            reason = (
                "the job was deleted after this event was accepted"
                if job.deleted
                else "the job was reset after this event was accepted"
            )
            return self._record_refusal(
                job, a.event_id, a.event.name, data, a.principal, reason, ignored=False
            )
        if a.message.ignore:
            reason = f"cannot {a.event.name} a job in {job.state} ({_late_what(a.by)})"
            return self._record_refusal(
                job, a.event_id, a.event.name, data, a.principal, reason, ignored=True
            )
        return self._apply(a.message, a.event, a.event_id, a.by, None, authorized=True, key_id=a.key_id)

    def _requeue(self, a: _Accepted) -> Result:
        """Back to the end of its message group, behind the event it waits for (which no consumer can
        have while this one holds the group). A pause first, growing with each wait, so that waiting
        for an event that is lost is not a busy loop."""
        if self.queue is None:
            raise TransientError("no queue to wait on for the event before this one")
        self.sleep(min(_FIRST_PAUSE * 2**a.message.waits, _LONGEST_PAUSE))
        now = self.clock.now()
        body = {**a.body, "waits": a.message.waits + 1}
        self.queue.send(body, group_id=a.message.uuid, dedup_id=f"{a.event_id}:wait:{int(now * 1000)}")
        return Result(
            REQUEUED, a.message.uuid, a.event.name, a.event_id, f"waiting for the events before {a.seq}"
        )

    # -- events straight from the queue (SPEC section 6), and late ones ------------------------------

    def _apply(
        self,
        message: QueueMessage,
        event: Any,
        event_id: str,
        by: Actor,
        token_hash: str | None,
        *,
        authorized: bool = False,
        key_id: str | None = None,
    ) -> Result:
        uuid, name = message.uuid, event.name
        who = principal(by, key_id)
        row = transition(name)
        data = event_data(event)
        effect = _EFFECTS.get(name, Effect.NONE)
        overtakes = name in ("reset", "delete")  # they revoke what is queued rather than wait for it
        expected_state, expected_generation = self._expectation(message, row.sources)
        for _ in range(_MAX_ATTEMPTS):
            if expected_state not in row.sources:
                # As far as we know the event is not allowed now. Confirm with a read before refusing
                # (refusals are off the hot path; applied events never read).
                known = self.repo.get(uuid)
                if known is None:
                    return Result("unrecorded", uuid, name, event_id, "no such job")
                self._remember(uuid, known.state, known.generation)
                reason = self._refusal(known, row.sources, name, by, message.token, authorized, None)
                if reason is not None:
                    ignored = by is Actor.CALLBACK and reason.startswith("cannot ")
                    return self._record_refusal(known, event_id, name, data, who, reason, ignored)
                expected_state, expected_generation = known.state, known.generation
            now = self.clock.now()
            to_state = row.target or expected_state
            changes = to_state != expected_state or effect is not Effect.NONE
            generation = expected_generation + (1 if effect is Effect.NEXT_GENERATION else 0)
            command = ApplyCommand(
                uuid=uuid,
                event_id=event_id,
                name=name,
                data=data,
                by=by,
                token_hash=token_hash,
                expected_state=expected_state,
                expected_generation=expected_generation,
                to_state=to_state,
                effect=effect,
                now=now,
                count_use=by is Actor.JOB and not authorized,
                authorized=authorized,
                outside_order=changes,
                overtakes=overtakes,
                callback=self._new_callback(uuid) if effect is Effect.REVOKE else None,
                key_id=key_id,
                starts_index=event_id if name == "index" else None,
            )
            entry = HistoryEntry(
                event_id, name, data, iso(now), Outcome.APPLIED, expected_state, to_state, generation, who
            )
            conflict = self.repo.apply(command, entry)
            if conflict is None:
                self._remember(uuid, to_state, generation)
                self._after_applied(uuid, name, event_id, data, generation)
                return Result(Outcome.APPLIED, uuid, name, event_id, None, expected_state, to_state)
            if conflict.duplicate:
                return self._redelivered(uuid, name, event_id, data)
            if conflict.key_revoked:
                known = conflict.job or self.repo.get(uuid)
                if known is None:
                    return Result("unrecorded", uuid, name, event_id, "no such job")
                reason = KEY_REVOKED_AFTER if authorized else KEY_REFUSED
                return self._record_refusal(known, event_id, name, data, who, reason, ignored=False)
            job = conflict.job
            if job is None:
                return Result("unrecorded", uuid, name, event_id, "no such job")
            self._remember(uuid, job.state, job.generation)
            # whether it changes the state is a question of the state it finds, not of our guess
            waits = ((row.target or job.state) != job.state or effect is not Effect.NONE) and not overtakes
            reason = self._refusal(job, row.sources, name, by, message.token, authorized, waits)
            if reason is not None:
                ignored = by is Actor.CALLBACK and reason.startswith("cannot ")
                return self._record_refusal(job, event_id, name, data, who, reason, ignored)
            expected_state, expected_generation = job.state, job.generation
        raise TransientError(f"job {uuid} kept changing while {name} {event_id} was applied")

    def _refusal(
        self,
        job: Job,
        sources: frozenset[State],
        name: str,
        by: Actor,
        token: str,
        authorized: bool,
        waits: bool | None,
    ) -> str | None:
        """Why the job as it is refuses this event, or None if only our expectation was stale.

        `waits`: the event changes the state outside the API's order (None: not known yet)."""
        if job.deleted:
            return "the job is deleted"
        if not authorized and by is Actor.KEY:
            if job.owner_key != producer_key_id(token):
                return "the producer key is not valid for this job (not its owner)"
        elif (
            not authorized
            and by is not Actor.ADMIN
            and job.tokens.authenticate(token, self.clock.now()) is not by
        ):
            return "the token is not valid for this job (wrong job, rotated out after its grace, or revoked)"
        if job.state not in sources:
            return f"cannot {name} a job in {job.state}"
        if waits and job.queued_events:
            return (
                f"{job.queued_events} events the API accepted for this job are still queued, and a state "
                "change sent straight to the queue would overtake them; send it through the API"
            )
        return None

    def _redelivered(
        self, uuid: str, name: str, event_id: str, data: dict[str, Any], *, seq: int | None = None
    ) -> Result:
        """Applied (or recorded) before: a redelivery. Follow-ups are idempotent; redo them in case the
        first delivery died between its write and them (rare: worth a read).

        A reset that keeps the archive completes at once only if nothing accepted after it was pending
        when it was applied. Once an event accepted after it has been applied (`applied_seq` past the
        reset's place `seq`), the first delivery found it pending and queued the completion behind it:
        the redelivery queues the same step (SQS drops the copy) instead of completing ahead of it."""
        if name == "index":
            # the first delivery may have died before queuing the indexer's first step
            job = self.repo.get(uuid)
            if (
                job is not None
                and not job.deleted
                and job.state is State.INDEXING
                and job.index_run == event_id
            ):
                self._after_applied(uuid, name, event_id, data, job.generation)
        if name in ("reset", "delete"):
            job = self.repo.get(uuid)
            if job is not None and job.last_event_id == event_id:
                if name == "reset" and data["keep_archive"] and seq is not None and job.applied_seq > seq:
                    self._send_erase(uuid, "keep", event_id, job.generation, step=1, since=self.clock.now())
                else:
                    self._after_applied(uuid, name, event_id, data, job.generation)
        return Result("duplicate", uuid, name, event_id, "already processed")

    def _new_callback(self, uuid: str) -> tuple[str, str]:
        """A reset's new callback token: (its nonce, its hash). The old one is revoked with it."""
        nonce = new_nonce()
        return nonce, hash_token(self.keyring().callback_token(uuid, nonce))

    def _record_refusal(
        self,
        job: Job,
        event_id: str,
        name: str,
        data: dict[str, Any],
        by: str | None,
        reason: str,
        ignored: bool,
    ) -> Result:
        outcome = Outcome.IGNORED if ignored else Outcome.REJECTED
        now = self.clock.now()
        entry = HistoryEntry(
            event_id, name, _trim(data), iso(now), outcome, job.state, job.state, job.generation, by, reason
        )
        recorded = self.repo.record(job.uuid, entry, now)
        return Result(
            outcome if recorded else "duplicate", job.uuid, name, event_id, reason, job.state, job.state
        )

    def _reject(self, uuid: str, event_id: str, name: Any, data: Any, reason: str, by: str | None) -> Result:
        job = self.repo.get(uuid)
        recorded_name = name if is_plain_name(name) else "(invalid)"
        if job is None:
            return Result("unrecorded", uuid, recorded_name, event_id, reason)
        clean = data if isinstance(data, dict) else {}
        return self._record_refusal(job, event_id, recorded_name, clean, by, reason, ignored=False)

    def _reject_malformed(self, body: Any, event_id: str, reason: str) -> Result:
        uuid = body.get("uuid") if isinstance(body, dict) else None
        if not isinstance(uuid, str) or not is_uuid(uuid):
            return Result("unrecorded", None, None, event_id, reason)
        own_id = body.get("event_id")
        if isinstance(own_id, str) and 0 < len(own_id) <= 128:
            event_id = own_id
        return self._reject(uuid.lower(), event_id, body.get("name"), body.get("data"), reason, None)

    def _reject_internal(self, uuid: Any, name: str, event_id: str, reason: str) -> Result:
        """A forged or garbled internal message (an erasure step, a deadline's fail), recorded when its
        job exists under the message's own id, never under the id of what it claims to be (an erasure
        step's body names the reset it continues, whose entry it must not take)."""
        if not isinstance(uuid, str) or not is_uuid(uuid):
            return Result("unrecorded", None, name, event_id, reason)
        return self._reject(uuid.lower(), event_id, name, {}, reason, None)

    # -- deadlines (SPEC section 3a) -----------------------------------------------------------------

    def sweep(self, limit: int = SWEEP_LIMIT) -> list[Overdue]:
        """Queue the system's `fail` of every job whose deadline has passed (the sweeper, once a minute).

        The jobs come from the sparse deadline indexes (never a scan). Each message names the deadline
        it enforces and is signed; its deduplication id is the deadline and the minute, so a sweep
        repeated within SQS's five-minute window adds nothing, and a job still overdue later (its
        fail refused because accepted events were still queued) is sent again."""
        if self.queue is None:
            raise TransientError("no queue to send the deadlines' fail events on")
        now = self.clock.now()
        reasons = (HEARTBEAT, TIMEOUT) if self.settings.timeout_index else (HEARTBEAT,)
        overdue = self.repo.overdue(int(now * 1000), limit, reasons)
        keyring = self.keyring()
        minute = int(now // 60)
        for job in overdue:
            body = DeadlineMessage.model_validate(
                {
                    "internal": "deadline",
                    "uuid": job.uuid,
                    "reason": job.reason,
                    "deadline": job.deadline,
                    "state": job.state,
                    "generation": job.generation,
                    "signature": keyring.deadline_signature(
                        job.uuid, job.reason, job.deadline, job.state, job.generation
                    ),
                }
            ).model_dump()
            dedup = f"{_deadline_event_id(job.reason, job.deadline)}:{minute}"
            self.queue.send(body, group_id=job.uuid, dedup_id=dedup)
        return overdue

    def _deadline_fail(self, body: dict[str, Any], fallback_event_id: str) -> Result:
        """The system's `fail` of a job that missed a deadline, through the same guarded write as any
        event: applied only if the job is still in the state and generation the sweeper saw, with the
        same deadline pending (an event applied meanwhile moved or cleared it: that event won), and
        the deadline has passed by this clock too. It is a state change outside the API's order, so it
        waits while accepted events are queued (they may restart the heartbeat or end the job): it goes
        back behind them, and overtakes them only once it has waited `order_wait_seconds` for them
        (then they are lost: they were never queued). Measured from the deadline instead, a backlog of
        that long would let it overtake events answered 202 after the sweep, queued behind it."""
        try:
            message = DeadlineMessage.model_validate(body)
        except ValidationError as error:
            return self._reject_internal(
                body.get("uuid"), "fail", fallback_event_id, f"malformed deadline message: {describe(error)}"
            )
        m = message
        if not self.keyring().deadline_signed(
            m.uuid, m.reason, m.deadline, m.state, m.generation, m.signature
        ):
            return self._reject_internal(
                m.uuid, "fail", fallback_event_id, "the deadline message's signature is not valid"
            )
        event_id = _deadline_event_id(m.reason, m.deadline)
        now = self.clock.now()
        if m.state not in State.__members__ or State(m.state) not in DEADLINE_STATES[m.reason]:
            return Result("duplicate", m.uuid, "fail", event_id, "no such deadline in that state")
        if m.deadline >= int(now * 1000):
            # this clock is behind the sweeper's: not due yet here (the next sweep sends it again)
            return Result("duplicate", m.uuid, "fail", event_id, "deadline not passed by this clock")
        state = State(m.state)
        data = {"reason": m.reason, "deadline": iso(m.deadline / 1000)}
        command = ApplyCommand(
            uuid=m.uuid,
            event_id=event_id,
            name="fail",
            data=data,
            by=Actor.ADMIN,
            token_hash=None,
            expected_state=state,
            expected_generation=m.generation,
            to_state=State.FAILED,
            effect=Effect.NONE,
            now=now,
            authorized=True,
            outside_order=True,
            overtakes=m.since is not None and now - m.since >= self.settings.order_wait_seconds,
            deadline=(m.reason, m.deadline),
        )
        entry = HistoryEntry(
            event_id, "fail", data, iso(now), Outcome.APPLIED, state, State.FAILED, m.generation, SYSTEM
        )
        conflict = self.repo.apply(command, entry)
        if conflict is None:
            self._remember(m.uuid, State.FAILED, m.generation)
            logger.info("job %s failed by the system: its %s deadline passed", m.uuid, m.reason)
            return Result(Outcome.APPLIED, m.uuid, "fail", event_id, m.reason, state, State.FAILED, True)
        if conflict.duplicate:
            return Result("duplicate", m.uuid, "fail", event_id, "already processed")
        job = conflict.job
        if (
            job is not None
            and not job.deleted
            and (job.state, job.generation) == (state, m.generation)
            and (job.heartbeat_due if m.reason == HEARTBEAT else job.timeout_due) == m.deadline
            and job.queued_events
        ):
            return self._requeue_deadline(m, event_id, now, job.queued_events)
        return Result(
            "duplicate", m.uuid, "fail", event_id, "superseded: the job moved on before its deadline"
        )

    def _requeue_deadline(self, m: DeadlineMessage, event_id: str, now: float, queued: int) -> Result:
        """The fail of a missed deadline, back to the end of its job's message group: behind the
        accepted events still queued, each of which may restart the heartbeat or end the job (it is
        dropped then). A pause first, growing with each wait, as for an accepted event (_requeue)."""
        if self.queue is None:
            raise TransientError("no queue to wait on for the accepted events")
        self.sleep(min(_FIRST_PAUSE * 2**m.waits, _LONGEST_PAUSE))
        since = m.since if m.since is not None else now
        body = {**m.model_dump(), "since": since, "waits": m.waits + 1}
        stamp = int(self.clock.now() * 1000)
        self.queue.send(body, group_id=m.uuid, dedup_id=f"{event_id}:wait:{stamp}")
        reason = f"waits for {queued} accepted events still queued"
        return Result(REQUEUED, m.uuid, "fail", event_id, reason)

    # -- follow-ups: archive erasure -----------------------------------------------------------------

    def _after_applied(
        self, uuid: str, name: str, event_id: str, data: dict[str, Any], generation: int
    ) -> None:
        # (the parsed reset and delete events always carry these flags: jobcore.models)
        if name == "reset":
            if data["keep_archive"]:
                self._complete_reset(uuid, event_id, generation, 0, None)
            else:
                self._send_erase(uuid, "reset", event_id, generation, step=0)
        elif name == "delete" and data["purge_archive"]:
            self._send_erase(uuid, "purge", event_id, generation, step=0)
        elif name == "index":
            self._send_index({"uuid": uuid, "event_id": event_id, "generation": generation, "step": 0})

    def _send_erase(
        self, uuid: str, purpose: str, event_id: str, generation: int, step: int, since: float | None = None
    ) -> None:
        if self.queue is None:
            raise TransientError("no queue to continue the archive erasure on")
        body = EraseMessage.model_validate(
            {
                "internal": "erase",
                "uuid": uuid,
                "purpose": purpose,
                "event_id": event_id,
                "generation": generation,
                "step": step,
                "since": since,
                "signature": self.keyring().erase_signature(uuid, purpose, event_id, generation),
            }
        ).model_dump()
        self.queue.send(body, group_id=uuid, dedup_id=f"{event_id}:erase:{step}")

    def _erase_step(
        self, body: dict[str, Any], fallback_event_id: str, deadline: Callable[[], bool]
    ) -> Result:
        try:
            message = EraseMessage.model_validate(body)
        except ValidationError as error:
            return self._reject_internal(
                body.get("uuid"), "erase", fallback_event_id, f"malformed erase message: {describe(error)}"
            )
        if not self.keyring().erase_signed(
            message.uuid, message.purpose, message.event_id, message.generation, message.signature
        ):
            return self._reject_internal(
                message.uuid, "erase", fallback_event_id, "the erase message's signature is not valid"
            )
        job = self.repo.get(message.uuid)
        current = (
            job is not None
            and job.last_event_id == message.event_id
            and (
                (
                    message.purpose in ("reset", "keep")
                    and job.state is State.RESET
                    and job.generation == message.generation
                )
                or (message.purpose == "purge" and job.deleted)
            )
        )
        if job is None or not current:
            # Superseded (ready, another reset, a re-creation): erasing now could destroy new outputs.
            return Result("duplicate", message.uuid, "erase", message.event_id, "erasure superseded")
        if message.purpose == "keep":
            return self._complete_reset(
                job.uuid, message.event_id, message.generation, message.step, message.since
            )
        if self.archive is None:
            raise TransientError("no archive store to erase with")
        deleted, done = self.archive.erase(job.archive_path, deadline)
        if deleted:
            self.repo.add_erased(job.uuid, deleted)
        logger.info("erased %d objects of job %s (step %d, done=%s)", deleted, job.uuid, message.step, done)
        if not done:
            self._send_erase(
                job.uuid, message.purpose, message.event_id, message.generation, message.step + 1
            )
            return Result(Outcome.APPLIED, job.uuid, "erase", message.event_id, f"{deleted} objects erased")
        if message.purpose == "reset":
            return self._complete_reset(job.uuid, message.event_id, message.generation, message.step, None)
        return Result(Outcome.APPLIED, job.uuid, "erase", message.event_id, "archive purged")

    def _complete_reset(
        self, uuid: str, reset_event_id: str, generation: int, step: int, since: float | None
    ) -> Result:
        """RESET -> CREATED with generation + 1, once, guarded by the reset that started it.

        It is a state change outside the API's order: while events accepted after the reset are still
        queued (a `ready`, another reset, a delete: whatever the API accepts in RESET), it waits behind
        them, and they supersede it; `since` is when it started waiting. An accepted event that has not
        arrived within `order_wait_seconds` (lost) is waited for no longer."""
        now = self.clock.now()
        waited_enough = since is not None and now - since >= self.settings.order_wait_seconds
        event_id = f"{reset_event_id}:{ERASED}"
        command = ApplyCommand(
            uuid=uuid,
            event_id=event_id,
            name=ERASED,
            data={},
            by=Actor.ADMIN,
            token_hash=None,
            expected_state=State.RESET,
            expected_generation=generation,
            to_state=State.CREATED,
            effect=Effect.NEXT_GENERATION,
            now=now,
            expected_last_event_id=reset_event_id,
            outside_order=True,
            overtakes=waited_enough,
        )
        entry = HistoryEntry(
            event_id,
            ERASED,
            {},
            iso(now),
            Outcome.APPLIED,
            State.RESET,
            State.CREATED,
            generation + 1,
            Actor.ADMIN,
            None,
        )
        conflict = self.repo.apply(command, entry)
        if conflict is None:
            self._remember(uuid, State.CREATED, generation + 1)
            return Result(Outcome.APPLIED, uuid, ERASED, event_id, None, State.RESET, State.CREATED)
        job = conflict.job
        if _waits_for_accepted(conflict, reset_event_id, generation):
            assert job is not None
            self._send_erase(uuid, "keep", reset_event_id, generation, step + 1, since or now)
            return Result(
                REQUEUED, uuid, ERASED, event_id, f"waiting for {job.queued_events} accepted events"
            )
        return Result("duplicate", uuid, ERASED, event_id, "reset already completed or superseded")

    # -- follow-ups: the indexer (SPEC section 3, `index`) --------------------------------------------

    def _send_index(self, fields: dict[str, Any], dedup: str | None = None) -> None:
        """Queue an indexer step (jobcore.models.IndexMessage), signed over all of its fields."""
        if self.queue is None:
            raise TransientError("no queue to continue the indexing on")
        message = IndexMessage.model_validate({"internal": "index", **fields, "signature": ""})
        body = {**message.model_dump(), "signature": self.keyring().index_signature(message.signed_fields())}
        dedup = dedup or f"{message.event_id}:index:{message.step}"
        self.queue.send(body, group_id=message.uuid, dedup_id=dedup)

    def _index_step(
        self, body: dict[str, Any], fallback_event_id: str, deadline: Callable[[], bool]
    ) -> Result:
        """One step of an index run: list the archive after the message's `start_after`, record each page
        in the run's manifest, until the listing ends (then the system's `indexed`) or the worker's time
        is up (then the next step, from the last key recorded). A step delivered again records the same
        items again (they are keyed by the run and the object's key): nothing is lost or counted twice.
        A run that is no longer the job's (an `index` sent again, `indexed` by hand, a fail, a reset or
        a delete came first) stops at its next step. A step that hands over restarts the job's heartbeat."""
        try:
            m = IndexMessage.model_validate(body)
        except ValidationError as error:
            return self._reject_internal(
                body.get("uuid"), "index", fallback_event_id, f"malformed index message: {describe(error)}"
            )
        if not self.keyring().index_signed(m.signed_fields(), m.signature):
            return self._reject_internal(
                m.uuid, "index", fallback_event_id, "the index message's signature is not valid"
            )
        job = self.repo.get(m.uuid)
        if (
            job is None
            or job.deleted
            or job.state is not State.INDEXING
            or job.generation != m.generation
            or job.index_run != m.event_id
        ):
            return Result("duplicate", m.uuid, "index", m.event_id, "indexing superseded")
        if m.done:
            return self._complete_index(m, m.count)
        if self.archive is None:
            raise TransientError("no archive store to index with")
        entry = self.repo.event(m.uuid, m.event_id)
        patterns = patterns_of(entry.data if entry is not None else None)
        after, count = m.start_after, m.count
        while True:
            outputs, after = self.archive.list_objects(job.archive_path, after, self.index_page)
            if patterns:
                outputs = [replace(o, level=patterns.level(o.key)) for o in outputs]
            self.repo.put_manifest(m.uuid, m.event_id, outputs)
            count += len(outputs)
            if after is None:
                logger.info("indexed %d objects of job %s (step %d, done)", count, m.uuid, m.step)
                return self._complete_index(m, count)
            if deadline():
                break
        # The system is working on the job: its heartbeat (SPEC section 3a) restarts, so that a large
        # archive's indexing is not taken for a silent job and failed. (A run no longer the job's
        # changes nothing here, and stops at its next step.)
        self.repo.index_progress(m.uuid, m.event_id, m.generation, self.clock.now())
        self._send_index(
            {
                "uuid": m.uuid,
                "event_id": m.event_id,
                "generation": m.generation,
                "step": m.step + 1,
                "start_after": after,
                "count": count,
            }
        )
        logger.info("indexed %d objects of job %s so far (step %d)", count, m.uuid, m.step)
        return Result(Outcome.APPLIED, m.uuid, "index", m.event_id, f"{count} objects indexed so far")

    def _complete_index(self, m: IndexMessage, count: int) -> Result:
        """The system's `indexed` (INDEXING -> FINISHED) at the end of a run, through the guarded write:
        the job still in INDEXING, in this generation, with this run its own; its manifest becomes the
        job's. Like the end of a reset, it is a state change outside the API's order: while accepted
        events are queued (an `update`, a `fail`, an `indexed` by hand ...), it goes back behind them,
        and overtakes them only once it has waited `order_wait_seconds` (then they are lost)."""
        now = self.clock.now()
        overtakes = m.since is not None and now - m.since >= self.settings.order_wait_seconds
        event_id = f"{m.event_id}:{INDEXED}"
        data = {"objects": count}
        command = ApplyCommand(
            uuid=m.uuid,
            event_id=event_id,
            name=INDEXED,
            data=data,
            by=Actor.ADMIN,
            token_hash=None,
            expected_state=State.INDEXING,
            expected_generation=m.generation,
            to_state=State.FINISHED,
            effect=Effect.NONE,
            now=now,
            authorized=True,
            outside_order=True,
            overtakes=overtakes,
            completes_index=(m.event_id, count),
        )
        entry = HistoryEntry(
            event_id, INDEXED, data, iso(now), Outcome.APPLIED, State.INDEXING, State.FINISHED,
            m.generation, SYSTEM,
        )  # fmt: skip
        conflict = self.repo.apply(command, entry)
        if conflict is None:
            self._remember(m.uuid, State.FINISHED, m.generation)
            return Result(
                Outcome.APPLIED, m.uuid, INDEXED, event_id, f"{count} objects", State.INDEXING, State.FINISHED
            )
        if conflict.duplicate:
            return Result("duplicate", m.uuid, INDEXED, event_id, "already processed")
        job = conflict.job
        if (
            job is not None
            and not job.deleted
            and (job.state, job.generation, job.index_run) == (State.INDEXING, m.generation, m.event_id)
            and job.queued_events
        ):
            if self.queue is None:
                raise TransientError("no queue to wait on for the accepted events")
            self.sleep(min(_FIRST_PAUSE * 2**m.waits, _LONGEST_PAUSE))
            stamp = int(self.clock.now() * 1000)
            self._send_index(
                {
                    **m.signed_fields(),
                    "count": count,
                    "done": True,
                    "since": m.since if m.since is not None else now,
                    "waits": m.waits + 1,
                },
                dedup=f"{event_id}:wait:{stamp}",
            )
            reason = f"waits for {job.queued_events} accepted events still queued"
            return Result(REQUEUED, m.uuid, INDEXED, event_id, reason)
        return Result("duplicate", m.uuid, INDEXED, event_id, "indexing superseded")


def _waits_for_accepted(conflict: Conflict, reset_event_id: str, generation: int) -> bool:
    """Whether a reset's completion was refused only because accepted events are still queued."""
    job = conflict.job
    return (
        not conflict.duplicate
        and job is not None
        and not job.deleted
        and job.state is State.RESET
        and job.generation == generation
        and job.last_event_id == reset_event_id
        and job.queued_events > 0
    )


def _late_what(by: Actor) -> str:
    """Why an accepted event is only recorded: a callback the job's state had left, or an event the
    job's own credential sent after the system failed it for a missed deadline (jobcore.access)."""
    return "a late callback" if by is Actor.CALLBACK else "late: the system failed the job at its deadline"


def _deadline_event_id(reason: str, deadline_ms: int) -> str:
    """The one event id of the system's fail for one deadline: a repeated sweep makes no second one."""
    return f"{reason}-{deadline_ms}"


def _trim(data: dict[str, Any]) -> dict[str, Any]:
    """Event data kept in a rejection record: as it came, unless it could not be stored or read back."""
    try:
        check_data(data)
    except (JobError, TypeError, ValueError, RecursionError):
        return {"_trimmed": True}
    return data


__all__ = ["REQUEUED", "CreatedJob", "InvalidRequest", "JobExists", "JobService", "Result"]
