"""SPEC section 5 through the API handler: every route, every error status, the worker round trip."""

from __future__ import annotations

import json
import uuid as uuidlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobcore.errors import TransientError
from jobcore.keyring import acceptance_fields
from jobcore.models import MAX_BODY_BYTES
from jobcore.tokens import admin_token

if TYPE_CHECKING:
    from api_fixtures import Api

pytest_plugins = ["api_fixtures"]

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


# -- the worker round trip --------------------------------------------------------------------------


def test_job_lifecycle_through_the_api_and_the_worker(api: Api) -> None:
    # given a job created by an admin
    job = api.create(name="demo", tags=["nightly"])
    # when its own token drives it through its life, following the token each response hands back
    ids = [api.send(job, name) for name in ("run", "update", "finish", "validate", "validated", "finalize")]
    # then the worker applied every event, in order, and the job shows where it ended
    shown = api.get(job, token=job.token).body
    assert shown["state"] == "FINALIZED"
    assert shown["last_event"] == "finalize"
    assert shown["allowed_events"] == ["retire"]
    history = api.history(job, token=job.token)
    assert [(e["event_id"], e["outcome"], e["by"]) for e in history] == [(i, "applied", "job") for i in ids]
    assert [e["to_state"] for e in history] == [
        "RUNNING", "RUNNING", "FINISHED", "VALIDATING", "VALIDATED", "FINALIZED",
    ]  # fmt: skip


def test_event_is_queued_for_the_worker_with_the_presented_token_and_the_expectation(api: Api) -> None:
    # given a job
    job = api.create()
    # when its token sends a state-changing event
    response = api.event(job.uuid, job.token, "run", {"progress": 1})
    # then 202 with the event id and a rotated token, and one FIFO message pinned to what the API
    # accepted: the state it expects, its place in the job's order, who sent it and when
    assert response.status == 202
    assert response.body["token"] != job.token
    [message] = api.queued()
    assert message == {
        "uuid": job.uuid, "name": "run", "data": {"progress": 1}, "token": job.token,
        "event_id": response.body["event_id"], "expect": ["CREATED", 1],
        "seq": 1, "by": "job", "at": message["at"], "ignore": False, "mark": message["mark"],
        "_group": job.uuid, "_dedup": response.body["event_id"],
    }  # fmt: skip
    assert message["at"] == pytest.approx(api.clock.now(), abs=1)
    # marked as the API's acceptance, over every field but the token
    fields = acceptance_fields(
        uuid=job.uuid, event_id=message["event_id"], name="run", data={"progress": 1}, expect=("CREATED", 1),
        seq=1, by="job", at=message["at"], ignore=False,
    )  # fmt: skip
    assert api.service.keyring().marked(fields, message["mark"])
    assert not api.service.keyring().marked({**fields, "seq": 2}, message["mark"])


# -- POST /jobs -------------------------------------------------------------------------------------


def test_create_job_returns_the_job_its_token_and_callback_url(api: Api) -> None:
    # given a job spec
    spec = {"pipeline_uuid": "pipeline-9", "data": {"x": 1}, "child_of": ["b", "a", "a"], "tags": ["t"]}
    # when an admin creates it
    response = api.call("POST", "/jobs", token=api.admin(), body=spec)
    # then 201 with the job (its data, CREATED, generation 1), a job token and a callback URL
    assert response.status == 201
    body = response.body
    job = body["job"]
    assert job["state"] == "CREATED" and job["generation"] == 1 and job["data"] == {"x": 1}
    assert job["child_of"] == ["a", "b"]
    assert body["token"].startswith("pjt_")
    assert body["callback_url"] == job["callback_url"]
    assert body["callback_url"].startswith(f"https://api.example.com/jobs/{job['uuid']}/callback?token=pjc_")
    assert response.headers["location"] == f"/jobs/{job['uuid']}"
    assert response.headers["cache-control"] == "no-store"


def test_create_existing_job_is_409_with_its_uuid(api: Api) -> None:
    # given a job
    job = api.create(data={"same": True})
    # when the same inputs are created again
    response = api.call(
        "POST", "/jobs", token=api.admin(), body={"pipeline_uuid": "pipeline-1", "data": {"same": True}}
    )
    # then 409 names the existing job
    assert response.status == 409
    assert response.error == "job_exists"
    assert response.body["uuid"] == job.uuid


