"""Producer keys through the HTTP API (SPEC section 4 item 4, issue 10): issued, listed and revoked by an
admin; a key creates jobs in its scope, drives and reads the jobs it owns, lists only those, and never
resets, readies, deletes, touches another owner's job or manages keys. Revocation holds at once at the
API and, for events already queued with the key, at the worker."""

from __future__ import annotations

import json
import uuid as uuidlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from test_api_tokens import aws_calls, dynamodb_calls

from jobcore.tokens import KEY_REFUSED, KEY_REVOKED_AFTER, hash_token

if TYPE_CHECKING:
    from api_fixtures import Api, HttpResponse

pytest_plugins = ["api_fixtures"]


@dataclass
class Key:
    id: str
    key: str
    body: dict[str, Any]


def issue(api: Api, pipelines: list[str] | None = None, **body: Any) -> Key:
    body.setdefault("label", "lab-a")
    body["pipelines"] = pipelines or ["pipeline-1"]
    response = api.call("POST", "/keys", token=api.admin(), body=body)
    assert response.status == 201, response.text
    return Key(response.body["id"], response.body["key"], response.body)


def create_with(api: Api, key: Key, pipeline: str = "pipeline-1", **spec: Any) -> HttpResponse:
    spec.setdefault("data", {"sample": str(uuidlib.uuid4())})
    return api.call("POST", "/jobs", token=key.key, body={"pipeline_uuid": pipeline, **spec})


def created(api: Api, key: Key, pipeline: str = "pipeline-1") -> str:
    response = create_with(api, key, pipeline)
    assert response.status == 201, response.text
    return str(response.body["job"]["uuid"])


# -- issuing, listing, revoking ----------------------------------------------------------------------


def test_an_issued_key_is_shown_once_and_listed_without_its_secret(api: Api) -> None:
    # given a key issued by an admin
    key = issue(api, ["pipeline-1", "pipeline-2"], label="reactor A")
    # when an admin lists the keys
    listing = api.call("GET", "/keys", token=api.admin())
    # then the answer to the issue held the key; the listing has the key's record, never the key or hash
    assert key.key.startswith(f"pjk_{key.id}_")
    assert key.body == {
        "id": key.id,
        "key": key.key,
        "label": "reactor A",
        "pipelines": ["pipeline-1", "pipeline-2"],
        "expires_at": None,
        "created_at": key.body["created_at"],
        "revoked_at": None,
        "status": "active",
    }
    assert listing.status == 200
    mine = [k for k in listing.body["keys"] if k["id"] == key.id]
    assert mine == [{k: v for k, v in key.body.items() if k != "key"}]
    assert key.key not in listing.text
    assert hash_token(key.key) not in listing.text
    assert key.key.split("_", 2)[2] not in listing.text


def test_a_key_accepts_an_iso_or_epoch_expiry(api: Api) -> None:
    now = api.clock.now()
    # when keys are issued with an expiry as ISO 8601 and as epoch seconds
    iso_key = issue(api, expires_at="2099-01-01T00:00:00Z")
    epoch_key = issue(api, expires_at=now + 3600)
    past = api.call(
        "POST", "/keys", token=api.admin(), body={"label": "x", "pipelines": ["*"], "expires_at": now - 1}
    )
    # then both are stored as ISO timestamps; an expiry in the past is refused
    assert iso_key.body["expires_at"] == "2099-01-01T00:00:00.000Z"
    assert epoch_key.body["expires_at"] is not None
    assert past.status == 400


def test_revoking_is_idempotent_and_an_unknown_key_is_404(api: Api) -> None:
    key = issue(api)
    # when it is revoked twice, and an unknown id once
    first = api.call("DELETE", f"/keys/{key.id}", token=api.admin())
    api.clock.advance(5)
    second = api.call("DELETE", f"/keys/{key.id}", token=api.admin())
    unknown = api.call("DELETE", "/keys/AAAAAAAAAAAA", token=api.admin())
    # then both revocations answer the key's record with the first revocation's time
    assert first.status == second.status == 200
    assert first.body["status"] == "revoked"
    assert second.body["revoked_at"] == first.body["revoked_at"]
    assert "key" not in first.body
    assert unknown.status == 404
    assert set(unknown.body) == {"error"}


