"""What the HTTP API does, as plain Python: who may do what to which job, and what goes on the queue.

The API never applies an event itself. It checks what it can check with ONE read of the job (the
credential, who may send the event, whether the job's current state allows it), sends the event to the
FIFO queue for the worker, whose conditional write is the real guard, and answers at once. The only
write on the event path is the token rotation, and only when a rotation is due (SPEC section 4).

Per accepted event: one strongly consistent read, one SQS send, and one conditional write only when
the job token rotates. The admin key comes from the AdminKeys port (cached by its adapter).

Methods return JSON-ready bodies (or `Accepted`) and raise jobcore.errors; the HTTP edge maps those
to status codes in one table. Nothing here logs, returns or raises a token, a hash or the admin key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from jobcore.clock import Clock, SystemClock, iso, parse_iso
from jobcore.errors import (
    EventNotFound,
    Forbidden,
    InvalidRequest,
    JobNotFound,
    PayloadTooLarge,
    TransientError,
    Unauthorized,
)
from jobcore.ids import canonical_json, is_uuid, new_event_id
from jobcore.models import (
    MAX_DATA_BYTES,
    MAX_DATA_DEPTH,
    JobSpec,
    check_data,
    data_size,
    event_data,
    too_deep,
)
from jobcore.ports import AdminKeys, EventQueue, JobRepository
from jobcore.records import Job, JobFilter
from jobcore.service import JobService
from jobcore.settings import Settings
from jobcore.states import (
    Actor,
    State,
    allowed_events,
    event_for_status,
    may_send,
    next_state,
    transition,
)
from jobcore.tokens import (
    credential_kind,
    hash_token,
    is_admin_token,
    new_callback_token,
    same_hash,
)

MAX_LIST_LIMIT: Final = 100
MAX_HISTORY_LIMIT: Final = 1000
_MAX_ISSUE_ATTEMPTS: Final = 3
_EVENT_ID_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")


@dataclass(frozen=True, slots=True)
class Accepted:
    """An event accepted and queued. `token` is the credential to use next (None: the caller's own)."""

    event_id: str
    name: str
    token: str | None
    rotated: bool = False

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"event_id": self.event_id, "event": self.name}
        if self.token is not None:
            body["token"] = self.token
        return body


def callback_url(base_url: str, uuid: str, callback_token: str) -> str:
    return f"{base_url.rstrip('/')}/jobs/{uuid}/callback?token={callback_token}"


