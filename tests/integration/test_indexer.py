"""The indexer (SPEC section 3, `index`; issue 13): `index` lists the archive and records a manifest,
in resumable steps, then the system posts `indexed`; GET /jobs/{uuid}/outputs then serves the manifest."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from integration_helpers import ADMIN_KEY
from test_api_outputs import download, every_output, outputs, put

from jobcore.adapters.dynamodb import MANIFEST_SK_PREFIX, pk
from jobcore.errors import TransientError
from jobcore.keyring import Keyring

if TYPE_CHECKING:
    from api_fixtures import Api, CreatedJob

pytest_plugins = ["api_fixtures"]

PATTERNS = [
    {"level": "raw", "pattern": "raw/**"},
    {"level": "table", "pattern": "**/*.csv"},
    {"level": "top", "pattern": "*"},
]


def finished(api: Api, objects: dict[str, bytes] | None = None) -> CreatedJob:
    """A job that ran and finished, its archive holding `objects` (relative key -> bytes)."""
    job = api.create()
    for key, body in (objects or {}).items():
        put(api, job, key, body)
    api.send(job, "run")
    api.send(job, "finish")
    return job


def index(api: Api, job: CreatedJob, data: dict[str, Any] | None = None, token: str | None = None) -> str:
    response = api.event(job.uuid, token or job.token, "index", data)
    assert response.status == 202, response.text
    if token is None:
        job.token = response.body["token"]
    return str(response.body["event_id"])


def manifest_items(api: Api, uuid: str) -> list[dict[str, Any]]:
    """Every manifest item of the job in the table (all runs), read as they are stored."""
    table = api.harness.repo.ManifestItem
    return [
        item.attribute_values
        for item in table.query(pk(uuid), table.sk.startswith(MANIFEST_SK_PREFIX), consistent_read=True)
    ]


def with_small_steps(api: Api, page: int) -> None:
    """Index `page` objects per page, and the worker's time up after each page."""
    settings = api.harness.service.settings
    fields = {f: getattr(settings, f) for f in settings.__slots__}
    api.harness.service.settings = type(settings)(**{**fields, "erase_batch_seconds": 0.0})
    api.harness.service.index_page = page


def test_index_records_a_manifest_with_levels_and_outputs_serve_it_after_the_system_indexed(api: Api) -> None:
    # given a finished job with outputs in folders
    job = finished(
        api,
        {"raw/a.bin": b"aa", "raw/deep/b.csv": b"b", "results/summary.csv": b"s,1", "README": b"read me"},
    )
    before = outputs(api, job.uuid).body
    assert before["source"] == "listing" and "level" not in before["outputs"][0]
    # when the job posts `index` with level patterns, and the worker runs
    event_id = index(api, job, {"index_patterns": PATTERNS})
    api.work()
    # then the system posted `indexed`: the job is FINISHED again, the history says by whom and how many
    assert api.get(job).body["state"] == "FINISHED"
    *_, started, done = api.history(job)
    assert (started["name"], started["to_state"], started["event_id"]) == ("index", "INDEXING", event_id)
    assert (done["name"], done["by"], done["from_state"], done["to_state"]) == (
        "indexed",
        "system",
        "INDEXING",
        "FINISHED",
    )
    assert done["data"] == {"objects": 4} and done["outcome"] == "applied"
    # and the outputs come from the manifest, in key order, each labelled by the first pattern matching
    body = outputs(api, job.uuid, job.token).body
    assert body["source"] == "manifest" and body["next"] is None
    listed = [(o["key"], o.get("level"), o["size"]) for o in body["outputs"]]
    assert listed == [
        ("README", "top", 7),
        ("raw/a.bin", "raw", 2),
        ("raw/deep/b.csv", "raw", 1),  # raw/** comes first
        ("results/summary.csv", "table", 3),
    ]
    assert [o["etag"] for o in body["outputs"]] == [o["etag"] for o in before["outputs"]]
    assert [o["modified"] for o in body["outputs"]] == [o["modified"] for o in before["outputs"]]
    # and each link downloads its object
    assert download(body["outputs"][3]["url"]) == b"s,1"


