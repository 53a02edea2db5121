"""The job repository on DynamoDB, through PynamoDB. One table holds these kinds of item:

| item | pk | sk | why separate |
|---|---|---|---|
| job | `JOB#<uuid>` | `JOB` | small (< 1 KB): every event rewrites it, and write units follow item size |
| data | `JOB#<uuid>` | `DATA` | the job's `data` (up to 64 KiB), written once at creation, read on demand |
| history | `JOB#<uuid>` | `EVT#<event_id>` | one per event; the key is the dedup record, the LSI `history` orders them |
| idempotency | `JOB#<uuid>` | `IDEM#<incarnation>#<hash of the key>` | what an Idempotency-Key was first used for (written with the acceptance it records) |
| producer key | `KEY#<id>` | `KEY` | one per key: its hash (never the key), label, scope, expiry, revocation; found by the id in the key (GetItem, never a scan) |
| manifest | `JOB#<uuid>` | `OUT#<run tag>#<relative key>` | one per output an index run recorded (SPEC section 3, `index`): key, size, ETag, modified, level; the run tag is a hash of the `index` event's id, so each run has its own manifest and a step written twice writes the same items; the job item names the run whose manifest is current |
| lineage | `CHILD#<parent id>` | `JOB#<uuid>` | one per entry of a job's `child_of`, written with the job (unconditional puts: a job created again rewrites its own); `idx_all = CHILD#<parent id>` and `updated_at = <created_at>#<uuid>` put it in `by_updated` under its parent, for `GET /jobs?child_of=` |

Listings use sparse GSIs on `idx_all`, `idx_state`, `idx_pipeline`, `idx_owner` (sorted by `updated_at`); a
deleted job drops its `idx_*` attributes and so leaves every listing, while its history stays.

Deadlines (SPEC section 3a) use two more sparse GSIs, `by_heartbeat` (`idx_hb`, `hb_at`) and `by_timeout`
(`idx_to`, `to_at`), projecting only `state` and `generation`. A job with a deadline carries its duration
(`hb`, `to`, in ms) and its index shard (`idx_hb`/`idx_to` = `HB#<n>`/`TO#<n>`, from its uuid) from its
creation; the due time (`hb_at`/`to_at`) exists only while the deadline runs: the worker's apply write
sets it (`if_not_exists(hb, never) + now`, so the write needs no read of the job) and removes it on
leaving the deadline's states. The index then holds exactly the running deadlines, and the sweeper
reads only the overdue end of each shard. Producer
keys are listed through `by_updated` too, in their own partition (`idx_all = KEY`), which no job listing
reads; so are lineage items, one partition per parent id.

The jobs of a parent (`child_of`) are listed from its lineage items (a Query of its partition, newest
first by the job's creation: a lineage item is written once, never per event, so it cannot follow
updated_at), then a BatchGetItem of those jobs, whose current item decides the rest: a deleted job is
left out (its lineage items stay), and the other filters (owner, state, pipeline, tag, updated time)
are applied to it. Up to LINEAGE_IN_CREATE lineage items ride in the creation's transaction; the rest
of a long `child_of` (up to 1,000) follow in BatchWriteItems, and a refused duplicate creation of such
a job writes them again, so a creation cut short between the two is made whole by its retry.

Every model of the table and the repository's transactions go through ONE botocore client, made when
the repository is built (a Lambda container's init) on the botocore session it is given, which the
handler's other clients share. Left to itself, PynamoDB gives each model class its own connection, each
making its own botocore session and client on first use: ~60 ms per model class, paid by the first
requests of every container.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.connection import Connection, TableConnection
from pynamodb.exceptions import (
    DoesNotExist,
    GetError,
    PutError,
    PynamoDBException,
    QueryError,
    TransactWriteError,
    UpdateError,
)
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, LocalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from jobcore.clock import iso, iso_us
from jobcore.errors import InvalidRequest, JobExists, TransientError
from jobcore.records import (
    DEADLINE_STATES,
    DELETING,
    HEARTBEAT,
    STATE_TIME_FIELDS,
    TIMEOUT,
    Acceptance,
    AcceptResult,
    ApplyCommand,
    Conflict,
    Effect,
    HistoryEntry,
    HistoryPage,
    IdempotencyRecord,
    InOrderRecord,
    Job,
    JobFilter,
    JobPage,
    KeyCheck,
    Outcome,
    OutputObject,
    OutputPage,
    Overdue,
    ProducerKey,
)
from jobcore.states import Actor, State
from jobcore.tokens import TokenState, grace_key

JOB_SK: Final = "JOB"
DATA_SK: Final = "DATA"
EVENT_SK_PREFIX: Final = "EVT#"
IDEMPOTENCY_SK_PREFIX: Final = "IDEM#"
ALL_JOBS: Final = "JOB"
KEY_SK: Final = "KEY"
ALL_KEYS: Final = "KEY"
# Deadline index shards: a heartbeat moves its job's index entry on every event, so the entries are
# spread over this many partitions (a partition takes ~1,000 writes a second); the sweeper queries each.
DEADLINE_SHARDS: Final = 8
# The due time of a deadline the job does not have: never reached, and never indexed (no idx_hb/idx_to).
_NEVER_MS: Final = 10**15

# Error codes that mean "the machinery is busy", not "the request is wrong".
_TRANSIENT_CODES: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflict",
        "TransactionInProgressException",
        "LimitExceededException",
    }
)


def pk(uuid: str) -> str:
    return f"JOB#{uuid}"


def key_pk(key_id: str) -> str:
    return f"KEY#{key_id}"


LINEAGE_PREFIX: Final = "CHILD#"
# TransactWriteItems takes 100 items: the job, its data, and this many lineage items.
LINEAGE_IN_CREATE: Final = 98
# A lineage listing reads at most this many lineage items per request (a page may come back short, or
# empty, with a `next` cursor, when filters or deletions leave out most of them).
LINEAGE_READS_PER_PAGE: Final = 1000
_BATCH_GET: Final = 100


def lineage_pk(parent: str) -> str:
    return f"{LINEAGE_PREFIX}{parent}"


def _idempotency_sk(incarnation: int, key_hash: str) -> str:
    return f"{IDEMPOTENCY_SK_PREFIX}{incarnation}#{key_hash}"


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class SharedConnection(Connection):
    """PynamoDB's connection, on a given botocore session, drawing its client from an owner connection.

    The owner makes the one client (with PynamoDB's own configuration: retries, timeouts, no parameter
    validation) on the session; every connection made with `owner=` uses that client, keeping its own
    description of the table (PynamoDB keeps one per model class: keys, attributes, indexes).
    """

    def __init__(
        self,
        *,
        region: str,
        host: str | None,
        session: Any = None,
        owner: SharedConnection | None = None,
    ) -> None:
        super().__init__(region=region, host=host)
        self._given_session = session
        self._owner = owner

    @property
    def session(self) -> Any:
        return self._given_session if self._given_session is not None else super().session

    @property
    def client(self) -> Any:
        return self._owner.client if self._owner is not None else super().client


def bind_models(
    table_name: str, region: str, host: str | None, connection: SharedConnection | None = None
) -> tuple[type[Any], type[Any], type[Any], type[Any], type[Any]]:
    """PynamoDB model classes bound to one table (the name is known only at run time), all on the
    client of `connection` when one is given."""

    def table_meta() -> type:
        return type("Meta", (), {"table_name": table_name, "region": region, "host": host})

    def index_meta(name: str) -> type:
        return type("Meta", (), {"index_name": name, "projection": AllProjection()})

    class ByUpdated(GlobalSecondaryIndex[Any]):
        Meta = index_meta("by_updated")
        idx_all = UnicodeAttribute(hash_key=True)
        updated_at = UnicodeAttribute(range_key=True)

    class ByState(GlobalSecondaryIndex[Any]):
        Meta = index_meta("by_state")
        idx_state = UnicodeAttribute(hash_key=True)
        updated_at = UnicodeAttribute(range_key=True)

    class ByPipeline(GlobalSecondaryIndex[Any]):
        Meta = index_meta("by_pipeline")
        idx_pipeline = UnicodeAttribute(hash_key=True)
        updated_at = UnicodeAttribute(range_key=True)

    class ByOwner(GlobalSecondaryIndex[Any]):
        Meta = index_meta("by_owner")
        idx_owner = UnicodeAttribute(hash_key=True)
        updated_at = UnicodeAttribute(range_key=True)

    def deadline_meta(name: str) -> type:
        return type(
            "Meta", (), {"index_name": name, "projection": IncludeProjection(["state", "generation"])}
        )

    class ByHeartbeat(GlobalSecondaryIndex[Any]):
        Meta = deadline_meta("by_heartbeat")
        idx_hb = UnicodeAttribute(hash_key=True)
        hb_at = NumberAttribute(range_key=True)

    class ByTimeout(GlobalSecondaryIndex[Any]):
        Meta = deadline_meta("by_timeout")
        idx_to = UnicodeAttribute(hash_key=True)
        to_at = NumberAttribute(range_key=True)

    class JobItem(Model):
        Meta = table_meta()  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        pipeline_uuid = UnicodeAttribute()
        state = UnicodeAttribute()
        generation = NumberAttribute()
        archive_path = UnicodeAttribute()
        created_at = UnicodeAttribute()
        updated_at = UnicodeAttribute()
        last_event = UnicodeAttribute(null=True)
        last_event_id = UnicodeAttribute(null=True)
        child_of = ListAttribute(of=UnicodeAttribute, null=True)
        name = UnicodeAttribute(null=True)
        tags = ListAttribute(of=UnicodeAttribute, null=True)
        session = UnicodeAttribute(null=True)
        agent = UnicodeAttribute(null=True)
        task = UnicodeAttribute(null=True)
        token_hash = UnicodeAttribute(null=True)
        token_issued_at = NumberAttribute(null=True)
        token_uses = NumberAttribute(null=True)
        grace = MapAttribute(null=True)  # type: ignore[var-annotated]  # rotated-out hash -> until
        callback_hash = UnicodeAttribute(null=True)
        idx_all = UnicodeAttribute(null=True)
        idx_state = UnicodeAttribute(null=True)
        idx_pipeline = UnicodeAttribute(null=True)
        deleted_at = UnicodeAttribute(null=True)
        erased_objects = NumberAttribute(null=True)
        run_at = UnicodeAttribute(null=True)
        failed_at = UnicodeAttribute(null=True)
        finished_at = UnicodeAttribute(null=True)
        indexing_at = UnicodeAttribute(null=True)
        validating_at = UnicodeAttribute(null=True)
        validated_at = UnicodeAttribute(null=True)
        rejected_at = UnicodeAttribute(null=True)
        finalized_at = UnicodeAttribute(null=True)
        retired_at = UnicodeAttribute(null=True)
        reset_at = UnicodeAttribute(null=True)
        canceled_at = UnicodeAttribute(null=True)
        run_end = UnicodeAttribute(null=True)  # the run's end (finished_at moves on `indexed`)
        # (short names where the item would otherwise pass 1 KB, which doubles its write units)
        accepted_state = UnicodeAttribute(null=True, attr_name="acc_state")
        accepted_generation = NumberAttribute(null=True, attr_name="acc_gen")
        accepted_seq = NumberAttribute(null=True, attr_name="acc_seq")
        applied_seq = NumberAttribute(null=True, attr_name="app_seq")
        incarnation = NumberAttribute(null=True, attr_name="inc")
        callback_nonce = UnicodeAttribute(null=True, attr_name="cb_nonce")
        owner = UnicodeAttribute(null=True, attr_name="own")  # the producer key's id; absent: admin
        idx_owner = UnicodeAttribute(null=True)
        # deadlines: durations (ms), due times (epoch ms, while running), shards, the one missed
        hb = NumberAttribute(null=True)
        to = NumberAttribute(null=True)
        hb_at = NumberAttribute(null=True)
        to_at = NumberAttribute(null=True)
        idx_hb = UnicodeAttribute(null=True)
        idx_to = UnicodeAttribute(null=True)
        missed = UnicodeAttribute(null=True)
        # the indexer: the run under way; the current manifest's run and its number of outputs
        index_run = UnicodeAttribute(null=True, attr_name="irun")
        manifest = UnicodeAttribute(null=True, attr_name="mf")
        manifest_count = NumberAttribute(null=True, attr_name="mf_n")
        by_updated = ByUpdated()
        by_state = ByState()
        by_pipeline = ByPipeline()
        by_owner = ByOwner()
        by_heartbeat = ByHeartbeat()
        by_timeout = ByTimeout()

    class HistoryOrder(LocalSecondaryIndex[Any]):
        Meta = index_meta("history")
        pk = UnicodeAttribute(hash_key=True)
        hist = UnicodeAttribute(range_key=True)

    class HistoryItem(Model):
        Meta = table_meta()  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        hist = UnicodeAttribute()
        event_id = UnicodeAttribute()
        name = UnicodeAttribute()
        data = UnicodeAttribute()  # canonical JSON
        at = UnicodeAttribute()
        outcome = UnicodeAttribute()
        reason = UnicodeAttribute(null=True)
        from_state = UnicodeAttribute(null=True)
        to_state = UnicodeAttribute(null=True)
        generation = NumberAttribute(null=True)
        by = UnicodeAttribute(null=True)
        history = HistoryOrder()

    class DataItem(Model):
        Meta = table_meta()  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        data = UnicodeAttribute()

    class IdempotencyItem(Model):
        Meta = table_meta()  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        event_id = UnicodeAttribute()
        request_hash = UnicodeAttribute()
        name = UnicodeAttribute()
        seq = NumberAttribute()
        expect_state = UnicodeAttribute()
        expect_generation = NumberAttribute()
        at = NumberAttribute()
        by = UnicodeAttribute()

    class KeysByCreation(GlobalSecondaryIndex[Any]):
        Meta = index_meta("by_updated")
        idx_all = UnicodeAttribute(hash_key=True)
        updated_at = UnicodeAttribute(range_key=True)

    class KeyItem(Model):
        Meta = table_meta()  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        key_hash = UnicodeAttribute()
        label = UnicodeAttribute()
        pipelines = ListAttribute(of=UnicodeAttribute)
        created_at = NumberAttribute()
        expires_at = NumberAttribute(null=True)
        revoked_at = NumberAttribute(null=True)
        idx_all = UnicodeAttribute(null=True)
        updated_at = UnicodeAttribute(null=True)  # the listing's sort key: when it was issued
        by_creation = KeysByCreation()

    if connection is not None:
        for model in (JobItem, HistoryItem, DataItem, IdempotencyItem, KeyItem):
            # PynamoDB describes the table from the model's attributes (no DescribeTable); the model
            # keeps that description on a connection that uses the shared client.
            table: TableConnection = model._get_connection()
            shared = SharedConnection(region=region, host=host, owner=connection)
            shared.add_meta_table(table.get_meta_table())
            table.connection = shared
    return JobItem, HistoryItem, DataItem, IdempotencyItem, KeyItem


def bind_lineage_model(
    table_name: str, region: str, host: str | None, connection: SharedConnection | None = None
) -> type[Any]:
    """The model of lineage items (a job's parents), bound like bind_models' models."""

    class LineageByCreation(GlobalSecondaryIndex[Any]):
        Meta = type("Meta", (), {"index_name": "by_updated", "projection": AllProjection()})
        idx_all = UnicodeAttribute(hash_key=True)
        updated_at = UnicodeAttribute(range_key=True)

    class LineageItem(Model):
        Meta = type("Meta", (), {"table_name": table_name, "region": region, "host": host})  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)  # CHILD#<parent id>
        sk = UnicodeAttribute(range_key=True)  # JOB#<uuid>
        idx_all = UnicodeAttribute()  # = pk: the parent's partition of by_updated
        updated_at = UnicodeAttribute()  # <created_at>#<uuid>: newest first, ties broken by uuid
        by_creation = LineageByCreation()

    if connection is not None:
        table: TableConnection = LineageItem._get_connection()
        shared = SharedConnection(region=region, host=host, owner=connection)
        shared.add_meta_table(table.get_meta_table())
        table.connection = shared
    return LineageItem


def bind_manifest_model(
    table_name: str, region: str, host: str | None, connection: SharedConnection | None = None
) -> type[Any]:
    """The model of manifest items (the outputs an index run recorded), bound like bind_models' models."""

    class ManifestItem(Model):
        Meta = type("Meta", (), {"table_name": table_name, "region": region, "host": host})  # type: ignore[assignment]
        pk = UnicodeAttribute(hash_key=True)  # JOB#<uuid>
        sk = UnicodeAttribute(range_key=True)  # OUT#<run tag>#<relative key>
        key = UnicodeAttribute(attr_name="k")  # the relative key, whole (the sort key may be cut)
        size = NumberAttribute()
        modified = NumberAttribute()  # epoch seconds
        etag = UnicodeAttribute()
        level = UnicodeAttribute(null=True)

    if connection is not None:
        table: TableConnection = ManifestItem._get_connection()
        shared = SharedConnection(region=region, host=host, owner=connection)
        shared.add_meta_table(table.get_meta_table())
        table.connection = shared
    return ManifestItem


MANIFEST_SK_PREFIX: Final = "OUT#"
_MAX_SORT_KEY: Final = 1024  # DynamoDB's longest sort key, in UTF-8 bytes


def manifest_prefix(run: str) -> str:
    """The sort-key prefix of one index run's manifest (a short tag of the run's event id)."""
    return f"{MANIFEST_SK_PREFIX}{hashlib.sha256(run.encode('utf-8')).hexdigest()[:12]}#"


def manifest_sk(run: str, key: str) -> str:
    """The sort key of `key` in the manifest of `run`: the key itself, so the manifest reads in key
    order, S3's order (both compare UTF-8 bytes). A key too long to fit is cut and told apart by a hash
    of it (it then sorts among the keys sharing its first 990 bytes)."""
    prefix = manifest_prefix(run)
    sk = prefix + key
    if len(sk.encode("utf-8")) <= _MAX_SORT_KEY:
        return sk
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    room = _MAX_SORT_KEY - len(prefix) - 1 - len(digest)
    cut = key.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return f"{prefix}{cut}\x7f{digest}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(_json(key).encode()).decode().rstrip("=")


_BAD_CURSOR: Final = "the 'next' cursor is not valid; pass back the value a listing returned"


def decode_cursor(
    cursor: str | None, expected: Mapping[str, str | None] | None = None
) -> dict[str, Any] | None:
    """The start key in `cursor`. With `expected` (key name -> required value, None for any string),
    the key must have exactly those string attributes: a cursor of another listing, another job or a
    forged one is the caller's mistake (InvalidRequest), never a failed query."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (ValueError, TypeError):
        raise InvalidRequest(_BAD_CURSOR) from None
    if not isinstance(key, dict) or not all(isinstance(v, dict) for v in key.values()):
        raise InvalidRequest(_BAD_CURSOR)
    if expected is not None:
        if set(key) != set(expected) or not all(
            set(value) == {"S"} and isinstance(value["S"], str) for value in key.values()
        ):
            raise InvalidRequest(_BAD_CURSOR)
        if any(want is not None and key[name]["S"] != want for name, want in expected.items()):
            raise InvalidRequest(_BAD_CURSOR)
    return key


def _deadline_attributes(job: Job) -> dict[str, Any]:
    """A new job's deadlines: durations in ms and index shards, only for the deadlines it has (its due
    times come with the events that start them)."""
    shard = int(job.uuid[:8], 16) % DEADLINE_SHARDS
    attributes: dict[str, Any] = {}
    if job.heartbeat_seconds is not None:
        attributes.update(hb=job.heartbeat_seconds * 1000, idx_hb=f"HB#{shard}")
    if job.timeout_seconds is not None:
        attributes.update(to=job.timeout_seconds * 1000, idx_to=f"TO#{shard}")
    return attributes


def _failed(reason: Any) -> bool:
    """Whether a transaction's cancellation reason is its item's failed condition."""
    return reason is not None and reason.code == "ConditionalCheckFailed"


def _transient(error: PynamoDBException) -> bool:
    code = getattr(error, "cause_response_code", None)
    if code in _TRANSIENT_CODES:
        return True
    reasons = getattr(error, "cancellation_reasons", None) or []
    return any(r is not None and r.code in _TRANSIENT_CODES for r in reasons)


class DynamoJobRepository:
    """JobRepository on one DynamoDB table."""

    def __init__(
        self,
        table_name: str,
        *,
        region: str | None = None,
        host: str | None = None,
        session: Any = None,
    ) -> None:
        """`session`: the botocore session to make the DynamoDB client on (the handler's, shared with
        its other clients); PynamoDB makes its own without one. The client is made here, not on the
        first request."""
        region = region or _region()
        self._connection = SharedConnection(region=region, host=host, session=session)
        self.JobItem, self.HistoryItem, self.DataItem, self.IdempotencyItem, self.KeyItem = bind_models(
            table_name, region, host, self._connection
        )
        self.LineageItem = bind_lineage_model(table_name, region, host, self._connection)
        self.ManifestItem = bind_manifest_model(table_name, region, host, self._connection)
        self._connection.client  # noqa: B018 (made now: a container's init, not its first request)

    # -- conversions ---------------------------------------------------------------------------------

    def _job(self, item: Any) -> Job:
        times = {
            field: getattr(item, field)
            for state, field in STATE_TIME_FIELDS.items()
            if state is not State.CREATED and getattr(item, field, None)
        }
        grace = item.grace.as_dict() if item.grace is not None else {}
        state = State(item.state)
        return Job(
            uuid=item.pk.removeprefix("JOB#"),
            pipeline_uuid=item.pipeline_uuid,
            state=state,
            generation=int(item.generation),
            archive_path=item.archive_path,
            created_at=item.created_at,
            updated_at=item.updated_at,
            # the current state's own timestamp (kept once: the item stays under 1 KB)
            state_entered_at=times.get(STATE_TIME_FIELDS[state]) or item.created_at,
            tokens=TokenState(
                token_hash=item.token_hash,
                issued_at=float(item.token_issued_at or 0),
                uses=int(item.token_uses or 0),
                grace={h: float(until) for h, until in grace.items()},
                callback_hash=item.callback_hash,
            ),
            last_event=item.last_event,
            last_event_id=item.last_event_id,
            child_of=tuple(item.child_of or ()),
            name=item.name,
            tags=tuple(item.tags or ()),
            session=item.session,
            agent=item.agent,
            task=item.task,
            state_times=times,
            run_ended_at=item.run_end,
            deleted_at=item.deleted_at,
            erased_objects=int(item.erased_objects or 0),
            accepted_state=item.accepted_state,
            accepted_generation=int(item.accepted_generation)
            if item.accepted_generation is not None
            else None,
            accepted_seq=int(item.accepted_seq or 0),
            applied_seq=int(item.applied_seq or 0),
            incarnation=int(item.incarnation or 1),
            callback_nonce=item.callback_nonce,
            owner_key=item.owner,
            heartbeat_seconds=int(item.hb) // 1000 if item.hb is not None else None,
            timeout_seconds=int(item.to) // 1000 if item.to is not None else None,
            heartbeat_due=int(item.hb_at) if item.hb_at is not None and item.hb is not None else None,
            timeout_due=int(item.to_at) if item.to_at is not None and item.to is not None else None,
            deadline_missed=item.missed,
            index_run=item.index_run,
            manifest=item.manifest,
            manifest_count=int(item.manifest_count) if item.manifest_count is not None else None,
        )

    def _history_item(self, uuid: str, entry: HistoryEntry, now_us: str) -> Any:
        return self.HistoryItem(
            pk(uuid),
            EVENT_SK_PREFIX + entry.event_id,
            hist=f"{now_us}#{entry.event_id}",
            event_id=entry.event_id,
            name=entry.name,
            data=_json(entry.data),
            at=entry.at,
            outcome=str(entry.outcome),
            reason=entry.reason,
            from_state=entry.from_state and str(entry.from_state),
            to_state=entry.to_state and str(entry.to_state),
            generation=entry.generation,
            by=entry.by,
        )

    def _entry(self, item: Any) -> HistoryEntry:
        return HistoryEntry(
            event_id=item.event_id,
            name=item.name,
            data=json.loads(item.data),
            at=item.at,
            outcome=Outcome(item.outcome),
            from_state=State(item.from_state) if item.from_state else None,
            to_state=State(item.to_state) if item.to_state else None,
            generation=int(item.generation) if item.generation is not None else None,
            by=item.by or None,
            reason=item.reason,
        )

    # -- writes --------------------------------------------------------------------------------------

    def create(self, job: Job, data: dict[str, Any], replaces: Job | None = None) -> Job | None:
        J = self.JobItem
        item = J(
            pk(job.uuid),
            JOB_SK,
            pipeline_uuid=job.pipeline_uuid,
            state=str(job.state),
            generation=job.generation,
            archive_path=job.archive_path,
            created_at=job.created_at,
            updated_at=job.updated_at,
            child_of=list(job.child_of) or None,
            name=job.name,
            tags=list(job.tags) or None,
            session=job.session,
            agent=job.agent,
            task=job.task,
            token_hash=job.tokens.token_hash,
            token_issued_at=job.tokens.issued_at,
            token_uses=0,
            callback_hash=job.tokens.callback_hash,
            callback_nonce=job.callback_nonce,
            idx_all=ALL_JOBS,
            idx_state=str(job.state),
            idx_pipeline=job.pipeline_uuid,
            accepted_state=str(job.state),
            accepted_generation=job.generation,
            accepted_seq=job.accepted_seq,
            applied_seq=job.applied_seq,
            incarnation=job.incarnation,
            owner=job.owner_key,
            idx_owner=job.owner,
            **_deadline_attributes(job),
        )
        if replaces is None:
            condition = J.pk.does_not_exist()  # a new uuid
        else:
            # the deleted incarnation it follows is still the one there (no concurrent re-creation)
            condition = J.deleted_at.exists() & (J.incarnation == replaces.incarnation)
        lineage = self._lineage_items(job)
        try:
            with TransactWrite(connection=self._connection) as tx:
                tx.save(item, condition=condition, return_values="ALL_OLD")
                tx.save(self.DataItem(pk(job.uuid), DATA_SK, data=_json(data)))
                for link in lineage[:LINEAGE_IN_CREATE]:
                    tx.save(link)  # unconditional: a job created again rewrites its own
        except TransactWriteError as error:
            reasons = error.cancellation_reasons or []
            if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                old = self._job(J.from_raw_data(reasons[0].raw_item)) if reasons[0].raw_item else None
                if old is not None and old.deleted and replaces is None:
                    return old
                if old is not None and not old.deleted:
                    # (a retry of a creation cut short before the rest of its lineage was written)
                    self._put_lineage(self._lineage_items(old)[LINEAGE_IN_CREATE:])
                raise JobExists(f"job {job.uuid} exists", uuid=job.uuid) from None
            raise TransientError(f"creating job {job.uuid} failed: {error.cause_response_code}") from error
        self._put_lineage(lineage[LINEAGE_IN_CREATE:])
        return None

    def _lineage_items(self, job: Job) -> list[Any]:
        order = f"{job.created_at}#{job.uuid}"
        return [
            self.LineageItem(lineage_pk(parent), pk(job.uuid), idx_all=lineage_pk(parent), updated_at=order)
            for parent in job.child_of
        ]

    def _put_lineage(self, items: list[Any]) -> None:
        """The lineage items beyond what the creation's transaction holds, in BatchWriteItems."""
        if not items:
            return
        try:
            with self.LineageItem.batch_write() as batch:
                for link in items:
                    batch.save(link)
        except PutError as error:
            raise TransientError(
                f"recording the job's inputs failed: {error.cause_response_code}; create it again"
            ) from error

    def accept(self, acceptance: Acceptance) -> AcceptResult:
        J = self.JobItem
        a = acceptance
        # Each clause of the API's guard, and why it is there:
        condition: Condition = (
            J.pk.exists()  # the job exists (an update would otherwise create it)
            & J.deleted_at.does_not_exist()  # ... and is not deleted
        )
        if a.sources is not None:
            # the event is allowed from the state the job will be in once every event accepted
            # before it is applied: the order a 202 promises is the order accepted here
            condition &= J.accepted_state.is_in(*sorted(str(state) for state in a.sources))
        condition &= self._credential_clause(a.by, a.token_hash, a.now, a.key.key_id if a.key else None)
        if a.expected_seq is not None:
            condition &= J.accepted_seq == a.expected_seq  # no acceptance since the read it was based on
        if a.expected_projection is not None:
            # ... nor a state change outside the API's order: the place and the expectation the event
            # is queued with are the ones the write makes
            state, generation = a.expected_projection
            condition &= (J.accepted_state == state) & (J.accepted_generation == generation)
        actions = [J.accepted_seq.add(1)]
        if a.to_state is not None:
            actions.append(J.accepted_state.set(a.to_state))
        if a.next_generation:
            actions.append(J.accepted_generation.add(1))
        if a.count_use:
            actions.append(J.token_uses.add(1))
        if a.idempotency is None and a.key is None:
            return self._accept_one(a.uuid, actions, condition)
        return self._accept_in_transaction(a.uuid, actions, condition, a.idempotency, a.key, a.now)

    def _key_valid(self, key_hash: str, now: float) -> Condition:
        """A producer key's ConditionCheck: this key (its hash), not revoked, not expired."""
        K = self.KeyItem
        return (
            (K.key_hash == key_hash)  # the key's secret (an unknown id has no item: fails too)
            & K.revoked_at.does_not_exist()  # revocation holds at once
            & (K.expires_at.does_not_exist() | (K.expires_at > now))  # ... and so does expiry
        )

    def _credential_clause(
        self, by: Actor, token_hash: str | None, now: float, key_id: str | None = None
    ) -> Condition:
        J = self.JobItem
        if by is Actor.KEY:
            return J.owner == (key_id or "")  # a key acts on the jobs it created only
        if by is Actor.JOB:
            # the current job token, or a rotated-out one still in its grace period
            return (J.token_hash == token_hash) | (J.grace[grace_key(token_hash or "")] > now)
        if by is Actor.CALLBACK:
            return J.callback_hash == token_hash  # the job's callback token
        return J.pk.exists()  # an admin token was verified against the admin key before the write

    def _accept_one(self, uuid: str, actions: list[Any], condition: Condition) -> AcceptResult:
        """One UpdateItem returning the item before it, whether it was made or refused (PynamoDB's
        update neither asks for nor keeps the refused item, so the request is sent on its client)."""
        table = self.JobItem._get_connection()
        kwargs = table.connection.get_operation_kwargs(
            table.table_name,
            pk(uuid),
            JOB_SK,
            actions=actions,
            condition=condition,
            return_values="ALL_OLD",
            return_values_on_condition_failure="ALL_OLD",
        )
        try:
            answer = self._connection.client.update_item(**kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "ConditionalCheckFailedException":
                raw = error.response.get("Item")
                return AcceptResult(False, self._job(self.JobItem.from_raw_data(raw)) if raw else None)
            raise TransientError(f"accepting the event failed: {code}") from error
        except BotoCoreError as error:
            raise TransientError(f"accepting the event failed: {type(error).__name__}") from error
        return AcceptResult(True, self._job(self.JobItem.from_raw_data(answer["Attributes"])))

    def _accept_in_transaction(
        self,
        uuid: str,
        actions: list[Any],
        condition: Condition,
        record: IdempotencyRecord | None,
        key: KeyCheck | None,
        now: float,
    ) -> AcceptResult:
        """The acceptance as one TransactWriteItems: the key's ConditionCheck (a producer key), the
        Idempotency-Key's record (when there is one), the job's update. It returns no item when it
        succeeds: the caller knew the place it took (expected_seq)."""
        K = self.IdempotencyItem
        try:
            with TransactWrite(connection=self._connection) as tx:
                if key is not None:
                    # (PynamoDB sends condition checks first)
                    tx.condition_check(
                        self.KeyItem, key_pk(key.key_id), KEY_SK, condition=self._key_valid(key.key_hash, now)
                    )
                if record is not None:
                    # the key's first use on this job: a retry finds this record instead
                    tx.save(
                        self._idempotency_item(uuid, record),
                        condition=K.sk.does_not_exist(),
                        return_values="ALL_OLD",
                    )
                tx.update(
                    self.JobItem(pk(uuid), JOB_SK),
                    actions=actions,
                    condition=condition,
                    return_values="ALL_OLD",
                )
        except TransactWriteError as error:
            reasons = list(error.cancellation_reasons or [])
            if _transient(error) or len(reasons) < 1 + (key is not None) + (record is not None):
                raise TransientError(f"accepting the event failed: {error.cause_response_code}") from error
            # [key check?, idempotency put?, job update], in PynamoDB's order
            key_reason = reasons.pop(0) if key is not None else None
            record_reason = reasons.pop(0) if record is not None else None
            job_reason = reasons[0]
            job = None
            if job_reason is not None and job_reason.raw_item:
                job = self._job(self.JobItem.from_raw_data(job_reason.raw_item))
            if _failed(key_reason):
                return AcceptResult(False, job, key_refused=True)  # the credential first, whatever else
            if _failed(record_reason) and record_reason is not None and record_reason.raw_item:
                return AcceptResult(False, job, self._idempotency(K.from_raw_data(record_reason.raw_item)))
            if not _failed(job_reason):
                raise TransientError(f"accepting the event failed: {error.cause_response_code}") from error
            return AcceptResult(False, job)
        return AcceptResult(True, None)

    def _idempotency_item(self, uuid: str, record: IdempotencyRecord) -> Any:
        return self.IdempotencyItem(
            pk(uuid),
            _idempotency_sk(record.incarnation, record.key_hash),
            event_id=record.event_id,
            request_hash=record.request_hash,
            name=record.name,
            seq=record.seq,
            expect_state=record.expect_state,
            expect_generation=record.expect_generation,
            at=record.at,
            by=record.by,
        )

    def _idempotency(self, item: Any) -> IdempotencyRecord:
        _, incarnation, key_hash = item.sk.split("#", 2)
        return IdempotencyRecord(
            key_hash=key_hash,
            incarnation=int(incarnation),
            event_id=item.event_id,
            request_hash=item.request_hash,
            name=item.name,
            seq=int(item.seq),
            expect_state=item.expect_state,
            expect_generation=int(item.expect_generation),
            at=float(item.at),
            by=item.by,
        )

    def idempotency(self, uuid: str, incarnation: int, key_hash: str) -> IdempotencyRecord | None:
        try:
            item = self.IdempotencyItem.get(
                pk(uuid), _idempotency_sk(incarnation, key_hash), consistent_read=True
            )
        except DoesNotExist:
            return None
        except GetError as error:
            raise TransientError(
                f"reading the idempotency key failed: {error.cause_response_code}"
            ) from error
        return self._idempotency(item)

    def apply(self, command: ApplyCommand, entry: HistoryEntry) -> Conflict | None:
        J = self.JobItem
        c = command
        # Each clause of the guard, and why it is there:
        condition: Condition = (
            J.pk.exists()  # the job exists (an update would otherwise create it)
            & J.deleted_at.does_not_exist()  # ... and is not deleted
            & (J.state == str(c.expected_state))  # the transition is allowed from exactly this state,
            & (J.generation == c.expected_generation)  # ... of this run, which the history entry records
        )
        if not c.authorized and c.by is not Actor.ADMIN:
            condition &= self._credential_clause(c.by, c.token_hash, c.now, c.key_id)
        # (an admin token was verified against the admin key before the write; an event the API
        # marked was authorized when it was accepted)
        if c.expected_last_event_id is not None:
            condition &= J.last_event_id == c.expected_last_event_id  # internal follow-up of that event
        if c.seq is not None:
            condition &= J.applied_seq == c.after_seq  # the API's order: right after the one before it
        if c.outside_order and not c.overtakes:
            # a state change the API did not order waits until no accepted event is still queued:
            # each of those was promised against the state it would find
            condition &= J.accepted_seq <= J.applied_seq
        if c.deadline is not None:
            # the system's fail of a missed deadline: only while that very deadline is still pending
            # (an event applied since moved or cleared it, and so got there first)
            due = J.hb_at if c.deadline[0] == HEARTBEAT else J.to_at
            condition &= due == c.deadline[1]
        if c.completes_index is not None:
            # the system's indexed: only while the run it completes is still the job's (an `index`
            # sent again started another; a reset or delete cleared it)
            condition &= J.index_run == c.completes_index[0]

        stamp = iso(c.now)
        generation = c.expected_generation + (1 if c.effect is Effect.NEXT_GENERATION else 0)
        actions = [
            J.state.set(str(c.to_state)),
            J.last_event.set(c.name),
            J.last_event_id.set(c.event_id),
            J.updated_at.set(stamp),
        ]
        if c.to_state != c.expected_state:
            actions.append(J.idx_state.set(str(c.to_state)))
            field = STATE_TIME_FIELDS[c.to_state]
            if field != "created_at":
                actions.append(getattr(J, field).set(stamp))
            if c.expected_state is State.RUNNING:
                actions.append(J.run_end.set(stamp))  # run_seconds ends here, whatever follows
        if c.seq is not None:
            actions.append(J.applied_seq.set(c.seq))
        if c.outside_order:
            to = DELETING if c.effect is Effect.DELETE else str(c.to_state)
            actions += [J.accepted_state.set(to), J.accepted_generation.set(generation)]
        if c.count_use:
            actions.append(J.token_uses.add(1))
        if c.effect is Effect.NEXT_GENERATION:
            # a new run: the timestamps of the last one go (SPEC section 2: the current generation's only)
            actions.append(J.generation.set(generation))
            actions.append(J.erased_objects.remove())
            actions.append(J.run_end.remove())
            actions.append(J.created_at.set(stamp))
            actions += [
                getattr(J, name).remove()
                for state, name in STATE_TIME_FIELDS.items()
                if state is not State.CREATED
            ]
        if c.effect in (Effect.REVOKE, Effect.DELETE):
            actions += [J.token_hash.remove(), J.grace.remove()]
            if c.callback is not None:
                actions += [J.callback_nonce.set(c.callback[0]), J.callback_hash.set(c.callback[1])]
            else:
                actions += [J.callback_nonce.remove(), J.callback_hash.remove()]
        if c.effect is Effect.DELETE:
            actions += [
                J.deleted_at.set(stamp),
                J.idx_all.remove(),
                J.idx_state.remove(),
                J.idx_pipeline.remove(),
            ]
        if c.effect is Effect.REVOKE:
            actions.append(J.erased_objects.set(0))
        actions += self._index_actions(c)
        actions += self._deadline_actions(c)
        return self._write_with_history(c.uuid, actions, condition, entry, c.now, key_id=c.key_id)

    def _index_actions(self, c: ApplyCommand) -> list[Any]:
        """The indexer's part of the apply write: `index` starts a run (the manifest before it is no
        longer current: the live listing serves until the run completes); the system's `indexed` makes
        the run's manifest the job's; a reset, a new generation and a delete forget both (the archive
        is erased, or no longer the job's)."""
        J = self.JobItem
        if c.starts_index is not None:
            return [J.index_run.set(c.starts_index), J.manifest.remove(), J.manifest_count.remove()]
        if c.completes_index is not None:
            run, count = c.completes_index
            return [J.manifest.set(run), J.manifest_count.set(count), J.index_run.remove()]
        if c.effect is not Effect.NONE:
            return [J.index_run.remove(), J.manifest.remove(), J.manifest_count.remove()]
        return []

    def _deadline_actions(self, c: ApplyCommand) -> list[Any]:
        """The deadlines' part of the apply write, made without knowing whether the job has any: a due
        time is its duration (absent: never) from now, and is indexed only for a job with that deadline.
        The heartbeat restarts with every event applied in its states; the timeout starts on entering
        RUNNING. Leaving their states (finish, fail, reset, delete, ...) clears them: no fail can follow."""
        J = self.JobItem
        now_ms = int(c.now * 1000)
        actions: list[Any] = []
        if c.to_state in DEADLINE_STATES[HEARTBEAT] and c.effect is not Effect.DELETE:
            actions.append(J.hb_at.set((J.hb | _NEVER_MS) + now_ms))
        else:
            actions.append(J.hb_at.remove())
        if c.to_state in DEADLINE_STATES[TIMEOUT] and c.effect is not Effect.DELETE:
            if c.expected_state not in DEADLINE_STATES[TIMEOUT]:
                actions.append(J.to_at.set((J.to | _NEVER_MS) + now_ms))
        else:
            actions.append(J.to_at.remove())
        if c.deadline is not None:
            actions.append(J.missed.set(c.deadline[0]))
        elif c.to_state != c.expected_state or c.effect is not Effect.NONE:
            actions.append(J.missed.remove())  # it names the deadline that failed the job, while FAILED
        return actions

    def overdue(
        self, now_ms: int, limit: int, reasons: tuple[str, ...] = (HEARTBEAT, TIMEOUT)
    ) -> list[Overdue]:
        J = self.JobItem
        found: list[Overdue] = []
        for reason, index, prefix in ((HEARTBEAT, J.by_heartbeat, "HB"), (TIMEOUT, J.by_timeout, "TO")):
            if reason not in reasons:
                continue
            due = J.hb_at if reason == HEARTBEAT else J.to_at
            for shard in range(DEADLINE_SHARDS):
                if len(found) >= limit:
                    return found
                try:
                    for item in index.query(
                        f"{prefix}#{shard}", due < now_ms, limit=limit - len(found), page_size=100
                    ):
                        found.append(
                            Overdue(
                                uuid=item.pk.removeprefix("JOB#"),
                                reason=reason,
                                deadline=int(getattr(item, "hb_at" if reason == HEARTBEAT else "to_at")),
                                state=item.state,
                                generation=int(item.generation),
                            )
                        )
                except QueryError as error:
                    raise TransientError(
                        f"reading the deadline index failed: {error.cause_response_code}"
                    ) from error
        return found

    def record_in_order(self, record: InOrderRecord) -> Conflict | None:
        J = self.JobItem
        condition = J.pk.exists() & (J.applied_seq == record.after_seq)  # its place is the next one
        actions = [J.applied_seq.set(record.seq)]
        if record.projection is not None:
            condition &= J.accepted_seq == record.seq  # nothing accepted after it, against the projection
            actions += [
                J.accepted_state.set(record.projection[0]),
                J.accepted_generation.set(record.projection[1]),
            ]
        return self._write_with_history(record.uuid, actions, condition, record.entry, record.now)

    def _write_with_history(
        self,
        uuid: str,
        actions: list[Any],
        condition: Condition,
        entry: HistoryEntry,
        now: float,
        *,
        key_id: str | None = None,
    ) -> Conflict | None:
        history = self._history_item(uuid, entry, iso_us(now))
        K = self.KeyItem
        try:
            with TransactWrite(connection=self._connection) as tx:
                if key_id is not None:
                    # a producer key's event: only while the key is not revoked (expiry after its
                    # acceptance does not undo a 202; revocation, an explicit act, does)
                    tx.condition_check(
                        K, key_pk(key_id), KEY_SK, condition=K.pk.exists() & K.revoked_at.does_not_exist()
                    )
                tx.update(
                    self.JobItem(pk(uuid), JOB_SK),
                    actions=actions,
                    condition=condition,
                    return_values="ALL_OLD",
                )
                # the event id is new to this job: a redelivered event has no second effect
                tx.save(history, condition=self.HistoryItem.sk.does_not_exist())
        except TransactWriteError as error:
            return self._conflict(error, with_key=key_id is not None)
        return None

    def _conflict(self, error: TransactWriteError, *, with_key: bool = False) -> Conflict:
        reasons = list(error.cancellation_reasons or [])
        if _transient(error) or len(reasons) < 2 + with_key:
            raise TransientError(
                f"DynamoDB could not apply the event now: {error.cause_response_code}"
            ) from error
        if with_key and _failed(reasons.pop(0)):
            duplicate = _failed(reasons[0])
            raw = reasons[1].raw_item if reasons[1] is not None else None
            job = self._job(self.JobItem.from_raw_data(raw)) if raw else None
            return Conflict(duplicate=duplicate, job=job, key_revoked=True)
        # PynamoDB sends puts before updates: [history put, job update].
        history_reason, job_reason = reasons[0], reasons[1]
        duplicate = history_reason is not None and history_reason.code == "ConditionalCheckFailed"
        job = None
        if job_reason is not None and job_reason.raw_item:
            job = self._job(self.JobItem.from_raw_data(job_reason.raw_item))
        elif not duplicate and (job_reason is None or job_reason.code != "ConditionalCheckFailed"):
            raise TransientError(f"DynamoDB cancelled the write: {error.cause_response_code}") from error
        return Conflict(duplicate=duplicate, job=job)

    def record(self, uuid: str, entry: HistoryEntry, now: float) -> bool:
        item = self._history_item(uuid, entry, iso_us(now))
        try:
            item.save(condition=self.HistoryItem.sk.does_not_exist())  # once per event id
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise TransientError(
                f"recording event {entry.event_id} failed: {error.cause_response_code}"
            ) from error
        return True

    def replace_tokens(
        self, uuid: str, expected_hash: str | None, tokens: TokenState, callback_nonce: str | None = None
    ) -> bool:
        J = self.JobItem
        still_current = (
            J.token_hash.does_not_exist() if expected_hash is None else J.token_hash == expected_hash
        )
        actions = [
            J.token_issued_at.set(tokens.issued_at),
            J.token_uses.set(tokens.uses),
            J.grace.set(dict(tokens.grace)) if tokens.grace else J.grace.remove(),
        ]
        actions.append(J.token_hash.set(tokens.token_hash) if tokens.token_hash else J.token_hash.remove())
        actions.append(
            J.callback_hash.set(tokens.callback_hash) if tokens.callback_hash else J.callback_hash.remove()
        )
        if callback_nonce is not None:
            actions.append(J.callback_nonce.set(callback_nonce))
        try:
            J(pk(uuid), JOB_SK).update(
                actions=actions,
                # someone else rotated first (their token wins), or the job was deleted meanwhile
                condition=J.pk.exists() & J.deleted_at.does_not_exist() & still_current,
            )
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise TransientError(f"rotating the token failed: {error.cause_response_code}") from error
        return True

    def index_progress(self, uuid: str, run: str, generation: int, now: float) -> bool:
        J = self.JobItem
        try:
            J(pk(uuid), JOB_SK).update(
                # the heartbeat restarts as an applied event restarts it (its duration, absent: never)
                actions=[J.hb_at.set((J.hb | _NEVER_MS) + int(now * 1000))],
                condition=(
                    J.pk.exists()
                    & J.deleted_at.does_not_exist()
                    & (J.state == str(State.INDEXING))  # still indexing ...
                    & (J.generation == generation)  # ... in this run's generation
                    & (J.index_run == run)  # ... this very run
                ),
            )
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise TransientError(
                f"recording indexing progress failed: {error.cause_response_code}"
            ) from error
        return True

    def add_erased(self, uuid: str, count: int) -> None:
        J = self.JobItem
        try:
            J(pk(uuid), JOB_SK).update(actions=[J.erased_objects.add(count)], condition=J.pk.exists())
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise TransientError(
                    f"recording erasure progress failed: {error.cause_response_code}"
                ) from error

    def put_manifest(self, uuid: str, run: str, outputs: list[OutputObject]) -> None:
        # BatchWriteItem, 25 items a request; PynamoDB sends the unprocessed items again (backing off)
        items = [
            self.ManifestItem(
                pk(uuid),
                manifest_sk(run, output.key),
                key=output.key,
                size=output.size,
                modified=output.modified,
                etag=output.etag,
                level=output.level,
            )
            for output in outputs
        ]
        if not items:
            return
        try:
            with self.ManifestItem.batch_write() as batch:
                for item in items:
                    batch.save(item)
        except PynamoDBException as error:
            raise TransientError(
                f"recording the manifest failed: {getattr(error, 'cause_response_code', None)}"
            ) from error

    def manifest(self, uuid: str, run: str, limit: int, cursor: str | None) -> OutputPage:
        prefix = manifest_prefix(run)
        # the cursor must come from a page of this job's manifest of this run
        last_key = decode_cursor(cursor, {"pk": pk(uuid), "sk": None})
        if last_key is not None and not last_key["sk"]["S"].startswith(prefix):
            raise InvalidRequest(_BAD_CURSOR)
        M = self.ManifestItem
        try:
            # one more than the page: a page that ends the manifest says so (no cursor to an empty page)
            items = list(
                M.query(
                    pk(uuid),
                    M.sk.startswith(prefix),
                    limit=limit + 1,
                    last_evaluated_key=last_key,
                    consistent_read=True,
                )
            )
        except QueryError as error:
            if cursor and error.cause_response_code == "ValidationException":
                raise InvalidRequest(_BAD_CURSOR) from None
            raise TransientError(f"reading the manifest failed: {error.cause_response_code}") from error
        page = items[:limit]
        outputs = [
            OutputObject(
                key=item.key,
                size=int(item.size),
                modified=float(item.modified),
                etag=item.etag,
                level=item.level,
            )
            for item in page
        ]
        more = len(items) > limit
        return OutputPage(
            outputs, encode_cursor({"pk": {"S": pk(uuid)}, "sk": {"S": page[-1].sk}}) if more else None
        )

    # -- reads ---------------------------------------------------------------------------------------

    def get(self, uuid: str) -> Job | None:
        try:
            return self._job(self.JobItem.get(pk(uuid), JOB_SK, consistent_read=True))
        except DoesNotExist:
            return None
        except GetError as error:
            raise TransientError(f"reading job {uuid} failed: {error.cause_response_code}") from error

    def get_data(self, uuid: str) -> dict[str, Any]:
        try:
            return json.loads(self.DataItem.get(pk(uuid), DATA_SK).data)
        except DoesNotExist:
            return {}
        except GetError as error:
            raise TransientError(f"reading job data failed: {error.cause_response_code}") from error

    def event(self, uuid: str, event_id: str) -> HistoryEntry | None:
        try:
            return self._entry(
                self.HistoryItem.get(pk(uuid), EVENT_SK_PREFIX + event_id, consistent_read=True)
            )
        except DoesNotExist:
            return None
        except GetError as error:
            raise TransientError(f"reading event failed: {error.cause_response_code}") from error

    def history(self, uuid: str, limit: int, cursor: str | None) -> HistoryPage:
        try:
            results = self.HistoryItem.history.query(
                pk(uuid),
                scan_index_forward=True,
                limit=limit,
                last_evaluated_key=decode_cursor(cursor, {"pk": pk(uuid), "sk": None, "hist": None}),
                consistent_read=True,
            )
            entries = [self._entry(item) for item in results]
        except QueryError as error:
            if cursor and error.cause_response_code == "ValidationException":
                raise InvalidRequest(_BAD_CURSOR) from None  # e.g. a start key outside the query
            raise TransientError(f"reading history failed: {error.cause_response_code}") from error
        return HistoryPage(
            entries, encode_cursor(results.last_evaluated_key if len(entries) == limit else None)
        )

    def _listing(self, where: JobFilter) -> tuple[Any, str, str, Condition | None, Condition | None]:
        """The index, partition key (and its attribute), range and filter conditions of a listing."""
        J = self.JobItem
        range_condition = None
        if where.updated_after and where.updated_before:
            range_condition = J.updated_at.between(where.updated_after, where.updated_before)
        elif where.updated_after:
            range_condition = J.updated_at >= where.updated_after
        elif where.updated_before:
            range_condition = J.updated_at <= where.updated_before
        filters: list[Condition] = []
        if where.owner is not None:
            index, key, hash_name = J.by_owner, where.owner, "idx_owner"
            if where.pipeline_uuid is not None:
                filters.append(J.pipeline_uuid == where.pipeline_uuid)
            if where.state is not None:
                filters.append(J.state == str(where.state))
        elif where.pipeline_uuid is not None:
            index, key, hash_name = J.by_pipeline, where.pipeline_uuid, "idx_pipeline"
            if where.state is not None:
                filters.append(J.state == str(where.state))
        elif where.state is not None:
            index, key, hash_name = J.by_state, str(where.state), "idx_state"
        else:
            index, key, hash_name = J.by_updated, ALL_JOBS, "idx_all"
        if where.tag is not None:
            filters.append(J.tags.contains(where.tag))
        filter_condition = None
        for f in filters:
            filter_condition = f if filter_condition is None else filter_condition & f
        return index, key, hash_name, range_condition, filter_condition

    def count_jobs(self, where: JobFilter, most: int) -> tuple[dict[str, int], bool]:
        """Jobs per state for a listing's filters: the listing's index read through (a query of the
        `state` attribute only, never a scan), at most `most` jobs; (counts, complete)."""
        counts: dict[str, int] = {}
        seen = 0
        if where.child_of is not None:
            cursor: str | None = None
            while seen < most:
                page = self._list_children(where, min(_BATCH_GET, most - seen), cursor)
                for job in page.jobs:
                    counts[str(job.state)] = counts.get(str(job.state), 0) + 1
                seen += len(page.jobs)
                cursor = page.next
                if cursor is None:
                    return counts, True
            return counts, False
        index, key, _, range_condition, filter_condition = self._listing(where)
        try:
            results = index.query(
                key,
                range_key_condition=range_condition,
                filter_condition=filter_condition,
                attributes_to_get=["state"],
                page_size=1000,
                limit=most + 1,
            )
            for item in results:
                if seen == most:
                    return counts, False
                counts[item.state] = counts.get(item.state, 0) + 1
                seen += 1
        except QueryError as error:
            raise TransientError(f"counting jobs failed: {error.cause_response_code}") from error
        return counts, True

    def list_jobs(self, where: JobFilter, limit: int, cursor: str | None) -> JobPage:
        if where.child_of is not None:
            return self._list_children(where, limit, cursor)
        index, key, hash_name, range_condition, filter_condition = self._listing(where)
        try:
            jobs: list[Job] = []
            # the cursor must come from a listing of the same index and partition
            last_key = decode_cursor(cursor, {"pk": None, "sk": None, hash_name: key, "updated_at": None})
            # A filter can leave a page short; keep reading (a query, never a scan) until it is full.
            while True:
                results = index.query(
                    key,
                    range_key_condition=range_condition,
                    filter_condition=filter_condition,
                    scan_index_forward=False,
                    limit=limit - len(jobs),
                    last_evaluated_key=last_key,
                )
                for item in results:
                    jobs.append(self._job(item))
                last_key = results.last_evaluated_key
                if len(jobs) >= limit or not last_key:
                    break
        except QueryError as error:
            if cursor and error.cause_response_code == "ValidationException":
                raise InvalidRequest(_BAD_CURSOR) from None  # e.g. a start key outside the time range
            raise TransientError(f"listing jobs failed: {error.cause_response_code}") from error
        return JobPage(jobs, encode_cursor(last_key))

    def _list_children(self, where: JobFilter, limit: int, cursor: str | None) -> JobPage:
        """The jobs whose child_of holds where.child_of, newest first by creation: its lineage items,
        then their jobs (BatchGetItem), filtered on the jobs as they are now. The cursor is the key of
        the last lineage item this page used, so a page that fills up mid-batch loses nothing."""
        assert where.child_of is not None
        partition = lineage_pk(where.child_of)
        # the cursor must come from a listing of the same parent
        last_key = decode_cursor(
            cursor, {"pk": partition, "sk": None, "idx_all": partition, "updated_at": None}
        )
        filtered = where != JobFilter(child_of=where.child_of)
        jobs: list[Job] = []
        read = 0
        try:
            while True:
                size = _BATCH_GET if filtered else min(_BATCH_GET, limit - len(jobs))
                results = self.LineageItem.by_creation.query(
                    partition, scan_index_forward=False, limit=size, last_evaluated_key=last_key
                )
                links = list(results)
                found = (
                    {
                        item.pk: self._job(item)
                        for item in self.JobItem.batch_get([(link.sk, JOB_SK) for link in links])
                    }
                    if links
                    else {}
                )
                read += len(links)
                for link in links:
                    last_key = {
                        name: {"S": getattr(link, name)} for name in ("pk", "sk", "idx_all", "updated_at")
                    }
                    job = found.get(link.sk)
                    if job is not None and _matches(job, where):
                        jobs.append(job)
                        if len(jobs) >= limit:
                            return JobPage(jobs, encode_cursor(last_key))
                last_key = results.last_evaluated_key
                if not last_key or read >= LINEAGE_READS_PER_PAGE:
                    return JobPage(jobs, encode_cursor(last_key))
        except QueryError as error:
            if cursor and error.cause_response_code == "ValidationException":
                raise InvalidRequest(_BAD_CURSOR) from None
            raise TransientError(f"listing jobs failed: {error.cause_response_code}") from error
        except GetError as error:
            raise TransientError(f"reading the listed jobs failed: {error.cause_response_code}") from error

    # -- producer keys -------------------------------------------------------------------------------

    def _key(self, item: Any) -> ProducerKey:
        return ProducerKey(
            key_id=item.pk.removeprefix("KEY#"),
            key_hash=item.key_hash,
            label=item.label,
            pipelines=tuple(item.pipelines or ()),
            created_at=float(item.created_at),
            expires_at=float(item.expires_at) if item.expires_at is not None else None,
            revoked_at=float(item.revoked_at) if item.revoked_at is not None else None,
        )

    def put_key(self, key: ProducerKey) -> bool:
        K = self.KeyItem
        item = K(
            key_pk(key.key_id),
            KEY_SK,
            key_hash=key.key_hash,
            label=key.label,
            pipelines=list(key.pipelines),
            created_at=key.created_at,
            expires_at=key.expires_at,
            idx_all=ALL_KEYS,
            updated_at=iso(key.created_at),
        )
        try:
            item.save(condition=K.pk.does_not_exist())  # a new id (a collision is refused, not merged)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise TransientError(f"storing the key failed: {error.cause_response_code}") from error
        return True

    def get_key(self, key_id: str) -> ProducerKey | None:
        try:
            return self._key(self.KeyItem.get(key_pk(key_id), KEY_SK, consistent_read=True))
        except DoesNotExist:
            return None
        except GetError as error:
            raise TransientError(f"reading the key failed: {error.cause_response_code}") from error

    def list_keys(self) -> list[ProducerKey]:
        try:
            return [
                self._key(item) for item in self.KeyItem.by_creation.query(ALL_KEYS, scan_index_forward=False)
            ]
        except QueryError as error:
            raise TransientError(f"listing keys failed: {error.cause_response_code}") from error

    def revoke_key(self, key_id: str, now: float) -> ProducerKey | None:
        K = self.KeyItem
        item = K(key_pk(key_id), KEY_SK)
        try:
            # idempotent: a second revocation keeps the first one's time
            item.update(actions=[K.revoked_at.set(K.revoked_at | now)], condition=K.pk.exists())
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise TransientError(f"revoking the key failed: {error.cause_response_code}") from error
        return self._key(item)


def _matches(job: Job, where: JobFilter) -> bool:
    """Whether a job (read whole, as a lineage listing reads them) passes the listing's other filters."""
    return (
        not job.deleted
        and (where.owner is None or job.owner == where.owner)
        and (where.state is None or job.state is where.state)
        and (where.pipeline_uuid is None or job.pipeline_uuid == where.pipeline_uuid)
        and (where.tag is None or where.tag in job.tags)
        and (where.updated_after is None or job.updated_at >= where.updated_after)
        and (where.updated_before is None or job.updated_at <= where.updated_before)
    )
