"""Callback URLs (SPEC sections 4 and 5): the status mapping walked through the HTTP route, the body
kept as event data and trimmed to the limit, late notifications recorded as ignored, never refused."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from jobcore.models import MAX_DATA_BYTES, data_size

if TYPE_CHECKING:
    from api_fixtures import Api

pytest_plugins = ["api_fixtures"]

STATUS_EVENTS = [
    ("RUNNING", "run"),
    ("FINISHED", "finish"),
    ("FAILED", "fail"),
    ("STOPPED", "fail"),
    ("KILLED", "fail"),
    ("ARCHIVING_FAILED", "fail"),
    ("DELETED", "fail"),
    ("PENDING", "resource"),
    ("QUEUED", "resource"),
    ("ARCHIVING", "resource"),
    ("HEARTBEAT", "resource"),
    ("SOMETHING_NEW", "update"),
    ("running", "run"),
    (" Finished ", "finish"),
]


@pytest.mark.parametrize(("status", "event"), STATUS_EVENTS)
def test_callback_status_maps_to_its_event(api: Api, status: str, event: str) -> None:
    # given a running job and its callback URL
    job = api.create()
    api.send(job, "run")
    # when the platform reports a status in the query
    response = api.callback(job, status, {"id": "platform-1"})
    # then the mapped event is queued, with the callback token and the platform's body as data
    assert response.status == 202
    assert response.body["event"] == event
    assert "token" not in response.body
    [message] = api.queued()
    assert message["name"] == event
    assert message["token"] == job.callback_token
    assert message["data"]["id"] == "platform-1"
    assert message["expect"] == ["RUNNING", 1]


def test_status_may_come_in_the_body_and_the_query_wins(api: Api) -> None:
    job = api.create()
    in_body = api.callback(job, None, {"status": "FINISHED", "id": 1})
    both = api.callback(job, "RUNNING", {"status": "FAILED"})
    neither = api.callback(job, None, {"progress": 0.5})
    assert (in_body.body["event"], both.body["event"], neither.body["event"]) == ("finish", "run", "update")
    data = [m["data"] for m in api.queued()]
    # the platform's body is kept as it came; a query status is added when the body has none
    assert data == [{"status": "FINISHED", "id": 1}, {"status": "FAILED"}, {"progress": 0.5}]


def test_callback_round_trip_through_the_worker(api: Api) -> None:
    # given a job driven only by its compute platform
    job = api.create()
    for status in ("PENDING", "RUNNING", "HEARTBEAT", "FINISHED"):
        assert api.callback(job, status, {"status": status}).status == 202
    # when the worker applies the notifications
    api.work()
    # then the job finished, every step recorded as sent by the callback
    assert api.get(job).body["state"] == "FINISHED"
    history = api.history(job)
    assert [(e["name"], e["outcome"], e["by"]) for e in history] == [
        ("resource", "applied", "callback"),
        ("run", "applied", "callback"),
        ("resource", "applied", "callback"),
        ("finish", "applied", "callback"),
    ]
    assert history[-1]["data"] == {"status": "FINISHED"}


def test_late_callback_is_accepted_and_recorded_as_ignored(api: Api) -> None:
    # given a job that has finished
    job = api.create()
    api.send(job, "run")
    api.send(job, "finish")
    # when its platform reports, late, that it is running, and then that it was killed
    running = api.callback(job, "RUNNING", {"late": True})
    killed = api.callback(job, "KILLED")
    # then both are accepted (a platform must not retry them) ...
    assert running.status == killed.status == 202
    api.work()
    # ... and recorded as ignored, with the reason, leaving the job as it was
    assert api.get(job).body["state"] == "FINISHED"
    for response in (running, killed):
        path = f"/jobs/{job.uuid}/events/{response.body['event_id']}"
        entry = api.call("GET", path, token=api.admin()).body
        assert entry["status"] == "ignored"
        assert entry["by"] == "callback"
        assert entry["reason"].startswith("cannot ")
    assert [e["outcome"] for e in api.history(job)][-2:] == ["ignored", "ignored"]


def test_large_callback_body_is_trimmed_to_the_limit(api: Api) -> None:
    # given a platform body well over the data limit (and over the API's body limit)
    job = api.create()
    body = {"status": "FAILED", "id": "p-1", "log": "x" * 250_000, "env": {"k": "v" * 40_000}, "small": 1}
    # when it is posted to the callback URL
    response = api.callback(job, None, body)
    # then it is accepted; the largest values were dropped, the status and the small ones kept
    assert response.status == 202
    assert response.body["event"] == "fail"
    [message] = api.queued()
    data = message["data"]
    assert data_size(data) <= MAX_DATA_BYTES
    assert data["status"] == "FAILED" and data["id"] == "p-1" and data["small"] == 1
    assert data["env"] == {"k": "v" * 40_000}
    assert data["_trimmed"]["dropped"] == ["log"]
    assert data["_trimmed"]["original_bytes"] > 250_000


def test_callback_body_that_cannot_fit_keeps_only_the_status(api: Api) -> None:
    job = api.create()
    response = api.callback(job, "RUNNING", ["x" * 100_000])
    assert response.status == 202
    [message] = api.queued()
    assert message["data"]["status"] == "RUNNING"
    assert message["data"]["_trimmed"]["dropped"] == ["body"]


@pytest.mark.parametrize(
    ("raw", "content_type", "data"),
    [
        (
            "id=7&state=ok",
            "application/x-www-form-urlencoded",
            {"id": "7", "state": "ok", "status": "RUNNING"},
        ),
        ("plain words", "text/plain", {"body": "plain words", "status": "RUNNING"}),
        ("", "application/json", {"status": "RUNNING"}),
        ("[1, 2]", "application/json", {"body": [1, 2], "status": "RUNNING"}),
    ],
    ids=["form", "text", "empty", "json-list"],
)
def test_any_callback_body_is_kept(api: Api, raw: str, content_type: str, data: dict) -> None:
    job = api.create()
    response = api.callback(job, "RUNNING", raw_body=raw, headers={"content-type": content_type})
    assert response.status == 202
    [message] = api.queued()
    assert message["data"] == data


def test_callback_credentials(api: Api) -> None:
    # given two jobs
    job, other = api.create(), api.create()
    # then the callback route takes only this job's callback token, from the query
    assert api.callback(job, "RUNNING", token="").status == 401
    assert api.callback(job, "RUNNING", token=job.token).status == 401  # a job token is not for URLs
    assert api.callback(job, "RUNNING", token=api.admin()).status == 401
    assert api.callback(job, "RUNNING", token=other.callback_token).status == 401
    bearer_only = api.call("POST", f"/jobs/{job.uuid}/callback", token=job.callback_token,
                           query={"status": "RUNNING"})  # fmt: skip
    assert bearer_only.status == 401
    assert api.queued() == []
    assert api.callback(job, "RUNNING").status == 202


def test_callback_token_never_rotates(api: Api) -> None:
    # given a policy that rotates job tokens on every use
    from jobcore.tokens import RotationPolicy

    api.service.policy = RotationPolicy(rotate_uses=1)
    job = api.create()
    # when the callback token is used many times, with state changes
    for status in ("RUNNING", "HEARTBEAT", "HEARTBEAT", "FINISHED"):
        assert api.callback(job, status).status == 202
        api.work()
    # then it still works
    assert api.callback(job, "FINISHED").status == 202
    assert api.get(job, token=job.callback_token).status == 200


def test_callback_for_an_unknown_job_is_404(api: Api) -> None:
    job = api.create()
    response = api.call("POST", "/jobs/00000000-0000-4000-8000-000000000000/callback",
                        query={"token": job.callback_token, "status": "RUNNING"})  # fmt: skip
    assert response.status == 404


def test_no_token_reaches_the_logs(api: Api, capsys) -> None:
    # given a job's whole life over HTTP, with its callback URL, rotations and refusals
    job = api.create()
    secrets = {job.token, job.callback_token, api.admin()}
    response = api.event(job.uuid, job.token, "run")
    secrets.add(response.body["token"])
    api.callback(job, "RUNNING", {"status": "RUNNING"})
    api.callback(job, "RUNNING", token="pjc_" + "x" * 43)
    api.event(job.uuid, "pjt_" + "y" * 43, "run")
    issued = api.call("POST", f"/jobs/{job.uuid}/token", token=job.token).body["token"]
    secrets.add(issued)
    api.work()
    # then no token, and no part of the query string, was logged
    logged = capsys.readouterr().out
    assert logged  # the API does log (one line per request)
    for secret in secrets:
        assert secret not in logged
    assert "pjc_" not in logged and "pjt_" not in logged
    assert "token=" not in logged
    for line in logged.splitlines():
        if line.startswith("{"):
            assert "authorization" not in json.loads(line)


def test_hostile_callback_bodies_are_still_accepted(api: Api) -> None:
    import base64

    from api_fixtures import LambdaContext, http_event

    import api_handler

    # given bodies nested too deeply to keep, or to parse at all, and bytes that are not UTF-8
    job = api.create()
    deep = '{"a":' * 100 + "1" + "}" * 100
    unparsable = "[" * 20_000 + "]" * 20_000
    for raw in (deep, unparsable):
        assert api.callback(job, "HEARTBEAT", raw_body=raw).status == 202
    binary = http_event(
        "POST", f"/jobs/{job.uuid}/callback", query={"token": job.callback_token, "status": "RUNNING"}
    )
    binary["body"] = base64.b64encode(b"\xff\xfe{").decode()
    binary["isBase64Encoded"] = True
    assert api_handler.handler(binary, LambdaContext())["statusCode"] == 202
    # then each is queued with what could be kept, and the history stays readable
    kept = [m["data"] for m in api.queued()]
    assert kept[0] == {"_trimmed": {"reason": "nested more than 32 levels deep"}, "status": "HEARTBEAT"}
    assert kept[1] == {"body": unparsable, "status": "HEARTBEAT"}
    assert kept[2] == {"body": "\ufffd\ufffd{", "status": "RUNNING"}


def test_a_status_over_its_length_limit_is_a_400_the_document_declares(api: Api) -> None:
    # given a callback URL, and a status word longer than the route takes
    job = api.create()
    response = api.callback(job, "RUNNING" * 20)
    # then it is refused as malformed, in the error format, and the OpenAPI document says it can be
    assert response.status == 400
    assert json.loads(response.text)["error"]["code"] == "invalid_request"
    document = json.loads(api.call("GET", "/openapi.json").text)
    assert "400" in document["paths"]["/jobs/{uuid}/callback"]["post"]["responses"]