def test_the_manifest_is_what_was_indexed_not_what_was_written_after(api: Api) -> None:
    # given a job indexed without patterns
    job = finished(api, {"a.txt": b"a", "b.txt": b"b"})
    index(api, job)
    api.work()
    # when an object is written after the index run
    put(api, job, "late.txt", b"late")
    # then the outputs are the manifest's (no levels), until the job is indexed again
    body = outputs(api, job.uuid).body
    assert [(o["key"], "level" in o) for o in body["outputs"]] == [("a.txt", False), ("b.txt", False)]
    index(api, job)
    api.work()
    assert [o["key"] for o in outputs(api, job.uuid).body["outputs"]] == ["a.txt", "b.txt", "late.txt"]
    assert [e["data"] for e in api.history(job) if e["by"] == "system"] == [{"objects": 2}, {"objects": 3}]


def test_manifest_pages_follow_the_cursor_and_refuse_another_listings_cursor(api: Api) -> None:
    # given an indexed job with 7 outputs, and a cursor of another indexed job
    job, other = finished(api, {f"{i}.txt": b"x" for i in range(7)}), finished(api, {"a": b"", "b": b""})
    for j in (job, other):
        index(api, j)
    api.work()
    # when its manifest is read 3 at a time
    found, pages = every_output(api, job.uuid, limit=3)
    # then every output once, in order, in three pages, and a page of exactly the rest ends it
    assert [o["key"] for o in found] == [f"{i}.txt" for i in range(7)] and pages == 3
    assert outputs(api, job.uuid, limit=7).body["next"] is None
    # and another job's cursor, or junk, is 400
    foreign = outputs(api, other.uuid, limit=1).body["next"]
    for cursor in (foreign, "junk", "eyJwayI6eyJTIjoiSk9CI3gifSwic2siOnsiUyI6Ik9VVCN4In19"):
        response = outputs(api, job.uuid, next=cursor)
        assert (response.status, response.error) == (400, "invalid_request"), cursor


def test_indexing_resumes_across_many_steps_and_records_every_object_exactly_once(api: Api) -> None:
    # given a finished job with 250 objects, and a worker whose time is up after each page of 20
    keys = [f"out/{i:04d}.dat" for i in range(250)]
    job = finished(api, dict.fromkeys(keys, b"x"))
    with_small_steps(api, page=20)
    # when it is indexed
    index(api, job)
    handled = api.work()
    # then it took a step per page (13), and the manifest holds every object once
    assert handled >= 1 + 13
    items = manifest_items(api, job.uuid)
    assert sorted(item["key"] for item in items) == keys
    assert api.get(job).body["state"] == "FINISHED"
    assert [e["data"] for e in api.history(job) if e["by"] == "system"] == [{"objects": 250}]
    found, _ = every_output(api, job.uuid, limit=100)
    assert [o["key"] for o in found] == keys


def test_a_step_redelivered_after_it_wrote_indexes_nothing_twice_and_loses_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a job with 95 objects indexed 20 per step, whose worker dies after writing a page and
    # queuing the next step (before acknowledging its message), in the third step
    keys = [f"{i:03d}" for i in range(95)]
    job = finished(api, dict.fromkeys(keys, b"y"))
    with_small_steps(api, page=20)
    index(api, job)
    harness = api.harness
    harness.work_once()  # the index event: INDEXING, step 0 queued
    for _ in range(2):
        harness.work_once()
    assert len(manifest_items(api, job.uuid)) == 40
    queue = harness.service.queue
    real_send = queue.send
    died = {"n": 0}

    def send_then_die(body: dict[str, Any], group_id: str, dedup_id: str) -> None:
        real_send(body, group_id, dedup_id)
        if body.get("internal") == "index" and not died["n"]:
            died["n"] += 1
            raise TransientError("the Lambda container died after queuing the next step")

    monkeypatch.setattr(queue, "send", send_then_die)
    step = harness.receive(1)
    response = harness.invoke(step)
    assert len(response["batchItemFailures"]) == 1  # not acknowledged: SQS delivers it again
    monkeypatch.setattr(queue, "send", real_send)
    # when the step is delivered again, and the rest runs
    harness.delete_succeeded(step, harness.invoke(step))
    harness.work()
    # then every object is in the manifest once, and the count says 95
    assert Counter(item["key"] for item in manifest_items(api, job.uuid)) == Counter(keys)
    assert [e["data"] for e in api.history(job) if e["by"] == "system"] == [{"objects": 95}]
    assert [o["key"] for o in every_output(api, job.uuid, limit=100)[0]] == keys


