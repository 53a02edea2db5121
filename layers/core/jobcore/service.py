"""The service that creates jobs and applies lifecycle events. Plain Python: every AWS call goes through
the ports it is given.

Applying an event is one conditional write (JobRepository.apply) whose condition is the guard: the
credential, the expected state and generation, and the event id not yet in the history. The worker
never reads before it writes; when its expectation of the state was stale, the failed write hands back
the item as it was, and the write is tried once more with the truth.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
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
from jobcore.models import (
    EraseMessage,
    JobSpec,
    QueueMessage,
    check_data,
    describe,
    event_data,
    parse_event,
)
from jobcore.ports import AdminKeys, ArchiveStore, EventQueue, JobRepository
from jobcore.records import (
    ApplyCommand,
    Effect,
    HistoryEntry,
    Job,
    Outcome,
)
from jobcore.settings import Settings
from jobcore.states import ERASED, Actor, State, is_plain_name, transition
from jobcore.tokens import (
    TokenState,
    credential_kind,
    hash_token,
    is_admin_token,
    new_callback_token,
    new_job_token,
)

logger = logging.getLogger("jobcore")

_MAX_ATTEMPTS: Final = 4
_STATE_CACHE_SIZE: Final = 10_000
_STATE_ORDER: Final = {state: i for i, state in enumerate(State)}


@dataclass(frozen=True, slots=True)
class CreatedJob:
    job: Job
    data: dict[str, Any]
    token: str
    callback_token: str


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one queue message. `status` is an Outcome value, or `duplicate` / `unrecorded`."""

    status: str
    uuid: str | None = None
    name: str | None = None
    event_id: str | None = None
    reason: str | None = None
    from_state: State | None = None
    to_state: State | None = None

    @property
    def applied(self) -> bool:
        return self.status == Outcome.APPLIED


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
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.queue = queue
        self.archive = archive
        self.admin_keys = admin_keys
        self.clock = clock or SystemClock()
        # Last known (state, generation) of recently seen jobs: a FIFO group is worked by one consumer
        # at a time, so this is almost always right, and a wrong guess costs one more write, not a bug.
        self._known: OrderedDict[str, tuple[State, int]] = OrderedDict()

    # -- creating ------------------------------------------------------------------------------------

    def create_job(self, spec: JobSpec) -> CreatedJob:
        """Create a job. Raises JobExists (details: uuid) if it exists, InvalidArchivePath, PayloadTooLarge."""
        check_data(spec.data)
        uuid = job_uuid(spec.pipeline_uuid, spec.data, spec.child_of)
        s = self.settings
        if spec.archive_path is None:
            archive_path = default_archive_path(s.archive_bucket, s.archive_prefix, spec.pipeline_uuid, uuid)
        else:
            archive_path = check_archive_path(
                spec.archive_path,
                bucket=s.archive_bucket,
                prefix=s.archive_prefix,
                pipeline_uuid=spec.pipeline_uuid,
                uuid=uuid,
            )
        now = self.clock.now()
        stamp = iso(now)
        token, callback_token = new_job_token(), new_callback_token()
        job = Job(
            uuid=uuid,
            pipeline_uuid=spec.pipeline_uuid,
            state=State.CREATED,
            generation=1,
            archive_path=archive_path,
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
        )
        self.repo.create(job, spec.data)
        return CreatedJob(job, spec.data, token, callback_token)

    # -- applying (the worker) -----------------------------------------------------------------------

    def handle_message(
        self, body: Any, *, fallback_event_id: str, deadline: Callable[[], bool] | None = None
    ) -> Result:
        """Apply one queue message. Permanent problems are recorded and returned, never raised.

        Raises TransientError (retry the message) for failures of the machinery.
        """
        if isinstance(body, dict) and body.get("internal") == "erase":
            return self._erase_step(body, fallback_event_id, deadline or (lambda: False))
        try:
            message = QueueMessage.model_validate(body)
        except ValidationError as error:
            return self._reject_malformed(body, fallback_event_id, f"malformed message: {describe(error)}")
        event_id = message.event_id or fallback_event_id
        try:
            event = parse_event({"name": message.name, "data": message.data})
            by, token_hash = self._credential(message.token)
            row = transition(event.name)
            if by not in row.actors:
                raise Forbidden(f"a {by} token may not send {event.name}")
        except JobError as error:
            return self._reject(message.uuid, event_id, message.name, message.data, error.message, None)
        return self._apply(message, event, event_id, by, token_hash)

    def _credential(self, token: str) -> tuple[Actor, str | None]:
        kind = credential_kind(token)
        if kind is Actor.ADMIN:
            if self.admin_keys is None or not is_admin_token(
                token, self.admin_keys.key(), self.clock.now(), self.settings.admin_token_lifetime
            ):
                raise Unauthorized("the admin token is not valid (expired window or wrong key)")
            return Actor.ADMIN, None
        if kind is None:
            raise Unauthorized("the token is not a pipelinejobs credential")
        return kind, hash_token(token)

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

    def _apply(
        self, message: QueueMessage, event: Any, event_id: str, by: Actor, token_hash: str | None
    ) -> Result:
        uuid, name = message.uuid, event.name
        row = transition(name)
        data = event_data(event)
        effect = {"reset": Effect.REVOKE, "ready": Effect.NEXT_GENERATION, "delete": Effect.DELETE}.get(
            name, Effect.NONE
        )
        expected_state, expected_generation = self._expectation(message, row.sources)
        for _ in range(_MAX_ATTEMPTS):
            if expected_state not in row.sources:
                # As far as we know the event is not allowed now. Confirm with a read before refusing
                # (refusals are off the hot path; applied events never read).
                known = self.repo.get(uuid)
                if known is None:
                    return Result("unrecorded", uuid, name, event_id, "no such job")
                self._remember(uuid, known.state, known.generation)
                reason = self._refusal(known, row.sources, name, by, token_hash, message.token)
                if reason is not None:
                    ignored = by is Actor.CALLBACK and reason.startswith("cannot ")
                    return self._record_refusal(known, event_id, name, data, by, reason, ignored)
                expected_state, expected_generation = known.state, known.generation
            now = self.clock.now()
            to_state = row.target or expected_state
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
                count_use=by is Actor.JOB,
            )
            entry = HistoryEntry(
                event_id, name, data, iso(now), Outcome.APPLIED, expected_state, to_state, generation, by
            )
            conflict = self.repo.apply(command, entry)
            if conflict is None:
                self._remember(uuid, to_state, generation)
                self._after_applied(uuid, name, event_id, data, generation)
                return Result(Outcome.APPLIED, uuid, name, event_id, None, expected_state, to_state)
            if conflict.duplicate:
                # Applied (or recorded) before: a redelivery. Follow-ups are idempotent; redo them in
                # case the first delivery died between its write and them (rare: worth a read).
                if name in ("reset", "delete"):
                    job = self.repo.get(uuid)
                    if job is not None and job.last_event_id == event_id:
                        self._after_applied(uuid, name, event_id, data, job.generation)
                return Result("duplicate", uuid, name, event_id, "already processed")
            job = conflict.job
            if job is None:
                return Result("unrecorded", uuid, name, event_id, "no such job")
            self._remember(uuid, job.state, job.generation)
            reason = self._refusal(job, row.sources, name, by, token_hash, message.token)
            if reason is not None:
                ignored = by is Actor.CALLBACK and reason.startswith("cannot ")
                return self._record_refusal(job, event_id, name, data, by, reason, ignored)
            expected_state, expected_generation = job.state, job.generation
        raise TransientError(f"job {uuid} kept changing while {name} {event_id} was applied")

    def _refusal(
        self, job: Job, sources: frozenset[State], name: str, by: Actor, token_hash: str | None, token: str
    ) -> str | None:
        """Why the job as it is refuses this event, or None if only our expectation was stale."""
        if job.deleted:
            return "the job is deleted"
        if by is not Actor.ADMIN and job.tokens.authenticate(token, self.clock.now()) is not by:
            return "the token is not valid for this job (wrong job, rotated out after its grace, or revoked)"
        if job.state not in sources:
            return f"cannot {name} a job in {job.state}"
        return None

    def _record_refusal(
        self,
        job: Job,
        event_id: str,
        name: str,
        data: dict[str, Any],
        by: Actor | None,
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

    def _reject(
        self, uuid: str, event_id: str, name: Any, data: Any, reason: str, by: Actor | None
    ) -> Result:
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

    def _reject_erase(self, uuid: Any, event_id: str, reason: str) -> Result:
        """A forged or garbled erasure step, recorded (when its job exists) under the message's own id:
        the event id in its body names the reset it claims to continue, whose entry it must not take."""
        if not isinstance(uuid, str) or not is_uuid(uuid):
            return Result("unrecorded", None, "erase", event_id, reason)
        return self._reject(uuid.lower(), event_id, "erase", {}, reason, None)

    # -- follow-ups: archive erasure -----------------------------------------------------------------

    def _after_applied(
        self, uuid: str, name: str, event_id: str, data: dict[str, Any], generation: int
    ) -> None:
        if name == "reset":
            if data.get("keep_archive"):
                self._complete_reset(uuid, event_id, generation)
            else:
                self._send_erase(uuid, "reset", event_id, generation, step=0)
        elif name == "delete" and data.get("purge_archive"):
            self._send_erase(uuid, "purge", event_id, generation, step=0)

    def _signature(self, uuid: str, purpose: str, event_id: str, generation: int) -> str:
        key = self.admin_keys.key() if self.admin_keys else ""
        message = f"erase:{uuid}:{purpose}:{event_id}:{generation}".encode()
        return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()

    def _send_erase(self, uuid: str, purpose: str, event_id: str, generation: int, step: int) -> None:
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
                "signature": self._signature(uuid, purpose, event_id, generation),
            }
        ).model_dump()
        self.queue.send(body, group_id=uuid, dedup_id=f"{event_id}:erase:{step}")

    def _erase_step(
        self, body: dict[str, Any], fallback_event_id: str, deadline: Callable[[], bool]
    ) -> Result:
        try:
            message = EraseMessage.model_validate(body)
        except ValidationError as error:
            return self._reject_erase(
                body.get("uuid"), fallback_event_id, f"malformed erase message: {describe(error)}"
            )
        expected = self._signature(message.uuid, message.purpose, message.event_id, message.generation)
        if not hmac.compare_digest(expected, message.signature):
            return self._reject_erase(
                message.uuid, fallback_event_id, "the erase message's signature is not valid"
            )
        job = self.repo.get(message.uuid)
        current = (
            job is not None
            and job.last_event_id == message.event_id
            and (
                (
                    message.purpose == "reset"
                    and job.state is State.RESET
                    and job.generation == message.generation
                )
                or (message.purpose == "purge" and job.deleted)
            )
        )
        if job is None or not current:
            # Superseded (ready, another reset, a re-creation): erasing now could destroy new outputs.
            return Result("duplicate", message.uuid, "erase", message.event_id, "erasure superseded")
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
            return self._complete_reset(job.uuid, message.event_id, message.generation)
        return Result(Outcome.APPLIED, job.uuid, "erase", message.event_id, "archive purged")

    def _complete_reset(self, uuid: str, reset_event_id: str, generation: int) -> Result:
        """RESET -> CREATED with generation + 1, once, guarded by the reset that started it."""
        now = self.clock.now()
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
        return Result("duplicate", uuid, ERASED, event_id, "reset already completed or superseded")


def _trim(data: dict[str, Any]) -> dict[str, Any]:
    """Event data kept in a rejection record: as it came, unless it could not be stored or read back."""
    try:
        check_data(data)
    except (JobError, TypeError, ValueError, RecursionError):
        return {"_trimmed": True}
    return data


__all__ = ["CreatedJob", "InvalidRequest", "JobExists", "JobService", "Result"]