def test_a_key_or_a_job_token_cannot_manage_keys(api: Api) -> None:
    # given a key and a job token
    key = issue(api, ["*"])
    job = api.create()
    # when they try every key route
    tries = [
        api.call("POST", "/keys", token=credential, body={"label": "x", "pipelines": ["*"]})
        for credential in (key.key, job.token)
    ]
    tries += [api.call("GET", "/keys", token=credential) for credential in (key.key, job.token)]
    tries += [api.call("DELETE", f"/keys/{key.id}", token=credential) for credential in (key.key, job.token)]
    # then every one is refused with 403, in the API's error shape, and the key still works
    assert [t.status for t in tries] == [403] * 6
    assert all(t.error == "forbidden" for t in tries)
    assert create_with(api, key).status == 201


# -- what a key may do ---------------------------------------------------------------------------------


def test_a_key_creates_and_drives_a_job_in_its_scope(api: Api) -> None:
    # given a key for pipeline-1
    key = issue(api)
    # when it creates a job and sends its events
    response = create_with(api, key)
    uuid = response.body["job"]["uuid"]
    run = api.event(uuid, key.key, "run")
    api.work()
    finish = api.event(uuid, key.key, "finish")
    api.work()
    # then the job is its own, and it moved as the job token would have moved it
    assert response.status == 201
    assert response.body["job"]["owner"] == key.id
    assert run.status == finish.status == 202
    assert "token" not in run.body  # a key is not rotated: the caller keeps it
    job = api.get(uuid, key.key)
    assert job.status == 200
    assert job.body["state"] == "FINISHED"
    assert job.body["owner"] == key.id
    assert "reset" not in job.body["allowed_events"]
    assert "index" in job.body["allowed_events"]


def test_admin_created_jobs_are_owned_by_admin(api: Api) -> None:
    job = api.create()
    assert job.body["job"]["owner"] == "admin"
    assert api.get(job.uuid).body["owner"] == "admin"


def test_a_key_outside_its_scope_is_refused_naming_the_pipeline(api: Api) -> None:
    key = issue(api, ["pipeline-1"])
    # when it creates a job for another pipeline
    response = create_with(api, key, "pipeline-9")
    # then it is refused with 403 naming that pipeline
    assert response.status == 403
    assert "'pipeline-9'" in response.body["error"]["message"]


def test_a_star_key_creates_jobs_for_any_pipeline(api: Api) -> None:
    key = issue(api, ["*"])
    assert create_with(api, key, "pipeline-7").status == 201


def test_a_key_on_another_owners_job_is_404_as_for_an_unknown_job(api: Api) -> None:
    # given a job of key A, an admin's job, and key B
    mine, other = issue(api), issue(api)
    theirs = created(api, mine)
    admins = api.create()
    unknown = str(uuidlib.uuid4())
    # when key B reads, sends to, reads the history of, and rotates the token of each
    answers = {}
    for name, uuid in (("theirs", theirs), ("admins", admins.uuid), ("unknown", unknown)):
        answers[name] = [
            api.get(uuid, other.key),
            api.event(uuid, other.key, "run"),
            api.call("GET", f"/jobs/{uuid}/events", token=other.key),
            api.call("POST", f"/jobs/{uuid}/token", token=other.key),
        ]
    # then every answer is the 404 of an unknown job (the same code; the message names only the uuid)
    for name, responses in answers.items():
        assert [r.status for r in responses] == [404] * 4, name
        assert {r.error for r in responses} == {"job_not_found"}, name
    assert api.get(theirs).body["state"] == "CREATED"


def test_a_key_may_not_reset_ready_or_delete_its_own_job(api: Api) -> None:
    key = issue(api)
    uuid = created(api, key)
    # when it sends reset, ready and delete
    answers = [
        api.event(uuid, key.key, name, data)
        for name, data in (("reset", {}), ("ready", None), ("delete", {}))
    ]
    # then each is 403 and nothing is queued
    assert [a.status for a in answers] == [403, 403, 403]
    assert all("producer key may not send" in a.body["error"]["message"] for a in answers)
    assert api.queued() == []


def test_a_key_rotates_the_token_of_its_own_job(api: Api) -> None:
    key = issue(api)
    response = create_with(api, key)
    uuid, first = response.body["job"]["uuid"], response.body["token"]
    # when the key asks for a fresh job token
    rotated = api.call("POST", f"/jobs/{uuid}/token", token=key.key)
    # then it gets one that works (and no callback URL: that is for an admin)
    assert rotated.status == 200
    assert rotated.body["token"] != first
    assert "callback_url" not in rotated.body or rotated.body["callback_url"] is None
    assert api.event(uuid, rotated.body["token"], "run").status == 202