def test_a_reset_during_indexing_supersedes_it_and_the_outputs_after_are_empty(api: Api) -> None:
    # given a job being indexed 10 objects a step, one step done
    job = finished(api, {f"{i:02d}": b"z" for i in range(35)})
    with_small_steps(api, page=10)
    index(api, job)
    api.harness.work_once()  # index applied
    api.harness.work_once()  # first step
    # when an admin resets it before the next step runs
    assert api.event(job.uuid, api.admin(), "reset").status == 202
    api.work()
    # then the run stopped: no `indexed` by the system, the job is CREATED in generation 2, and its
    # outputs are the (erased) archive's, none
    body = api.get(job).body
    assert (body["state"], body["generation"]) == ("CREATED", 2)
    assert [e["name"] for e in api.history(job)][-3:] == ["index", "reset", "erased"]
    assert outputs(api, job.uuid).body == {"outputs": [], "next": None, "source": "listing"}


def test_a_reset_after_indexing_forgets_the_manifest_even_when_the_archive_is_kept(api: Api) -> None:
    # given an indexed job
    job = finished(api, {"a": b"a"})
    index(api, job)
    api.work()
    assert outputs(api, job.uuid).body["source"] == "manifest"
    # when it is reset keeping its archive, and new outputs are written
    assert api.event(job.uuid, api.admin(), "reset", {"keep_archive": True}).status == 202
    api.work()
    put(api, job, "b", b"b")
    # then its outputs are listed afresh: the old manifest is not the new run's
    body = outputs(api, job.uuid).body
    assert body["source"] == "listing" and [o["key"] for o in body["outputs"]] == ["a", "b"]


def test_an_index_sent_again_supersedes_the_run_under_way(api: Api) -> None:
    # given a run under way (one step of 10 done out of 30 objects)
    job = finished(api, {f"{i:02d}": b"w" for i in range(30)})
    with_small_steps(api, page=10)
    first = index(api, job, {"index_patterns": [{"level": "old", "pattern": "*"}]})
    api.harness.work_once()
    api.harness.work_once()
    # when the job posts `index` again (INDEXING -> INDEXING) with other patterns
    second = index(api, job, {"index_patterns": [{"level": "new", "pattern": "*"}]})
    api.work()
    # then one `indexed` by the system, for the second run; the outputs carry its levels
    system = [e for e in api.history(job) if e["by"] == "system"]
    assert [(e["event_id"], e["data"]) for e in system] == [(f"{second}:indexed", {"objects": 30})]
    assert first != second
    found, _ = every_output(api, job.uuid, limit=100)
    assert {o["level"] for o in found} == {"new"} and len(found) == 30


def test_indexed_posted_by_hand_ends_the_run_and_the_listing_serves(api: Api) -> None:
    # given a run under way
    job = finished(api, {f"{i:02d}": b"v" for i in range(30)})
    with_small_steps(api, page=10)
    index(api, job)
    api.harness.work_once()
    api.harness.work_once()
    # when the job posts `indexed` itself (to unstick it, say)
    response = api.event(job.uuid, job.token, "indexed")
    assert response.status == 202, response.text
    api.work()
    # then the job is FINISHED by the job's hand, the run stopped without a system `indexed`, and the
    # outputs are the live listing (the run's manifest is incomplete: never served)
    history = api.history(job)
    assert [(e["name"], e["by"]) for e in history][-2:] == [("index", "job"), ("indexed", "job")]
    assert api.get(job).body["state"] == "FINISHED"
    body = outputs(api, job.uuid).body
    assert body["source"] == "listing" and len(body["outputs"]) == 30


