"""The Python SDK: a thin, fluent wrapper around the HTTP API (SPEC section 5), stdlib only.

    from pipelinejobs import Client

    client = Client()                       # PIPELINEJOBS_URL; PIPELINEJOBS_KEY, or PIPELINEJOBS_TOKEN / _ADMIN_KEY
    job = client.create_job("pipe-1", {"sample": "S1"}, tags=["nightly"])
    job.run({"host": "node-7"}).update(progress=0.5).finish()
    job.wait_for("FINISHED", timeout=30)    # events are applied asynchronously by the queue worker
    for entry in job.history():
        print(entry["name"], entry["outcome"])

Credentials. A `Client` acts as one principal (SPEC section 4):

- a producer key (`api_key=`, or `PIPELINEJOBS_KEY`): what a reactor should hold. It creates jobs for
  the pipelines in its scope and reads, lists and drives only the jobs it created; never reset, ready,
  delete, and never key management. Its handles act with the key itself, so revoking the key stops
  everything the process sends at once;
- an admin: the admin key (`admin_key=`, or `PIPELINEJOBS_ADMIN_KEY`), from which a fresh admin token
  is computed for every request, so a long-running process never holds an expired one, or one admin
  token (`token=`, or `PIPELINEJOBS_TOKEN`).

Explicit arguments beat the environment (given any of `token`, `admin_key`, `api_key`, no credential
variable is read). Explicitly, `token` beats `admin_key`, and a producer key with an admin credential is
refused (ValueError: which one should own the jobs?). In the environment, `PIPELINEJOBS_KEY` beats the
admin variables: a process given a key acts as that producer, with no more than the key allows.

    client = Client(api_key=os.environ["REACTOR_KEY"])
    job = client.create_job("pipe-1", {"sample": "S1"})    # owned by the key
    job.run().finish()                                      # sent with the key

A `Job` handle of an admin's client holds the job's own token when it has one (from `create_job`,
`Job.rotate_token`, or `client.job(uuid, token=...)`) and uses the client's credential otherwise; admin-only
events (reset, ready, delete) always use the client's credential when it has one. A handle of a producer
key's client keeps that token too (`job.token`, to hand to the job itself) but acts with the key.

Outputs. `job.outputs()` iterates over the objects under the job's archive path (key relative to
it, size, modified, etag, and `url`, a download link valid 15 minutes); after `job.index(...)` and the
system's `indexed`, over the manifest the indexer recorded (with `level`, from `index_patterns`);
`job.download(key, path)` writes one to a file. The links are presigned S3 GETs: they are fetched without any credential of
this SDK's, and never logged.

Producer keys are issued and revoked by an admin: `client.keys.create(label=, pipelines=, expires_at=)`
returns a `ProducerKey` whose `.key` is shown this once; `client.keys.list()`, `client.keys.revoke(id)`.
A key never appears in a `repr`, and the SDK logs nothing.

Token following. Every mutating response carries `token`, the token to use next (job tokens rotate,
SPEC section 4). A handle replaces its token with it after each request, so callers never see rotation.
A handle may be shared between threads: its token is read and replaced under a lock (an answer to an
older request never replaces a newer token), and if a request fails with 401 because another thread's
request rotated the token meanwhile, it is retried once with the newer token. A rotated-out token stays
valid for the server's grace period (600 s by default), and its use is answered with the current
token, so requests in flight with it succeed, and two separate handles (or processes) driving one job
each keep up with the other's rotations.

A 202 is a promise: an event the API accepted is applied, in the order accepted, unless a reset or
delete comes first (SPEC section 3). To retry a POST whose answer was lost, pass an `idempotency_key`
(`send_event`, `Job.send`): the same key on the same job is the same event, applied once.

Chaining. The API checks an event against the state the job will be in once the events queued before
it are applied, so `job.run().finish()` works as written, without waiting.

Retries. Connection failures before a request was sent, 429 and 503 are retried with exponential
backoff and jitter (honouring `Retry-After`); a GET is also retried after a dropped connection, 502 or
504. A POST is not resent once it may have reached the server, since it could then be applied twice.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as _dt
import http.client
import json
import os
import pathlib
import random
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelinejobs.errors import (
    Conflict,
    EventNotAllowed,
    EventRejected,
    JobExists,
    JobFailed,
    NotFound,
    PipelineJobsError,
    ServiceUnavailable,
    Unauthorized,
    WaitTimeout,
    error_for_response,
)

__all__ = ["DEFAULT_URL", "FAILURE_STATES", "Client", "Job", "Keys", "ProducerKey"]

DEFAULT_URL = "http://127.0.0.1:8765"
# States `wait_for` gives up on at once, unless one of them is what it waits for.
FAILURE_STATES = frozenset({"FAILED", "REJECTED", "CANCELED"})
# A pseudo-state for `wait_for`: the job no longer exists (after `delete`).
DELETED = "DELETED"
# SPEC section 3's states (a test checks them against the core's table).
STATES = (
    "CREATED", "RUNNING", "FAILED", "FINISHED", "INDEXING", "VALIDATING", "VALIDATED", "REJECTED",
    "FINALIZED", "RETIRED", "RESET", "CANCELED",
)  # fmt: skip
ADMIN_EVENTS = frozenset({"reset", "ready", "delete"})

_USER_AGENT = "pipelinejobs-sdk/0.1"
_RETRY_ALWAYS = frozenset({429, 503})
_RETRY_IF_IDEMPOTENT = frozenset({502, 504})
# A producer key is pjk_<12-character public id>_<secret> (jobcore.tokens); only the id is ever shown.
_KEY_PREFIX = "pjk_"
_KEY_ID_CHARS = 12


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _timestamp(value: str | _dt.datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds, as the API writes them; strings pass through unchanged."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value.astimezone(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _PipelineDefault:
    """The value of a deadline left to the pipeline's default (`PIPELINE_DEFAULT`)."""

    def __repr__(self) -> str:
        return "PIPELINE_DEFAULT"