def test_history_names_the_key_as_the_principal(api: Api) -> None:
    key = issue(api)
    uuid = created(api, key)
    # when it sends an event, and the job's own token another
    api.event(uuid, key.key, "run")
    api.work()
    # then the history says by key:<id>, readable with the key
    history = api.call("GET", f"/jobs/{uuid}/events", token=key.key)
    assert history.status == 200
    assert [(e["name"], e["by"]) for e in history.body["events"]] == [("run", f"key:{key.id}")]
    one = api.call("GET", f"/jobs/{uuid}/events/{history.body['events'][0]['event_id']}", token=key.key)
    assert one.body["by"] == f"key:{key.id}"


def test_an_idempotency_key_with_a_producer_key_gives_one_event(api: Api) -> None:
    key = issue(api)
    uuid = created(api, key)
    first = api.event(uuid, key.key, "run", key="retry-1")
    again = api.event(uuid, key.key, "run", key="retry-1")
    api.work()
    assert first.status == again.status == 202
    assert first.body["event_id"] == again.body["event_id"]
    events = api.history(uuid)
    assert [(e["name"], e["by"]) for e in events] == [("run", f"key:{key.id}")]


# -- listings --------------------------------------------------------------------------------------


def test_a_key_lists_only_its_own_jobs_and_an_admin_filters_by_owner(api: Api) -> None:
    # given two keys with a job each, and an admin's job
    a, b = issue(api, ["*"]), issue(api, ["*"])
    job_a, job_b = created(api, a), created(api, b)
    admins = api.create()
    # when key A lists jobs, and an admin lists by owner
    listed_a = api.call("GET", "/jobs", token=a.key)
    by_b = api.call("GET", "/jobs", token=api.admin(), query={"owner": b.id})
    by_admin = api.call("GET", "/jobs", token=api.admin(), query={"owner": "admin"})
    everything = api.call("GET", "/jobs", token=api.admin(), query={"limit": "100"})
    other_owner = api.call("GET", "/jobs", token=a.key, query={"owner": b.id})
    # then each sees what it should
    assert [j["uuid"] for j in listed_a.body["jobs"]] == [job_a]
    assert [j["uuid"] for j in by_b.body["jobs"]] == [job_b]
    assert admins.uuid in {j["uuid"] for j in by_admin.body["jobs"]}
    assert not {job_a, job_b} & {j["uuid"] for j in by_admin.body["jobs"]}
    assert {job_a, job_b, admins.uuid} <= {j["uuid"] for j in everything.body["jobs"]}
    assert other_owner.status == 403


# -- refused keys --------------------------------------------------------------------------------------


def test_an_expired_key_is_refused_with_401(api: Api) -> None:
    key = issue(api, expires_at=api.clock.now() + 60)
    uuid = created(api, key)
    # when its expiry passes
    api.clock.advance(61)
    answers = [create_with(api, key), api.get(uuid, key.key), api.event(uuid, key.key, "run")]
    answers.append(api.call("GET", "/jobs", token=key.key))
    # then it is refused everywhere with the one message
    assert [a.status for a in answers] == [401] * 4
    assert {a.body["error"]["message"] for a in answers} == {KEY_REFUSED}
    listed = [k for k in api.call("GET", "/keys", token=api.admin()).body["keys"] if k["id"] == key.id]
    assert listed[0]["status"] == "expired"


def test_a_revoked_key_is_refused_at_once(api: Api) -> None:
    key = issue(api)
    uuid = created(api, key)
    assert api.event(uuid, key.key, "run").status == 202
    # when an admin revokes it
    assert api.call("DELETE", f"/keys/{key.id}", token=api.admin()).status == 200
    # then the very next requests are refused with 401
    answers = [api.event(uuid, key.key, "update"), api.get(uuid, key.key), create_with(api, key)]
    answers.append(api.event(uuid, key.key, "update", key="after-revocation"))
    assert [a.status for a in answers] == [401] * 4
    assert {a.body["error"]["message"] for a in answers} == {KEY_REFUSED}


def test_unknown_wrong_and_revoked_keys_get_the_same_answer(api: Api) -> None:
    key = issue(api)
    uuid = created(api, key)
    wrong = key.key[:-4] + ("AAAA" if not key.key.endswith("AAAA") else "BBBB")
    unknown = "pjk_" + "Z" * 12 + key.key[16:]
    answers = [api.get(uuid, credential) for credential in (wrong, unknown)]
    answers += [api.event(uuid, credential, "run") for credential in (wrong, unknown)]
    assert [a.status for a in answers] == [401] * 4
    assert len({a.text for a in answers}) == 1