def test_the_system_indexed_waits_for_accepted_events_and_a_fail_among_them_wins(api: Api) -> None:
    # given a job whose index run has listed everything (one page) while the job's `fail`, accepted
    # by the API, is still queued behind the run's step
    job = finished(api, {"a": b"a"})
    index(api, job)
    api.harness.work_once()  # index applied: the step is queued
    response = api.event(job.uuid, job.token, "fail", {"why": "bad outputs"})
    assert response.status == 202, response.text
    # when the worker runs
    api.work()
    # then the promised fail was applied from INDEXING; the system's `indexed` never overtook it
    history = api.history(job)
    assert [(e["name"], e["outcome"], e["to_state"]) for e in history][-2:] == [
        ("index", "applied", "INDEXING"),
        ("fail", "applied", "FAILED"),
    ]
    assert api.get(job).body["state"] == "FAILED"


def test_an_update_accepted_during_indexing_is_applied_before_the_system_indexed(api: Api) -> None:
    # given an index run whose step is queued, and an update the API accepted after it
    job = finished(api, {"a": b"a"})
    index(api, job)
    api.harness.work_once()
    assert api.event(job.uuid, job.token, "update", {"progress": 50}).status == 202
    # when the worker runs
    api.work()
    # then the update is applied in INDEXING, then the system's indexed
    history = api.history(job)
    assert [(e["name"], e["by"], e["to_state"]) for e in history][-3:] == [
        ("index", "job", "INDEXING"),
        ("update", "job", "INDEXING"),
        ("indexed", "system", "FINISHED"),
    ]
    assert api.get(job).body["queued_events"] == 0


@pytest.mark.parametrize(
    "patterns",
    [
        {"raw": ["raw/**"]},
        [{"level": "raw"}],
        [{"level": "raw", "pattern": ""}],
        [{"level": "bad level!", "pattern": "*"}],
        [{"level": "raw", "pattern": "[unclosed"}],
        [{"level": "raw", "pattern": "*", "extra": 1}],
        "raw/**",
    ],
    ids=["mapping", "no-pattern", "empty", "level", "set", "extra", "string"],
)
def test_bad_index_patterns_are_400_at_the_api_and_rejected_on_the_queue(api: Api, patterns: Any) -> None:
    # given a finished job
    job = finished(api)
    # when it posts `index` with patterns of the wrong shape, through the API and straight on the queue
    response = api.event(job.uuid, job.token, "index", {"index_patterns": patterns})
    queued = api.harness.send(job.uuid, "index", api.admin(), data={"index_patterns": patterns})
    api.work()
    # then the API says why (400), and the worker records the queued one rejected; nothing changes
    assert (response.status, response.error) == (400, "invalid_request"), response.text
    assert "index_patterns" in response.body["error"]["message"]
    entry = api.harness.repo.event(job.uuid, queued)
    assert entry is not None and str(entry.outcome) == "rejected" and "index_patterns" in entry.reason
    assert api.get(job).body["state"] == "FINISHED"


def _step(uuid: str, event_id: str, **fields: Any) -> dict[str, Any]:
    body = {"internal": "index", "uuid": uuid, "event_id": event_id, "generation": 1, "step": 0}
    body |= fields
    signed = {k: v for k, v in body.items() if k != "signature"}
    defaults = {"start_after": None, "count": 0, "done": False, "since": None, "waits": 0}
    body.setdefault("signature", Keyring(ADMIN_KEY).index_signature(defaults | signed))
    return body


