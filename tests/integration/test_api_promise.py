"""SPEC section 3, "a 202 is a promise", from the producer's side (issue 9): a producer that reuses its
token, shares it, lost an answer, retries, or whose events reach the worker late, out of order or after
a state change straight on the queue. Each test reproduces what was seen before the promise held."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from jobcore.adapters.sqs import SqsEventQueue
from jobcore.tokens import RotationPolicy

if TYPE_CHECKING:
    from api_fixtures import Api

pytest_plugins = ["api_fixtures"]

WEEK = 7 * 86_400


def outcomes(api: Api, uuid: str) -> list[tuple[str, str]]:
    return [(e["name"], e["outcome"]) for e in api.history(uuid)]


def status(api: Api, uuid: str, event_id: str) -> dict[str, Any]:
    return api.call("GET", f"/jobs/{uuid}/events/{event_id}", token=api.admin()).body


# -- a token reused, shared, or used late ------------------------------------------------------------


def test_a_producer_that_never_follows_the_token_gets_every_event_applied(api: Api) -> None:
    # given a job whose first token T0 a shell script keeps using, never picking up the new ones
    job = api.create()
    t0 = job.token
    answers = [api.event(job.uuid, t0, "run")]
    answers += [api.event(job.uuid, t0, "update", {"n": n}) for n in range(12)]
    # then every request is answered 202 (T0 is in its grace period: its reuse never rotates again, so
    # it never pushes itself out), each answer naming the one current token
    assert [a.status for a in answers] == [202] * 13
    current = answers[0].body["token"]
    assert current != t0 and {a.body["token"] for a in answers[1:]} == {current}
    # and the worker applies every one of them
    api.work()
    assert outcomes(api, job.uuid) == [("run", "applied")] + [("update", "applied")] * 12


def test_sixty_updates_on_one_token_across_its_rotation_are_all_applied(api: Api) -> None:
    # given a running job, and 60 updates sent with one token (it rotates at its 50th use)
    job = api.create()
    api.send(job, "run")
    token = job.token
    answers = [api.event(job.uuid, token, "update", {"n": n}) for n in range(60)]
    # then all 60 are accepted, the rotation happened once, and all 60 are applied
    assert {a.status for a in answers} == {202}
    assert len({a.body["token"] for a in answers}) == 2
    api.work()
    assert outcomes(api, job.uuid)[1:] == [("update", "applied")] * 60


def test_events_accepted_with_a_token_are_applied_after_its_grace_period_ended(api: Api) -> None:
    # given events accepted with a rotated-out token, within its grace
    job = api.create()
    old = job.token
    api.send(job, "run")
    accepted = [api.event(job.uuid, old, "update", {"n": n}) for n in range(3)]
    assert {a.status for a in accepted} == {202}
    # when the worker gets to them only after the grace period (a backlog, an outage)
    api.clock.advance(RotationPolicy().grace_seconds + 60)
    api.work()
    # then they are applied all the same: the API's acceptance is what the worker honours
    assert [status(api, job.uuid, a.body["event_id"])["status"] for a in accepted] == ["applied"] * 3
    assert api.event(job.uuid, old, "update").status == 401  # (and the token itself is refused now)


def test_an_admin_event_accepted_in_one_window_is_applied_after_it_closed(api: Api) -> None:
    job = api.create()
    accepted = api.event(job.uuid, api.admin(), "run")
    api.clock.advance(3 * 3600)  # the admin token's window and the next one are over
    api.work()
    assert status(api, job.uuid, accepted.body["event_id"])["status"] == "applied"


# -- the order accepted ------------------------------------------------------------------------------


class HeldQueue:
    """The API's queue adapter, holding back the messages `hold` says, to send them later: two API
    requests whose sends crossed (or one whose send was lost)."""

    def __init__(self, inner: SqsEventQueue) -> None:
        self.inner = inner
        self.held: list[tuple[dict[str, Any], str, str]] = []
        self.hold = False

    def send(self, body: dict[str, Any], group_id: str, dedup_id: str) -> None:
        if self.hold:
            self.held.append((body, group_id, dedup_id))
        else:
            self.inner.send(body, group_id, dedup_id)

    def release(self) -> None:
        for body, group, dedup in self.held:
            self.inner.send(body, group, dedup)
        self.held.clear()


@pytest.fixture
def held(api: Api, monkeypatch: pytest.MonkeyPatch) -> HeldQueue:
    queue = HeldQueue(api.service.queue)  # type: ignore[arg-type]
    monkeypatch.setattr(api.service, "queue", queue)
    return queue


def test_events_whose_sends_crossed_are_applied_in_the_order_accepted(api: Api, held: HeldQueue) -> None:
    # given a running job, and two events accepted in this order: update, then finish, whose
    # message reaches the queue first (update is not allowed after finish)
    job = api.create()
    api.send(job, "run")
    held.hold = True
    update = api.event(job.uuid, job.token, "update", {"n": 1})
    held.hold = False
    finish = api.event(job.uuid, job.token, "finish")
    assert (update.status, finish.status) == (202, 202)
    # when the worker sees finish alone (it goes back to wait), then update
    api.harness.work_once()
    assert status(api, job.uuid, finish.body["event_id"])["status"] == "queued"
    held.release()
    api.work()
    # then update was applied before finish, as accepted: both promises kept
    assert outcomes(api, job.uuid) == [("run", "applied"), ("update", "applied"), ("finish", "applied")]
    assert api.get(job).body["state"] == "FINISHED"


def test_events_out_of_order_in_one_batch_are_put_back_in_order(api: Api, held: HeldQueue) -> None:
    job = api.create()
    held.hold = True
    run = api.event(job.uuid, job.token, "run")
    held.hold = False
    finish = api.event(job.uuid, run.body["token"], "finish")
    held.release()  # finish, then run, on the queue: one batch
    assert api.work() == 2  # no message went back to wait
    assert outcomes(api, job.uuid) == [("run", "applied"), ("finish", "applied")]
    assert finish.status == 202


def test_an_event_lost_before_the_queue_is_given_up_after_the_wait(api: Api, held: HeldQueue) -> None:
    # given an update whose send never reached the queue, then a progress note after it
    job = api.create()
    api.send(job, "run")
    held.hold = True
    lost = api.event(job.uuid, job.token, "update", {"lost": True})
    held.hold = False
    after = api.event(job.uuid, job.token, "update", {"n": 2})
    # when the worker has waited longer than ORDER_WAIT_SECONDS for the lost one
    api.harness.work_once()
    assert status(api, job.uuid, after.body["event_id"])["status"] == "queued"
    api.clock.advance(api.harness.service.settings.order_wait_seconds)
    api.work()
    # then the later one is applied; and the lost one, if it comes after all, where the job is now
    assert status(api, job.uuid, after.body["event_id"])["status"] == "applied"
    held.release()
    api.work()
    assert status(api, job.uuid, lost.body["event_id"])["status"] == "applied"


def test_a_state_change_straight_on_the_queue_may_not_overtake_accepted_events(
    api: Api, held: HeldQueue
) -> None:
    # given a running job with an update accepted and queued behind a producer's finish on the queue
    job = api.create()
    api.send(job, "run")
    held.hold = True
    update = api.event(job.uuid, job.token, "update")
    direct = api.harness.send(job.uuid, "finish", api.admin())
    held.release()
    # when the worker applies them
    api.work()
    # then the update the API promised is applied, and the producer's finish, which would have
    # overtaken it, is rejected with a reason that says what to do
    assert status(api, job.uuid, update.body["event_id"])["status"] == "applied"
    refused = status(api, job.uuid, direct)
    assert refused["status"] == "rejected"
    assert "send it through the API" in refused["reason"]


def test_a_reset_straight_on_the_queue_revokes_the_accepted_events_behind_it(
    api: Api, held: HeldQueue
) -> None:
    job = api.create()
    api.send(job, "run")
    held.hold = True
    update = api.event(job.uuid, job.token, "update")
    api.harness.send(job.uuid, "reset", api.admin(), {"keep_archive": True})
    held.release()
    api.work()
    refused = status(api, job.uuid, update.body["event_id"])
    assert refused["status"] == "rejected"
    assert refused["reason"] == "the job was reset after this event was accepted"
    shown = api.get(job).body
    assert (shown["state"], shown["generation"], shown["queued_events"]) == ("CREATED", 2, 0)


# -- retries: Idempotency-Key ------------------------------------------------------------------------


def test_the_same_idempotency_key_is_the_same_event_applied_once(api: Api) -> None:
    # given a request whose answer was lost
    job = api.create()
    first = api.event(job.uuid, job.token, "run", {"host": "n7"}, key="run-1")
    # when the producer sends it again, a second later and a week later (after it was applied)
    again = api.event(job.uuid, job.token, "run", {"host": "n7"}, key="run-1")
    api.work()
    api.clock.advance(WEEK)
    late = api.event(job.uuid, api.admin(), "run", {"host": "n7"}, key="run-1")
    api.work()
    # then every answer is the same 202 with the same event id, and the event was applied once
    assert [r.status for r in (first, again, late)] == [202, 202, 202]
    assert {r.body["event_id"] for r in (first, again, late)} == {first.body["event_id"]}
    assert outcomes(api, job.uuid) == [("run", "applied")]


def test_an_idempotency_key_retried_after_the_job_moved_on_is_still_its_202(api: Api) -> None:
    job = api.create()
    run = api.event(job.uuid, job.token, "run", key="k-run")
    api.work()
    finish = api.event(job.uuid, run.body["token"], "finish")
    api.work()
    # run is not allowed from FINISHED, but this is the run already accepted, not a new one
    again = api.event(job.uuid, finish.body["token"], "run", key="k-run")
    assert (again.status, again.body["event_id"]) == (202, run.body["event_id"])


def test_an_idempotency_key_reused_for_another_request_is_422(api: Api) -> None:
    job = api.create()
    assert api.event(job.uuid, job.token, "update", {"n": 1}, key="k1").status == 202
    other_data = api.event(job.uuid, job.token, "update", {"n": 2}, key="k1")
    other_event = api.event(job.uuid, job.token, "run", key="k1")
    assert (other_data.status, other_event.status) == (422, 422)
    assert other_data.error == "idempotency_key_reused"
    assert "use a new key" in other_data.body["error"]["message"]
    api.work()
    assert outcomes(api, job.uuid) == [("update", "applied")]


def test_an_idempotency_key_belongs_to_one_job(api: Api) -> None:
    a, b = api.create(), api.create()
    on_a = api.event(a.uuid, a.token, "run", key="same")
    on_b = api.event(b.uuid, b.token, "run", key="same")
    assert on_a.body["event_id"] != on_b.body["event_id"]


@pytest.mark.parametrize("key", ["", "x" * 65, "a b", "../x", "key\u00e9"])
def test_a_malformed_idempotency_key_is_400(api: Api, key: str) -> None:
    job = api.create()
    response = api.event(job.uuid, job.token, "run", key=key)
    assert response.status == 400
    assert response.error == "invalid_request"
    assert api.queued() == []


# -- event ids ---------------------------------------------------------------------------------------


def test_an_event_id_the_api_never_issued_is_404_and_a_queued_one_is_queued(api: Api) -> None:
    job, other = api.create(), api.create()
    accepted = api.event(job.uuid, job.token, "run").body["event_id"]
    assert status(api, job.uuid, accepted)["status"] == "queued"
    for never in ("xyz", "5b0e5f0c-4a43-4a55-9e7c-0d0c1d5d7a11", accepted.replace(".", ".x", 1)):
        response = api.call("GET", f"/jobs/{job.uuid}/events/{never}", token=api.admin())
        assert (response.status, response.error) == (404, "event_not_found")
    # an id issued for another job is not this job's
    response = api.call("GET", f"/jobs/{other.uuid}/events/{accepted}", token=api.admin())
    assert response.status == 404


# -- strict JSON -------------------------------------------------------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_with_400(api: Api, constant: str) -> None:
    job = api.create()
    create = api.call(
        "POST", "/jobs", token=api.admin(), raw_body=f'{{"pipeline_uuid": "p", "data": {{"x": {constant}}}}}'
    )
    event = api.call(
        "POST",
        f"/jobs/{job.uuid}/events",
        token=job.token,
        raw_body=f'{{"name": "run", "data": {{"x": {constant}}}}}',
    )
    for response in (create, event):
        assert response.status == 400
        assert "NaN and Infinity are not JSON numbers" in response.body["error"]["message"]
    assert api.queued() == []


def test_a_callback_body_with_nan_is_kept_as_text(api: Api) -> None:
    job = api.create()
    response = api.callback(job, "RUNNING", raw_body='{"progress": NaN}')
    assert response.status == 202
    api.work()
    [entry] = api.history(job)
    assert entry["data"] == {"body": '{"progress": NaN}', "status": "RUNNING"}
    json.loads(api.call("GET", f"/jobs/{job.uuid}/events", token=api.admin()).text, parse_constant=_refuse)


def test_a_queue_message_with_nan_is_recorded_as_malformed(api: Api) -> None:
    job = api.create()
    body = json.dumps(
        {"uuid": job.uuid, "name": "run", "token": api.admin(), "event_id": "nan-1", "data": {}}
    )
    api.harness.send_raw(body.replace('"data": {}', '"data": {"x": NaN}'), group=job.uuid)
    api.work()
    entry = status(api, job.uuid, "nan-1")
    assert entry["status"] == "rejected"
    assert entry["reason"] == "malformed message: NaN and Infinity are not JSON numbers"
    assert api.get(job).body["state"] == "CREATED"


def _refuse(name: str) -> Any:
    raise AssertionError(f"{name} in a body the API served")


# -- the callback URL after a reset ------------------------------------------------------------------


def test_an_admin_can_always_read_the_current_callback_url(api: Api) -> None:
    # given a job reset (which revokes its callback token and issues a new one)
    job = api.create()
    assert api.get(job).body["callback_url"] == job.callback_url
    api.event(job.uuid, api.admin(), "reset", {"keep_archive": True})
    api.work()
    # when an admin reads it, or issues job tokens, twice
    shown = api.get(job).body["callback_url"]
    issued = [api.call("POST", f"/jobs/{job.uuid}/token", token=api.admin()).body for _ in range(2)]
    # then each answer has the new callback URL, which works; the old one does not
    assert shown != job.callback_url
    assert [i["callback_url"] for i in issued] == [shown, shown]
    old = job.callback_url
    job.callback_url = shown
    assert api.callback(job, "RUNNING").status == 202
    job.callback_url = old
    assert api.callback(job, "RUNNING").status == 401


def test_an_admin_issues_a_fresh_callback_url_and_the_old_one_stops(api: Api) -> None:
    job = api.create()
    fresh = api.call(
        "POST", f"/jobs/{job.uuid}/token", token=api.admin(), query={"rotate_callback": "true"}
    ).body["callback_url"]
    assert fresh != job.callback_url
    assert api.callback(job, "RUNNING").status == 401
    job.callback_url = fresh
    assert api.callback(job, "RUNNING").status == 202
    # a job token may not replace the callback URL
    response = api.call("POST", f"/jobs/{job.uuid}/token", token=job.token, query={"rotate_callback": "true"})
    assert response.status == 403


# -- incarnations ------------------------------------------------------------------------------------


def test_a_job_created_again_after_delete_is_a_new_incarnation(api: Api) -> None:
    # given a job that ran, failed, kept outputs, and was deleted (keeping its archive)
    spec = {"pipeline_uuid": "pipe-inc", "data": {"sample": "S1"}}
    first = api.create(**spec)
    api.send(first, "run")
    api.send(first, "fail")
    bucket, _, key = first.body["job"]["archive_path"][len("s3://") :].partition("/")
    api.harness.s3.put_object(Bucket=bucket, Key=f"{key}old-output.txt", Body=b"old")
    api.event(first.uuid, api.admin(), "delete")
    api.work()
    # when it is created again from the same inputs
    second = api.create(**spec)
    job = second.body["job"]
    # then: the same uuid, a generation above the old one's, a fresh archive path beside the old one,
    # and only this incarnation's timestamps
    assert second.uuid == first.uuid
    assert job["generation"] == 2
    assert job["archive_path"] == first.body["job"]["archive_path"].rstrip("/") + ".i2/"
    assert "run_at" not in job and "failed_at" not in job
    _, _, new_key = job["archive_path"][len("s3://") :].partition("/")
    listed = api.harness.s3.list_objects_v2(Bucket=bucket, Prefix=new_key).get("KeyCount")
    assert listed == 0
    # and its history tells the incarnations apart by generation
    api.send(second, "run")
    assert [(e["name"], e["generation"]) for e in api.history(second)] == [
        ("run", 1),
        ("fail", 1),
        ("delete", 1),
        ("run", 2),
    ]
    # the old incarnation's tokens do nothing to the new one
    assert api.event(first.uuid, first.token, "update").status == 401


def test_a_reset_leaves_only_the_new_generations_timestamps(api: Api) -> None:
    job = api.create()
    api.send(job, "run")
    api.send(job, "finish")
    api.event(job.uuid, api.admin(), "reset", {"keep_archive": True})
    api.work()
    shown = api.get(job).body
    assert (shown["state"], shown["generation"]) == ("CREATED", 2)
    assert not {"run_at", "finished_at", "reset_at"} & set(shown)
    assert shown["created_at"] == shown["state_entered_at"]


def test_an_event_straight_on_the_queue_that_changes_nothing_is_applied_among_accepted_ones(
    api: Api, held: HeldQueue
) -> None:
    # given a running job with an update accepted and queued behind a producer's run on the queue (run
    # in RUNNING changes nothing), sent with no `expect` hint to a worker that has not seen the job
    job = api.create()
    api.send(job, "run")
    api.harness.service._known.clear()
    held.hold = True
    update = api.event(job.uuid, job.token, "update")
    direct = api.harness.send(job.uuid, "run", job.token)
    held.release()
    api.work()
    # then both are applied: only a state change may not overtake what the API accepted
    assert status(api, job.uuid, direct)["status"] == "applied"
    assert status(api, job.uuid, update.body["event_id"])["status"] == "applied"
