"""A job's life over real HTTP: create, run, finish, callbacks, reset with archive erasure, delete."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.e2e.conftest import Api, LogLines

pytestmark = pytest.mark.e2e


def test_create_run_finish_applies_each_event_in_order(api: Api, stack) -> None:
    # given a new job and its first token
    created = api.create_job()
    uuid, token = created["job"]["uuid"], created["token"]
    assert created["job"]["state"] == "CREATED" and created["job"]["generation"] == 1
    # when it runs (the next token comes back with each 202) and then finishes
    accepted = api.post_event(uuid, "run", token, {"host": "node-7"})
    assert accepted.status == 202, accepted.body
    stack.drain()
    finished = api.post_event(uuid, "finish", accepted.body["token"])
    assert finished.status == 202, finished.body
    stack.drain()
    # then the job is FINISHED, both events applied by the job, in order
    job = api.job(uuid, finished.body["token"])
    assert job.status == 200 and job.body["state"] == "FINISHED"
    history = api.history(uuid)
    assert [(e["name"], e["outcome"], e["from_state"], e["to_state"], e["by"]) for e in history] == [
        ("run", "applied", "CREATED", "RUNNING", "job"),
        ("finish", "applied", "RUNNING", "FINISHED", "job"),
    ]
    status = api.request("GET", f"/jobs/{uuid}/events/{finished.body['event_id']}", token=api.admin())
    assert status.body["status"] == "applied"
    # and each state change was announced by the notifier from the table's stream (SPEC section 7)
    announced = [
        (n["event"], n["from_state"], n["to_state"]) for n in stack.notifications if n["uuid"] == uuid
    ]
    assert announced == [("run", "CREATED", "RUNNING"), ("finish", "RUNNING", "FINISHED")]


def test_callback_url_status_moves_the_job_and_is_recorded_as_callback(api: Api, stack) -> None:
    # given a job and the callback URL a compute platform gets
    created = api.create_job()
    uuid, callback_url = created["job"]["uuid"], created["callback_url"]
    split = urllib.parse.urlsplit(callback_url)
    assert f"{split.scheme}://{split.netloc}" == stack.api_url and split.path == f"/jobs/{uuid}/callback"
    callback_token = urllib.parse.parse_qs(split.query)["token"][0]
    # when the platform reports RUNNING in the query string, with a JSON body
    response = api.request(
        "POST", split.path, query={"token": callback_token, "status": "RUNNING"}, body={"node": "hpc-1"}
    )
    assert response.status == 202, response.body
    stack.drain()
    # then the job runs, by the callback, with the platform's body kept as the event's data
    assert api.job(uuid).body["state"] == "RUNNING"
    (entry,) = api.history(uuid)
    assert (entry["name"], entry["outcome"], entry["by"]) == ("run", "applied", "callback")
    assert entry["data"].get("node") == "hpc-1"


def test_late_callback_is_ignored_not_retried(api: Api, stack, sqs) -> None:
    # given a job that has finished
    created = api.create_job()
    uuid, token = created["job"]["uuid"], created["token"]
    token = api.post_event(uuid, "run", token).body["token"]
    stack.drain()
    api.post_event(uuid, "finish", token)
    stack.drain()
    # when a late RUNNING notification arrives on the callback URL
    split = urllib.parse.urlsplit(created["callback_url"])
    query = dict(urllib.parse.parse_qsl(split.query), status="RUNNING")
    assert api.request("POST", split.path, query=query).status == 202
    stack.drain()
    # then it is recorded as ignored, the job stays FINISHED, and nothing is left for a retry
    assert api.job(uuid).body["state"] == "FINISHED"
    assert api.history(uuid)[-1]["outcome"] == "ignored"
    assert (
        sqs.get_queue_attributes(
            QueueUrl=stack.resources.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )


def _archive(created: dict) -> tuple[str, str]:
    split = urllib.parse.urlsplit(created["job"]["archive_path"])
    return split.netloc, split.path.lstrip("/")


def _versions(s3, bucket: str, prefix: str) -> list[dict]:
    page = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return page.get("Versions", []) + page.get("DeleteMarkers", [])


def test_reset_erases_every_version_in_the_archive_and_reruns_as_generation_2(api: Api, stack, s3) -> None:
    # given a finished job with outputs in its archive, one of them in two versions, and a deleted one
    created = api.create_job()
    uuid, token = created["job"]["uuid"], created["token"]
    bucket, prefix = _archive(created)
    assert bucket == stack.resources.bucket and prefix.endswith(f"/{uuid}/")
    s3.put_object(Bucket=bucket, Key=f"{prefix}out/a.txt", Body=b"v1")
    s3.put_object(Bucket=bucket, Key=f"{prefix}out/a.txt", Body=b"v2")
    s3.put_object(Bucket=bucket, Key=f"{prefix}out/b.txt", Body=b"b")
    s3.delete_object(Bucket=bucket, Key=f"{prefix}out/b.txt")  # leaves a delete marker
    neighbour = prefix.rstrip("/") + "-neighbour/keep.txt"  # shares the key prefix, not the folder
    s3.put_object(Bucket=bucket, Key=neighbour, Body=b"x")
    assert len(_versions(s3, bucket, prefix)) == 4
    token = api.post_event(uuid, "run", token).body["token"]
    stack.drain()
    api.post_event(uuid, "finish", token)
    stack.drain()
    # when an admin resets it
    reset = api.post_event(uuid, "reset", api.admin())
    assert reset.status == 202, reset.body
    stack.drain()
    # then every object version and delete marker under the archive path is gone, and nothing else
    assert _versions(s3, bucket, prefix) == []
    assert [v["Key"] for v in _versions(s3, bucket, neighbour)] == [neighbour]
    # and the job is back in CREATED as its second generation, its old token revoked
    job = api.job(uuid).body
    assert (job["state"], job["generation"]) == ("CREATED", 2)
    assert [(e["name"], e["to_state"]) for e in api.history(uuid)][-2:] == [
        ("reset", "RESET"),
        ("erased", "CREATED"),
    ]
    assert api.job(uuid, token).status in (401, 403)


def test_delete_keeps_the_archive_and_the_admin_history(api: Api, stack, s3) -> None:
    # given a job with an output in its archive
    created = api.create_job()
    uuid = created["job"]["uuid"]
    bucket, prefix = _archive(created)
    s3.put_object(Bucket=bucket, Key=f"{prefix}result.json", Body=b"{}")
    # when an admin deletes it
    assert api.post_event(uuid, "delete", api.admin()).status == 202
    stack.drain()
    # then it is gone from lookups and listings, its archive is untouched, its history readable
    assert api.job(uuid).status == 404
    listed = api.request(
        "GET", "/jobs", token=api.admin(), query={"pipeline_uuid": "e2e-pipeline", "limit": "100"}
    )
    assert uuid not in [job["uuid"] for job in listed.body["jobs"]]
    assert [v["Key"] for v in _versions(s3, bucket, prefix)] == [f"{prefix}result.json"]
    assert [e["name"] for e in api.history(uuid)] == ["delete"]


def test_unknown_routes_and_methods_get_the_apis_error_shape_and_docs_are_served(api: Api) -> None:
    # given / when a path the API does not have, a method a path does not take, a form body, a body
    # over API Gateway's limit, and the OpenAPI document
    uuid = api.create_job()["job"]["uuid"]
    missing = api.request("GET", "/nope")
    wrong_method = api.request("PUT", f"/jobs/{uuid}")
    deleted = api.request("DELETE", f"/jobs/{uuid}/events")
    form = api.request(
        "POST", f"/jobs/{uuid}/events", token=api.admin(), raw=b"name=run",
        content_type="application/x-www-form-urlencoded",
    )  # fmt: skip
    huge = api.request("POST", f"/jobs/{uuid}/events", token=api.admin(), raw=b"x" * (20 * 1024 * 1024))
    document = api.request("GET", "/openapi.json")
    # then every error has the {"error": ...} shape, 405 says what is allowed, and the document lists
    # the template's routes
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")
    assert (wrong_method.status, wrong_method.headers.get("allow")) == (405, "GET")
    assert (deleted.status, deleted.headers.get("allow")) == (405, "GET, POST")
    assert (form.status, form.body["error"]["code"]) == (415, "unsupported_media_type")
    assert (huge.status, huge.body["error"]["code"]) == (413, "payload_too_large")
    assert document.status == 200 and "/jobs/{uuid}/callback" in document.body["paths"]


def test_no_token_or_query_string_reaches_the_stack_log(api: Api, stack, stack_log: LogLines) -> None:
    # given a job driven with its token and its callback URL (token in the query string)
    created = api.create_job()
    uuid, token = created["job"]["uuid"], created["token"]
    split = urllib.parse.urlsplit(created["callback_url"])
    callback_token = urllib.parse.parse_qs(split.query)["token"][0]
    api.request("POST", split.path, query={"token": callback_token, "status": "RUNNING"})
    api.post_event(uuid, "update", token, {"progress": 1})
    stack.drain()
    # then the stack logged the requests and events, without any credential or query string
    text = stack_log.text()
    assert f"/jobs/{uuid}/callback" in text and "applied" in text
    for secret in (token, callback_token, api.admin(), stack.admin_key):
        assert secret not in text
    assert "token=" not in text and "?" not in text