def test_create_needs_an_admin_token(api: Api) -> None:
    # given a job token
    job = api.create()
    spec = {"pipeline_uuid": "p", "data": {}}
    # when it (or nothing) is used to create a job, then 403 (not an admin) and 401 (no credential)
    assert api.call("POST", "/jobs", token=job.token, body=spec).status == 403
    assert api.call("POST", "/jobs", body=spec).status == 401


def test_create_with_an_archive_path_outside_the_bucket_is_400(api: Api) -> None:
    spec = {"pipeline_uuid": "p", "data": {}, "archive_path": "s3://another-bucket/x/y/"}
    response = api.call("POST", "/jobs", token=api.admin(), body=spec)
    assert response.status == 400
    assert response.error == "invalid_archive_path"


def test_create_with_too_large_data_is_413(api: Api) -> None:
    spec = {"pipeline_uuid": "p", "data": {"blob": "x" * 70_000}}
    response = api.call("POST", "/jobs", token=api.admin(), body=spec)
    assert response.status == 413
    assert response.error == "payload_too_large"


def test_callback_url_follows_the_request_host_and_stage(api: Api) -> None:
    # given requests through a named stage, and through the local stack on loopback
    spec = {"pipeline_uuid": "p", "data": {"stage": 1}}
    staged = api.call(
        "POST", "/jobs", token=api.admin(), body=spec, domain="abc.execute-api.example", stage="prod"
    )
    spec["data"] = {"stage": 2}
    local = api.call("POST", "/jobs", token=api.admin(), body=spec, domain="127.0.0.1:8765")
    # then the callback URLs point back at them
    assert staged.body["callback_url"].startswith("https://abc.execute-api.example/prod/jobs/")
    assert local.body["callback_url"].startswith("http://127.0.0.1:8765/jobs/")


def test_public_api_url_overrides_the_request_host(api: Api, monkeypatch) -> None:
    import dataclasses

    settings = dataclasses.replace(api.service.settings, public_api_url="https://jobs.example.org/v1/")
    monkeypatch.setattr(api.service, "settings", settings)
    response = api.call("POST", "/jobs", token=api.admin(), body={"pipeline_uuid": "p", "data": {"proxy": 1}})
    assert response.body["callback_url"].startswith("https://jobs.example.org/v1/jobs/")


# -- GET /jobs/{uuid} -------------------------------------------------------------------------------


def test_get_job_lists_the_events_the_caller_may_send_now(api: Api) -> None:
    # given a running job
    job = api.create()
    api.send(job, "run")
    # when its job token, its callback token and an admin read it
    as_job = api.get(job, token=job.token).body
    as_callback = api.get(job, token=job.callback_token).body
    as_admin = api.get(job).body
    # then each sees the events its credential may send from RUNNING
    assert as_job["allowed_events"] == ["run", "update", "resource", "fail", "finish"]
    assert as_callback["allowed_events"] == ["run", "update", "resource", "fail", "finish"]
    assert as_admin["allowed_events"] == ["run", "update", "resource", "fail", "finish", "reset", "delete"]
    assert as_admin["run_at"] == as_admin["state_entered_at"]
    # and only the admin sees a credential: the job's current callback URL
    assert as_admin["callback_url"] == job.callback_url
    for shown in (as_job, as_callback, {k: v for k, v in as_admin.items() if k != "callback_url"}):
        text = json.dumps(shown)
        assert "pjt_" not in text and "pjc_" not in text and "hash" not in text and "callback_url" not in text


@pytest.mark.parametrize(
    "path_uuid", ["5b0e5f0c-4a43-4a55-9e7c-0d0c1d5d7a11", "not-a-uuid", "%2e%2e", "x" * 300]
)
def test_unknown_or_malformed_job_is_404(api: Api, path_uuid: str) -> None:
    response = api.call("GET", f"/jobs/{path_uuid}", token=api.admin())
    assert response.status == 404
    assert response.error == "job_not_found"


def test_uppercase_uuid_finds_the_job(api: Api) -> None:
    job = api.create()
    assert api.get(job.uuid.upper(), token=job.token).status == 200


