"""What the HTTP API does, as plain Python: who may do what to which job, and what goes on the queue.

The API never applies an event itself. It accepts it with ONE conditional write of the job item, whose
condition is its guard (the credential; the event allowed from the state the job will be in once every
event accepted before it is applied), and which gives the event its place in the job's order. It sends
the event, marked as accepted (jobcore.keyring), to the FIFO queue, and answers 202 at once; the worker
applies marked events in that order without checking their credential again, so a 202 is a promise
(SPEC section 3): only a reset or delete in between revokes it.

Per accepted event: one conditional write (UpdateItem), one SQS send, and one more write only when the
job token rotates. With a producer key the write is one TransactWriteItems instead: the job's update
(its condition adds `owner == <key id>`) and a ConditionCheck of the key's item (its hash, not revoked,
not expired), so revocation holds at once. A transaction returns no item when it succeeds, so the place
the event takes is pinned in the condition from the job as this container last saw it (a bounded
cache); a stale guess fails the write, whose returned item is the truth to try again with. A job not
seen yet costs one GetItem first. An Idempotency-Key adds a read (its event id depends on the job's incarnation) and
makes the write a transaction with the key's record. The admin key comes from the AdminKeys port
(cached by its adapter).

Methods return JSON-ready bodies (or `Accepted`) and raise jobcore.errors; the HTTP edge maps those
to status codes in one table. Nothing here logs, returns or raises a token, a hash or the admin key.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from jobcore.clock import Clock, SystemClock, iso, parse_iso
from jobcore.errors import (
    EventNotAllowed,
    EventNotFound,
    Forbidden,
    IdempotencyKeyReused,
    InvalidRequest,
    JobError,
    JobNotFound,
    KeyNotFound,
    NotConfigured,
    PayloadTooLarge,
    TooManyRotations,
    TransientError,
    Unauthorized,
)
from jobcore.ids import canonical_json, is_uuid
from jobcore.keyring import Keyring, acceptance_fields, data_digest, new_nonce
from jobcore.models import (
    MAX_DATA_BYTES,
    MAX_DATA_DEPTH,
    JobSpec,
    check_data,
    data_size,
    event_data,
    too_deep,
)
from jobcore.ports import AdminKeys, ArchiveReader, DeadLetters, EventQueue, JobRepository
from jobcore.records import (
    DELETING,
    Acceptance,
    IdempotencyRecord,
    Job,
    JobFilter,
    KeyCheck,
    ProducerKey,
)
from jobcore.service import JobService
from jobcore.settings import Settings
from jobcore.states import (
    Actor,
    State,
    allowed_events,
    event_for_status,
    may_send,
    parse_principal,
    principal,
    transition,
)
from jobcore.tokens import (
    DUMMY_KEY_HASH,
    KEY_REFUSED,
    MAX_GRACE_TOKENS,
    credential_kind,
    hash_token,
    is_admin_token,
    is_key_id,
    new_job_token,
    new_producer_key,
    producer_key_id,
    same_hash,
)

MAX_LIST_LIMIT: Final = 100
MAX_HISTORY_LIMIT: Final = 1000
# A job's outputs: pages like the jobs listing's (each output carries a link of ~1 KB), and links that
# work long enough to start a download, not long enough to be worth passing around.
MAX_OUTPUTS_LIMIT: Final = MAX_LIST_LIMIT
OUTPUT_URL_SECONDS: Final = 900
_MAX_ISSUE_ATTEMPTS: Final = 3
_EVENT_ID_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")
_IDEMPOTENCY_KEY: Final = re.compile(r"[A-Za-z0-9._~-]{1,64}")
# A pipeline id quoted back is at most 32 characters: shorter than any credential (a job token has 47, a
# producer key 60) and than a key's secret or a hash (43), so none can hide in one, whole or in part.
_SHOWN_PIPELINE: Final = re.compile(r"[A-Za-z0-9._:-]{1,32}")
# What POST /jobs accepts as a pipeline id or an input id (jobcore.models.Identifier): a key's scope
# holds only those, and child_of only those.
_PIPELINE_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_KNOWN_JOBS: Final = 10_000
MAX_KEY_LABEL: Final = 100
MAX_KEY_PIPELINES: Final = 100


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event accepted and queued. `token` is the job token to use next (None: not a job token)."""

    event_id: str
    name: str
    token: str | None
    rotated: bool = False
    retried: bool = False  # an Idempotency-Key seen before: the event it was first used for

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"event_id": self.event_id, "event": self.name}
        if self.token is not None:
            body["token"] = self.token
        return body


def callback_url(base_url: str, uuid: str, callback_token: str) -> str:
    return f"{base_url.rstrip('/')}/jobs/{uuid}/callback?token={callback_token}"


# Dead-lettered messages one look shows at most, and moves at most per redrive request (each is a
# receive, a send and a delete: 100 take a few seconds, well within API Gateway's 30 s).
MAX_DEAD_LETTER_PEEK: Final = 50
REDRIVE_PER_CALL: Final = 100

# Jobs one GET /jobs/counts reads at most (its index entries: ~0.1 RRU each at the item's size).
COUNT_LIMIT: Final = 100_000