def test_forged_or_garbled_index_messages_are_recorded_rejected_and_never_loop(api: Api) -> None:
    # given a job being indexed (its step not yet run)
    job = finished(api, {"a": b"a"})
    event_id = index(api, job)
    api.harness.work_once()
    real = api.harness.receive(1)
    assert json.loads(real[0]["Body"])["internal"] == "index"
    api.harness.delete_succeeded(real, {"batchItemFailures": []})  # (the real step: dropped here)
    # when a producer posts steps with a forged signature, one altered (count) from a valid one, a
    # garbled one, and the real step claiming to be done with a count of its own
    forged = _step(job.uuid, event_id, signature="0" * 64)
    altered = _step(job.uuid, event_id) | {"count": 1000}
    garbled = {"internal": "index", "uuid": job.uuid, "event_id": event_id, "step": "x"}
    for n, body in enumerate((forged, altered, garbled)):
        api.harness.send_raw(json.dumps(body), group=job.uuid, dedup=f"junk-{n}")
    api.work()
    # then each is recorded rejected under its own message id, none retried, the job still INDEXING
    rejected = [e for e in api.history(job) if e["outcome"] == "rejected"]
    assert [e["name"] for e in rejected] == ["index"] * 3
    assert [e["event_id"] for e in rejected] == ["junk-0", "junk-1", "junk-2"]
    assert "signature" in rejected[0]["reason"] and "signature" in rejected[1]["reason"]
    assert "malformed index message" in rejected[2]["reason"]
    assert all(not r.get("batchItemFailures") for r in api.harness.handler_results)
    assert api.get(job).body["state"] == "INDEXING" and manifest_items(api, job.uuid) == []
    # and a valid step, signed by the system, completes the run
    api.harness.send_raw(json.dumps(_step(job.uuid, event_id)), group=job.uuid, dedup="real")
    api.work()
    assert api.get(job).body["state"] == "FINISHED"


def test_a_deleted_job_stops_its_index_run_and_its_manifest_is_not_served(api: Api) -> None:
    # given a run under way
    job = finished(api, {f"{i:02d}": b"u" for i in range(30)})
    with_small_steps(api, page=10)
    index(api, job)
    api.harness.work_once()
    # when an admin deletes the job
    assert api.event(job.uuid, api.admin(), "delete").status == 202
    api.work()
    # then the run stopped (no system `indexed`), and the job has no outputs to show (404)
    history = api.history(job)
    assert [e["by"] for e in history if e["name"] == "indexed"] == []
    response = outputs(api, job.uuid)
    assert (response.status, response.error) == (404, "job_not_found")


def test_each_step_of_a_long_index_run_restarts_the_heartbeat_so_the_sweeper_leaves_it(api: Api) -> None:
    # given a job with a 120 s heartbeat being indexed 10 objects a step (its first step done)
    job = api.create(heartbeat_seconds=120)
    for i in range(30):
        put(api, job, f"{i:02d}", b"t")
    api.send(job, "run")
    api.send(job, "finish")
    with_small_steps(api, page=10)
    index(api, job)
    harness = api.harness
    harness.work_once()  # index applied: INDEXING, the heartbeat due in 120 s
    due = harness.repo.get(job.uuid).heartbeat_due
    # when each step runs 100 s after the one before (the run takes longer than the heartbeat)
    for _ in range(2):
        harness.clock.advance(100)
        assert harness.service.sweep() == []  # nothing overdue: each step restarted the heartbeat
        harness.work_once()
        later = harness.repo.get(job.uuid).heartbeat_due
        assert later is not None and later >= due + 100_000
        due = later
    harness.clock.advance(100)
    assert harness.service.sweep() == []
    api.work()
    # then the run completed: indexed by the system, the heartbeat cleared with INDEXING
    job_now = harness.repo.get(job.uuid)
    assert (str(job_now.state), job_now.heartbeat_due, job_now.manifest_count) == ("FINISHED", None, 30)


def test_a_key_as_long_as_s3_allows_is_indexed_whole(api: Api) -> None:
    # given a job with a short archive path, whose outputs have keys of S3's full 1,024 bytes (too
    # long, with the run's tag, for a sort key as it is), and a short one
    bucket = api.harness.service.settings.archive_bucket
    job = api.create(archive_path=f"s3://{bucket}/archive/p/short/")
    longest = ["x" * 1007 + c for c in "ab"]
    for key in [*longest, "a.txt"]:
        put(api, job, key, key[-1].encode())
    api.send(job, "run")
    api.send(job, "finish")
    # when it is indexed
    index(api, job)
    api.work()
    # then the manifest holds every key whole, each once (the two longest, which share their first
    # 1,007 bytes, after the others: in the order of a hash of them, as a sort key can hold no more)
    body = outputs(api, job.uuid).body
    assert body["source"] == "manifest"
    listed = [(o["key"], o["size"]) for o in body["outputs"]]
    assert listed[0] == ("a.txt", 1) and sorted(listed[1:]) == [(longest[0], 1), (longest[1], 1)]
    by_key = {o["key"]: o["url"] for o in body["outputs"]}
    assert download(by_key[longest[1]]) == b"b"