# -- POST /jobs/{uuid}/events: the errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_body", "code"),
    [
        ("{not json", "invalid_request"),
        ('{"name": "explode"}', "unknown_event"),
        ('{"data": {}}', "invalid_request"),
        ('{"name": "run", "data": "text"}', "invalid_request"),
        ('{"name": "run", "extra": 1}', "invalid_request"),
        ('["run"]', "invalid_request"),
        ("", "invalid_request"),
    ],
    ids=["bad-json", "unknown-event", "no-name", "data-not-object", "extra-field", "not-object", "empty"],
)
def test_malformed_event_is_400(api: Api, raw_body: str, code: str) -> None:
    # given a job
    job = api.create()
    # when a malformed event is posted
    response = api.call("POST", f"/jobs/{job.uuid}/events", token=job.token, raw_body=raw_body)
    # then 400 with a clear code, and nothing is queued
    assert response.status == 400
    assert response.error == code
    assert response.body["error"]["message"]
    assert api.queued() == []


def test_unknown_event_message_lists_the_known_events(api: Api) -> None:
    job = api.create()
    response = api.event(job.uuid, job.token, "explode")
    assert "unknown event 'explode'" in response.body["error"]["message"]
    assert "finish" in response.body["error"]["message"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer garbage", "Basic dXNlcjpwdw==", "Bearer pjt_" + "A" * 43, "Bearer " + "0" * 64],
    ids=["none", "empty", "garbage", "basic", "unknown-job-token", "wrong-admin"],
)
def test_missing_or_invalid_credential_is_401(api: Api, authorization: str | None) -> None:
    # given a job
    job = api.create()
    headers = {"authorization": authorization} if authorization else {}
    # when an event comes without a valid credential
    response = api.call("POST", f"/jobs/{job.uuid}/events", headers=headers, body={"name": "run"})
    # then 401, with the scheme to use
    assert response.status == 401
    assert response.error == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert api.queued() == []


def test_admin_token_of_an_expired_window_is_401(api: Api) -> None:
    job = api.create()
    old = admin_token("integration-admin-key", api.clock.now() - 2 * 3600)
    assert api.event(job.uuid, old, "run").status == 401
    previous_window = admin_token("integration-admin-key", api.clock.now() - 3600)
    assert api.event(job.uuid, previous_window, "run").status == 202


@pytest.mark.parametrize("event", ["reset", "delete", "ready"])
def test_job_token_sending_an_admin_event_is_403(api: Api, event: str) -> None:
    job = api.create()
    response = api.event(job.uuid, job.token, event)
    assert response.status == 403
    assert response.error == "forbidden"


@pytest.mark.parametrize("event", ["reset", "cancel", "index", "retire"])
def test_callback_token_sending_a_non_callback_event_is_403(api: Api, event: str) -> None:
    job = api.create()
    response = api.event(job.uuid, job.callback_token, event)
    assert response.status == 403


def test_callback_token_may_send_callback_events_as_bearer(api: Api) -> None:
    job = api.create()
    response = api.event(job.uuid, job.callback_token, "run")
    # the callback token never rotates: nothing to hand back, and it is never echoed
    assert response.status == 202
    assert "token" not in response.body and job.callback_token not in response.text


def test_an_admin_event_does_not_echo_the_admin_token(api: Api) -> None:
    job = api.create()
    admin = api.admin()
    response = api.event(job.uuid, admin, "run")
    assert response.status == 202
    assert "token" not in response.body and admin not in response.text


def test_event_for_an_unknown_job_is_404(api: Api) -> None:
    assert api.event(str(uuidlib.uuid4()), api.admin(), "run").status == 404


def test_event_not_allowed_from_the_current_state_is_409(api: Api) -> None:
    # given a job in CREATED
    job = api.create()
    # when it is told it finished
    response = api.event(job.uuid, job.token, "finish")
    # then 409 says why, and nothing is queued or rotated
    assert response.status == 409
    assert response.error == "event_not_allowed"
    assert response.body["error"]["message"] == "cannot finish a job in CREATED"
    assert api.queued() == []
    assert api.event(job.uuid, job.token, "update").status == 202


def test_too_large_event_data_is_413(api: Api) -> None:
    job = api.create()
    response = api.event(job.uuid, job.token, "update", {"blob": "x" * 66_000})
    assert response.status == 413
    assert response.error == "payload_too_large"


def test_too_large_body_is_413_before_it_is_parsed(api: Api) -> None:
    job = api.create()
    raw = '{"name": "update", "junk": "' + "x" * MAX_BODY_BYTES + '"}'
    response = api.call("POST", f"/jobs/{job.uuid}/events", token=job.token, raw_body=raw)
    assert response.status == 413
    assert response.error == "payload_too_large"


