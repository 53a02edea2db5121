"""Security cases over real HTTP on the local stack (issue 5, item 4), where the handler-level suites leave
a gap (tests/integration/test_api_tokens.py, test_api_routes.py, test_api_callbacks.py,
test_worker_rules.py and tests/unit/test_archive_paths.py hold the rest; the model-based test covers a
rotated token past its grace on the queue, with a fake clock, which the stack's real clock cannot give):

- a job's job token *and* callback token, on every route of another job, the event-status route and the
  callback URL included;
- admin tokens from two windows ago and from another key, on every admin operation;
- archive paths with control characters, look-alike Unicode and encoded bytes, refused end to end;
- payloads and fields over their limits, at the boundary and one past it;
- unknown fields, named like a credential, refused without the name being echoed.

Every refusal is a 4xx in the error format, changes nothing, and (test_secret_scan.py) echoes no secret.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid as uuidlib
from typing import Any

import pytest

from jobcore.ids import job_uuid
from jobcore.models import MAX_BODY_BYTES, MAX_DATA_BYTES
from jobcore.tokens import admin_token
from tests.reliability.conftest import Figures, RecordingApi, Secrets, job_view, make_sentinels

pytestmark = pytest.mark.e2e


def _refused(response: Any, status: int, code: str | None = None) -> None:
    assert response.status == status, (response.status, response.body)
    assert set(response.body) == {"error"}, response.body
    assert set(response.body["error"]) == {"code", "message"}
    if code is not None:
        assert response.body["error"]["code"] == code


def _callback_token(created: dict[str, Any]) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(created["callback_url"]).query)["token"][0]


def test_one_jobs_credentials_open_nothing_on_another_job(api: RecordingApi, figures: Figures) -> None:
    # given two running jobs, and one event in the second's history
    mine, theirs = make_sentinels(api, ("RUNNING", "RUNNING"), "security")
    event_id = api.history(theirs.uuid)[0]["event_id"]
    before = job_view(api, theirs.uuid), api.history(theirs.uuid)
    # when the first job's job token and callback token are used on every route of the second
    calls = [
        ("GET", f"/jobs/{theirs.uuid}", None, None),
        ("POST", f"/jobs/{theirs.uuid}/events", {"name": "update", "data": {"x": 1}}, None),
        ("POST", f"/jobs/{theirs.uuid}/events", {"name": "finish"}, None),
        ("GET", f"/jobs/{theirs.uuid}/events", None, None),
        ("GET", f"/jobs/{theirs.uuid}/events/{event_id}", None, None),
        ("GET", f"/jobs/{theirs.uuid}/outputs", None, None),
        ("POST", f"/jobs/{theirs.uuid}/token", None, None),
    ]
    for token in (mine.token, mine.callback_token):
        for method, path, body, query in calls:
            _refused(api.request(method, path, token=token, body=body, query=query), 401, "unauthorized")
            figures.security_cases += 1
    for query_token in (mine.callback_token, mine.token):
        query = {"token": query_token, "status": "FINISHED"}
        _refused(api.request("POST", f"/jobs/{theirs.uuid}/callback", query=query), 401, "unauthorized")
        figures.security_cases += 1
    # then nothing about the second job changed, and the first job's credentials still work on it
    api.stack.drain()
    assert (job_view(api, theirs.uuid), api.history(theirs.uuid)) == before
    assert api.job(mine.uuid, token=mine.token).status == 200
    assert api.job(mine.uuid, token=mine.callback_token).status == 200


def test_admin_tokens_of_an_old_window_or_another_key_open_nothing(
    api: RecordingApi, figures: Figures
) -> None:
    # given a job, and admin tokens from two windows ago and from a key that is not the stack's
    stack = api.stack
    (job,) = make_sentinels(api, ("CREATED",), "security admin")
    lifetime = stack.admin_token_lifetime
    stale = admin_token(stack.admin_key, time.time() - 2 * lifetime, lifetime)
    foreign = admin_token(stack.admin_key + "-other", time.time(), lifetime)
    api.secrets.add(stale, foreign)
    before = job_view(api, job.uuid), api.history(job.uuid)
    spec = {"pipeline_uuid": "security", "data": {"never": uuidlib.uuid4().hex}}
    for token in (stale, foreign):
        # when either is used for every admin operation
        _refused(api.request("POST", "/jobs", token=token, body=spec), 401, "unauthorized")
        _refused(api.request("GET", "/jobs", token=token), 401, "unauthorized")
        _refused(api.request("GET", f"/jobs/{job.uuid}", token=token), 401, "unauthorized")
        for event in ("reset", "delete", "ready", "cancel"):
            _refused(api.post_event(job.uuid, event, token), 401, "unauthorized")
        _refused(api.request("POST", f"/jobs/{job.uuid}/token", token=token), 401, "unauthorized")
        figures.security_cases += 8
    # then nothing was created or changed, while the previous window's token still lists jobs
    stack.drain()
    new_uuid = job_uuid(spec["pipeline_uuid"], spec["data"], [])
    assert api.job(new_uuid).status == 404
    assert (job_view(api, job.uuid), api.history(job.uuid)) == before
    previous = admin_token(stack.admin_key, time.time() - lifetime, lifetime)
    api.secrets.add(previous)
    assert api.request("GET", "/jobs", token=previous, query={"limit": "1"}).status == 200


TRICKY_PATHS = {
    "nul-byte": "{root}/{p}/a\x00b/run/",
    "newline": "{root}/{p}/a\nb/run/",
    "tab": "{root}/{p}/a\tb/run/",
    "fullwidth-dots": "{root}/{p}/\uff0e\uff0e/\uff0e\uff0e/elsewhere/",
    "division-slash": "{root}/{p}/..\u2215..\u2215x/run/",
    "fullwidth-slash": "{root}/{p}/a\uff0fb/run/",
    "right-to-left-override": "{root}/{p}/a\u202eb/run/",
    "percent-nul": "{root}/{p}/a%00/run/",
    "percent-dotdot": "{root}/{p}/%2e%2e/%2e%2e/x/",
    "dotdot": "{root}/{p}/../../other-prefix/x/",
    "other-bucket": "s3://{bucket}-other/{prefix}/{p}/run/",
    "bucket-suffix": "s3://{bucket}.evil/{prefix}/{p}/run/",
    "other-job": "{root}/{p}/{other}/",
}


@pytest.mark.parametrize("name", sorted(TRICKY_PATHS))
def test_archive_paths_with_tricks_are_refused_end_to_end(
    api: RecordingApi, figures: Figures, name: str
) -> None:
    # given a job spec whose archive path reaches, or hides a way, outside its own folder
    resources = api.stack.resources
    root = f"s3://{resources.bucket}/{resources.archive_prefix}"
    spec = {"pipeline_uuid": "security-paths", "data": {"case": name, "n": uuidlib.uuid4().hex}}
    path = TRICKY_PATHS[name].format(
        root=root,
        p="security-paths",
        bucket=resources.bucket,
        prefix=resources.archive_prefix,
        other=str(uuidlib.uuid4()),
    )
    # when it is created over HTTP
    response = api.request("POST", "/jobs", token=api.admin(), body={**spec, "archive_path": path})
    figures.security_cases += 1
    # then it is refused as a bad archive path, and no job exists
    _refused(response, 400, "invalid_archive_path")
    assert api.job(job_uuid(spec["pipeline_uuid"], spec["data"], [])).status == 404


def _data_of_size(size: int) -> dict[str, str]:
    """A data object of exactly `size` bytes serialized (canonical JSON)."""
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    return {"blob": "x" * (size - overhead)}


def test_payloads_at_the_limit_pass_and_one_byte_more_is_refused(api: RecordingApi, figures: Figures) -> None:
    # given a running job
    (job,) = make_sentinels(api, ("RUNNING",), "security limits")
    # when it sends data of exactly the limit, then one byte more, then a body over the request limit
    at_limit = api.post_event(job.uuid, "update", job.token, _data_of_size(MAX_DATA_BYTES))
    over = api.post_event(job.uuid, "update", job.token, _data_of_size(MAX_DATA_BYTES + 1))
    raw = json.dumps({"name": "update", "data": {"blob": "y" * MAX_BODY_BYTES}}).encode()
    too_big = api.request("POST", f"/jobs/{job.uuid}/events", token=job.token, raw=raw)
    figures.security_cases += 3
    # then the first is accepted and applied, the others refused as too large and never queued
    assert at_limit.status == 202, at_limit.body
    _refused(over, 413, "payload_too_large")
    _refused(too_big, 413, "payload_too_large")
    api.stack.drain()
    history = api.history(job.uuid)
    assert [e["event_id"] for e in history if e["name"] == "update"] == [at_limit.body["event_id"]]
    assert history[-1]["outcome"] == "applied"


FIELDS_OVER_LIMITS = {
    "pipeline_uuid": {"pipeline_uuid": "p" * 129},
    "name": {"name": "n" * 257},
    "session": {"session": "s" * 257},
    "tags-count": {"tags": [f"t{i}" for i in range(33)]},
    "tag-length": {"tags": ["t" * 65]},
    "tag-characters": {"tags": ["a tag with spaces"]},
    "child_of-count": {"child_of": [f"c{i}" for i in range(1001)]},
    "archive_path-length": {"archive_path": "s3://b/" + "a" * 1025},
    "data-not-object": {"data": ["a", "list"]},
}


@pytest.mark.parametrize("name", sorted(FIELDS_OVER_LIMITS))
def test_fields_over_their_limits_are_refused(api: RecordingApi, figures: Figures, name: str) -> None:
    spec = {
        "pipeline_uuid": "security-fields",
        "data": {"n": uuidlib.uuid4().hex},
        **FIELDS_OVER_LIMITS[name],
    }
    response = api.request("POST", "/jobs", token=api.admin(), body=spec)
    figures.security_cases += 1
    _refused(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/jobs", {"limit": "101"}),
        ("/jobs", {"limit": "0"}),
        ("/jobs", {"next": "x" * 2049}),
        ("/jobs", {"updated_after": "9" * 41}),
        ("/jobs/{uuid}/events", {"limit": "1001"}),
        ("/jobs/{uuid}/events", {"next": "not-a-cursor"}),
    ],
    ids=[
        "list-limit-high",
        "list-limit-zero",
        "cursor-long",
        "time-long",
        "history-limit-high",
        "history-cursor",
    ],
)
def test_query_parameters_over_their_limits_are_refused(
    api: RecordingApi, figures: Figures, path: str, query: dict[str, str]
) -> None:
    (job,) = make_sentinels(api, ("CREATED",), "security query") if "{uuid}" in path else (None,)
    target = path.format(uuid=job.uuid) if job else path
    response = api.request("GET", target, token=api.admin(), query=query)
    figures.security_cases += 1
    _refused(response, 400, "invalid_request")


def test_callback_query_over_its_limits_is_refused(api: RecordingApi, figures: Figures) -> None:
    (job,) = make_sentinels(api, ("CREATED",), "security callback")
    long_status = {"token": job.callback_token, "status": "S" * 129}
    long_token = {"token": job.callback_token + "x" * 470, "status": "RUNNING"}
    for query in (long_status, long_token):
        _refused(api.request("POST", f"/jobs/{job.uuid}/callback", query=query), 400, "invalid_request")
        figures.security_cases += 1
    assert api.history(job.uuid) == []


def test_unknown_fields_are_refused_without_echoing_their_names(
    api: RecordingApi, secrets: Secrets, figures: Figures
) -> None:
    # given field names that are credentials (a caller pasting a token in the wrong place)
    (job,) = make_sentinels(api, ("RUNNING",), "security fields")
    spec = {"pipeline_uuid": "security-unknown", "data": {"n": uuidlib.uuid4().hex}, job.token: 1}
    event = {"name": "update", "data": {}, job.callback_token: True}
    # when they are sent as unknown fields of a new job and of an event
    created = api.request("POST", "/jobs", token=api.admin(), body=spec)
    sent = api.request("POST", f"/jobs/{job.uuid}/events", token=job.token, body=event)
    figures.security_cases += 2
    # then both are refused, and neither answer repeats the name
    for response in (created, sent):
        _refused(response, 400, "invalid_request")
        text = json.dumps(response.body)
        assert job.token not in text and job.callback_token not in text
    assert api.job(job_uuid(spec["pipeline_uuid"], spec["data"], [])).status == 404