class ApiService:
    """The HTTP API's operations on the ports. Every method raises JobError subclasses for the caller's
    mistakes (InvalidRequest, Unauthorized, Forbidden, JobNotFound, EventNotFound, KeyNotFound,
    JobExists, EventNotAllowed, PayloadTooLarge, IdempotencyKeyReused, TooManyRotations) and
    TransientError when the machinery fails.

    A producer key (SPEC section 4 item 4) acts on the jobs it created (`owner`): another owner's job
    is JobNotFound, exactly as an unknown one. An unknown, wrong, revoked or expired key is one
    Unauthorized message.

    Accepting an event is ONE conditional write on the job item (JobRepository.accept), not a read: its
    condition is the guard (the credential; the event allowed from the state the job will be in once
    every event accepted before it is applied), and it gives the event its place in the job's order.
    The event is then queued with the API's mark (jobcore.keyring), so the worker applies it in that
    order and does not check its credential again: an event answered 202 is applied (SPEC section 3).
    """

    def __init__(
        self,
        settings: Settings,
        repo: JobRepository,
        queue: EventQueue,
        admin_keys: AdminKeys,
        *,
        clock: Clock | None = None,
        archive: Callable[[], ArchiveReader] | None = None,
        dead_letters: Callable[[], DeadLetters] | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.queue = queue
        self.admin_keys = admin_keys
        # Built on the first outputs request: no other route pays for its client.
        self._archive_factory = archive
        self._archive: ArchiveReader | None = None
        self._dead_letters_factory = dead_letters
        self._dead_letters: DeadLetters | None = None
        self.clock = clock or SystemClock()
        self.policy = settings.rotation
        self.max_data_bytes = min(settings.max_data_bytes, MAX_DATA_BYTES)
        self._creator = JobService(settings, repo, admin_keys=admin_keys, clock=self.clock)
        # The jobs this container last saw (for a producer key's acceptance: see the module's doc).
        self._jobs: OrderedDict[str, Job] = OrderedDict()

    def keyring(self) -> Keyring:
        return self._creator.keyring()

    # -- credentials ---------------------------------------------------------------------------------

    def _kind(self, token: str | None) -> Actor:
        """The credential's kind, checked as far as it can be without the job. Raises Unauthorized."""
        if not token:
            raise Unauthorized("a credential is required: Authorization: Bearer <token>")
        kind = credential_kind(token)
        if kind is None:
            raise Unauthorized("the credential is not a pipelinejobs token")
        if kind is Actor.ADMIN and not is_admin_token(
            token, self.admin_keys.key(), self.clock.now(), self.settings.admin_token_lifetime
        ):
            raise Unauthorized("the admin token is not valid (expired window or wrong key)")
        return kind

    def _require_admin(self, token: str | None, what: str) -> None:
        if self._kind(token) is not Actor.ADMIN:
            raise Forbidden(f"{what} needs an admin token")

    def _producer(self, token: str) -> ProducerKey:
        """The producer key `token` is, if it is valid now: one consistent read of its item (the id in
        the key finds it), its hash compared in constant time -- against a dummy for an unknown id, so
        an unknown id and a wrong secret cost the same. Raises Unauthorized, never saying which part
        was wrong."""
        key_id = producer_key_id(token)
        stored = self.repo.get_key(key_id) if key_id else None
        matches = same_hash(hash_token(token), stored.key_hash if stored is not None else DUMMY_KEY_HASH)
        if stored is None or not matches or not stored.valid(self.clock.now()):
            raise Unauthorized(KEY_REFUSED)
        return stored

    def _job(self, uuid: str, token: str | None, *, deleted_for_admin: bool = False) -> tuple[Job, Actor]:
        """The job and the caller's role on it: one read (a producer key: two, the key's and the job's).
        Raises Unauthorized, JobNotFound (also for another owner's job: its existence is not revealed)."""
        kind = self._kind(token)
        uuid = _job_uuid(uuid)
        key = self._producer(token or "") if kind is Actor.KEY else None
        job = self.repo.get(uuid)
        if job is not None:
            self._seen(job)
        if job is None or (job.deleted and not (deleted_for_admin and kind is Actor.ADMIN)):
            raise JobNotFound(f"no job {uuid}")
        if key is not None:
            if job.owner_key != key.key_id:
                raise JobNotFound(f"no job {uuid}")
        elif kind is not Actor.ADMIN and job.tokens.authenticate(token or "", self.clock.now()) is not kind:
            raise _stale_token()
        return job, kind

    def _seen(self, job: Job) -> None:
        self._jobs[job.uuid] = job
        self._jobs.move_to_end(job.uuid)
        while len(self._jobs) > _KNOWN_JOBS:
            self._jobs.popitem(last=False)

    def _callback_url(self, job: Job, base_url: str) -> str | None:
        """The job's current callback URL, recomputed from its nonce (None: it has no callback token,
        or the admin key changed since it was issued)."""
        if job.callback_nonce is None or job.tokens.callback_hash is None:
            return None
        token = self.keyring().callback_token(job.uuid, job.callback_nonce)
        if not same_hash(hash_token(token), job.tokens.callback_hash):
            return None
        return callback_url(base_url, job.uuid, token)

    # -- jobs ----------------------------------------------------------------------------------------

    def create_job(self, token: str | None, spec: JobSpec, base_url: str) -> dict[str, Any]:
        """Create a job (admin, or a producer key for a pipeline in its scope: the job's owner).

        A key is read first (one GetItem: its scope decides), then the job is created as an admin's is.
        Raises Unauthorized, Forbidden, JobExists (details: uuid), InvalidArchivePath, PayloadTooLarge."""
        kind = self._kind(token)
        owner: str | None = None
        if kind is Actor.KEY:
            key = self._producer(token or "")
            if not key.covers(spec.pipeline_uuid):
                raise Forbidden(
                    f"this producer key may not create jobs for pipeline {_shown_pipeline(spec.pipeline_uuid)}"
                )
            owner = key.key_id
        elif kind is not Actor.ADMIN:
            raise Forbidden("creating a job needs an admin token or a producer key")
        self._check_size(spec.data)
        created = self._creator.create_job(spec, owner_key=owner)
        self._seen(created.job)  # (its place: what a key's first event is pinned to)
        url = callback_url(base_url, created.job.uuid, created.callback_token)
        return {
            "job": created.job.public(created.data, url, now=self.clock.now()),
            "token": created.token,
            "callback_url": url,
        }

    def get_job(self, uuid: str, token: str | None, base_url: str = "") -> dict[str, Any]:
        """The job with its data; `allowed_events` are those the caller's credential may send now (from
        the state the job will be in once its queued events are applied). An admin also gets the
        current `callback_url`."""
        job, actor = self._job(uuid, token)
        url = self._callback_url(job, base_url) if actor is Actor.ADMIN and base_url else None
        body = job.public(self.repo.get_data(job.uuid), url, now=self.clock.now())
        projected = job.projected_state
        body["allowed_events"] = (
            allowed_events(State(projected), actor) if projected in State.__members__ else []
        )
        return body

    def _job_filter(
        self,
        token: str | None,
        *,
        state: State | None,
        pipeline_uuid: str | None,
        tag: str | None,
        owner: str | None,
        updated_after: str | None,
        updated_before: str | None,
        child_of: str | None,
    ) -> JobFilter:
        """A listing's filters, checked, with a producer key held to its own jobs."""
        kind = self._kind(token)
        child_of = child_of or None
        if child_of is not None and not _PIPELINE_ID.fullmatch(child_of):
            raise InvalidRequest("child_of must be an input id: 1 to 128 of A-Z a-z 0-9 _ . : -")
        if owner is not None and owner != str(Actor.ADMIN) and not is_key_id(owner):
            raise InvalidRequest("owner must be a producer key's id or 'admin'")
        if kind is Actor.KEY:
            key = self._producer(token or "")
            if owner is not None and owner != key.key_id:
                raise Forbidden("a producer key lists only its own jobs")
            owner = key.key_id
        elif kind is not Actor.ADMIN:
            raise Forbidden("listing jobs needs an admin token or a producer key")
        where = JobFilter(
            owner=owner,
            state=state,
            pipeline_uuid=pipeline_uuid or None,
            tag=tag or None,
            updated_after=_timestamp(updated_after, "updated_after"),
            updated_before=_timestamp(updated_before, "updated_before", upper=True),
            child_of=child_of,
        )
        if where.updated_after and where.updated_before and where.updated_after > where.updated_before:
            raise InvalidRequest("updated_after is later than updated_before")
        return where

    def count_jobs(self, token: str | None, **filters: Any) -> dict[str, Any]:
        """Jobs per state for the listing's filters (admin: every job; a producer key: its own), from the
        listing's index, never a scan. It reads the matching jobs' index entries (the `state` attribute
        only), at most COUNT_LIMIT of them: `complete` says whether every matching job was counted."""
        where = self._job_filter(token, **filters)
        counts, complete = self.repo.count_jobs(where, COUNT_LIMIT)
        by_state = {str(s): counts.get(str(s), 0) for s in State}
        return {"counts": by_state, "total": sum(by_state.values()), "complete": complete}

    def list_jobs(
        self,
        token: str | None,
        *,
        state: State | None = None,
        pipeline_uuid: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        updated_after: str | None = None,
        updated_before: str | None = None,
        child_of: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Jobs newest first (by updated_at), through the table's indexes. An admin lists every job
        (`owner`: only those of a key's id, or `admin`); a producer key only its own.

        `child_of`: the jobs whose child_of holds this id (which jobs analysed this input?), newest
        first by creation (each job's current incarnation), with every other filter applied to the
        jobs read; such a page may hold fewer than `limit` jobs, even none, with a `next` cursor (see
        jobcore.adapters.dynamodb)."""
        where = self._job_filter(
            token,
            state=state,
            pipeline_uuid=pipeline_uuid,
            tag=tag,
            owner=owner,
            updated_after=updated_after,
            updated_before=updated_before,
            child_of=child_of,
        )
        page = self.repo.list_jobs(where, _limit(limit, MAX_LIST_LIMIT), cursor or None)
        now = self.clock.now()
        return {"jobs": [job.public(now=now) for job in page.jobs], "next": page.next}

    # -- outputs -------------------------------------------------------------------------------------

    def outputs(
        self, uuid: str, token: str | None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """A page of the job's outputs, in key order: each with its key relative to the archive path,
        size, modified time, ETag, `level` (when an index pattern gave it one) and `url`, a link that
        downloads it for OUTPUT_URL_SECONDS (signed by the store: it holds no credential of this API).

        After the system's `indexed` (SPEC section 3, `index`) they come from the manifest the run
        recorded (`source: manifest`); otherwise from a listing of the archive path's current objects
        (`source: listing`). Readable by whoever may read the job (its job or callback token, its
        owner's key, an admin); a deleted job is JobNotFound. Raises Unauthorized, JobNotFound,
        InvalidRequest (a limit out of range, a cursor not from this listing of this job),
        TransientError."""
        job, _ = self._job(uuid, token)
        archive = self._archive_reader()
        limit = _limit(limit, MAX_OUTPUTS_LIMIT)
        if job.manifest is not None:
            page = self.repo.manifest(job.uuid, job.manifest, limit, cursor or None)
        else:
            page = archive.list_outputs(job.archive_path, limit, cursor or None)
        outputs = []
        for output in page.outputs:
            shown: dict[str, Any] = {
                "key": output.key,
                "size": output.size,
                "modified": iso(output.modified),
                "etag": output.etag,
            }
            if output.level is not None:
                shown["level"] = output.level
            shown["url"] = archive.download_url(job.archive_path, output.key, OUTPUT_URL_SECONDS)
            outputs.append(shown)
        source = "manifest" if job.manifest is not None else "listing"
        return {"outputs": outputs, "next": page.next, "source": source}

    def _archive_reader(self) -> ArchiveReader:
        if self._archive is None:
            if self._archive_factory is None:
                raise TransientError("no archive store to list outputs with")
            self._archive = self._archive_factory()
        return self._archive

    # -- events --------------------------------------------------------------------------------------

    def submit_event(
        self, uuid: str, token: str | None, event: Any, idempotency_key: str | None = None
    ) -> Accepted:
        """Accept one lifecycle event (a model of jobcore.models.LifecycleEvent) and queue it.

        With `idempotency_key`, the same key on the same job always gives the same event, applied once,
        however often and however late the request is retried.

        Raises PayloadTooLarge, InvalidRequest (a malformed key), Unauthorized, JobNotFound, Forbidden
        (the credential may not send this event), EventNotAllowed (not from the state the job will be
        in), IdempotencyKeyReused (the key was used for another event), TransientError.
        """
        name = event.name
        data = event_data(event)
        self._check_size(data)
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise InvalidRequest("Idempotency-Key must be 1 to 64 URL-safe characters (A-Z a-z 0-9 - _ . ~)")
        kind = self._kind(token)
        uuid = _job_uuid(uuid)
        if not may_send(kind, name):
            self._job(uuid, token)  # no such job, or not its token: say so first
            raise Forbidden(f"a {_credential_name(kind)} may not send {name}")
        if idempotency_key is not None:
            return self._submit_keyed(uuid, token or "", kind, name, data, idempotency_key)
        if kind is Actor.KEY:
            return self._submit_with_key(uuid, token or "", name, data)
        now = self.clock.now()
        row = transition(name)
        result = self.repo.accept(self._acceptance(uuid, kind, token or "", name, row.sources, now))
        if not result.accepted:
            error = self._refused(result.job, kind, token or "", name, row.sources)
            if isinstance(error, EventNotAllowed) and _failed_by_deadline(result.job):
                self._record_late(uuid, kind, token or "", name, data, now)
                raise EventNotAllowed(
                    f"{error.message}: the system failed it when its {result.job.deadline_missed} "  # type: ignore[union-attr]
                    "deadline passed; this event is recorded in its history as ignored, not applied",
                    state=str(State.FAILED),
                    event=name,
                ) from None
            raise error
        assert result.job is not None
        return self._queue(result.job, kind, token or "", name, data, self.keyring().event_id(uuid), now)

    def _record_late(
        self, uuid: str, kind: Actor, token: str, name: str, data: dict[str, Any], now: float
    ) -> None:
        """An event refused because the system failed the job for a missed deadline (a `finish` that came
        too late, say): queued to be recorded as ignored in its place, so that what it reported (its
        data: the outputs, a status) is kept in the history, not lost with the 409."""
        result = self.repo.accept(self._acceptance(uuid, kind, token, name, None, now))
        if result.accepted and result.job is not None:
            event_id = self.keyring().event_id(uuid)
            # (no rotation: the 409 hands no token back, SPEC section 4)
            self._queue(result.job, kind, token, name, data, event_id, now, ignore=True, rotate=False)

    def _acceptance(
        self,
        uuid: str,
        kind: Actor,
        token: str,
        name: str,
        sources: frozenset[State] | None,
        now: float,
        **keyed: Any,
    ) -> Acceptance:
        row = transition(name)
        to_state = (
            None if sources is None else (DELETING if name == "delete" else row.target and str(row.target))
        )
        return Acceptance(
            uuid=uuid,
            by=kind,
            token_hash=None if kind is Actor.ADMIN else hash_token(token),
            sources=sources,
            to_state=to_state,
            next_generation=sources is not None and name == "ready",
            count_use=kind is Actor.JOB,
            now=now,
            key=KeyCheck(producer_key_id(token) or "", hash_token(token)) if kind is Actor.KEY else None,
            **keyed,
        )

    def _submit_with_key(self, uuid: str, token: str, name: str, data: dict[str, Any]) -> Accepted:
        """An event sent with a producer key: one transaction (the key's ConditionCheck and the job's
        update), pinned to the place this container last saw the job at (one GetItem first when it has
        not seen it). A stale guess fails the write and hands back the job as it is: tried again."""
        row = transition(name)
        key_id = producer_key_id(token) or ""
        job = self._jobs.get(uuid)
        for _ in range(_MAX_ISSUE_ATTEMPTS):
            if job is None:
                job = self.repo.get(uuid)
                if job is None:
                    self._producer(token)  # an unknown job: the key's own fault comes first
                    raise JobNotFound(f"no job {uuid}")
                self._seen(job)
            now = self.clock.now()
            place = (job.accepted_seq, job.projected_state, job.projected_generation)
            acceptance = self._acceptance(
                uuid,
                Actor.KEY,
                token,
                name,
                row.sources,
                now,
                expected_seq=place[0],
                expected_projection=(place[1], place[2]),
            )
            result = self.repo.accept(acceptance)
            if result.accepted:
                projected = str(row.target) if row.target is not None else job.projected_state
                self._seen(replace(job, accepted_seq=job.accepted_seq + 1, accepted_state=projected))
                return self._queue(job, Actor.KEY, token, name, data, self.keyring().event_id(uuid), now)
            if result.key_refused:
                raise Unauthorized(KEY_REFUSED)
            fresh = result.job
            if fresh is None or fresh.deleted or fresh.owner_key != key_id:
                self._jobs.pop(uuid, None)
                self._producer(token)
                raise JobNotFound(f"no job {uuid}")
            self._seen(fresh)
            if (fresh.accepted_seq, fresh.projected_state, fresh.projected_generation) == place:
                raise self._refused(fresh, Actor.KEY, token, name, row.sources)
            job = fresh  # our view was stale: again, from the job as it is
        raise TransientError("the job kept changing while the event was accepted; try again")

    def _refused(
        self, job: Job | None, kind: Actor, token: str, name: str, sources: frozenset[State] | None
    ) -> JobError | TransientError:
        """Why the acceptance write was refused, from the job as it was (SPEC section 5's order)."""
        if job is None or job.deleted:
            return JobNotFound(f"no job {job.uuid if job else 'with this uuid'}")
        now = self.clock.now()
        if kind is Actor.KEY:
            if job.owner_key != producer_key_id(token):
                return JobNotFound(f"no job {job.uuid}")
        elif kind is not Actor.ADMIN and job.tokens.authenticate(token, now) is not kind:
            return _stale_token()
        projected = job.projected_state
        if projected == DELETING:
            return JobNotFound(f"no job {job.uuid} (it is being deleted)")
        if sources is not None and projected not in {str(s) for s in sources}:
            queued = job.queued_events
            pending = f" (where its {queued} queued events will leave it)" if queued else ""
            return EventNotAllowed(
                f"cannot {name} a job in {projected}{pending}", state=projected, event=name
            )
        return TransientError("the job changed while the event was accepted; try again")

    def _queue(
        self,
        before: Job,
        kind: Actor,
        token: str,
        name: str,
        data: dict[str, Any],
        event_id: str,
        now: float,
        *,
        ignore: bool = False,
        rotate: bool = True,
    ) -> Accepted:
        """Send an event just accepted, in the place `before` leaves it; then the token to use next
        (`rotate`: rotated if due; else the current one, for an answer that hands no token back)."""
        expect = (before.projected_state, before.projected_generation)
        by = principal(kind, producer_key_id(token))
        self._send(before.uuid, by, token, name, data, event_id, now, before.accepted_seq + 1, expect, ignore)
        next_token, rotated = self._token_after(before, kind, token, name, expect[0], rotate=rotate)
        return Accepted(event_id, name, next_token, rotated)

    def _send(
        self,
        uuid: str,
        by: str,
        token: str,
        name: str,
        data: dict[str, Any],
        event_id: str,
        at: float,
        seq: int,
        expect: tuple[str, int],
        ignore: bool,
    ) -> None:
        """The accepted event, marked, to the job's message group."""
        fields: dict[str, Any] = {
            "expect": [expect[0], expect[1]],
            "seq": seq,
            "by": by,
            "at": at,
            "ignore": ignore,
        }
        mark = self.keyring().mark(
            acceptance_fields(
                uuid=uuid, event_id=event_id, name=name, data=data, expect=expect, seq=seq, by=by, at=at,
                ignore=ignore,
            )
        )  # fmt: skip
        body = {"uuid": uuid, "name": name, "data": data, "token": token, "event_id": event_id}
        self.queue.send({**body, **fields, "mark": mark}, group_id=uuid, dedup_id=event_id)

    def _token_after(
        self, before: Job, kind: Actor, token: str, name: str, from_state: str, *, rotate: bool = True
    ) -> tuple[str | None, bool]:
        """The job token to use next (None for any other credential: the caller keeps its own), and
        whether it is a new one."""
        if kind is not Actor.JOB:
            return None, False
        target = transition(name).target
        state_changing = target is not None and str(target) != from_state
        return self._next_token(before, token, state_changing=state_changing, rotate=rotate)

    def _submit_keyed(
        self, uuid: str, token: str, kind: Actor, name: str, data: dict[str, Any], key: str
    ) -> Accepted:
        """An event with an Idempotency-Key: a read (the key's event id depends on the job's incarnation,
        its place on the read), then the acceptance and the key's record in one transaction."""
        row = transition(name)
        request_hash = data_digest({"name": name, "data": data})
        for _ in range(_MAX_ISSUE_ATTEMPTS):
            job, _ = self._job(uuid, token)
            keyring = self.keyring()
            key_hash = data_digest(key)[:32]
            event_id = keyring.keyed_event_id(uuid, job.incarnation, key)
            projected = job.projected_state
            if projected not in {str(s) for s in row.sources} or projected == DELETING:
                earlier = self.repo.idempotency(uuid, job.incarnation, key_hash)
                if earlier is not None:
                    return self._retried(job, earlier, kind, token, name, data, request_hash)
                raise self._refused(job, kind, token, name, row.sources)
            now = self.clock.now()
            record = IdempotencyRecord(
                key_hash=key_hash,
                incarnation=job.incarnation,
                event_id=event_id,
                request_hash=request_hash,
                name=name,
                seq=job.accepted_seq + 1,
                expect_state=projected,
                expect_generation=job.projected_generation,
                at=now,
                by=principal(kind, producer_key_id(token)),
            )
            acceptance = self._acceptance(
                uuid, kind, token, name, row.sources, now, expected_seq=job.accepted_seq, idempotency=record
            )
            result = self.repo.accept(acceptance)
            if result.accepted:
                return self._queue(job, kind, token, name, data, event_id, now)
            if result.key_refused:
                raise Unauthorized(KEY_REFUSED)
            if result.retry_of is not None:
                return self._retried(
                    result.job or job, result.retry_of, kind, token, name, data, request_hash
                )
            if result.job is None or result.job.accepted_seq == job.accepted_seq:
                raise self._refused(result.job, kind, token, name, row.sources)
            # another event was accepted since the read: read again
        raise TransientError("the job kept changing while the event was accepted; try again")

    def _retried(
        self,
        job: Job,
        earlier: IdempotencyRecord,
        kind: Actor,
        token: str,
        name: str,
        data: dict[str, Any],
        request_hash: str,
    ) -> Accepted:
        """A retry of a keyed request: the same event, sent again as it was accepted (the queue and the
        worker drop the copy if the first one arrived), whatever the job's state is now."""
        if earlier.request_hash != request_hash:
            raise IdempotencyKeyReused(
                f"this Idempotency-Key was used on this job for another request (a {earlier.name} event); "
                "use a new key for a new event"
            )
        expect = (earlier.expect_state, earlier.expect_generation)
        by = earlier.by if parse_principal(earlier.by) is not None else str(kind)
        self._send(job.uuid, by, token, name, data, earlier.event_id, earlier.at, earlier.seq, expect, False)
        next_token, _ = self._token_after(job, kind, token, name, job.projected_state, rotate=False)
        return Accepted(earlier.event_id, name, next_token, retried=True)

    def callback(self, uuid: str, token: str | None, status: str | None, body: Any) -> Accepted:
        """A compute platform's notification, authorized by the callback token in its URL.

        The status (query, else body `status`) maps to an event (SPEC section 5); the body becomes the
        event's data, trimmed to the size limit. It is accepted even when the job's state will no
        longer allow it: then it is queued to be recorded as ignored, and the platform is not made to
        retry. Raises Unauthorized, JobNotFound, TransientError.
        """
        if not token or credential_kind(token) is not Actor.CALLBACK:
            raise Unauthorized("the callback URL's token is missing or is not a callback token")
        uuid = _job_uuid(uuid)
        if not status and isinstance(body, Mapping) and isinstance(body.get("status"), str):
            status = body["status"]
        status = (status or "").strip()[:128] or None
        name = event_for_status(status or "")
        data = trim_callback_data(body, status, self.max_data_bytes)
        keyring, now = self.keyring(), self.clock.now()
        sources = transition(name).sources
        result = self.repo.accept(self._acceptance(uuid, Actor.CALLBACK, token, name, sources, now))
        ignore = False
        if not result.accepted:
            error = self._refused(result.job, Actor.CALLBACK, token, name, sources)
            if not isinstance(error, EventNotAllowed):
                raise error
            # late: the job's state will have left the states this status applies to
            result = self.repo.accept(self._acceptance(uuid, Actor.CALLBACK, token, name, None, now))
            if not result.accepted:
                raise self._refused(result.job, Actor.CALLBACK, token, name, None)
            ignore = True
        assert result.job is not None
        return self._queue(
            result.job, Actor.CALLBACK, token, name, data, keyring.event_id(uuid), now, ignore=ignore
        )

    def history(
        self, uuid: str, token: str | None, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        """The job's events, oldest first. Readable by an admin after the job is deleted."""
        job, _ = self._job(uuid, token, deleted_for_admin=True)
        page = self.repo.history(job.uuid, _limit(limit, MAX_HISTORY_LIMIT), cursor or None)
        return {"events": [entry.public() for entry in page.entries], "next": page.next}

    def event_status(self, uuid: str, event_id: str, token: str | None) -> dict[str, Any]:
        """One event: its history entry with `status` applied/ignored/rejected, or `queued`.

        The API keeps no record per event it queues (that would cost a write per event), but its event
        ids carry a MAC (jobcore.keyring): an id not in the history yet is `queued` if the API issued it
        for this job. Raises EventNotFound for any other id.
        """
        job, _ = self._job(uuid, token, deleted_for_admin=True)
        if not 0 < len(event_id) <= 128 or not set(event_id) <= _EVENT_ID_CHARS:
            raise EventNotFound("no such event id")
        entry = self.repo.event(job.uuid, event_id)
        if entry is not None:
            return {"status": str(entry.outcome), **entry.public()}
        if not self.keyring().issued(job.uuid, event_id):
            raise EventNotFound("no event with this id was accepted for this job")
        return {"event_id": event_id, "status": "queued"}

    # -- tokens --------------------------------------------------------------------------------------

    def issue_token(
        self, uuid: str, token: str | None, base_url: str, *, rotate_callback: bool = False
    ) -> dict[str, Any]:
        """Rotate the job token now (job token or admin) and return the new one.

        An admin gets a fresh token for any job (a new chain: one that was lost is no use to anyone
        holding the old), and the job's current `callback_url`; with `rotate_callback`, a new callback
        token replaces the old one, which stops working at once. Raises Unauthorized, Forbidden (a
        callback token; a job token asking for a new callback URL), JobNotFound, TooManyRotations,
        TransientError.
        """
        job, actor = self._job(uuid, token)
        if actor is Actor.CALLBACK:
            raise Forbidden("a callback token cannot rotate the job token")
        if rotate_callback and actor is not Actor.ADMIN:
            raise Forbidden("issuing a new callback URL needs an admin token")
        for _ in range(_MAX_ISSUE_ATTEMPTS):
            now = self.clock.now()
            if not job.tokens.may_rotate(now):
                wait = max(1, math.ceil(job.tokens.grace_frees_at(now) - now))
                raise TooManyRotations(
                    f"{MAX_GRACE_TOKENS} rotated-out tokens of this job are still in their grace period; "
                    f"a new rotation is possible in {wait} s",
                    retry_after=wait,
                )
            current = (
                None if actor is Actor.ADMIN else job.tokens.current_from(token or "", self._successor, now)
            )
            fresh = self.keyring().next_job_token(current) if current else new_job_token()
            tokens = job.tokens.rotated(fresh, now, self.policy)
            nonce = None
            if rotate_callback or (actor is Actor.ADMIN and job.tokens.callback_hash is None):
                nonce = new_nonce()
                tokens = replace(
                    tokens, callback_hash=hash_token(self.keyring().callback_token(job.uuid, nonce))
                )
            if self.repo.replace_tokens(job.uuid, job.tokens.token_hash, tokens, callback_nonce=nonce):
                body: dict[str, Any] = {"token": fresh}
                if actor is Actor.ADMIN:
                    issued = replace(job, tokens=tokens, callback_nonce=nonce or job.callback_nonce)
                    body["callback_url"] = self._callback_url(issued, base_url)
                return body
            # Rotated concurrently: rotate again from what is current now.
            job, actor = self._job(job.uuid, token)
        raise TransientError("the job token kept changing while it was rotated; try again")

    # -- producer keys (admin) ------------------------------------------------------------------------

    def create_key(
        self,
        token: str | None,
        *,
        label: str,
        pipelines: list[str],
        expires_at: str | float | None = None,
    ) -> dict[str, Any]:
        """Issue a producer key (admin). The key is in this answer only; its hash is stored.

        `expires_at`: ISO-8601 (with a zone, or UTC) or epoch seconds, later than now; None: never.
        Raises Forbidden, InvalidRequest, TransientError."""
        self._require_admin(token, "managing producer keys")
        label = label.strip()
        if not label or len(label) > MAX_KEY_LABEL:
            raise InvalidRequest(f"label must be 1 to {MAX_KEY_LABEL} characters")
        scope = tuple(dict.fromkeys(p.strip() for p in pipelines))
        if (
            not scope
            or len(scope) > MAX_KEY_PIPELINES
            or any(not _PIPELINE_ID.fullmatch(p) for p in scope if p != "*")
        ):
            raise InvalidRequest(
                f"pipelines must list 1 to {MAX_KEY_PIPELINES} pipeline ids (1 to 128 of A-Z a-z 0-9 _ . : -, "
                'as a job\'s pipeline_uuid), or ["*"]'
            )
        if "*" in scope and len(scope) > 1:
            raise InvalidRequest('pipelines is either ["*"] (every pipeline) or a list of pipeline ids')
        now = self.clock.now()
        expiry = _expiry(expires_at, now)
        for _ in range(_MAX_ISSUE_ATTEMPTS):
            key_id, key = new_producer_key()
            stored = ProducerKey(key_id, hash_token(key), label, scope, now, expiry)
            if self.repo.put_key(stored):
                return {"key": key, **_key_view(stored, now)}
        raise TransientError("no free key id was found; try again")

    def list_keys(self, token: str | None) -> dict[str, Any]:
        """Every producer key, newest first (admin): never a key or its hash."""
        self._require_admin(token, "managing producer keys")
        now = self.clock.now()
        return {"keys": [_key_view(key, now) for key in self.repo.list_keys()]}

    def revoke_key(self, token: str | None, key_id: str) -> dict[str, Any]:
        """Revoke a producer key (admin), at once: the API refuses it from now on, and the worker rejects
        the events accepted with it and not applied yet. Idempotent. Raises KeyNotFound."""
        self._require_admin(token, "managing producer keys")
        revoked = self.repo.revoke_key(key_id, self.clock.now()) if is_key_id(key_id) else None
        if revoked is None:
            raise KeyNotFound("no producer key with this id")
        return _key_view(revoked, self.clock.now())

    # -- the dead-letter queue (admin) -----------------------------------------------------------------

    def dead_letters(self, token: str | None, limit: int = 10) -> dict[str, Any]:
        """The dead-letter queue: about how many messages wait in it, and up to `limit` of them
        (described: job, event, receives, sent; never a token), left where they are. Admin only.
        Raises Unauthorized, Forbidden, InvalidRequest, NotConfigured, TransientError."""
        self._require_admin(token, "the dead-letter queue")
        limit = _limit(limit, MAX_DEAD_LETTER_PEEK)
        queue = self._dead_letter_queue()
        waiting = queue.depth()
        return {"approximate_count": waiting, "messages": queue.peek(limit) if waiting else []}

    def redrive(self, token: str | None, limit: int = REDRIVE_PER_CALL) -> dict[str, Any]:
        """Move up to `limit` dead-lettered messages back to the events queue (each event is still
        applied at most once: the worker knows its id). Admin only; call again while `remaining`.
        Raises Unauthorized, Forbidden, InvalidRequest, NotConfigured, TransientError."""
        self._require_admin(token, "the dead-letter queue")
        limit = _limit(limit, REDRIVE_PER_CALL)
        queue = self._dead_letter_queue()
        moved = queue.redrive(limit)
        return {"moved": moved, "remaining": queue.depth()}

    def _dead_letter_queue(self) -> DeadLetters:
        if self._dead_letters is None:
            if self._dead_letters_factory is None:
                raise NotConfigured("this deployment names no dead-letter queue (DEAD_LETTER_QUEUE_URL)")
            self._dead_letters = self._dead_letters_factory()
        return self._dead_letters

    def _successor(self, token: str) -> str:
        return self.keyring().next_job_token(token)

    def _next_token(self, job: Job, token: str, *, state_changing: bool, rotate: bool) -> tuple[str, bool]:
        """The job token to hand back after an accepted use (SPEC section 4), from the job as it was.

        A rotated-out token still in its grace period gets the current token back: it is never
        rotated again, nor does its use push any other token out of its grace. The current token
        rotates when a rotation is due, to its successor on the chain, unless MAX_GRACE_TOKENS are in
        grace already (then it rotates later). If another request rotates first, the token it had is
        handed back: it is in its grace period, and the next request made with it gets the newest.
        """
        now = self.clock.now()
        current = job.tokens.current_from(token, self._successor, now)
        if current is None:
            return token, False  # valid, but the current token is not on its chain: keep using it
        due = self.policy.due(job.tokens, now, state_changing=state_changing)
        if not rotate or not due or not job.tokens.may_rotate(now):
            return current, False
        fresh = self._successor(current)
        try:
            if self.repo.replace_tokens(
                job.uuid, job.tokens.token_hash, job.tokens.rotated(fresh, now, self.policy)
            ):
                return fresh, True
        except TransientError:
            pass  # the event is queued already; the token rotates at a later use
        return current, False

    # -- helpers -------------------------------------------------------------------------------------

    def _check_size(self, data: dict[str, Any]) -> None:
        check_data(data)
        size = data_size(data)
        if size > self.max_data_bytes:
            raise PayloadTooLarge(f"data is {size} bytes serialized; the limit is {self.max_data_bytes}")


def _failed_by_deadline(job: Job | None) -> bool:
    """The job is FAILED by the system for a missed deadline, and nothing queued will move it."""
    return job is not None and job.deadline_missed is not None and job.projected_state == str(State.FAILED)


def _credential_name(kind: Actor) -> str:
    return "producer key" if kind is Actor.KEY else f"{kind} token"


def _shown_pipeline(pipeline_uuid: str) -> str:
    """A pipeline id quoted back in a message: short plain ids only, never one that could hold a
    credential (a key with a character added, or a key's secret alone, is no credential's shape)."""
    if _SHOWN_PIPELINE.fullmatch(pipeline_uuid):
        return repr(pipeline_uuid)
    return "(not shown)"


def _key_view(key: ProducerKey, now: float) -> dict[str, Any]:
    """A producer key as an admin sees it: never the key, never its hash."""
    return {
        "id": key.key_id,
        "label": key.label,
        "pipelines": list(key.pipelines),
        "expires_at": iso(key.expires_at) if key.expires_at is not None else None,
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at) if key.revoked_at is not None else None,
        "status": key.status(now),
    }


def _expiry(value: str | float | None, now: float) -> float | None:
    """A key's expiry in epoch seconds, from ISO-8601 or epoch seconds. Raises InvalidRequest."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRequest("expires_at must be an ISO-8601 timestamp or epoch seconds")
    if isinstance(value, (int, float)):
        stamp = float(value)
    else:
        try:
            stamp = float(value) if re.fullmatch(r"\d+(\.\d+)?", value.strip()) else parse_iso(value)
        except ValueError:
            raise InvalidRequest(
                "expires_at must be an ISO-8601 timestamp such as 2026-12-31T00:00:00Z, or epoch seconds"
            ) from None
    if not math.isfinite(stamp) or stamp <= now:
        raise InvalidRequest("expires_at must be in the future")
    return stamp


def _stale_token() -> Unauthorized:
    return Unauthorized(
        "the token is not valid for this job (another job's, rotated out after its grace period, "
        "or revoked by a reset)"
    )


def _job_uuid(uuid: str) -> str:
    """The uuid of a path, lowercased. Raises JobNotFound for anything that is not a UUID."""
    if not is_uuid(uuid):
        # (never quoted back: whatever was pasted in the path may be a credential)
        raise JobNotFound("no job with this id: a job's id is a UUID")
    return uuid.lower()


def trim_callback_data(body: Any, status: str | None, limit: int = MAX_DATA_BYTES) -> dict[str, Any]:
    """A compute platform's body as event data, at most `limit` bytes serialized.

    A JSON object is kept as it is; anything else (a list, a string, a form) is kept under `body`.
    When the platform did not put the status in the body (it came in the query), it is added as
    `status`, so the history shows what was reported. When too large, the largest top-level values
    are dropped, largest first, and `_trimmed` lists what was dropped and the original size.
    """
    data: dict[str, Any] = (
        dict(body) if isinstance(body, Mapping) else ({} if body is None else {"body": body})
    )
    if status is not None and "status" not in data:
        data["status"] = status
    if too_deep(data):
        return {"_trimmed": {"reason": f"nested more than {MAX_DATA_DEPTH} levels deep"}, "status": status}
    try:
        size = data_size(data)
    except (TypeError, ValueError, RecursionError):
        return {"_trimmed": {"reason": "not serializable"}, "status": status}
    if size <= limit:
        return data
    sizes = {key: len(canonical_json(value).encode("utf-8")) for key, value in data.items()}
    dropped: list[str] = []
    for key in sorted(sizes, key=lambda k: (k == "status", -sizes[k])):
        del data[key]
        dropped.append(key)
        marker = {"dropped": dropped, "original_bytes": size}
        if data_size({**data, "_trimmed": marker}) <= limit:
            return {**data, "_trimmed": marker}
    return {"_trimmed": {"dropped": dropped[-50:], "original_bytes": size}, "status": status}


def _limit(limit: int, maximum: int) -> int:
    if limit < 1 or limit > maximum:
        raise InvalidRequest(f"limit must be between 1 and {maximum}")
    return limit


def _timestamp(text: str | None, name: str, *, upper: bool = False) -> str | None:
    """An ISO-8601 bound as stored (UTC, milliseconds). A bare date as an upper bound means its end."""
    if not text:
        return None
    try:
        stamp = parse_iso(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO-8601 timestamp such as 2026-01-01T00:00:00Z") from None
    if upper and len(text) == 10:
        stamp += 86_400 - 0.001
    return iso(stamp)