def test_base64_encoded_body_is_accepted(api: Api) -> None:
    job = api.create()
    response = api.call("POST", f"/jobs/{job.uuid}/events", token=job.token, body={"name": "update"},
                        base64_body=True)  # fmt: skip
    assert response.status == 202


def test_body_of_another_media_type_is_415(api: Api) -> None:
    job = api.create()
    response = api.call("POST", f"/jobs/{job.uuid}/events", token=job.token, raw_body="name=run",
                        headers={"content-type": "text/plain"})  # fmt: skip
    assert response.status == 415


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("[" * 20_000 + "]" * 20_000, "the body is nested too deeply"),
        ('{"name": "update", "data": ' + nested(40) + "}", "data is nested more than 32 levels deep"),
    ],
    ids=["beyond-the-parser", "beyond-the-limit"],
)
def test_deeply_nested_body_is_400(api: Api, raw: str, message: str) -> None:
    job = api.create()
    response = api.call("POST", f"/jobs/{job.uuid}/events", token=job.token, raw_body=raw)
    assert response.status == 400
    assert response.body["error"]["message"] == message
    create = api.call(
        "POST", "/jobs", token=api.admin(), raw_body='{"pipeline_uuid": "p", "data": ' + nested(40) + "}"
    )
    assert create.status == 400


def test_body_that_is_not_utf8_is_400(api: Api) -> None:
    from api_fixtures import LambdaContext

    import api_handler

    job = api.create()
    answer = api_handler.handler(http_event_base64(job, b"\xff\xfe{"), LambdaContext())
    assert answer["statusCode"] == 400
    assert "UTF-8" in answer["body"]


def http_event_base64(job, payload: bytes) -> dict:
    import base64

    from api_fixtures import http_event

    event = http_event("POST", f"/jobs/{job.uuid}/events", token=job.token, raw_body="x")
    event["body"] = base64.b64encode(payload).decode()
    event["isBase64Encoded"] = True
    return event


def test_machinery_failure_is_503_and_a_bug_is_500_without_details(api: Api, monkeypatch) -> None:
    job = api.create()

    def refuse(*args, **kwargs):
        raise TransientError("queue throttled")

    monkeypatch.setattr(api.service.queue, "send", refuse)
    busy = api.event(job.uuid, job.token, "update")
    assert busy.status == 503 and busy.headers["retry-after"] == "1"

    def crash(*args, **kwargs):
        raise RuntimeError("a bug with internals")

    monkeypatch.setattr(api.service.repo, "get", crash)
    broken = api.get(job)
    assert broken.status == 500
    assert broken.body == {"error": {"code": "internal_error", "message": "an internal error occurred"}}


def test_unknown_route_is_404_in_the_error_format(api: Api) -> None:
    response = api.call("GET", "/nowhere", token=api.admin())
    assert response.status == 404
    assert response.error == "not_found"


# -- history and event status -----------------------------------------------------------------------


def test_event_status_goes_from_queued_to_applied(api: Api) -> None:
    job = api.create()
    event_id = api.event(job.uuid, job.token, "update", {"n": 1}).body["event_id"]
    path = f"/jobs/{job.uuid}/events/{event_id}"
    assert api.call("GET", path, token=api.admin()).body == {"event_id": event_id, "status": "queued"}
    api.work()
    shown = api.call("GET", path, token=api.admin()).body
    assert shown["status"] == "applied" and shown["name"] == "update" and shown["data"] == {"n": 1}


def test_an_event_not_allowed_after_the_queued_ones_is_409_not_a_broken_202(api: Api) -> None:
    # given a job in CREATED, and a cancel accepted but not applied yet
    job = api.create()
    cancel = api.event(job.uuid, api.admin(), "cancel")
    assert cancel.status == 202
    # when run follows at once
    run = api.event(job.uuid, api.admin(), "run")
    # then it is refused now, against the state the cancel will leave the job in ...
    assert run.status == 409
    assert (
        run.body["error"]["message"]
        == "cannot run a job in CANCELED (where its 1 queued events will leave it)"
    )
    # ... so every 202 is applied
    api.work()
    assert [(e["name"], e["outcome"]) for e in api.history(job)] == [("cancel", "applied")]