def test_an_event_accepted_then_its_key_revoked_is_rejected_by_the_worker(api: Api) -> None:
    # given an event accepted with a key (202) and not applied yet
    key = issue(api)
    uuid = created(api, key)
    accepted = api.event(uuid, key.key, "run")
    assert accepted.status == 202
    # when the key is revoked before the worker runs
    api.call("DELETE", f"/keys/{key.id}", token=api.admin())
    api.work()
    # then the event is recorded rejected, in its place, with that reason, and the job is unchanged
    job = api.get(uuid)
    assert job.body["state"] == "CREATED"
    assert job.body["queued_events"] == 0
    events = api.history(uuid)
    assert [(e["name"], e["outcome"], e.get("reason"), e["by"]) for e in events] == [
        ("run", "rejected", KEY_REVOKED_AFTER, f"key:{key.id}")
    ]
    # and the job's own token still drives it afterwards, in order
    admin_run = api.event(uuid, api.admin(), "run")
    api.work()
    assert admin_run.status == 202
    assert api.get(uuid).body["state"] == "RUNNING"


def test_an_event_accepted_before_its_key_expired_is_still_applied(api: Api) -> None:
    # given an event accepted with a key that expires before the worker runs
    key = issue(api, expires_at=api.clock.now() + 10)
    uuid = created(api, key)
    assert api.event(uuid, key.key, "run").status == 202
    api.clock.advance(11)
    # when the worker runs
    api.work()
    # then the 202 held: expiry was known in advance, it is not a revocation
    assert api.get(uuid).body["state"] == "RUNNING"


def test_a_key_on_the_queue_is_authenticated_by_the_worker(api: Api) -> None:
    # given a key's job, and messages straight on the queue (SPEC section 6) with the key
    key, other = issue(api), issue(api)
    uuid = created(api, key)
    api.harness.send(uuid, "run", key.key)
    api.work()
    api.harness.send(uuid, "update", other.key)  # not its owner
    api.call("DELETE", f"/keys/{key.id}", token=api.admin())
    api.harness.send(uuid, "update", key.key)  # revoked
    api.work()
    # then the first is applied by key:<id>; the others are rejected
    events = api.history(uuid)
    assert [(e["name"], e["outcome"], e["by"]) for e in events] == [
        ("run", "applied", f"key:{key.id}"),
        ("update", "rejected", f"key:{other.id}"),
        ("update", "rejected", None),
    ]
    assert api.get(uuid).body["state"] == "RUNNING"


# -- secrets -----------------------------------------------------------------------------------------


def test_a_key_pasted_as_an_event_name_or_field_is_never_echoed(api: Api) -> None:
    key = issue(api)
    uuid = created(api, key)
    answers = [
        api.call("POST", f"/jobs/{uuid}/events", token=key.key, body={"name": key.key}),
        api.call("POST", f"/jobs/{uuid}/events", token=key.key, body={"name": "run", key.key: 1}),
        api.call("POST", "/jobs", token=key.key, body={"pipeline_uuid": key.key, "data": {}}),
        api.call("GET", f"/jobs/{key.key}", token=api.admin()),
        api.call("DELETE", f"/keys/{key.key}", token=api.admin()),
        api.call("GET", "/jobs", token=api.admin(), query={"owner": key.key}),
    ]
    # then each is refused, and no answer, log-visible history or record quotes the key
    assert [int(a.status) for a in answers] == [400, 400, 403, 404, 404, 400]
    for answer in answers:
        assert key.key not in answer.text
        assert key.key.split("_", 2)[2] not in answer.text
    api.work()
    assert key.key not in json.dumps(api.history(uuid))


# -- cost ---------------------------------------------------------------------------------------------


def test_an_event_with_a_key_costs_one_transaction_and_one_send(api: Api) -> None:
    # given a key's job this container has seen (the creation, or any read)
    key = issue(api)
    uuid = created(api, key)
    api.event(uuid, key.key, "run")
    api.work()
    # when it sends progress events
    with aws_calls() as calls:
        for _ in range(3):
            assert api.event(uuid, key.key, "update").status == 202
    # then each costs one TransactWriteItems (job update + the key's ConditionCheck) and one send
    assert dynamodb_calls(calls) == {"TransactWriteItems": 3}
    assert calls["sqs:SendMessage"] == 3
    assert sum(calls.values()) == 6


