"""GET /jobs?child_of=<id> (SPEC sections 2 and 5): which jobs analysed this input? Lineage items written
with each job, one per parent, listed newest first by creation without a scan, with the listing's cursor
and filters; deleted jobs left out, a producer key's own jobs only, every parent of a long child_of
indexed."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from test_api_keys import Key, create_with, issue

from jobcore.adapters.dynamodb import LINEAGE_IN_CREATE, LINEAGE_READS_PER_PAGE

if TYPE_CHECKING:
    from api_fixtures import Api, CreatedJob

pytest_plugins = ["api_fixtures"]


@pytest.fixture
def dynamodb_operations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The DynamoDB operations made (failing the test at once on a scan)."""
    from botocore.client import BaseClient

    operations: list[str] = []
    original = BaseClient._make_api_call

    def recorded(self: Any, operation: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            operations.append(operation)
            assert operation != "Scan", "a request path scanned the table"
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    yield operations


def children(api: Api, parent: str, token: str | None = None, **query: Any) -> list[str]:
    """Every job listed for `parent`, following the cursor."""
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = {"child_of": parent, **{k: str(v) for k, v in query.items()}} | (
            {"next": cursor} if cursor else {}
        )
        response = api.call("GET", "/jobs", token=token or api.admin(), query=page)
        assert response.status == 200, response.text
        seen += [job["uuid"] for job in response.body["jobs"]]
        cursor = response.body["next"]
        if not cursor:
            return seen
    raise AssertionError("the cursor did not end")


def made(api: Api, *parents: str, **spec: Any) -> CreatedJob:
    """A job of these inputs, created one second after the one before."""
    job = api.create(child_of=list(parents), **spec)
    api.clock.advance(1)
    return job


def test_child_of_lists_the_jobs_of_an_input_newest_first_without_a_scan(
    api: Api, dynamodb_operations: list[str]
) -> None:
    # given jobs of measurements m1 and m2, and one of neither
    a = made(api, "m1")
    b = made(api, "m1", "m2")
    c = made(api, "m2")
    made(api, "m3")
    d = made(api, "m1")
    # when an earlier one is updated (the other listings move it to the front)
    api.send(a, "run")
    dynamodb_operations.clear()
    # then each input lists the jobs that analysed it, newest first by creation
    assert children(api, "m1") == [d.uuid, b.uuid, a.uuid]
    assert children(api, "m2") == [c.uuid, b.uuid]
    assert children(api, "unknown") == []
    # with one Query of the lineage and one BatchGetItem of the jobs per page (none when nothing matched)
    assert set(dynamodb_operations) == {"Query", "BatchGetItem"}
    # and the jobs are shown as GET /jobs shows them, without their data
    body = api.call("GET", "/jobs", token=api.admin(), query={"child_of": "m1", "limit": "1"}).body
    assert body["jobs"][0]["child_of"] == ["m1"] and "data" not in body["jobs"][0]
    assert {
        k: v for k, v in api.get(d).body.items() if k not in ("data", "callback_url", "allowed_events")
    } == {k: v for k, v in body["jobs"][0].items() if k != "allowed_events"}


def test_the_cursor_pages_through_every_child_once(api: Api) -> None:
    # given seven jobs of one input (and some of another, interleaved)
    expected = []
    for n in range(7):
        expected.insert(0, made(api, "m1").uuid)
        if n % 2:
            made(api, "m2")
    # when they are listed three at a time
    pages = []
    cursor = None
    while True:
        query = {"child_of": "m1", "limit": "3"} | ({"next": cursor} if cursor else {})
        body = api.call("GET", "/jobs", token=api.admin(), query=query).body
        pages.append([job["uuid"] for job in body["jobs"]])
        cursor = body["next"]
        if not cursor:
            break
    # then each comes once, in order, in pages of three
    assert [uuid for page in pages for uuid in page] == expected
    assert [len(page) for page in pages][:3] == [3, 3, 1]


def test_jobs_created_in_the_same_millisecond_page_in_a_stable_order(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given five jobs of one input created at the same instant (ties on the creation time)
    instant = api.clock.now()
    monkeypatch.setattr(api.clock, "now", lambda: instant)
    for _ in range(5):
        api.create(child_of=["m1"])
    assert len({api.get(uuid).body["created_at"] for uuid in children(api, "m1")}) == 1
    # when they are listed one at a time, then all at once
    one_by_one = children(api, "m1", limit=1)
    at_once = children(api, "m1")
    # then both give every job once, in the same order (ties broken by uuid, descending)
    assert one_by_one == at_once == sorted(at_once, reverse=True)
    assert len(set(at_once)) == 5


def test_every_parent_of_a_long_child_of_lists_the_job(api: Api, dynamodb_operations: list[str]) -> None:
    # given a job of 1,000 inputs (more than one transaction holds) and one of a few of them
    parents = [f"m{n:04d}" for n in range(1000)]
    job = api.create(child_of=parents)
    creation = list(dynamodb_operations)
    api.clock.advance(1)
    other = made(api, parents[0], parents[-1])
    # then every input lists it: those in the creation's transaction and those written after it
    assert "BatchWriteItem" in creation
    for parent in (parents[0], parents[LINEAGE_IN_CREATE - 1], parents[LINEAGE_IN_CREATE], parents[-1]):
        assert job.uuid in children(api, parent)
    assert children(api, parents[-1]) == [other.uuid, job.uuid]
    assert children(api, parents[500]) == [job.uuid]
    # and the job shows every one of them
    assert api.get(job).body["child_of"] == sorted(parents)


def test_a_creation_cut_short_gets_its_whole_lineage_on_retry(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a job of 150 inputs whose creation fails after its transaction (the rest of its lineage
    # could not be written: DynamoDB throttled every BatchWriteItem)
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    parents = [f"m{n:03d}" for n in range(150)]
    spec = {"pipeline_uuid": "pipeline-1", "data": {"sample": "s1"}, "child_of": parents}
    original = BaseClient._make_api_call

    def throttled(self: Any, operation: str, params: Any) -> Any:
        if operation == "BatchWriteItem":
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, operation)
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", throttled)
    first = api.call("POST", "/jobs", token=api.admin(), body=spec)
    monkeypatch.setattr(BaseClient, "_make_api_call", original)
    assert first.status == 503, first.text
    assert children(api, parents[-1]) == []
    # when the caller retries, as a 503 tells it to
    retry = api.call("POST", "/jobs", token=api.admin(), body=spec)
    # then the job exists (409) and every input lists it
    assert retry.status == 409
    uuid = retry.body["uuid"]
    assert all(
        children(api, parent) == [uuid] for parent in (parents[0], parents[LINEAGE_IN_CREATE], parents[-1])
    )


def test_deleted_jobs_are_left_out_and_come_back_when_created_again(api: Api) -> None:
    # given three jobs of one input
    spec = {"pipeline_uuid": "pipeline-1", "data": {"sample": "again"}}
    first = made(api, "m1")
    second = made(api, "m1", **spec)
    third = made(api, "m1")
    # when the middle one is deleted
    api.event(second.uuid, api.admin(), "delete")
    api.work()
    # then the listing leaves it out (its lineage item stays, the job's item decides)
    assert children(api, "m1") == [third.uuid, first.uuid]
    assert children(api, "m1", limit=1) == [third.uuid, first.uuid]
    # when it is created again from the same inputs (its lineage items exist: the creation still works)
    again = api.call("POST", "/jobs", token=api.admin(), body={**spec, "child_of": ["m1"]})
    assert again.status == 201, again.text
    assert again.body["job"]["uuid"] == second.uuid
    # then it is listed again, as the newest: its new incarnation's creation
    assert children(api, "m1") == [second.uuid, third.uuid, first.uuid]


def test_a_producer_key_lists_only_its_own_children(api: Api) -> None:
    # given jobs of input m1 made by key A, key B and an admin
    a, b = issue(api, label="a"), issue(api, label="b")

    def by(key: Key) -> str:
        response = create_with(api, key, child_of=["m1"])
        assert response.status == 201, response.text
        api.clock.advance(1)
        return str(response.body["job"]["uuid"])

    a1 = by(a)
    b1 = by(b)
    admin1 = made(api, "m1").uuid
    a2 = by(a)
    # then each key sees its own jobs only, an admin every job, or one owner's
    assert children(api, "m1", token=a.key) == [a2, a1]
    assert children(api, "m1", token=a.key, limit=1) == [a2, a1]
    assert children(api, "m1", token=b.key) == [b1]
    assert children(api, "m1") == [a2, admin1, b1, a1]
    assert children(api, "m1", owner=b.id) == [b1]
    assert children(api, "m1", owner="admin") == [admin1]
    # and a key naming another owner is refused
    response = api.call("GET", "/jobs", token=a.key, query={"child_of": "m1", "owner": b.id})
    assert response.status == 403


def test_child_of_combines_with_the_other_filters(api: Api) -> None:
    # given jobs of one input in two pipelines, with tags, some running
    running = made(api, "m1", pipeline_uuid="pipe-a", tags=["gpu"])
    api.send(running, "run")
    idle_a = made(api, "m1", pipeline_uuid="pipe-a")
    idle_b = made(api, "m1", pipeline_uuid="pipe-b", tags=["gpu"])
    made(api, "m2", pipeline_uuid="pipe-a", tags=["gpu"])
    # then every filter applies to the input's jobs
    assert children(api, "m1", state="RUNNING") == [running.uuid]
    assert children(api, "m1", state="CREATED", limit=1) == [idle_b.uuid, idle_a.uuid]
    assert children(api, "m1", pipeline_uuid="pipe-a") == [idle_a.uuid, running.uuid]
    assert children(api, "m1", tag="gpu") == [idle_b.uuid, running.uuid]
    assert children(api, "m1", tag="gpu", pipeline_uuid="pipe-b") == [idle_b.uuid]
    assert children(api, "m1", state="FAILED") == []


def test_a_page_reads_a_bounded_number_of_lineage_items(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # given (with a small bound) five jobs of one input, none of them running
    import jobcore.adapters.dynamodb as dynamodb

    assert LINEAGE_READS_PER_PAGE >= 100
    monkeypatch.setattr(dynamodb, "LINEAGE_READS_PER_PAGE", 2)
    monkeypatch.setattr(dynamodb, "_BATCH_GET", 2)
    for _ in range(5):
        made(api, "m1")
    # when running ones are asked for
    first = api.call("GET", "/jobs", token=api.admin(), query={"child_of": "m1", "state": "RUNNING"}).body
    # then the page stops at the bound, empty, with a cursor that goes on; the walk ends
    assert first["jobs"] == [] and first["next"]
    assert children(api, "m1", state="RUNNING") == []


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({}, {"child_of": "m1"}),
        ({"child_of": "m1"}, {}),
        ({"child_of": "m1"}, {"child_of": "m2"}),
        ({"child_of": "m1"}, {"state": "CREATED"}),
        ({"owner": "admin"}, {"child_of": "m1"}),
    ],
    ids=["all-then-child", "child-then-all", "other-parent", "child-then-state", "owner-then-child"],
)
def test_a_cursor_of_another_listing_is_400(api: Api, first: dict[str, str], then: dict[str, str]) -> None:
    # given a few jobs of m1 and m2 and a cursor from one listing
    for _ in range(3):
        made(api, "m1", "m2")
    cursor = api.call("GET", "/jobs", token=api.admin(), query={**first, "limit": "1"}).body["next"]
    assert cursor
    # when it is passed to another listing
    response = api.call("GET", "/jobs", token=api.admin(), query={**then, "next": cursor})
    # then it is refused as the caller's mistake
    assert response.status == 400, response.text
    assert response.error == "invalid_request"


@pytest.mark.parametrize("value", ["", "m 1", "m#1", "x" * 129, "CHILD#m1"])
def test_a_child_of_that_no_job_could_have_is_400(api: Api, value: str) -> None:
    response = api.call("GET", "/jobs", token=api.admin(), query={"child_of": value})
    if value == "":
        assert response.status == 200  # (an empty filter is no filter, as for the others)
        return
    assert response.status == 400, response.text
    assert response.error == "invalid_request"


def test_a_job_token_cannot_list_children(api: Api) -> None:
    job = made(api, "m1")
    response = api.call("GET", "/jobs", token=job.token, query={"child_of": "m1"})
    assert response.status == 403
    assert str(uuidlib.UUID(job.uuid)) not in response.text