class ApiService:
    """The HTTP API's operations on the ports. Every method raises JobError subclasses for the caller's
    mistakes (InvalidRequest, Unauthorized, Forbidden, JobNotFound, EventNotFound, JobExists,
    EventNotAllowed, PayloadTooLarge) and TransientError when the machinery fails."""

    def __init__(
        self,
        settings: Settings,
        repo: JobRepository,
        queue: EventQueue,
        admin_keys: AdminKeys,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.queue = queue
        self.admin_keys = admin_keys
        self.clock = clock or SystemClock()
        self.policy = settings.rotation
        self.max_data_bytes = min(settings.max_data_bytes, MAX_DATA_BYTES)
        self._creator = JobService(settings, repo, clock=self.clock)

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

    def _job(self, uuid: str, token: str | None, *, deleted_for_admin: bool = False) -> tuple[Job, Actor]:
        """The job and the caller's role on it: one read. Raises Unauthorized, JobNotFound."""
        kind = self._kind(token)
        if not is_uuid(uuid):
            raise JobNotFound(f"no job {uuid[:64]!r}")
        uuid = uuid.lower()
        job = self.repo.get(uuid)
        if job is None or (job.deleted and not (deleted_for_admin and kind is Actor.ADMIN)):
            raise JobNotFound(f"no job {uuid}")
        if kind is not Actor.ADMIN and job.tokens.authenticate(token or "", self.clock.now()) is not kind:
            raise Unauthorized(
                "the token is not valid for this job (another job's, rotated out after its grace period, "
                "or revoked by a reset)"
            )
        return job, kind

    # -- jobs ----------------------------------------------------------------------------------------

    def create_job(self, token: str | None, spec: JobSpec, base_url: str) -> dict[str, Any]:
        """Create a job (admin). Raises JobExists (details: uuid), InvalidArchivePath, PayloadTooLarge."""
        self._require_admin(token, "creating a job")
        self._check_size(spec.data)
        created = self._creator.create_job(spec)
        url = callback_url(base_url, created.job.uuid, created.callback_token)
        return {
            "job": created.job.public(created.data, url),
            "token": created.token,
            "callback_url": url,
        }

    def get_job(self, uuid: str, token: str | None) -> dict[str, Any]:
        """The job with its data; `allowed_events` are those the caller's credential may send now."""
        job, actor = self._job(uuid, token)
        body = job.public(self.repo.get_data(job.uuid))
        body["allowed_events"] = allowed_events(job.state, actor)
        return body

    def list_jobs(
        self,
        token: str | None,
        *,
        state: State | None = None,
        pipeline_uuid: str | None = None,
        tag: str | None = None,
        updated_after: str | None = None,
        updated_before: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Jobs newest first (by updated_at), through the table's indexes. Admin only."""
        self._require_admin(token, "listing jobs")
        where = JobFilter(
            state=state,
            pipeline_uuid=pipeline_uuid or None,
            tag=tag or None,
            updated_after=_timestamp(updated_after, "updated_after"),
            updated_before=_timestamp(updated_before, "updated_before", upper=True),
        )
        if where.updated_after and where.updated_before and where.updated_after > where.updated_before:
            raise InvalidRequest("updated_after is later than updated_before")
        page = self.repo.list_jobs(where, _limit(limit, MAX_LIST_LIMIT), cursor or None)
        return {"jobs": [job.public() for job in page.jobs], "next": page.next}

    # -- events --------------------------------------------------------------------------------------

    def submit_event(self, uuid: str, token: str | None, event: Any) -> Accepted:
        """Check and queue one lifecycle event (a model of jobcore.models.LifecycleEvent).

        Raises PayloadTooLarge, Unauthorized, JobNotFound, Forbidden (the credential may not send this
        event), EventNotAllowed (not from the job's current state), TransientError.
        """
        name = event.name
        data = event_data(event)
        self._check_size(data)
        job, actor = self._job(uuid, token)
        if not may_send(actor, name):
            raise Forbidden(f"a {actor} token may not send {name}")
        target = next_state(job.state, name)  # raises EventNotAllowed
        next_token = token
        rotated = False
        if actor is Actor.JOB:
            state_changing = transition(name).target is not None and target != job.state
            next_token, rotated = self._rotate_if_due(job, token or "", state_changing=state_changing)
        event_id = self._enqueue(job, name, data, token or "")
        return Accepted(event_id, name, next_token, rotated)

    def callback(self, uuid: str, token: str | None, status: str | None, body: Any) -> Accepted:
        """A compute platform's notification, authorized by the callback token in its URL.

        The status (query, else body `status`) maps to an event (SPEC section 5); the body becomes the
        event's data, trimmed to the size limit. It is queued even when the job's state no longer
        allows it: the worker records it as ignored, and the platform is not made to retry.
        Raises Unauthorized, JobNotFound, TransientError.
        """
        if not token or credential_kind(token) is not Actor.CALLBACK:
            raise Unauthorized("the callback URL's token is missing or is not a callback token")
        job, _ = self._job(uuid, token)
        if not status and isinstance(body, Mapping) and isinstance(body.get("status"), str):
            status = body["status"]
        status = (status or "").strip()[:128] or None
        name = event_for_status(status or "")
        data = trim_callback_data(body, status, self.max_data_bytes)
        event_id = self._enqueue(job, name, data, token)
        return Accepted(event_id, name, None)

    def history(
        self, uuid: str, token: str | None, limit: int = 100, cursor: str | None = None
    ) -> dict[str, Any]:
        """The job's events, oldest first. Readable by an admin after the job is deleted."""
        job, _ = self._job(uuid, token, deleted_for_admin=True)
        page = self.repo.history(job.uuid, _limit(limit, MAX_HISTORY_LIMIT), cursor or None)
        return {"events": [entry.public() for entry in page.entries], "next": page.next}

    def event_status(self, uuid: str, event_id: str, token: str | None) -> dict[str, Any]:
        """One event: its history entry with `status` applied/ignored/rejected, or `queued`.

        The API keeps no record of what it queued (that would cost a write per event), so an event id
        that is not in the history yet is reported `queued`. Raises EventNotFound for an id that no
        event can have.
        """
        job, _ = self._job(uuid, token, deleted_for_admin=True)
        if not 0 < len(event_id) <= 128 or not set(event_id) <= _EVENT_ID_CHARS:
            raise EventNotFound("no such event id")
        entry = self.repo.event(job.uuid, event_id)
        if entry is None:
            return {"event_id": event_id, "status": "queued"}
        return {"status": str(entry.outcome), **entry.public()}

    # -- tokens --------------------------------------------------------------------------------------

    def issue_token(self, uuid: str, token: str | None, base_url: str) -> dict[str, Any]:
        """Rotate the job token now (job token or admin) and return the new one.

        An admin may do this for any job, including one whose tokens a reset revoked; when the job has
        no callback token then, a new one is issued too and its `callback_url` returned.
        Raises Unauthorized, Forbidden (a callback token), JobNotFound, TransientError.
        """
        job, actor = self._job(uuid, token)
        if actor is Actor.CALLBACK:
            raise Forbidden("a callback token cannot rotate the job token")
        for _ in range(_MAX_ISSUE_ATTEMPTS):
            fresh, tokens = job.tokens.rotated(self.clock.now(), self.policy)
            new_callback = None
            if tokens.callback_hash is None:
                new_callback = new_callback_token()
                tokens = replace(tokens, callback_hash=hash_token(new_callback))
            if self.repo.replace_tokens(job.uuid, job.tokens.token_hash, tokens):
                body = {"token": fresh}
                if new_callback is not None:
                    body["callback_url"] = callback_url(base_url, job.uuid, new_callback)
                return body
            # Rotated concurrently: rotate again from what is current now.
            job, actor = self._job(job.uuid, token)
        raise TransientError("the job token kept changing while it was rotated; try again")

    def _rotate_if_due(self, job: Job, token: str, *, state_changing: bool) -> tuple[str, bool]:
        """The job token to hand back after this use, rotating it when SPEC section 4 says so.

        A caller presenting a rotated-out token (still in its grace period) is always handed a fresh
        one, so a client whose concurrent requests crossed is never left holding an expiring token.
        If another request rotates first (the conditional write fails), the presented token is handed
        back: it is in its grace period, and the next request made with it gets a fresh one.
        """
        now = self.clock.now()
        current = same_hash(hash_token(token), job.tokens.token_hash)
        if current and not self.policy.due(job.tokens, now, state_changing=state_changing):
            return token, False
        fresh, tokens = job.tokens.rotated(now, self.policy)
        if self.repo.replace_tokens(job.uuid, job.tokens.token_hash, tokens):
            return fresh, True
        return token, False

    # -- helpers -------------------------------------------------------------------------------------

    def _check_size(self, data: dict[str, Any]) -> None:
        check_data(data)
        size = data_size(data)
        if size > self.max_data_bytes:
            raise PayloadTooLarge(f"data is {size} bytes serialized; the limit is {self.max_data_bytes}")

    def _enqueue(self, job: Job, name: str, data: dict[str, Any], token: str) -> str:
        """Send the event to the job's message group; the worker pins its write to `expect`."""
        event_id = new_event_id()
        body = {
            "uuid": job.uuid,
            "name": name,
            "data": data,
            "token": token,
            "event_id": event_id,
            "expect": [str(job.state), job.generation],
        }
        self.queue.send(body, group_id=job.uuid, dedup_id=event_id)
        return event_id


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