def test_an_event_allowed_after_the_queued_ones_is_accepted_at_once(api: Api) -> None:
    # given a job in CREATED, and run accepted but not applied yet
    job = api.create()
    run = api.event(job.uuid, job.token, "run")
    # when finish follows at once (the stored state is still CREATED)
    finish = api.event(job.uuid, run.body["token"], "finish")
    # then it is accepted, and both are applied in that order
    assert (run.status, finish.status) == (202, 202)
    api.work()
    assert [(e["name"], e["outcome"], e["to_state"]) for e in api.history(job)] == [
        ("run", "applied", "RUNNING"),
        ("finish", "applied", "FINISHED"),
    ]


def test_event_id_that_no_event_can_have_is_404(api: Api) -> None:
    job = api.create()
    response = api.call("GET", f"/jobs/{job.uuid}/events/bad$id", token=api.admin())
    assert response.status == 404
    assert response.error == "event_not_found"


def test_history_pages_oldest_first(api: Api) -> None:
    # given a job with five applied events
    job = api.create()
    ids = [api.send(job, "update", {"n": n}) for n in range(5)]
    # when its history is read two at a time
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": "2"} | ({"next": cursor} if cursor else {})
        page = api.call("GET", f"/jobs/{job.uuid}/events", token=job.token, query=query).body
        seen += [e["event_id"] for e in page["events"]]
        pages += 1
        cursor = page["next"]
        if not cursor:
            break
    # then every event comes once, oldest first
    assert seen == ids
    assert pages == 3


def test_history_cursor_of_another_job_is_400(api: Api) -> None:
    a, b = api.create(), api.create()
    for _ in range(2):
        api.send(a, "update")
    cursor = api.call("GET", f"/jobs/{a.uuid}/events", token=api.admin(), query={"limit": "1"}).body["next"]
    response = api.call("GET", f"/jobs/{b.uuid}/events", token=api.admin(), query={"next": cursor})
    assert response.status == 400


def test_deleted_job_is_gone_but_its_history_stays_readable_by_an_admin(api: Api) -> None:
    # given a job that ran and was deleted
    job = api.create()
    api.send(job, "run")
    delete = api.event(job.uuid, api.admin(), "delete")
    api.work()
    # then it is 404 for everyone, its tokens are revoked, and an admin can still read its history
    assert api.get(job).status == 404
    assert api.get(job, token=job.token).status == 404
    assert api.event(job.uuid, api.admin(), "update").status == 404
    assert [e["name"] for e in api.history(job)] == ["run", "delete"]
    status = api.call("GET", f"/jobs/{job.uuid}/events/{delete.body['event_id']}", token=api.admin())
    assert status.body["status"] == "applied"
    assert api.call("GET", f"/jobs/{job.uuid}/events", token=job.token).status == 404


# -- OpenAPI ----------------------------------------------------------------------------------------