def test_a_keys_events_interleaved_with_a_job_tokens_apply_in_the_order_accepted(api: Api) -> None:
    # given a key's job, whose own job token also sends events (so this container's view of the job's
    # place goes stale between the key's events)
    key = issue(api)
    response = create_with(api, key)
    uuid, token = response.body["job"]["uuid"], response.body["token"]
    # when key, token and key send events before the worker runs
    first = api.event(uuid, key.key, "run")
    second = api.event(uuid, token, "update", {"n": 2})
    third = api.event(uuid, key.key, "update", {"n": 3})
    api.work()
    # then each was accepted, and applied in that order, each by its own principal
    assert [r.status for r in (first, second, third)] == [202, 202, 202]
    events = api.history(uuid)
    assert [(e["name"], e["outcome"], e["by"]) for e in events] == [
        ("run", "applied", f"key:{key.id}"),
        ("update", "applied", "job"),
        ("update", "applied", f"key:{key.id}"),
    ]


def test_events_accepted_after_a_revoked_keys_event_say_why_they_are_refused(api: Api) -> None:
    # given a key's run and the job token's finish, accepted one after the other
    key = issue(api)
    response = create_with(api, key)
    uuid, token = response.body["job"]["uuid"], response.body["token"]
    assert api.event(uuid, key.key, "run").status == 202
    assert api.event(uuid, token, "finish").status == 202
    # when the key is revoked before the worker runs
    api.call("DELETE", f"/keys/{key.id}", token=api.admin())
    api.work()
    # then the run is rejected for the revocation, and the finish, promised against RUNNING, for that
    events = api.history(uuid)
    assert [(e["name"], e["outcome"]) for e in events] == [("run", "rejected"), ("finish", "rejected")]
    assert events[0]["reason"] == KEY_REVOKED_AFTER
    assert "producer key was revoked" in events[1]["reason"]
    assert api.get(uuid).body["state"] == "CREATED"


def test_a_deleted_job_is_404_to_its_key(api: Api) -> None:
    key = issue(api)
    uuid = created(api, key)
    api.event(uuid, api.admin(), "delete", {})
    api.work()
    assert api.get(uuid, key.key).status == 404
    assert api.event(uuid, key.key, "update").status == 404
    assert api.call("GET", f"/jobs/{uuid}/events", token=key.key).status == 404


def test_a_key_in_the_query_string_is_no_credential(api: Api) -> None:
    key = issue(api)
    uuid = created(api, key)
    job = api.call("GET", f"/jobs/{uuid}", query={"token": key.key})
    callback = api.call("POST", f"/jobs/{uuid}/callback", query={"token": key.key, "status": "RUNNING"})
    assert job.status == callback.status == 401
    assert key.key not in job.text + callback.text


def test_unknown_and_wrong_keys_both_compare_a_hash(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import jobcore.access

    # given the constant-time comparison, counted
    compared: list[str] = []
    original = jobcore.access.same_hash

    def counting(a: str | None, b: str | None) -> bool:
        compared.append(str(b))
        return original(a, b)

    monkeypatch.setattr(jobcore.access, "same_hash", counting)
    key = issue(api)
    uuid = created(api, key)
    compared.clear()
    # when an unknown id and a wrong secret are presented
    unknown = "pjk_" + "Z" * 12 + key.key[16:]
    wrong = key.key[:-1] + ("A" if key.key[-1] != "A" else "B")
    api.get(uuid, unknown)
    api.get(uuid, wrong)
    # then each cost one comparison of hashes: the unknown one against a dummy
    assert len(compared) == 2
    assert compared[0] != compared[1]


@pytest.mark.parametrize(
    "body",
    [
        {"pipelines": ["p"]},
        {"label": "x"},
        {"label": "x", "pipelines": []},
        {"label": " ", "pipelines": ["p"]},
        {"label": "x", "pipelines": ["*", "p"]},
        {"label": "x", "pipelines": ["p"], "expires_at": "next tuesday"},
        {"label": "x", "pipelines": ["p"], "scope": "admin"},
    ],
)
def test_a_malformed_key_request_is_400_and_issues_nothing(api: Api, body: dict[str, Any]) -> None:
    before = len(api.call("GET", "/keys", token=api.admin()).body["keys"])
    response = api.call("POST", "/keys", token=api.admin(), body=body)
    assert response.status == 400, response.text
    assert set(response.body) == {"error"}
    assert len(api.call("GET", "/keys", token=api.admin()).body["keys"]) == before