def test_an_index_applied_between_a_steps_read_and_its_indexed_supersedes_the_older_run(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a run whose last step has read the job (its run current) and is recording its last page,
    # when another worker applies an `index` sent again by an admin straight on the queue
    job = finished(api, {"a": b"a", "b": b"b"})
    first = index(api, job)
    api.harness.work_once()  # index applied; its step queued
    repo, harness = api.harness.repo, api.harness
    real_put = repo.put_manifest
    again = harness.body(job.uuid, "index", api.admin(), data={"index_patterns": PATTERNS})

    def put_while_another_index_is_applied(uuid: str, run: str, outputs: list[Any]) -> None:
        real_put(uuid, run, outputs)
        if run == first:
            assert harness.service.handle_message(again, fallback_event_id="x").applied
            monkeypatch.setattr(repo, "put_manifest", real_put)

    monkeypatch.setattr(repo, "put_manifest", put_while_another_index_is_applied)
    api.work()
    # then the older run's `indexed` was refused by its write (the run is not the job's any more), and
    # the newer run ended the indexing: one system `indexed`, the newer run's, whose manifest is served
    system = [e for e in api.history(job) if e["by"] == "system"]
    assert [e["event_id"] for e in system] == [f"{again['event_id']}:indexed"]
    assert {o.get("level") for o in outputs(api, job.uuid).body["outputs"]} == {"top"}


def test_an_index_sent_straight_to_the_queue_with_the_longest_event_id_completes_its_steps(api: Api) -> None:
    # given a finished job with 25 objects, indexed 10 a step, and a producer's own event id of the
    # longest length allowed (128): each step's deduplication id, built on it, is longer than SQS takes
    job = finished(api, {f"{i:02d}": b"s" for i in range(25)})
    with_small_steps(api, page=10)
    event_id = "e" * 128
    # when the producer posts `index` straight on the queue under that id
    api.harness.send(job.uuid, "index", api.admin(), event_id=event_id)
    api.work()
    # then no step is taken for a copy of another (or of the event) and dropped: the run completes
    system = [e for e in api.history(job) if e["by"] == "system"]
    assert [(e["event_id"], e["data"]) for e in system] == [(f"{event_id}:indexed", {"objects": 25})]
    assert api.get(job).body["state"] == "FINISHED"


def test_an_index_redelivered_after_it_was_applied_but_before_its_first_step_was_queued_starts_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an `index` whose worker applies it, then dies before queuing the run's first step
    job = finished(api, {"a": b"a"})
    index(api, job)
    queue, harness = api.harness.service.queue, api.harness
    real_send = queue.send

    def die_before_the_first_step(body: dict[str, Any], group_id: str, dedup_id: str) -> None:
        if body.get("internal") == "index":
            monkeypatch.setattr(queue, "send", real_send)
            raise TransientError("the Lambda container died before queuing the first step")
        real_send(body, group_id, dedup_id)

    monkeypatch.setattr(queue, "send", die_before_the_first_step)
    messages = harness.receive(1)
    assert len(harness.invoke(messages)["batchItemFailures"]) == 1
    assert api.get(job).body["state"] == "INDEXING"
    # when SQS delivers the event again
    harness.delete_succeeded(messages, harness.invoke(messages))
    api.work()
    # then the redelivery (a duplicate, applied once) queued the first step, and the run completed
    history = api.history(job)
    assert [(e["name"], e["by"]) for e in history][-2:] == [("index", "job"), ("indexed", "system")]