def test_openapi_document_is_valid_and_describes_every_route(api: Api) -> None:
    from openapi_spec_validator import validate

    response = api.call("GET", "/openapi.json")
    assert response.status == 200
    document = response.body
    validate(document)
    paths = document["paths"]
    assert set(paths) == {
        "/jobs", "/jobs/counts", "/jobs/{uuid}", "/jobs/{uuid}/events", "/jobs/{uuid}/events/{event_id}",
        "/jobs/{uuid}/outputs", "/jobs/{uuid}/callback", "/jobs/{uuid}/token", "/keys", "/keys/{key_id}",
        "/dlq", "/dlq/redrive",
    }  # fmt: skip
    assert set(paths["/jobs"]) == {"get", "post"}
    outputs = paths["/jobs/{uuid}/outputs"]["get"]
    assert {p["name"] for p in outputs["parameters"]} == {"uuid", "limit", "next"}
    assert "15 minutes" in outputs["description"] and set(outputs["responses"]) >= {"200", "401", "404"}
    counts = paths["/jobs/counts"]["get"]
    assert {p["name"] for p in counts["parameters"]} == {
        "state", "pipeline_uuid", "tag", "owner", "updated_after", "updated_before", "child_of",
    }  # fmt: skip
    # the event body is the worker's own model: one schema per event
    event_body = paths["/jobs/{uuid}/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert len(event_body["oneOf"]) == 16
    assert event_body["discriminator"]["propertyName"] == "name"
    # errors are documented as the API answers them: 400, never Powertools' 422 for a request that
    # fails validation; the one 422 the API answers (an Idempotency-Key reused) is the events route's
    for path, item in paths.items():
        for method, operation in item.items():
            responses = operation["responses"]
            if (method, path) == ("post", "/jobs/{uuid}/events"):
                assert (
                    responses["422"]["description"]
                    == "the Idempotency-Key was used on this job for another request"
                )
            else:
                assert "422" not in responses
    assert "400" in paths["/jobs/{uuid}/events"]["post"]["responses"]
    assert document["servers"] == [{"url": "https://api.example.com"}]
    assert {p["name"] for p in paths["/jobs"]["get"]["parameters"]} == {
        "state", "pipeline_uuid", "tag", "owner", "updated_after", "updated_before", "child_of", "limit", "next",
    }  # fmt: skip


def test_docs_serve_the_viewer(api: Api) -> None:
    response = api.call("GET", "/docs")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    assert "/jobs/{uuid}/callback" in response.text


# -- sample events ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EVENTS_DIR.glob("api_*.json")), ids=lambda p: p.name)
def test_sample_event_is_answered_without_a_server_error(api: Api, path: Path) -> None:
    from api_fixtures import LambdaContext

    import api_handler

    # given a sample HTTP API event (placeholder credentials)
    event = json.loads(path.read_text())
    # when the handler gets it
    response = api_handler.handler(event, LambdaContext())
    # then it answers from the route it names, with a 2xx or the 4xx its placeholders deserve
    assert response["statusCode"] < 500, response["body"]
    if path.name in ("api_openapi.json", "api_docs.json"):
        assert response["statusCode"] == 200


def test_there_is_a_sample_event_for_every_route() -> None:
    from api_fixtures import ROUTES

    keys = {json.loads(p.read_text())["routeKey"] for p in EVENTS_DIR.glob("api_*.json")}
    assert keys >= {f"{method} {path}" for method, path in ROUTES}


def test_http_event_helper_names_the_route() -> None:
    from api_fixtures import http_event

    assert http_event("GET", "/jobs/abc/events/def")["routeKey"] == "GET /jobs/{uuid}/events/{event_id}"


def test_importing_the_handler_creates_no_client() -> None:
    import subprocess
    import sys

    # given a fresh interpreter, when the handler module is imported (a cold start's first step)
    code = "import sys, api_handler; print(sorted(m for m in ('boto3', 'pynamodb') if m in sys.modules))"
    root = EVENTS_DIR.parent
    env = {"PYTHONPATH": f"{root / 'layers/core'}:{root / 'functions/api'}", "PATH": "/usr/bin:/bin"}
    output = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    # then neither boto3 nor PynamoDB is loaded: _deps() imports them on the first request
    assert output.stdout.strip() == "[]"


# -- every error in the API's shape --------------------------------------------------------------------


def test_a_method_a_route_does_not_take_is_405_with_allow(api: Api) -> None:
    job = api.create()
    for method, path, allow in (
        ("PUT", f"/jobs/{job.uuid}", "GET"),
        ("DELETE", f"/jobs/{job.uuid}/events", "GET, POST"),
        ("GET", f"/jobs/{job.uuid}/token", "POST"),
    ):
        response = api.call(method, path, token=api.admin())
        assert (response.status, response.error) == (405, "method_not_allowed")
        assert response.headers["allow"] == allow


def test_an_unknown_route_is_404_in_the_error_shape(api: Api) -> None:
    response = api.call("GET", "/jobs/x/y/z", token=api.admin())
    assert (response.status, response.error) == (404, "not_found")
    assert "/openapi.json" in response.body["error"]["message"]


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_a_form_body_is_415_not_an_unknown_event(api: Api, content_type: str) -> None:
    # curl -d 'name=run' sends a form
    job = api.create()
    response = api.call(
        "POST",
        f"/jobs/{job.uuid}/events",
        token=job.token,
        raw_body="name=run",
        headers={"content-type": content_type},
    )
    assert (response.status, response.error) == (415, "unsupported_media_type")
    assert "Content-Type: application/json" in response.body["error"]["message"]
    assert api.queued() == []


def test_json_with_a_charset_is_taken(api: Api) -> None:
    job = api.create()
    response = api.call(
        "POST", f"/jobs/{job.uuid}/events", token=api.admin(), body={"name": "update"},
        headers={"content-type": "application/json; charset=utf-8"},
    )  # fmt: skip
    assert response.status == 202, response.text
