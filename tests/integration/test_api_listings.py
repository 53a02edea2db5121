"""GET /jobs (SPEC section 5): filters on state, pipeline, tag and time, newest first, an opaque cursor,
admin only, and never a table scan (the table's secondary indexes serve every listing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from jobcore.clock import iso

if TYPE_CHECKING:
    from api_fixtures import Api, CreatedJob

pytest_plugins = ["api_fixtures"]


@pytest.fixture
def no_scan(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fails the test if anything scans a table; yields the DynamoDB operations made."""
    from botocore.client import BaseClient

    operations: list[str] = []
    original = BaseClient._make_api_call

    def guarded(self: Any, operation: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            operations.append(operation)
            assert operation != "Scan", "a request path scanned the table"
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", guarded)
    yield operations


class Fleet:
    """Six jobs, created ten seconds apart, in two pipelines, with tags and states."""

    def __init__(self, api: Api) -> None:
        self.api = api
        plan = [
            ("pipe-a", ["nightly"], ["run"]),
            ("pipe-b", ["nightly", "gpu"], []),
            ("pipe-a", ["gpu"], ["run", "finish"]),
            ("pipe-b", [], ["run"]),
            ("pipe-a", ["nightly"], []),
            ("pipe-a", ["gpu"], ["run"]),
        ]
        self.jobs: list[CreatedJob] = []
        self.started = api.clock.now()
        for pipeline, tags, events in plan:
            job = api.create(pipeline_uuid=pipeline, tags=tags)
            for name in events:
                api.send(job, name)
            self.jobs.append(job)
            api.clock.advance(10)

    def uuids(self, *indexes: int) -> list[str]:
        return [self.jobs[i].uuid for i in indexes]

    def list(self, **query: Any) -> list[str]:
        response = self.api.call(
            "GET", "/jobs", token=self.api.admin(), query={k: str(v) for k, v in query.items()}
        )
        assert response.status == 200, response.text
        return [job["uuid"] for job in response.body["jobs"]]


@pytest.fixture
def fleet(api: Api) -> Fleet:
    return Fleet(api)


def test_all_jobs_newest_first(fleet: Fleet, no_scan: list[str]) -> None:
    assert fleet.list() == fleet.uuids(5, 4, 3, 2, 1, 0)
    assert set(no_scan) == {"Query"}


def test_filter_by_state(fleet: Fleet, no_scan: list[str]) -> None:
    assert fleet.list(state="RUNNING") == fleet.uuids(5, 3, 0)
    assert fleet.list(state="CREATED") == fleet.uuids(4, 1)
    assert fleet.list(state="FINISHED") == fleet.uuids(2)
    assert fleet.list(state="FAILED") == []


def test_filter_by_pipeline(fleet: Fleet, no_scan: list[str]) -> None:
    assert fleet.list(pipeline_uuid="pipe-b") == fleet.uuids(3, 1)
    assert fleet.list(pipeline_uuid="pipe-a", state="RUNNING") == fleet.uuids(5, 0)


def test_filter_by_tag(fleet: Fleet, no_scan: list[str]) -> None:
    assert fleet.list(tag="gpu") == fleet.uuids(5, 2, 1)
    assert fleet.list(tag="nightly", state="CREATED") == fleet.uuids(4, 1)
    assert fleet.list(tag="gpu", pipeline_uuid="pipe-a") == fleet.uuids(5, 2)


def test_filter_by_time_range(fleet: Fleet, no_scan: list[str]) -> None:
    # jobs were last updated at about started + 0, 10, 20, ... seconds
    after = iso(fleet.started + 15)
    before = iso(fleet.started + 35)
    assert fleet.list(updated_after=after) == fleet.uuids(5, 4, 3, 2)
    assert fleet.list(updated_before=before) == fleet.uuids(3, 2, 1, 0)
    assert fleet.list(updated_after=after, updated_before=before) == fleet.uuids(3, 2)
    assert fleet.list(updated_after=after, updated_before=before, state="RUNNING") == fleet.uuids(3)


def test_bare_dates_bound_whole_days(fleet: Fleet) -> None:
    day = iso(fleet.started)[:10]
    assert fleet.list(updated_after=day, updated_before=day) == fleet.uuids(5, 4, 3, 2, 1, 0)
    assert fleet.list(updated_before="2000-01-01") == []


def test_updating_a_job_moves_it_to_the_front(fleet: Fleet) -> None:
    fleet.api.send(fleet.jobs[0], "update")
    assert fleet.list()[0] == fleet.jobs[0].uuid


def test_cursor_pages_through_every_job_once(fleet: Fleet, no_scan: list[str]) -> None:
    # when all jobs are listed two at a time, and the gpu ones one at a time (a filtered listing)
    for query, expected in (({}, fleet.uuids(5, 4, 3, 2, 1, 0)), ({"tag": "gpu"}, fleet.uuids(5, 2, 1))):
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page_query = {**query, "limit": "2" if not query else "1"} | ({"next": cursor} if cursor else {})
            body = fleet.api.call("GET", "/jobs", token=fleet.api.admin(), query=page_query).body
            seen += [job["uuid"] for job in body["jobs"]]
            cursor = body["next"]
            if not cursor:
                break
        # then each comes exactly once, newest first
        assert seen == expected
    assert "Scan" not in no_scan


def test_listing_leaves_out_deleted_jobs_and_their_data(fleet: Fleet) -> None:
    api = fleet.api
    api.event(fleet.jobs[4].uuid, api.admin(), "delete")
    api.work()
    body = api.call("GET", "/jobs", token=api.admin()).body
    assert [job["uuid"] for job in body["jobs"]] == fleet.uuids(5, 3, 2, 1, 0)
    assert all("data" not in job for job in body["jobs"])
    assert body["next"] is None


@pytest.mark.parametrize(
    "query",
    [
        {"state": "SLEEPING"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "many"},
        {"updated_after": "yesterday"},
        {"updated_after": "2026-02-01", "updated_before": "2026-01-01"},
        {"next": "not-a-cursor"},
        {"next": "eyJwayI6IDF9"},
    ],
    ids=["state", "limit-0", "limit-101", "limit-text", "bad-time", "inverted-range", "garbage", "forged"],
)
def test_bad_listing_query_is_400(api: Api, query: dict[str, str]) -> None:
    response = api.call("GET", "/jobs", token=api.admin(), query=query)
    assert response.status == 400
    assert response.error == "invalid_request"


def test_cursor_of_another_listing_is_400(fleet: Fleet) -> None:
    api = fleet.api
    cursor = api.call("GET", "/jobs", token=api.admin(), query={"limit": "1"}).body["next"]
    response = api.call("GET", "/jobs", token=api.admin(), query={"state": "RUNNING", "next": cursor})
    assert response.status == 400


def test_every_request_path_avoids_scans(fleet: Fleet, no_scan: list[str]) -> None:
    # a tour of every route: none of them scans
    api = fleet.api
    job = fleet.jobs[0]
    api.get(job, token=job.token)
    api.event(job.uuid, job.token, "update")
    api.callback(job, "HEARTBEAT")
    api.history(job)
    api.call("GET", f"/jobs/{job.uuid}/events/some-id", token=api.admin())
    api.call("POST", f"/jobs/{job.uuid}/token", token=api.admin())
    for query in ({}, {"state": "RUNNING"}, {"pipeline_uuid": "pipe-a"}, {"tag": "gpu"}):
        fleet.list(**query)
    assert no_scan and "Scan" not in no_scan


# -- GET /jobs/counts --------------------------------------------------------------------------------


def _counts(api: Api, token: str | None = None, **query: Any) -> Any:
    return api.call(
        "GET", "/jobs/counts", token=token or api.admin(), query={k: str(v) for k, v in query.items()}
    )


def test_counts_per_state_name_every_state(fleet: Fleet, no_scan: list[str]) -> None:
    response = _counts(fleet.api)
    assert response.status == 200, response.text
    body = response.body
    assert set(body["counts"]) == {
        "CREATED", "RUNNING", "FAILED", "FINISHED", "INDEXING", "VALIDATING", "VALIDATED", "REJECTED",
        "FINALIZED", "RETIRED", "RESET", "CANCELED",
    }  # fmt: skip
    assert {s: n for s, n in body["counts"].items() if n} == {"CREATED": 2, "RUNNING": 3, "FINISHED": 1}
    assert (body["total"], body["complete"]) == (6, True)
    assert "Query" in no_scan


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"pipeline_uuid": "pipe-a"}, {"CREATED": 1, "RUNNING": 2, "FINISHED": 1}),
        ({"tag": "gpu"}, {"CREATED": 1, "RUNNING": 1, "FINISHED": 1}),
        ({"state": "RUNNING"}, {"RUNNING": 3}),
        ({"pipeline_uuid": "pipe-b", "state": "CREATED"}, {"CREATED": 1}),
        ({"owner": "admin"}, {"CREATED": 2, "RUNNING": 3, "FINISHED": 1}),
    ],
)
def test_counts_follow_the_listing_filters(
    fleet: Fleet, no_scan: list[str], query: Any, expected: Any
) -> None:
    body = _counts(fleet.api, **query).body
    assert {s: n for s, n in body["counts"].items() if n} == expected
    listed = fleet.list(**query, limit=100)
    assert body["total"] == len(listed)  # the same jobs the listing shows