# A deadline of `create_job` left out: the pipeline's default applies (None: no deadline at all).
PIPELINE_DEFAULT: Any = _PipelineDefault()


def _compact(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def _listing_query(
    state: str | None,
    pipeline_uuid: str | None,
    tag: str | None,
    owner: str | None,
    updated_after: str | _dt.datetime | None,
    updated_before: str | _dt.datetime | None,
    child_of: str | None,
) -> dict[str, Any]:
    """The query of a listing's filters (GET /jobs and GET /jobs/counts take the same)."""
    return _compact(
        {
            "state": state,
            "pipeline_uuid": pipeline_uuid,
            "tag": tag,
            "owner": owner,
            "updated_after": _timestamp(updated_after),
            "updated_before": _timestamp(updated_before),
            "child_of": child_of,
        }
    )


def _key_id(key: str) -> str | None:
    """The public id in a producer key `pjk_<id>_<secret>`, or None if `key` is not shaped like one.
    (The id may itself hold a "_": it is cut at its fixed length.)"""
    rest = key.removeprefix(_KEY_PREFIX)
    if rest == key or len(rest) <= _KEY_ID_CHARS + 1 or rest[_KEY_ID_CHARS] != "_":
        return None
    return rest[:_KEY_ID_CHARS]


class Client:
    """A connection to one pipelinejobs API (the local stack or a deployed stack).

    url: base URL (`PIPELINEJOBS_URL`, default http://127.0.0.1:8765).
    token: a credential sent with every request that has no more specific one, usually an admin
        token (`PIPELINEJOBS_TOKEN`). admin_key: the admin key (`PIPELINEJOBS_ADMIN_KEY`); a fresh admin
        token is computed from it per request. api_key: a producer key, `pjk_...` (`PIPELINEJOBS_KEY`):
        the client acts as that producer, and its handles act with the key.
        Precedence: explicit arguments beat the environment (given any of the three, no credential
        variable is read); `token` beats `admin_key`; `api_key` with `token` or `admin_key` is a
        ValueError. From the environment, `PIPELINEJOBS_KEY` beats `PIPELINEJOBS_TOKEN`, which beats
        `PIPELINEJOBS_ADMIN_KEY`. A key that is not shaped like one is a ValueError (never quoting it).
    timeout: seconds per HTTP request. retries: extra attempts on retriable failures (see the module
        doc). backoff / max_backoff: first and largest delay between attempts, in seconds.
    poll_interval / max_poll_interval: first and largest delay between `wait_for` polls.
    chain_timeout: how long an event waits for the handle's previous one (see "Chaining").
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        admin_key: str | None = None,
        api_key: str | None = None,
        admin_token_lifetime: int = 3600,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        poll_interval: float = 0.1,
        max_poll_interval: float = 2.0,
        chain_timeout: float = 30.0,
    ) -> None:
        self.url = (url or _env("PIPELINEJOBS_URL") or DEFAULT_URL).rstrip("/")
        if urllib.parse.urlsplit(self.url).scheme not in {"http", "https"}:
            raise ValueError(f"the API URL must be http(s)://..., not {self.url!r}")
        source = "api_key"
        if token is None and admin_key is None and api_key is None:
            api_key, source = _env("PIPELINEJOBS_KEY"), "PIPELINEJOBS_KEY"
            if api_key is None:
                token, admin_key = _env("PIPELINEJOBS_TOKEN"), _env("PIPELINEJOBS_ADMIN_KEY")
        elif api_key is not None and (token is not None or admin_key is not None):
            raise ValueError(
                "give a producer key (api_key) or an admin credential (token, admin_key), not both: "
                "a client acts as one principal"
            )
        self._api_key = api_key or None
        self._key_id = _key_id(self._api_key) if self._api_key else None
        if self._api_key and self._key_id is None:
            raise ValueError(
                f"{source} is not a producer key: one looks like pjk_<id>_<secret> "
                "(issued by `pipelinejobs keys create`); an admin token goes in token="
            )
        self._token = None if self._api_key else (token or None)
        self._admin_key = None if self._api_key or self._token else (admin_key or None)
        self.admin_token_lifetime = admin_token_lifetime
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.chain_timeout = chain_timeout
        # Replaceable in tests.
        self._sleep = time.sleep
        self._monotonic = time.monotonic
        self._opener = urllib.request.build_opener()
        self.keys = Keys(self)

    def __repr__(self) -> str:
        if self._key_id:
            kind = f"producer key {self._key_id}"  # the id is public; the secret never shows
        else:
            kind = "admin key" if self._admin_key else ("token" if self._token else "no credential")
        return f"Client({self.url!r}, {kind})"

    # -- credentials ---------------------------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The client's credential for the next request (a fresh admin token when it holds the admin
        key; the producer key when it holds one)."""
        if self._api_key:
            return self._api_key
        if self._token:
            return self._token
        if self._admin_key:
            from jobcore.tokens import admin_token

            return str(admin_token(self._admin_key, time.time(), self.admin_token_lifetime))
        return None

    @property
    def key_id(self) -> str | None:
        """The public id of the client's producer key (the `owner` of the jobs it creates), or None
        when it holds no key."""
        return self._key_id

    # -- jobs ----------------------------------------------------------------------------------

    def create_job(
        self,
        pipeline_uuid: str,
        data: Mapping[str, Any],
        *,
        child_of: Sequence[str] | None = None,
        name: str | None = None,
        tags: Sequence[str] | None = None,
        session: str | None = None,
        agent: str | None = None,
        task: str | None = None,
        archive_path: str | None = None,
        heartbeat_seconds: int | None = PIPELINE_DEFAULT,
        timeout_seconds: int | None = PIPELINE_DEFAULT,
        exist_ok: bool = False,
    ) -> Job:
        """Create a job and return its handle, holding the job's first token.

        Deadlines (SPEC section 3a): `heartbeat_seconds`, the longest silence allowed while the job
        runs (any event restarts it), and `timeout_seconds`, the longest time from `run` to `finish`
        or `fail`; a job that misses one is failed by the system. Left out, the pipeline's default
        applies (the stack's `PipelineDeadlines`); None: no deadline, whatever the default.

        Admin, or a producer key for a pipeline in its scope (the key is then the job's `owner`, and
        the handle acts with the key; `job.token` is the job's own token, to hand to the job itself).

        The uuid is derived from pipeline_uuid, child_of and data: creating the same job twice raises
        `JobExists` (a `Conflict`, with `.uuid`), unless `exist_ok`, which returns a handle to the
        existing job using the client's credential (a producer key gets the `JobExists` all the same
        when the job is another owner's: it may not read it). Raises BadRequest, Unauthorized,
        Forbidden (a pipeline outside the key's scope), PayloadTooLarge, ServiceUnavailable.
        """
        body = _compact(
            {
                "pipeline_uuid": pipeline_uuid,
                "data": dict(data),
                "child_of": list(child_of) if child_of is not None else None,
                "name": name,
                "tags": list(tags) if tags is not None else None,
                "session": session,
                "agent": agent,
                "task": task,
                "archive_path": archive_path,
            }
        )
        for name_, seconds in (
            ("heartbeat_seconds", heartbeat_seconds),
            ("timeout_seconds", timeout_seconds),
        ):
            if seconds is not PIPELINE_DEFAULT:
                body[name_] = seconds  # None: explicitly none
        try:
            created = self._request("POST", "/jobs", body=body, token=self.token)
        except JobExists as error:
            if not exist_ok or not error.uuid:
                raise
            try:
                return self.get_job(error.uuid)
            except NotFound:
                raise error from None  # another owner's job: it exists, and this key may not see it
        return Job(
            self,
            created["job"]["uuid"],
            token=created.get("token"),
            representation=created["job"],
            callback_url=created.get("callback_url"),
        )

    def job(self, uuid: str, token: str | None = None, *, pending_event: str | None = None) -> Job:
        """A handle to an existing job, without a request. `token`: the job's token or callback token;
        None uses the client's credential. The representation is fetched on first use.

        pending_event: the id of an event sent for this job elsewhere (another handle, the CLI, a
        receipt of `send_event`): `wait_for` then waits for it first, as for the handle's own."""
        job = Job(self, uuid, token=token)
        job.last_event_id = job._pending_event = pending_event
        return job

    def get_job(self, uuid: str, token: str | None = None) -> Job:
        """A handle to an existing job, fetched now. Raises NotFound, Unauthorized, Forbidden."""
        return Job(self, uuid, token=token).refresh()

    def get_job_data(self, uuid: str, token: str | None = None) -> dict[str, Any]:
        """The job's representation as a plain dict."""
        return self._request("GET", f"/jobs/{_quote(uuid)}", token=token or self.token)

    def iter_jobs(
        self,
        *,
        state: str | None = None,
        pipeline_uuid: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        updated_after: str | _dt.datetime | None = None,
        updated_before: str | _dt.datetime | None = None,
        child_of: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[dict[str, Any]]:
        """Jobs matching the filters, newest first, fetching pages as the iteration goes: every job for
        an admin, only its own for a producer key.

        owner: a producer key's id, or "admin" (an admin's filter; a key may name only its own id).
        child_of: an input id: the jobs whose child_of holds it (which jobs analysed it?), newest first
        by creation rather than by update; the other filters apply too.
        limit: the most jobs to yield (None: all). Each yielded item is the job's representation.
        """
        query = _listing_query(state, pipeline_uuid, tag, owner, updated_after, updated_before, child_of)
        yielded = 0
        cursor: str | None = None
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - yielded))
            page = self._request(
                "GET", "/jobs", query={**query, "limit": size, "next": cursor}, token=self.token
            )
            for item in page.get("jobs", []):
                yield item
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            cursor = page.get("next")
            if not cursor:
                return

    def count_jobs(
        self,
        *,
        state: str | None = None,
        pipeline_uuid: str | None = None,
        tag: str | None = None,
        owner: str | None = None,
        updated_after: str | _dt.datetime | None = None,
        updated_before: str | _dt.datetime | None = None,
        child_of: str | None = None,
    ) -> dict[str, Any]:
        """Jobs per state for `iter_jobs`' filters: `{"counts": {state: n, ...}, "total": n, "complete":
        bool}` (every state named; `complete` is False when more jobs match than one call counts)."""
        query = _listing_query(state, pipeline_uuid, tag, owner, updated_after, updated_before, child_of)
        return dict(self._request("GET", "/jobs/counts", query=query, token=self.token))

    def list_jobs(self, **filters: Any) -> list[Job]:
        """`iter_jobs(**filters)` as a list of handles (each using the client's credential)."""
        return [
            Job(self, item["uuid"], representation=item, callback_url=item.get("callback_url"))
            for item in self.iter_jobs(**filters)
        ]

    # -- outputs -------------------------------------------------------------------------------

    def iter_outputs(
        self, uuid: str, *, token: str | None = None, limit: int | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """The objects under the job's archive path, in key order, fetching pages as the iteration
        goes: each `{key, size, modified, etag, url}`, `key` relative to the archive path, `url` a link
        that downloads it (valid 15 minutes from the page's fetch; iterate again for fresh ones). Once
        the job is indexed (`job.index(index_patterns=[...])`, then the system's `indexed`), they are
        the outputs its manifest recorded, each with its `level` when a pattern gave it one.

        Readable with the job's token or callback token, its owner's producer key, or an admin
        credential. limit: the most to yield (None: all). Raises NotFound, Unauthorized."""
        yielded = 0
        cursor: str | None = None
        while True:
            size = page_size if limit is None else max(1, min(page_size, limit - yielded))
            page = self._request(
                "GET",
                f"/jobs/{_quote(uuid)}/outputs",
                query={"limit": size, "next": cursor},
                token=token or self.token,
            )
            for item in page.get("outputs", []):
                yield item
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            cursor = page.get("next")
            if not cursor:
                return

    def outputs(
        self, uuid: str, *, token: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """`iter_outputs` as a list."""
        return list(self.iter_outputs(uuid, token=token, limit=limit))

    def download(
        self, uuid: str, key: str, path: str | os.PathLike[str], *, token: str | None = None
    ) -> pathlib.Path:
        """Write the job's output `key` (relative to its archive path, as listed) to `path`, creating
        its folders; into `path/key` when `path` is an existing folder. Returns where it was written.

        Raises ValueError for a key that could leave the folder (a `..` segment, an absolute key),
        NotFound when the job has no such output, and what `download_output` raises."""
        _check_output_key(key)
        for output in self.iter_outputs(uuid, token=token):
            listed = str(output.get("key"))
            if listed == key:
                return self.download_output(output, path)
            if listed > key:
                break  # (listed in key order: it is not further on)
        raise NotFound(f"job {uuid} has no output {key!r}", code="output_not_found")

    def download_output(self, output: Mapping[str, Any], path: str | os.PathLike[str]) -> pathlib.Path:
        """Write one output (an item of `iter_outputs`, its link still valid) to `path`, or into
        `path/<key>` when `path` is an existing folder, streaming it through a temporary file beside
        it, so that an interrupted download leaves no partial file. Returns where it was written.

        The link is fetched without any credential of this client (it carries S3's signature).
        Raises ValueError (a key that could leave the folder), PipelineJobsError with the status S3
        answered (403: the link expired, list again), ServiceUnavailable when S3 cannot be reached."""
        key = str(output.get("key") or "")
        _check_output_key(key)
        url = str(output.get("url") or "")
        if urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
            raise ValueError(f"output {key!r} has no download link")
        target = pathlib.Path(path)
        if target.is_dir():
            target = target.joinpath(*key.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.part")
        attempt = 0
        while True:
            # No Authorization header: the link is the credential, and none of ours goes to S3.
            request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})  # noqa: S310 - checked
            try:
                with self._opener.open(request, timeout=self.timeout) as response, partial.open("wb") as file:
                    shutil.copyfileobj(response, file, 1 << 20)
                os.replace(partial, target)
                return target
            except urllib.error.HTTPError as error:
                partial.unlink(missing_ok=True)
                if error.code >= 500 and attempt < self.retries:
                    self._sleep(self._retry_delay(attempt, error.headers.get("Retry-After")))
                    attempt += 1
                    continue
                # (never the link in a message: it downloads the object until it expires)
                hint = " (an expired link? list the outputs again)" if error.code == 403 else ""
                raise PipelineJobsError(
                    f"downloading output {key!r} failed: S3 answered {error.code}{hint}",
                    status=error.code,
                    code="download_failed",
                ) from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                partial.unlink(missing_ok=True)
                if isinstance(error, OSError) and not isinstance(
                    error, urllib.error.URLError | ConnectionError | TimeoutError
                ):
                    raise  # the local file: a full disk, no permission
                if attempt < self.retries:
                    self._sleep(self._retry_delay(attempt, None))
                    attempt += 1
                    continue
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                raise ServiceUnavailable(
                    f"cannot download output {key!r} ({type(reason).__name__})", status=None
                ) from None

    # -- events --------------------------------------------------------------------------------

    def send_event(
        self,
        uuid: str,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Post one event; returns `{event_id, token}` (202): a promise that it is applied, a moment
        later, in the order accepted, unless a reset or delete comes first.

        idempotency_key: up to 64 URL-safe characters. With it, the request is retried after a lost
        connection or a 5xx (the same key on the same job is the same event, applied once), and sending
        it again later gives the same event_id.

        Raises BadRequest (unknown event, bad body), Unauthorized, Forbidden, NotFound,
        EventNotAllowed (not allowed from the state the job will be in), Conflict (422: the key was used
        for another request), PayloadTooLarge.
        """
        body: dict[str, Any] = {"name": name}
        if data is not None:
            body["data"] = dict(data)
        return self._request(
            "POST",
            f"/jobs/{_quote(uuid)}/events",
            body=body,
            token=token or self.token,
            conflict=EventNotAllowed,
            headers={"Idempotency-Key": idempotency_key} if idempotency_key else None,
        )

    def get_event(self, uuid: str, event_id: str, *, token: str | None = None) -> dict[str, Any]:
        """One event and its status: queued, applied, ignored or rejected."""
        return self._request(
            "GET", f"/jobs/{_quote(uuid)}/events/{_quote(event_id)}", token=token or self.token
        )

    def iter_history(
        self, uuid: str, *, token: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """The job's event history, oldest first, all pages."""
        cursor: str | None = None
        while True:
            page = self._request(
                "GET",
                f"/jobs/{_quote(uuid)}/events",
                query={"limit": page_size, "next": cursor},
                token=token or self.token,
            )
            yield from page.get("events", [])
            cursor = page.get("next")
            if not cursor:
                return

    def history(self, uuid: str, *, token: str | None = None) -> list[dict[str, Any]]:
        return list(self.iter_history(uuid, token=token))

    def wait_for_event(
        self, uuid: str, event_id: str, *, timeout: float = 30.0, token: str | None = None
    ) -> dict[str, Any]:
        """Poll until the event left `queued`; returns it (status applied, ignored or rejected).
        Raises WaitTimeout."""
        deadline = self._monotonic() + timeout
        delay = self.poll_interval
        while True:
            event = self.get_event(uuid, event_id, token=token)
            status = event.get("status") or event.get("outcome")
            if status and status != "queued":
                return event
            delay = self._pause(deadline, delay, lambda: WaitTimeout("queued", ("applied",), timeout))

    # -- admin operations ------------------------------------------------------------------------

    def reset(self, uuid: str, *, keep_archive: bool = False, **data: Any) -> dict[str, Any]:
        """Reset a job (admin): erase its archive (unless keep_archive), revoke its tokens, and move
        it to CREATED with generation + 1 once erasure completes. Returns `{event_id, ...}`."""
        if keep_archive:
            data["keep_archive"] = True
        return self.send_event(uuid, "reset", data or None)

    def ready(self, uuid: str) -> dict[str, Any]:
        """Move a job from RESET to CREATED without waiting for erasure (admin)."""
        return self.send_event(uuid, "ready")

    def delete(self, uuid: str, *, purge_archive: bool = False) -> dict[str, Any]:
        """Delete a job (admin); its archive is kept unless purge_archive. History stays readable."""
        return self.send_event(uuid, "delete", {"purge_archive": True} if purge_archive else None)

    def issue_token(self, uuid: str, *, token: str | None = None) -> str:
        """Rotate the job's token now and return the new one (admin, or the job's current token)."""
        return str(self.issue_token_response(uuid, token=token)["token"])

    def issue_token_response(
        self, uuid: str, *, token: str | None = None, rotate_callback: bool = False
    ) -> dict[str, Any]:
        """The whole response of `POST /jobs/{uuid}/token`: an admin also gets the job's current
        `callback_url`, and with rotate_callback a new one (the old one stops working)."""
        query = {"rotate_callback": "true"} if rotate_callback else None
        return self._request("POST", f"/jobs/{_quote(uuid)}/token", query=query, token=token or self.token)

    def openapi(self) -> dict[str, Any]:
        """The API's OpenAPI document."""
        return self._request("GET", "/openapi.json")

    # -- HTTP ------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        token: str | None = None,
        conflict: type[Conflict] = Conflict,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One API call with retries; returns the decoded JSON body, raises a PipelineJobsError.

        A request with an Idempotency-Key header is retried like a GET: sending it twice is harmless."""
        url = self.url + path
        params = _compact(query or {})
        if params:
            url += "?" + urllib.parse.urlencode(params)
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        all_headers = {"Accept": "application/json", "User-Agent": _USER_AGENT, **(headers or {})}
        if payload is not None:
            all_headers["Content-Type"] = "application/json"
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        idempotent = method in {"GET", "HEAD"} or "Idempotency-Key" in all_headers
        attempt = 0
        while True:
            # The scheme was checked in __init__ (http or https only).
            request = urllib.request.Request(url, data=payload, method=method, headers=all_headers)  # noqa: S310
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return _decode(response.read())
            except urllib.error.HTTPError as error:
                raw = error.read()
                retriable = error.code in _RETRY_ALWAYS or (idempotent and error.code in _RETRY_IF_IDEMPOTENT)
                if retriable and attempt < self.retries:
                    self._sleep(self._retry_delay(attempt, error.headers.get("Retry-After")))
                    attempt += 1
                    continue
                text = raw.decode("utf-8", "replace")
                try:
                    decoded: Any = json.loads(text) if text else None
                except ValueError:
                    decoded = None
                raise error_for_response(error.code, decoded, text, conflict=conflict) from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                # Refused: the request never left, so resending is safe whatever the method.
                unsent = isinstance(reason, ConnectionRefusedError)
                if (unsent or idempotent) and attempt < self.retries:
                    self._sleep(self._retry_delay(attempt, None))
                    attempt += 1
                    continue
                raise ServiceUnavailable(
                    f"cannot reach {self.url} ({type(reason).__name__}: {reason})", status=None
                ) from None

    def _retry_delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            with contextlib.suppress(ValueError):
                return min(float(retry_after), self.max_backoff * 4)
        # Exponential backoff with "equal jitter": at least half the step, never all clients in step.
        step = min(self.max_backoff, self.backoff * 2.0**attempt)
        return float(step / 2 + random.uniform(0, step / 2))  # noqa: S311 - jitter, not a secret

    def _pause(self, deadline: float, delay: float, timeout_error: Any) -> float:
        """Sleep `delay` (or what is left before `deadline`), raise `timeout_error()` past it;
        returns the next delay."""
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise timeout_error()
        self._sleep(min(delay, remaining))
        return min(delay * 1.6, self.max_poll_interval)


@dataclass(frozen=True)
class ProducerKey:
    """A producer key's record, as an admin sees it (`client.keys`).

    `key` is the key itself (`pjk_...`): only in the answer to `create`, the one time it is shown
    (only its hash is stored); None in listings. It never appears in the repr. `status` is `active`,
    `expired` or `revoked`; times are ISO-8601 UTC strings (None: never expires, not revoked).
    """

    id: str
    label: str
    pipelines: tuple[str, ...]
    status: str
    created_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    key: str | None = field(default=None, repr=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ProducerKey:
        return cls(
            id=str(body.get("id")),
            label=str(body.get("label") or ""),
            pipelines=tuple(body.get("pipelines") or ()),
            status=str(body.get("status") or ""),
            created_at=body.get("created_at"),
            expires_at=body.get("expires_at"),
            revoked_at=body.get("revoked_at"),
            key=body.get("key"),
        )

    @property
    def active(self) -> bool:
        return self.status == "active"


class Keys:
    """Producer keys, managed by an admin (`client.keys`; SPEC section 4 item 4). A producer key's own
    client gets Forbidden here: managing keys needs the admin credential."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<Keys of {self._client!r}>"

    def create(
        self,
        label: str,
        pipelines: Sequence[str] | str,
        *,
        expires_at: str | _dt.datetime | _dt.date | _dt.timedelta | float | None = None,
    ) -> ProducerKey:
        """Issue a producer key; its `.key` is in this answer only: store it (or hand it over) now.

        pipelines: the pipeline ids it may create jobs for, or ["*"] (every pipeline); one id alone may
        be given as a string. expires_at: when it stops working: a datetime (naive = UTC), a date
        (midnight UTC), a timedelta from now, ISO-8601 text, or epoch seconds; None: never.
        Raises BadRequest (an empty label, no pipelines, an expiry in the past), Unauthorized,
        Forbidden (not an admin).
        """
        scope = [pipelines] if isinstance(pipelines, str) else list(pipelines)
        body = _compact({"label": label, "pipelines": scope, "expires_at": _expiry(expires_at)})
        return ProducerKey.from_body(
            self._client._request("POST", "/keys", body=body, token=self._client.token)
        )

    def list(self) -> builtins.list[ProducerKey]:
        """Every producer key, newest first, whatever its status (never a key itself)."""
        page = self._client._request("GET", "/keys", token=self._client.token)
        return [ProducerKey.from_body(item) for item in page.get("keys", [])]

    def revoke(self, key: str | ProducerKey) -> ProducerKey:
        """Revoke a key (its id, or its record), at once: the API refuses it from the next request, and
        its events accepted but not applied yet are rejected by the worker. Events it sent that were
        applied stay applied, and its jobs stay (an admin may reset or delete them). Idempotent: revoking
        again keeps the first revocation's time. Raises NotFound (no such key), Forbidden."""
        key_id = key.id if isinstance(key, ProducerKey) else key
        answer = self._client._request("DELETE", f"/keys/{_quote(key_id)}", token=self._client.token)
        return ProducerKey.from_body(answer)


def _expiry(
    value: str | _dt.datetime | _dt.date | _dt.timedelta | float | None,
) -> str | float | None:
    """A key's expiry as the API takes it: ISO-8601 text or epoch seconds."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("expires_at is a datetime, a date, a timedelta, ISO-8601 text or epoch seconds")
    if isinstance(value, int | float):
        return value
    if isinstance(value, _dt.timedelta):
        value = _dt.datetime.now(_dt.UTC) + value
    elif not isinstance(value, _dt.datetime):
        value = _dt.datetime.combine(value, _dt.time(), tzinfo=_dt.UTC)
    return _timestamp(value)


def _check_output_key(key: str) -> None:
    """An output's key may become a path under a folder: one that could leave it is refused."""
    parts = key.replace("\\", "/").split("/")
    if not key or key.startswith("/") or "\x00" in key or ".." in parts or key.endswith("/"):
        raise ValueError(f"refusing output key {key!r}: it is empty, absolute, a folder or holds '..'")


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _decode(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    decoded = json.loads(raw)
    return decoded if isinstance(decoded, dict) else {"items": decoded}


class Job:
    """A handle to one job: its uuid, its current token, and the last representation fetched.

    Event methods (`run`, `update`, `finish`, ...) post the event and return the handle, so calls
    chain; the event is applied asynchronously, so read the new state with `refresh()` or
    `wait_for(...)`. Each takes the event's data as a mapping and/or keyword arguments:
    `job.update({"progress": 0.5})` or `job.update(progress=0.5)`.

    The handle acts with its job token when it has one, else with the client's credential; on a
    client holding a producer key it always acts with the key (and keeps the job token only to hand on).
    """

    def __init__(
        self,
        client: Client,
        uuid: str,
        *,
        token: str | None = None,
        representation: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
    ) -> None:
        self.client = client
        self.uuid = uuid
        self._token = token or None
        self._representation: dict[str, Any] | None = dict(representation) if representation else None
        self._callback_url = callback_url
        self._lock = threading.Lock()
        # The id of the last event this handle sent, until wait_for has seen it applied.
        self.last_event_id: str | None = None
        self._pending_event: str | None = None

    def __repr__(self) -> str:
        state = self._representation.get("state") if self._representation else "?"
        return f"<Job {self.uuid} {state}>"

    # -- representation --------------------------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The handle's current job (or callback) token; None if it has none. A handle of a producer
        key's client keeps the token it was given or issued, to hand to the job, but acts with the key."""
        with self._lock:
            return self._token

    @property
    def raw(self) -> dict[str, Any]:
        """The last representation fetched (fetched now if none was)."""
        if self._representation is None:
            self.refresh()
        return dict(self._representation or {})

    def get(self, field: str, default: Any = None) -> Any:
        return self.raw.get(field, default)

    def __getitem__(self, field: str) -> Any:
        return self.raw[field]

    @property
    def state(self) -> str:
        return str(self.raw.get("state"))

    @property
    def generation(self) -> int:
        return int(self.raw.get("generation", 1))

    @property
    def pipeline_uuid(self) -> str:
        return str(self.raw.get("pipeline_uuid"))

    @property
    def data(self) -> dict[str, Any]:
        """The job's run-time parameters (listings leave them out: fetched on first use then)."""
        if self._representation is not None and self._representation.get("data") is None:
            self.refresh()
        return dict(self.raw.get("data") or {})

    @property
    def archive_path(self) -> str | None:
        return self.raw.get("archive_path")

    @property
    def allowed_events(self) -> list[str]:
        return list(self.raw.get("allowed_events") or [])

    @property
    def child_of(self) -> list[str]:
        """The ids of the inputs the job analyses."""
        return list(self.raw.get("child_of") or [])

    @property
    def pending_seconds(self) -> float | None:
        """How long this generation waited, created -> run (None until it runs), as last fetched."""
        value = self.raw.get("pending_seconds")
        return None if value is None else float(value)

    @property
    def run_seconds(self) -> float | None:
        """How long this generation ran, run -> finish or fail (None until it runs); while RUNNING,
        up to when it was last fetched (`refresh()` for now)."""
        value = self.raw.get("run_seconds")
        return None if value is None else float(value)

    @property
    def callback_url(self) -> str | None:
        return self._callback_url or self.raw.get("callback_url")

    @property
    def heartbeat_seconds(self) -> int | None:
        """The job's heartbeat deadline (SPEC section 3a), or None."""
        return self.raw.get("heartbeat_seconds")

    @property
    def timeout_seconds(self) -> int | None:
        """The job's timeout deadline (SPEC section 3a), or None."""
        return self.raw.get("timeout_seconds")

    @property
    def deadline_missed(self) -> str | None:
        """`heartbeat` or `timeout` when the system failed the job for missing it; else None."""
        return self.raw.get("deadline_missed")

    def refresh(self) -> Job:
        """Fetch the job's current representation. Raises NotFound once deleted."""
        representation = self.client.get_job_data(self.uuid, token=self._credential())
        with self._lock:
            self._representation = representation
            if representation.get("callback_url"):
                self._callback_url = representation["callback_url"]
        return self

    def history(self) -> list[dict[str, Any]]:
        """Every event of the job, oldest first: name, outcome, from/to state, reason, who sent it."""
        return self.client.history(self.uuid, token=self._credential())

    def outputs(self, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The job's outputs, in key order, every page: `{key, size, modified, etag, url}` each, and
        `level` from an indexed job's manifest (see `Client.iter_outputs`; `url` downloads it for 15
        minutes)."""
        return self.client.iter_outputs(self.uuid, token=self._credential(), limit=limit)

    def download(self, key: str, path: str | os.PathLike[str]) -> pathlib.Path:
        """Write the output `key` (as `outputs()` lists it) to `path` (into `path/key` when `path` is a
        folder), creating folders. Raises ValueError for a key with `..`, NotFound for a key that is not
        among the outputs (see `Client.download`)."""
        return self.client.download(self.uuid, key, path, token=self._credential())

    def event(self, event_id: str | None = None) -> dict[str, Any]:
        """One event (default: the last one this handle sent) and its status."""
        event_id = event_id or self.last_event_id
        if not event_id:
            raise ValueError("this handle has sent no event; pass an event_id")
        return self.client.get_event(self.uuid, event_id, token=self._credential())

    # -- events ----------------------------------------------------------------------------------

    def send(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> str:
        """Post an event with this handle's credential, follow the returned token, return the event id.

        idempotency_key: see `Client.send_event` (sending the same key again is the same event).
        Raises what `Client.send_event` raises.
        """
        merged = {**(data or {}), **fields} or None
        receipt = self._post(name, merged, idempotency_key)
        event_id = str(receipt.get("event_id", ""))
        self.last_event_id = self._pending_event = event_id or None
        return event_id

    def _post(self, name: str, data: dict[str, Any] | None, key: str | None = None) -> dict[str, Any]:
        admin_only = name in ADMIN_EVENTS
        with self._lock:
            # (a producer key's client acts with its key: revoking the key stops the handle at once)
            own = None if self.client.key_id else self._token
        use = self.client.token if (admin_only and self.client.token) or not own else own
        try:
            receipt = self.client.send_event(self.uuid, name, data, token=use, idempotency_key=key)
        except Unauthorized:
            # Another thread's request may have rotated our token between our read and this request.
            with self._lock:
                newer = self._token
            if use is not own or not newer or newer == own:
                raise
            use = own = newer
            receipt = self.client.send_event(self.uuid, name, data, token=use, idempotency_key=key)
        with self._lock:
            if name in {"reset", "delete"}:
                # Both revoke every job and callback token of the job.
                self._token = None
            elif use is own and own and receipt.get("token") and self._token == use:
                # (a request that answered after another thread's newer token came back keeps that one)
                self._token = receipt["token"]
        return receipt

    def run(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("run", data, **fields)
        return self

    def update(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("update", data, **fields)
        return self

    def resource(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("resource", data, **fields)
        return self

    def finish(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("finish", data, **fields)
        return self

    def fail(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("fail", data, **fields)
        return self

    def cancel(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("cancel", data, **fields)
        return self

    def index(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("index", data, **fields)
        return self

    def indexed(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("indexed", data, **fields)
        return self

    def validate(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("validate", data, **fields)
        return self

    def validated(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("validated", data, **fields)
        return self

    def reject(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("reject", data, **fields)
        return self

    def finalize(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("finalize", data, **fields)
        return self

    def retire(self, data: Mapping[str, Any] | None = None, /, **fields: Any) -> Job:
        self.send("retire", data, **fields)
        return self

    def reset(self, *, keep_archive: bool = False, **fields: Any) -> Job:
        """Admin: erase the archive (unless keep_archive), revoke the job's tokens, rerun as a new
        generation. The handle drops its token (revoked) and acts with the client's credential;
        `rotate_token()` issues a fresh one."""
        if keep_archive:
            fields["keep_archive"] = True
        self.send("reset", fields or None)
        with self._lock:
            # the reset revokes the callback token too; the new one is read with the job (as admin)
            self._callback_url = None
            if self._representation is not None:
                self._representation.pop("callback_url", None)
        return self

    def ready(self) -> Job:
        """Admin: RESET → CREATED without waiting for archive erasure."""
        self.send("ready")
        return self

    def delete(self, *, purge_archive: bool = False) -> Job:
        """Admin: remove the job from listings and lookups (history stays readable by an admin)."""
        self.send("delete", {"purge_archive": True} if purge_archive else None)
        return self

    def rotate_token(self) -> str:
        """Get a fresh job token (rotating now) and keep it in the handle. Admin, the job's token, or
        its owner's producer key (which gets no callback URL)."""
        response = self.client.issue_token_response(self.uuid, token=self._credential())
        with self._lock:
            self._token = response["token"]
            if response.get("callback_url"):
                self._callback_url = response["callback_url"]
        return str(response["token"])

    # -- waiting ---------------------------------------------------------------------------------

    def wait_for(
        self,
        *states: str,
        timeout: float = 60.0,
        poll_interval: float | None = None,
    ) -> Job:
        """Wait until the job is in one of `states`; return the refreshed handle.

        First the last event this handle sent must leave the queue (so a state from before it does
        not count), then the job is polled with a growing interval (poll_interval, x1.6, capped by the
        client's max_poll_interval). `DELETED` waits for the job to disappear.

        Raises, at once: JobFailed when the job reaches FAILED, REJECTED or CANCELED and that is not
        awaited; EventRejected when the handle's last event was rejected by the worker. Raises
        WaitTimeout after `timeout` seconds.
        """
        if not states:
            raise ValueError("wait_for needs at least one state")
        wanted = tuple(state.upper() for state in states)
        unknown = [state for state in wanted if state not in STATES and state != DELETED]
        if unknown:
            raise ValueError(
                f"no state {', '.join(map(repr, unknown))}; a job is in one of {', '.join(STATES)} (or {DELETED})"
            )
        deadline = self.client._monotonic() + timeout
        delay = poll_interval if poll_interval is not None else self.client.poll_interval
        seen: str | None = self._representation.get("state") if self._representation else None

        def timed_out() -> WaitTimeout:
            return WaitTimeout(seen, wanted, timeout)

        while self._pending_event:
            event = self.event(self._pending_event)
            status = event.get("status") or event.get("outcome")
            if status == "rejected":
                self._pending_event = None
                reason = event.get("reason") or "no reason given"
                raise EventRejected(
                    f"the {event.get('name', 'last')} event was rejected: {reason}", event=event
                )
            if status and status != "queued":
                self._pending_event = None
                break
            delay = self.client._pause(deadline, delay, timed_out)
        while True:
            try:
                self.refresh()
            except NotFound:
                if DELETED in wanted:
                    return self
                raise
            seen = self.state
            if seen in wanted:
                return self
            if seen in FAILURE_STATES:
                raise JobFailed(seen, job=self.raw, message=f"job {self.uuid} reached {seen}")
            delay = self.client._pause(deadline, delay, timed_out)

    def _credential(self) -> str | None:
        if self.client.key_id:
            return self.client.token
        with self._lock:
            return self._token or self.client.token
