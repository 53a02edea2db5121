"""The SDK against the local stack over real HTTP: the API handler, the queue worker, moto.

One stack for the session; each test makes its own jobs (unique data, so unique uuids) and tags them
so listings see only their own.
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import timedelta

import pytest

from pipelinejobs import (
    BadRequest,
    Client,
    EventNotAllowed,
    Forbidden,
    JobExists,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)

pytestmark = pytest.mark.e2e


def unique() -> str:
    return uuidlib.uuid4().hex[:12]


def test_create_run_finish_and_wait_for(admin_client: Client):
    # given
    job = admin_client.create_job("pipe-sdk", {"sample": unique()}, name="sdk round trip", tags=["sdk"])
    assert job.state == "CREATED" and job.token and job.callback_url
    # when
    job.run({"host": "node-7"}).update(progress=0.5).finish({"outputs": 3})
    job.wait_for("FINISHED", timeout=20)
    # then
    assert (job.state, job.generation) == ("FINISHED", 1)
    history = job.history()
    assert [(e["name"], e["outcome"]) for e in history] == [
        ("run", "applied"),
        ("update", "applied"),
        ("finish", "applied"),
    ]
    assert history[0]["data"] == {"host": "node-7"} and history[0]["by"] == "job"
    assert (history[2]["from_state"], history[2]["to_state"]) == ("RUNNING", "FINISHED")


def test_the_rotating_token_is_followed_without_the_callers_help(admin_client: Client):
    # given
    job = admin_client.create_job("pipe-sdk", {"sample": unique()})
    first = job.token
    # when: run changes the state, so the token rotates
    job.run()
    # then
    assert job.token and job.token != first
    # the handle keeps working with the new token, reads included
    job.update(step=2).wait_for("RUNNING", timeout=20)
    job.finish().wait_for("FINISHED", timeout=20)
    # and a separate handle holding the new token may act as the job; another job's token may not
    assert admin_client.job(job.uuid, token=job.token).refresh().state == "FINISHED"
    other = admin_client.create_job("pipe-sdk", {"sample": unique()})
    with pytest.raises(Unauthorized):
        admin_client.job(other.uuid, token=job.token).refresh()


def test_a_token_rotated_on_request_replaces_the_handles(admin_client: Client):
    job = admin_client.create_job("pipe-sdk", {"sample": unique()})
    before = job.token
    after = job.rotate_token()
    assert after != before and job.token == after
    job.run().wait_for("RUNNING", timeout=20)


def test_each_failure_kind_raises_its_own_error(admin_client: Client, local_stack):
    # given
    job = admin_client.create_job("pipe-sdk", {"sample": unique()})
    job_only = Client(local_stack.api_url, token=job.token)
    # then
    with pytest.raises(Unauthorized) as unauthorized:
        Client(local_stack.api_url, token="not-a-token").get_job(job.uuid)
    assert unauthorized.value.status == 401
    with pytest.raises(Forbidden):
        list(job_only.iter_jobs())  # listing is for admins
    with pytest.raises(Forbidden):
        job_only.reset(job.uuid)  # so is reset
    with pytest.raises(NotFound):
        admin_client.get_job(str(uuidlib.uuid4()))
    with pytest.raises(JobExists) as exists:
        admin_client.create_job("pipe-sdk", job.data)
    assert exists.value.uuid == job.uuid
    with pytest.raises(EventNotAllowed) as not_allowed:
        job.finish()  # CREATED cannot finish
    assert not_allowed.value.status == 409 and "CREATED" in not_allowed.value.message
    with pytest.raises(BadRequest):
        job.send("explode")
    with pytest.raises(PayloadTooLarge):
        job.update(blob="x" * 70_000)


def test_create_exist_ok_returns_the_same_job(admin_client: Client):
    data = {"sample": unique()}
    first = admin_client.create_job("pipe-sdk", data, child_of=["m2", "m1"])
    again = admin_client.create_job("pipe-sdk", data, child_of=["m1", "m2"], exist_ok=True)
    assert again.uuid == first.uuid and again.token is None


def test_wait_for_raises_at_once_when_the_job_fails(admin_client: Client):
    # given
    job = admin_client.create_job("pipe-sdk", {"sample": unique()})
    # when
    job.run().fail({"reason": "out of memory"})
    # then
    with pytest.raises(JobFailed) as failed:
        job.wait_for("FINISHED", timeout=20)
    assert failed.value.state == "FAILED"


def test_an_event_not_allowed_after_the_queued_one_is_refused_at_once(admin_client: Client):
    # given run sent and not applied yet
    job = admin_client.create_job("pipe-sdk", {"sample": unique()})
    job.run()
    # when cancel follows (allowed from CREATED only), then it is refused now, not a 202 rejected later
    with pytest.raises(EventNotAllowed, match="cannot cancel a job in RUNNING"):
        job.cancel()
    assert job.wait_for("RUNNING", timeout=20).history()[-1]["outcome"] == "applied"


def test_a_reset_handle_picks_up_the_new_callback_url(admin_client: Client):
    # given a job and its callback URL
    job = admin_client.create_job("pipe-sdk", {"sample": unique()})
    old = job.callback_url
    # when it is reset
    job.reset().wait_for("CREATED", timeout=30)
    # then the handle has the new callback URL, which works, and the old one does not
    assert job.callback_url and job.callback_url != old
    assert post_status(job.callback_url, "RUNNING") == 202
    assert post_status(old, "RUNNING") == 401
    job.wait_for("RUNNING", timeout=20)


def post_status(callback_url: str, status: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{callback_url}&status={status}", data=b"{}", method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_list_pages_through_every_match_newest_first(admin_client: Client):
    # given
    tag = f"page-{unique()}"
    made = [admin_client.create_job("pipe-sdk", {"i": i, "t": tag}, tags=[tag]).uuid for i in range(5)]
    # when
    listed = list(admin_client.iter_jobs(tag=tag, page_size=2))
    # then
    assert sorted(job["uuid"] for job in listed) == sorted(made)
    stamps = [job["updated_at"] for job in listed]
    assert stamps == sorted(stamps, reverse=True)
    assert len(admin_client.list_jobs(tag=tag, limit=3, page_size=2)) == 3
    assert {job["uuid"] for job in admin_client.iter_jobs(tag=tag, state="RUNNING")} == set()


def test_reset_as_admin_reruns_the_job_as_a_new_generation(admin_client: Client):
    # given
    job = admin_client.create_job("pipe-sdk", {"sample": unique()})
    job.run().finish().wait_for("FINISHED", timeout=20)
    # when
    job.reset().wait_for("CREATED", timeout=30)
    # then
    assert job.generation == 2
    assert job.token is None  # revoked by the reset; the handle acts as admin
    fresh = job.rotate_token()
    assert fresh and job.token == fresh
    job.run().wait_for("RUNNING", timeout=20)
    assert job.history()[-1]["generation"] == 2


def test_delete_as_admin_removes_the_job_but_keeps_its_history(admin_client: Client):
    # given
    tag = f"del-{unique()}"
    job = admin_client.create_job("pipe-sdk", {"sample": unique()}, tags=[tag])
    # when
    job.delete().wait_for("DELETED", timeout=20)
    # then
    with pytest.raises(NotFound):
        admin_client.get_job(job.uuid)
    assert list(admin_client.iter_jobs(tag=tag)) == []
    assert [e["name"] for e in admin_client.history(job.uuid)] == ["delete"]


def test_ready_moves_a_reset_job_back_to_created(admin_client: Client, local_stack):
    # given: a reset that keeps the archive goes straight through RESET to CREATED, so ready is only
    # allowed while the job is still in RESET; sending it otherwise is refused or rejected
    job = admin_client.create_job("pipe-sdk", {"sample": unique()})
    job.cancel().wait_for("CANCELED", timeout=20)
    job.reset(keep_archive=True).wait_for("CREATED", timeout=30)
    # then
    with pytest.raises(EventNotAllowed):
        job.ready()
    assert job.generation == 2


# -- producer keys ---------------------------------------------------------------------------------------


def test_a_reactor_with_a_key_creates_drives_and_lists_only_its_own_jobs(admin_client: Client, local_stack):
    # given a key issued by the admin for one pipeline
    pipeline = f"pipe-key-{unique()}"
    issued = admin_client.keys.create(label="reactor A", pipelines=[pipeline], expires_at=timedelta(days=1))
    assert issued.key and issued.key.startswith(f"pjk_{issued.id}_") and issued.status == "active"
    reactor = Client(local_stack.api_url, api_key=issued.key, timeout=10)
    admins_job = admin_client.create_job(pipeline, {"sample": unique()})
    # when the reactor creates a job and drives it with the fluent handle
    job = reactor.create_job(pipeline, {"sample": unique()})
    job.run({"host": "node-7"}).update(progress=0.5).finish()
    job.wait_for("FINISHED", timeout=20)
    # then the key owns the job and is named in its history; the reactor sees its own jobs only
    assert job["owner"] == issued.id and job.token and job.token.startswith("pjt_")
    assert {entry["by"] for entry in job.history()} == {f"key:{issued.id}"}
    assert [j["uuid"] for j in reactor.iter_jobs(pipeline_uuid=pipeline)] == [job.uuid]
    assert [j.uuid for j in admin_client.list_jobs(owner=issued.id)] == [job.uuid]
    with pytest.raises(NotFound):
        reactor.get_job(admins_job.uuid)


def test_a_key_is_refused_outside_its_scope_for_admin_events_and_for_managing_keys(
    admin_client: Client, local_stack
):
    # given
    pipeline = f"pipe-key-{unique()}"
    issued = admin_client.keys.create(label="reactor B", pipelines=[pipeline])
    reactor = Client(local_stack.api_url, api_key=issued.key, timeout=10)
    job = reactor.create_job(pipeline, {"sample": unique()})
    # when / then
    with pytest.raises(Forbidden, match="may not create jobs for pipeline"):
        reactor.create_job("another-pipeline", {"sample": unique()})
    for admin_only in (job.reset, job.delete, job.ready):
        with pytest.raises(Forbidden):
            admin_only()
    with pytest.raises(Forbidden, match="managing producer keys"):
        reactor.keys.list()
    with pytest.raises(Forbidden):
        reactor.keys.create(label="self-issued", pipelines=["*"])
    assert admin_client.get_job(job.uuid).state == "CREATED"


def test_a_revoked_key_stops_its_client_at_once(admin_client: Client, local_stack):
    # given a reactor driving a job with its key
    pipeline = f"pipe-key-{unique()}"
    issued = admin_client.keys.create(label="reactor C", pipelines=["*"])
    reactor = Client(local_stack.api_url, api_key=issued.key, timeout=10)
    job = reactor.create_job(pipeline, {"sample": unique()})
    job.run().wait_for("RUNNING", timeout=20)
    # when the admin revokes the key
    revoked = admin_client.keys.revoke(issued.id)
    # then the very next request of the reactor is refused, and the listing says revoked
    assert revoked.status == "revoked" and revoked.revoked_at and revoked.key is None
    with pytest.raises(Unauthorized, match="not valid"):
        job.update(progress=0.9)
    with pytest.raises(Unauthorized):
        reactor.create_job(pipeline, {"sample": unique()})
    listed = {key.id: key for key in admin_client.keys.list()}
    assert listed[issued.id].status == "revoked" and listed[issued.id].key is None
    assert admin_client.keys.revoke(issued).revoked_at == revoked.revoked_at  # idempotent
    # and the job token its creation returned is a separate credential (README: reset the job for it)
    assert Client(local_stack.api_url, token=job.token).job(job.uuid, token=job.token).refresh().state == (
        "RUNNING"
    )
