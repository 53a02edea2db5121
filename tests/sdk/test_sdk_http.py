"""Unit tests of the SDK's HTTP behaviour against canned responses: token following, error mapping,
paging, retries, wait_for's backoff and early exits."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest

from jobcore.tokens import admin_token
from pipelinejobs import (
    BadRequest,
    Client,
    Conflict,
    EventNotAllowed,
    EventRejected,
    Forbidden,
    JobExists,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    PipelineJobsError,
    ServiceUnavailable,
    Unauthorized,
    WaitTimeout,
)
from tests.sdk.conftest import ADMIN, FakeTime
from tests.sdk.fake_api import FakeApi, Recorded

UUID = "0b6f3c3e-1f0a-5a7e-9c56-2f1e4b7a9d10"
JOB = {
    "uuid": UUID,
    "pipeline_uuid": "pipe-1",
    "data": {"n": 1},
    "state": "CREATED",
    "generation": 1,
    "allowed_events": ["run", "update", "resource", "fail", "cancel", "reset", "delete"],
}
EVENTS = rf"/jobs/{UUID}/events"


def created(fake_api: FakeApi, token: str = "pjt_first") -> None:  # noqa: S107 - a fake
    fake_api.route("POST", "/jobs", 201, {"job": JOB, "token": token, "callback_url": "http://cb"})


def job_in(*states: str) -> list[tuple[int, dict]]:
    return [(200, {**JOB, "state": state}) for state in states]


# -- creating and configuring ------------------------------------------------------------------------


def test_create_job_posts_the_spec_and_returns_a_handle_holding_the_job_token(fake_api, fake_client):
    # given
    created(fake_api)
    # when
    job = fake_client.create_job("pipe-1", {"n": 1}, child_of=["m2", "m1"], tags=["nightly"], name="x")
    # then
    request = fake_api.calls("POST", "/jobs")[0]
    assert request.body == {
        "pipeline_uuid": "pipe-1",
        "data": {"n": 1},
        "child_of": ["m2", "m1"],
        "tags": ["nightly"],
        "name": "x",
    }
    assert request.bearer == ADMIN
    assert request.headers["content-type"] == "application/json"
    assert (job.uuid, job.token, job.state, job.callback_url) == (UUID, "pjt_first", "CREATED", "http://cb")


def test_create_job_existing_raises_job_exists_with_its_uuid(fake_api, fake_client):
    # given
    fake_api.route("POST", "/jobs", 409, {"error": {"code": "job_exists", "message": "exists"}, "uuid": UUID})
    # when
    with pytest.raises(JobExists) as caught:
        fake_client.create_job("pipe-1", {"n": 1})
    # then
    assert caught.value.uuid == UUID
    assert isinstance(caught.value, Conflict)
    assert (caught.value.status, caught.value.code) == (409, "job_exists")


def test_create_job_exist_ok_returns_the_existing_job(fake_api, fake_client):
    # given
    fake_api.route("POST", "/jobs", 409, {"error": {"code": "job_exists", "message": "exists"}, "uuid": UUID})
    fake_api.route("GET", f"/jobs/{UUID}", job_in("RUNNING"))
    # when
    job = fake_client.create_job("pipe-1", {"n": 1}, exist_ok=True)
    # then
    assert (job.uuid, job.state, job.token) == (UUID, "RUNNING", None)


def test_client_reads_url_and_admin_key_from_the_environment(monkeypatch, fake_api):
    # given
    monkeypatch.setenv("PIPELINEJOBS_URL", fake_api.url + "/")
    monkeypatch.delenv("PIPELINEJOBS_TOKEN", raising=False)
    monkeypatch.setenv("PIPELINEJOBS_ADMIN_KEY", "the-key")
    fake_api.route("GET", f"/jobs/{UUID}", job_in("CREATED"))
    # when
    Client().get_job(UUID)
    # then: a fresh admin token computed from the key
    assert fake_api.requests[0].bearer == admin_token("the-key", time.time())


def test_client_explicit_token_beats_the_environment(monkeypatch):
    monkeypatch.setenv("PIPELINEJOBS_ADMIN_KEY", "the-key")
    monkeypatch.setenv("PIPELINEJOBS_TOKEN", "env-token")
    assert Client("http://h", token="mine").token == "mine"
    assert Client("http://h").token == "env-token"
    assert Client("http://h", admin_key="k").token == admin_token("k", time.time())


def test_client_refuses_a_non_http_url():
    with pytest.raises(ValueError, match="http"):
        Client("file:///etc/passwd")


def test_importing_the_package_loads_neither_the_client_nor_boto3():
    code = "import sys, pipelinejobs; print('pipelinejobs.client' in sys.modules, 'boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout  # noqa: S603
    assert out.split() == ["False", "False"]


# -- token following -----------------------------------------------------------------------------------


def test_job_follows_the_rotating_token_across_events_and_reads(fake_api, fake_client):
    # given: each event answers with the token to use next
    created(fake_api, "pjt_1")
    fake_api.route("POST", EVENTS, [(202, {"event_id": f"e{i}", "token": f"pjt_{i + 2}"}) for i in range(3)])
    fake_api.route("GET", f"/jobs/{UUID}", job_in("FINISHED"))
    job = fake_client.create_job("pipe-1", {"n": 1})
    # when
    job.run({"host": "n7"}).update(progress=0.5).finish()
    job.refresh()
    # then
    sent = fake_api.calls("POST", EVENTS)
    assert [r.bearer for r in sent] == ["pjt_1", "pjt_2", "pjt_3"]
    assert [r.body for r in sent] == [
        {"name": "run", "data": {"host": "n7"}},
        {"name": "update", "data": {"progress": 0.5}},
        {"name": "finish"},
    ]
    assert job.token == "pjt_4"
    assert fake_api.calls("GET", f"/jobs/{UUID}")[0].bearer == "pjt_4"
    assert job.last_event_id == "e2"


def test_admin_events_use_the_client_credential_and_reset_drops_the_revoked_token(fake_api, fake_client):
    # given
    created(fake_api, "pjt_1")
    fake_api.route("POST", EVENTS, 202, {"event_id": "e1", "token": "pjt_ignored"})
    job = fake_client.create_job("pipe-1", {"n": 1})
    # when
    job.reset(keep_archive=True)
    job.update(note="after reset")
    # then
    sent = fake_api.calls("POST", EVENTS)
    assert sent[0].bearer == ADMIN and sent[0].body == {"name": "reset", "data": {"keep_archive": True}}
    assert sent[1].bearer == ADMIN  # the job token was revoked by the reset
    assert job.token is None


def test_handle_without_own_token_acts_as_admin_and_keeps_no_token(fake_api, fake_client):
    # given
    fake_api.route("POST", EVENTS, 202, {"event_id": "e1", "token": "pjt_x"})
    job = fake_client.job(UUID)
    # when
    job.run()
    # then
    assert fake_api.calls("POST", EVENTS)[0].bearer == ADMIN
    assert job.token is None


def test_unauthorized_after_a_concurrent_rotation_is_retried_once_with_the_newer_token(fake_api, fake_client):
    # given: another thread's request rotates the handle's token while ours is in flight
    job = fake_client.job(UUID, token="pjt_old")

    def answer(request: Recorded):
        if request.bearer == "pjt_old":
            job._token = "pjt_new"  # what the other thread's response did
            return 401, {"error": {"code": "unauthorized", "message": "token rotated out"}}
        return 202, {"event_id": "e1", "token": "pjt_newer"}

    fake_api.route("POST", EVENTS, answer)
    # when
    job.update(step=1)
    # then
    assert [r.bearer for r in fake_api.calls("POST", EVENTS)] == ["pjt_old", "pjt_new"]
    assert job.token == "pjt_newer"


def test_unauthorized_without_rotation_is_raised_and_not_retried(fake_api, fake_client):
    # given
    fake_api.route("POST", EVENTS, 401, {"error": {"code": "unauthorized", "message": "token expired"}})
    job = fake_client.job(UUID, token="pjt_old")
    # when
    with pytest.raises(Unauthorized, match="token expired"):
        job.run()
    # then
    assert len(fake_api.calls("POST", EVENTS)) == 1
    assert job.token == "pjt_old"


def test_a_refusal_is_raised_at_once_without_waiting_for_the_queued_event(fake_api, fake_client):
    # given: the API checks each event against the state the queued ones will leave (409 is final)
    not_allowed = {"error": {"code": "event_not_allowed", "message": "cannot cancel a job in RUNNING"}}
    fake_api.route(
        "POST",
        EVENTS,
        lambda r: (
            (409, not_allowed)
            if r.body["name"] == "cancel"
            else (202, {"event_id": "e-run", "token": "pjt_2"})
        ),
    )
    job = fake_client.job(UUID, token="pjt_1")
    # when / then
    with pytest.raises(EventNotAllowed, match="cannot cancel a job in RUNNING"):
        job.run().cancel()
    assert [(r.method, (r.body or {}).get("name")) for r in fake_api.requests] == [
        ("POST", "run"),
        ("POST", "cancel"),
    ]


def test_an_idempotency_key_is_sent_and_its_post_retried_after_a_502(fake_api, fake_client):
    # given an API that fails once behind its gateway
    fake_api.route("POST", EVENTS, [(502, {"message": "Internal server error"}), (202, {"event_id": "e"})])
    job = fake_client.job(UUID, token="pjt_1")
    # when an event is sent with an Idempotency-Key
    event_id = job.send("update", {"n": 1}, idempotency_key="update-1")
    # then it was sent twice with the same key (the same event, applied once), and its id returned
    sent = fake_api.calls("POST", EVENTS)
    assert [r.headers.get("idempotency-key") for r in sent] == ["update-1", "update-1"]
    assert [r.body for r in sent] == [{"name": "update", "data": {"n": 1}}] * 2
    assert event_id == "e"


def test_an_older_answer_never_replaces_a_newer_token(fake_api, fake_client):
    # given a handle whose token another thread's request replaced while this request was in flight
    job = fake_client.job(UUID, token="pjt_1")

    def answer(request):
        with job._lock:
            job._token = "pjt_3"  # the other thread's answer arrived first
        return 202, {"event_id": "e", "token": "pjt_2"}

    fake_api.route("POST", EVENTS, answer)
    # when this request's answer comes
    job.update()
    # then the handle keeps the newer token
    assert job.token == "pjt_3"


def test_wait_for_refuses_a_state_that_does_not_exist(fake_client):
    job = fake_client.job(UUID, token="pjt_1")
    with pytest.raises(ValueError, match="no state 'DONE'"):
        job.wait_for("DONE", timeout=1)


def test_the_sdk_knows_the_states_of_the_core() -> None:
    from jobcore.states import State
    from pipelinejobs.client import STATES

    assert tuple(State) == STATES


def test_a_refusal_with_nothing_queued_is_raised_at_once(fake_api, fake_client):
    not_allowed = {"error": {"code": "event_not_allowed", "message": "cannot finish a job in CREATED"}}
    fake_api.route("POST", EVENTS, 409, not_allowed)
    with pytest.raises(EventNotAllowed):
        fake_client.job(UUID, token="pjt_1").finish()
    assert len(fake_api.requests) == 1


def test_rotate_token_keeps_the_issued_token(fake_api, fake_client):
    fake_api.route("POST", f"/jobs/{UUID}/token", 200, {"token": "pjt_fresh", "callback_url": "http://cb2"})
    job = fake_client.job(UUID)
    assert job.rotate_token() == "pjt_fresh"
    assert (job.token, job.callback_url) == ("pjt_fresh", "http://cb2")
    assert fake_api.requests[0].bearer == ADMIN


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, EventNotAllowed),
        (413, PayloadTooLarge),
        (418, PipelineJobsError),
    ],
)
def test_event_errors_map_to_one_class_per_status(fake_api, fake_client, status, kind):
    # given
    fake_api.route("POST", EVENTS, status, {"error": {"code": f"c{status}", "message": f"m{status}"}})
    # when
    with pytest.raises(kind) as caught:
        fake_client.send_event(UUID, "finish")
    # then
    error = caught.value
    assert type(error) is kind
    assert (error.status, error.code, error.message) == (status, f"c{status}", f"m{status}")
    assert str(error) == f"{status} c{status}: m{status}"


def test_a_non_json_error_body_keeps_its_text(fake_api, fake_client):
    fake_api.route("POST", EVENTS, 400, b"<html>Bad gateway thing</html>")
    with pytest.raises(BadRequest, match="Bad gateway thing"):
        fake_client.send_event(UUID, "run")


def test_api_gateway_message_body_is_used(fake_api, fake_client):
    fake_api.route("GET", f"/jobs/{UUID}", 403, {"message": "Forbidden"})
    with pytest.raises(Forbidden, match="Forbidden"):
        fake_client.get_job(UUID)


# -- retries -----------------------------------------------------------------------------------------


def test_503_is_retried_with_growing_backoff_then_succeeds(fake_api, fake_client, fake_time: FakeTime):
    # given
    unavailable = (503, {"error": {"code": "unavailable", "message": "busy"}})
    fake_api.route("POST", EVENTS, [unavailable, unavailable, unavailable, (202, {"event_id": "e1"})])
    # when
    receipt = fake_client.send_event(UUID, "run")
    # then
    assert receipt["event_id"] == "e1"
    assert len(fake_api.calls("POST", EVENTS)) == 4
    assert len(fake_time.sleeps) == 3
    # equal jitter: each delay lies in [step/2, step], steps 0.2, 0.4, 0.8
    for delay, step in zip(fake_time.sleeps, (0.2, 0.4, 0.8), strict=True):
        assert step / 2 <= delay <= step


def test_503_that_persists_raises_service_unavailable_after_the_retries(fake_api, fake_client):
    fake_api.route("GET", "/jobs", 503, {"error": {"code": "unavailable", "message": "down"}})
    with pytest.raises(ServiceUnavailable, match="down"):
        list(fake_client.iter_jobs())
    assert len(fake_api.requests) == 1 + fake_client.retries


def test_retry_after_is_honoured(fake_api, fake_client, fake_time: FakeTime):
    fake_api.route("GET", "/jobs", [(429, {}, {"Retry-After": "3"}), (200, {"jobs": [], "next": None})])
    assert list(fake_client.iter_jobs()) == []
    assert fake_time.sleeps == [3.0]


def test_a_post_is_not_resent_after_a_502_but_a_get_is(fake_api, fake_client):
    # given
    fake_api.route("POST", EVENTS, [(502, {"message": "Internal server error"}), (202, {"event_id": "e"})])
    fake_api.route("GET", f"/jobs/{UUID}", [(502, {"message": "bad gateway"}), (200, JOB)])
    # when / then
    with pytest.raises(ServiceUnavailable):
        fake_client.send_event(UUID, "run")
    assert fake_client.get_job(UUID).state == "CREATED"
    assert len(fake_api.calls("POST", EVENTS)) == 1
    assert len(fake_api.calls("GET", f"/jobs/{UUID}")) == 2


def test_a_refused_connection_is_retried_then_reported_without_status(fake_time: FakeTime):
    # given: nothing listens on the port
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", token=ADMIN, retries=2)
    client._sleep = fake_time.sleep
    # when
    with pytest.raises(ServiceUnavailable, match="cannot reach") as caught:
        client.send_event(UUID, "run")
    # then
    assert caught.value.status is None
    assert len(fake_time.sleeps) == 2


# -- paging ------------------------------------------------------------------------------------------


def test_iter_jobs_follows_the_cursor_and_sends_the_filters(fake_api, fake_client):
    # given: three pages
    pages = {
        None: {"jobs": [{"uuid": "j1"}, {"uuid": "j2"}], "next": "c1"},
        "c1": {"jobs": [{"uuid": "j3"}], "next": "c2"},
        "c2": {"jobs": [{"uuid": "j4"}], "next": None},
    }
    fake_api.route("GET", "/jobs", lambda request: (200, pages[request.query.get("next")]))
    after = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    # when
    jobs = fake_client.list_jobs(state="FAILED", tag="nightly", updated_after=after, page_size=2)
    # then
    assert [job.uuid for job in jobs] == ["j1", "j2", "j3", "j4"]
    first = fake_api.requests[0].query
    assert first == {
        "state": "FAILED",
        "tag": "nightly",
        "updated_after": "2024-05-01T12:00:00.000Z",
        "limit": "2",
    }
    assert [r.query.get("next") for r in fake_api.requests] == [None, "c1", "c2"]


def test_list_jobs_of_an_input_sends_child_of_and_shows_lineage_and_durations(fake_api, fake_client):
    # given: the jobs of input m1, one finished, one waiting
    listed = [
        {
            **JOB,
            "uuid": "j1",
            "state": "FINISHED",
            "child_of": ["m1", "m2"],
            "pending_seconds": 1.5,
            "run_seconds": 62.25,
        },
        {**JOB, "uuid": "j2", "child_of": ["m1"], "pending_seconds": None, "run_seconds": None},
    ]
    fake_api.route("GET", "/jobs", 200, {"jobs": listed, "next": None})
    # when
    finished, waiting = fake_client.list_jobs(child_of="m1", state="FINISHED")
    # then: the filter is sent with the others, and the handles show what the API said
    assert fake_api.requests[0].query == {"child_of": "m1", "state": "FINISHED", "limit": "100"}
    assert (finished.child_of, finished.pending_seconds, finished.run_seconds) == (["m1", "m2"], 1.5, 62.25)
    assert (waiting.child_of, waiting.pending_seconds, waiting.run_seconds) == (["m1"], None, None)
    assert fake_api.calls("GET", f"/jobs/{UUID}") == []


def test_a_listed_job_fetches_its_data_on_first_use(fake_api, fake_client):
    # given: listings carry no data
    fake_api.route("GET", "/jobs", 200, {"jobs": [{**JOB, "data": None}], "next": None})
    fake_api.route("GET", f"/jobs/{UUID}", 200, JOB)
    # when
    (job,) = fake_client.list_jobs()
    # then
    assert job.state == "CREATED" and fake_api.calls("GET", f"/jobs/{UUID}") == []
    assert job.data == {"n": 1}
    assert len(fake_api.calls("GET", f"/jobs/{UUID}")) == 1


def test_iter_jobs_limit_stops_paging_early(fake_api, fake_client):
    fake_api.route("GET", "/jobs", 200, {"jobs": [{"uuid": "a"}, {"uuid": "b"}], "next": "more"})
    assert [j["uuid"] for j in fake_client.iter_jobs(limit=3, page_size=2)] == ["a", "b", "a"]
    assert [r.query["limit"] for r in fake_api.requests] == ["2", "1"]


def test_history_reads_every_page_with_the_job_token(fake_api, fake_client):
    pages = {
        None: {"events": [{"event_id": "e1", "name": "run"}], "next": "n1"},
        "n1": {"events": [{"event_id": "e2", "name": "finish"}], "next": None},
    }
    fake_api.route("GET", EVENTS, lambda request: (200, pages[request.query.get("next")]))
    job = fake_client.job(UUID, token="pjt_1")
    assert [e["name"] for e in job.history()] == ["run", "finish"]
    assert {r.bearer for r in fake_api.requests} == {"pjt_1"}


# -- wait_for ----------------------------------------------------------------------------------------


def test_wait_for_waits_for_the_last_event_then_polls_with_backoff(
    fake_api, fake_client, fake_time: FakeTime
):
    # given: the finish event is queued twice, then applied; the job shows FINISHED on the 3rd poll
    fake_api.route("POST", EVENTS, 202, {"event_id": "e1", "token": "pjt_2"})
    fake_api.route("GET", f"{EVENTS}/e1", [(200, {"status": "queued"})] * 2 + [(200, {"status": "applied"})])
    fake_api.route("GET", f"/jobs/{UUID}", job_in("RUNNING", "RUNNING", "FINISHED"))
    job = fake_client.job(UUID, token="pjt_1")
    # when
    job.finish().wait_for("FINISHED", timeout=30)
    # then
    assert job.state == "FINISHED"
    assert len(fake_api.calls("GET", f"{EVENTS}/e1")) == 3
    assert len(fake_api.calls("GET", f"/jobs/{UUID}")) == 3
    assert fake_time.sleeps == sorted(fake_time.sleeps)  # never shorter than the previous one
    assert fake_time.sleeps[-1] > fake_time.sleeps[0]


def test_wait_for_raises_at_once_when_the_job_fails(fake_api, fake_client, fake_time: FakeTime):
    # given
    fake_api.route("GET", f"/jobs/{UUID}", job_in("FAILED"))
    # when
    with pytest.raises(JobFailed) as caught:
        fake_client.job(UUID).wait_for("FINISHED", timeout=600)
    # then
    assert caught.value.state == "FAILED"
    assert caught.value.job["uuid"] == UUID
    assert fake_time.sleeps == []


@pytest.mark.parametrize("state", ["REJECTED", "CANCELED"])
def test_wait_for_raises_on_every_failure_state(fake_api, fake_client, state):
    fake_api.route("GET", f"/jobs/{UUID}", job_in(state))
    with pytest.raises(JobFailed, match=state):
        fake_client.job(UUID).wait_for("FINALIZED")


def test_wait_for_a_failure_state_returns_when_it_is_reached(fake_api, fake_client):
    fake_api.route("GET", f"/jobs/{UUID}", job_in("RUNNING", "FAILED"))
    assert fake_client.job(UUID).wait_for("FAILED", "FINISHED").state == "FAILED"


def test_wait_for_raises_when_the_last_event_was_rejected(fake_api, fake_client):
    # given
    fake_api.route("POST", EVENTS, 202, {"event_id": "e1", "token": "pjt_2"})
    rejected = {
        "event_id": "e1",
        "name": "finish",
        "status": "rejected",
        "reason": "cannot finish in CREATED",
    }
    fake_api.route("GET", f"{EVENTS}/e1", 200, rejected)
    job = fake_client.job(UUID, token="pjt_1")
    # when
    with pytest.raises(EventRejected, match="cannot finish in CREATED") as caught:
        job.finish().wait_for("FINISHED")
    # then
    assert caught.value.reason == "cannot finish in CREATED"
    assert fake_api.calls("GET", f"/jobs/{UUID}") == []


def test_wait_for_times_out_with_the_last_state_seen(fake_api, fake_client, fake_time: FakeTime):
    # given
    fake_api.route("GET", f"/jobs/{UUID}", job_in("RUNNING"))
    # when
    with pytest.raises(WaitTimeout) as caught:
        fake_client.job(UUID).wait_for("FINISHED", timeout=5)
    # then
    assert (caught.value.state, caught.value.wanted) == ("RUNNING", ("FINISHED",))
    assert fake_time.now == pytest.approx(5)
    assert max(fake_time.sleeps) <= fake_client.max_poll_interval


def test_wait_for_deleted_returns_once_the_job_is_gone(fake_api, fake_client):
    fake_api.route(
        "GET", f"/jobs/{UUID}", [(200, JOB), (404, {"error": {"code": "not_found", "message": "no job"}})]
    )
    job = fake_client.job(UUID)
    assert job.wait_for("DELETED") is job


def test_count_jobs_sends_the_filters_and_returns_the_counts(fake_api, fake_client):
    answer = {"counts": {"CREATED": 2, "RUNNING": 1}, "total": 3, "complete": True}
    fake_api.route("GET", "/jobs/counts", 200, answer)
    after = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    assert fake_client.count_jobs(pipeline_uuid="p", updated_after=after) == answer
    assert fake_api.requests[0].query == {"pipeline_uuid": "p", "updated_after": "2024-05-01T12:00:00.000Z"}


def test_create_job_sends_deadlines_only_when_given_and_none_as_null(fake_api, fake_client):
    created(fake_api)
    fake_client.create_job("p", {"a": 1})
    fake_client.create_job("p", {"a": 2}, heartbeat_seconds=600, timeout_seconds=None)
    first, second = (r.body for r in fake_api.calls("POST", "/jobs"))
    assert "heartbeat_seconds" not in first and "timeout_seconds" not in first  # the pipeline's default
    assert second["heartbeat_seconds"] == 600 and second["timeout_seconds"] is None  # None: no deadline