def test_counts_in_a_time_range(fleet: Fleet) -> None:
    after = iso(fleet.started + 25)  # the last three jobs were created (and changed) from +30 s on
    body = _counts(fleet.api, updated_after=after).body
    assert body["total"] == len(fleet.list(updated_after=after, limit=100)) == 3


def test_counts_that_would_read_too_many_jobs_say_they_are_incomplete(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jobcore.access

    monkeypatch.setattr(jobcore.access, "COUNT_LIMIT", 4)
    body = _counts(fleet.api).body
    assert (body["total"], body["complete"]) == (4, False)


def test_counts_need_an_admin_token_or_a_key_and_a_key_counts_its_own(api: Api) -> None:
    job = api.create()
    assert _counts(api, token=job.token).status == 403
    assert api.call("GET", "/jobs/counts").status == 401
    key = api.call("POST", "/keys", token=api.admin(), body={"label": "k", "pipelines": ["*"]}).body
    mine = api.call("POST", "/jobs", token=key["key"], body={"pipeline_uuid": "p", "data": {"k": 1}})
    assert mine.status == 201, mine.text
    counted = _counts(api, token=key["key"]).body
    assert (counted["total"], counted["counts"]["CREATED"]) == (1, 1)  # not the admin's job
    assert _counts(api, token=key["key"], owner="admin").status == 403


@pytest.mark.parametrize(
    "query", [{"state": "SLEEPING"}, {"owner": "not a key id"}, {"updated_after": "yesterday"}]
)
def test_counts_with_a_bad_filter_are_400(api: Api, query: Any) -> None:
    response = _counts(api, **query)
    assert response.status == 400 and "error" in response.body, response.text
