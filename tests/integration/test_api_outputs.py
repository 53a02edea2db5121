"""A job's outputs through the HTTP API (SPEC section 5, `GET /jobs/{uuid}/outputs`; issue 13): the
current objects under its archive path and nothing else, paginated with an opaque cursor, each with a
presigned link that downloads it; read with the credentials that read the job."""

from __future__ import annotations

import hashlib
import io
import re
import uuid as uuidlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from test_api_keys import created, issue

from jobcore.access import OUTPUT_URL_SECONDS
from jobcore.archive_paths import split_s3_url

if TYPE_CHECKING:
    from api_fixtures import Api, CreatedJob, HttpResponse

pytest_plugins = ["api_fixtures"]


def put(api: Api, job: CreatedJob | str, key: str, body: bytes) -> None:
    """An object under the job's archive path (`key` relative to it), written with boto3 as a
    pipeline would write its outputs."""
    path = job.body["job"]["archive_path"] if not isinstance(job, str) else job
    bucket, prefix = split_s3_url(path)
    api.harness.s3.put_object(Bucket=bucket, Key=prefix + key, Body=body)


def outputs(api: Api, uuid: str, token: str | None = None, **query: Any) -> HttpResponse:
    return api.call(
        "GET",
        f"/jobs/{uuid}/outputs",
        token=token or api.admin(),
        query={k: str(v) for k, v in query.items()} or None,
    )


def every_output(api: Api, uuid: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """All pages, following `next`; (the outputs, the number of pages)."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    for pages in range(1, 100):
        query: dict[str, Any] = {"limit": limit} | ({"next": cursor} if cursor else {})
        response = outputs(api, uuid, **query)
        assert response.status == 200, response.text
        found += response.body["outputs"]
        cursor = response.body["next"]
        if cursor is None:
            return found, pages
    raise AssertionError("the listing did not end")


def download(url: str) -> bytes:
    # moto (in-process) answers requests' calls to S3's endpoints; without any header of ours
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.content


def test_outputs_lists_the_objects_under_the_archive_path_with_links_that_download_them(api: Api) -> None:
    # given a job whose archive holds two outputs, one in a subfolder
    job = api.create()
    put(api, job, "summary.csv", b"a,b\n1,2\n")
    put(api, job, "plots/fig 1.png", b"\x89PNG-bytes")
    before = datetime.now(UTC).replace(microsecond=0)
    # when its job token lists its outputs
    response = outputs(api, job.uuid, job.token)
    # then both are there, in key order, relative to the archive path, with size, time, ETag and a link
    assert response.status == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    listed = response.body["outputs"]
    assert [o["key"] for o in listed] == ["plots/fig 1.png", "summary.csv"]
    assert [o["size"] for o in listed] == [len(b"\x89PNG-bytes"), len(b"a,b\n1,2\n")]
    assert listed[1]["etag"] == hashlib.md5(b"a,b\n1,2\n").hexdigest()  # noqa: S324 - S3's ETag
    for output in listed:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", output["modified"])
        modified = datetime.fromisoformat(output["modified"].replace("Z", "+00:00"))
        assert abs((modified - before).total_seconds()) < 120
    assert response.body["next"] is None
    # and each link downloads that object's bytes, for OUTPUT_URL_SECONDS, with S3's signature only
    assert download(listed[0]["url"]) == b"\x89PNG-bytes"
    assert download(listed[1]["url"]) == b"a,b\n1,2\n"
    query = parse_qs(urlsplit(listed[1]["url"]).query)
    assert query["X-Amz-Expires"] == [str(OUTPUT_URL_SECONDS)] == ["900"]
    assert job.token not in response.text and api.admin() not in response.text


def test_outputs_shows_neither_other_jobs_objects_nor_anything_outside_the_archive_path(api: Api) -> None:
    # given a job, a neighbour job of the same pipeline, a folder whose name extends the job's own
    # (<uuid>x/), a folder marker, and an object outside the archive prefix
    job, neighbour = api.create(), api.create()
    path = job.body["job"]["archive_path"]
    bucket, prefix = split_s3_url(path)
    put(api, job, "mine.txt", b"mine")
    put(api, job, "folder/", b"")  # the S3 console's folder marker
    put(api, neighbour, "theirs.txt", b"theirs")
    s3 = api.harness.s3
    s3.put_object(Bucket=bucket, Key=prefix.rstrip("/") + "x/sibling.txt", Body=b"sibling")
    s3.put_object(Bucket=bucket, Key=f"elsewhere/{job.uuid}/stray.txt", Body=b"stray")
    # when the job's outputs are listed, with its token and as an admin
    mine = outputs(api, job.uuid, job.token)
    as_admin = outputs(api, job.uuid)
    # then only its own object is there
    assert [o["key"] for o in mine.body["outputs"]] == ["mine.txt"]
    assert as_admin.body == {**as_admin.body, "next": None}
    assert [o["key"] for o in as_admin.body["outputs"]] == ["mine.txt"]
    assert [o["key"] for o in outputs(api, neighbour.uuid).body["outputs"]] == ["theirs.txt"]


def test_outputs_pages_follow_the_cursor_through_every_object_once(api: Api) -> None:
    # given a job with 7 outputs
    job = api.create()
    keys = [f"out/{i:02d}.txt" for i in range(7)]
    for key in keys:
        put(api, job, key, key.encode())
    # when they are listed 3 at a time
    found, pages = every_output(api, job.uuid, limit=3)
    # then three pages hold every output once, in order, the last page's `next` null
    assert [o["key"] for o in found] == keys
    assert pages == 3
    # and a page of exactly the rest ends the listing
    first = outputs(api, job.uuid, limit=7).body
    assert (len(first["outputs"]), first["next"]) == (7, None)


def test_outputs_default_page_and_the_limits_like_the_jobs_listing(api: Api) -> None:
    # given a job with 51 outputs
    job = api.create()
    for i in range(51):
        put(api, job, f"{i:03d}", b"x")
    # when listed without a limit, then with the largest and one too large
    default = outputs(api, job.uuid)
    largest = outputs(api, job.uuid, limit=100)
    too_many, zero = outputs(api, job.uuid, limit=101), outputs(api, job.uuid, limit=0)
    # then 50 per page by default, up to 100, and 400 beyond
    assert len(default.body["outputs"]) == 50 and default.body["next"]
    assert len(largest.body["outputs"]) == 51 and largest.body["next"] is None
    assert (too_many.status, too_many.error) == (400, "invalid_request")
    assert zero.status == 400


@pytest.mark.parametrize(
    "cursor", ["not-a-cursor!", "e30", "eyJhIjoxLCJwIjoyfQ", "x" * 2049], ids=["junk", "{}", "types", "long"]
)
def test_a_bad_cursor_is_400(api: Api, cursor: str) -> None:
    job = api.create()
    put(api, job, "a.txt", b"a")
    response = outputs(api, job.uuid, next=cursor)
    assert response.status == 400, response.text
    assert response.error == "invalid_request"


def test_another_jobs_cursor_is_400_not_a_position_in_this_one(api: Api) -> None:
    # given two jobs, and a cursor from the first one's listing
    first, second = api.create(), api.create()
    for key in ("a", "b"):
        put(api, first, key, b"1")
        put(api, second, key, b"2")
    cursor = outputs(api, first.uuid, limit=1).body["next"]
    assert cursor
    # when the second is listed from it
    response = outputs(api, second.uuid, next=cursor)
    # then it is refused as not this listing's
    assert (response.status, response.error) == (400, "invalid_request")
    assert "cursor" in response.body["error"]["message"]


def test_outputs_are_the_current_versions_of_a_versioned_bucket(api: Api) -> None:
    # given an output written twice, and one deleted (a delete marker over its version)
    job = api.create()
    put(api, job, "result.txt", b"first")
    put(api, job, "result.txt", b"second, longer")
    put(api, job, "gone.txt", b"gone")
    bucket, prefix = split_s3_url(job.body["job"]["archive_path"])
    api.harness.s3.delete_object(Bucket=bucket, Key=prefix + "gone.txt")
    # when listed
    [output] = outputs(api, job.uuid).body["outputs"]
    # then only the current version of the live one shows, and its link gets that version
    assert (output["key"], output["size"]) == ("result.txt", len(b"second, longer"))
    assert download(output["url"]) == b"second, longer"


def test_outputs_are_read_with_the_credentials_that_read_the_job(api: Api) -> None:
    # given a job of a producer key, with an output; another job; and another key
    key, other_key = issue(api), issue(api)
    uuid = created(api, key)
    job_body = api.get(uuid).body
    put(api, job_body["archive_path"], "a.txt", b"a")
    callback = api.create()
    other = api.create()
    put(api, callback, "c.txt", b"c")
    # when each credential lists the outputs
    by_owner = outputs(api, uuid, key.key)
    by_admin = outputs(api, uuid)
    by_callback = outputs(api, callback.uuid, callback.callback_token)
    by_other_key = outputs(api, uuid, other_key.key)
    by_other_job = outputs(api, callback.uuid, other.token)
    without = api.call("GET", f"/jobs/{uuid}/outputs")
    not_ours = outputs(api, uuid, "pjt_" + "x" * 43)
    # then the owner's key, an admin and the callback token read them; the rest get what GET /jobs/{uuid}
    # gives them: another owner's job is unknown (404), another job's token or none is refused (401)
    assert [r.status for r in (by_owner, by_admin, by_callback)] == [200, 200, 200]
    assert [o["key"] for o in by_owner.body["outputs"]] == ["a.txt"]
    assert [o["key"] for o in by_callback.body["outputs"]] == ["c.txt"]
    for response, reading in (
        (by_other_key, api.get(uuid, other_key.key)),
        (by_other_job, api.get(callback.uuid, other.token)),
        (not_ours, api.get(uuid, "pjt_" + "x" * 43)),
    ):
        assert (response.status, response.error) == (reading.status, reading.error)
    assert (by_other_key.status, by_other_key.error) == (404, "job_not_found")
    assert by_other_job.status == not_ours.status == without.status == 401
    assert without.headers["www-authenticate"] == "Bearer"
    unknown = outputs(api, str(uuidlib.uuid4()))
    assert (unknown.status, unknown.error) == (404, "job_not_found")


def test_a_deleted_job_has_no_outputs_to_show_and_a_reset_one_shows_an_empty_archive(api: Api) -> None:
    # given two jobs with outputs
    deleted, reset = api.create(), api.create()
    put(api, deleted, "a.txt", b"a")
    put(api, reset, "b.txt", b"b")
    assert len(outputs(api, reset.uuid).body["outputs"]) == 1
    # when an admin deletes one (its archive kept) and resets the other (its archive erased)
    assert api.event(deleted.uuid, api.admin(), "delete").status == 202
    assert api.event(reset.uuid, api.admin(), "reset").status == 202
    api.work()
    # then the deleted job is 404, as its reads are, even for an admin; the reset one lists nothing
    gone = outputs(api, deleted.uuid)
    assert (gone.status, gone.error) == (404, "job_not_found")
    assert api.get(reset).body["state"] == "CREATED"
    assert outputs(api, reset.uuid).body == {"outputs": [], "next": None, "source": "listing"}


def test_outputs_logs_no_link_and_no_credential(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import api_handler

    # given a job with an output, and the API's log lines caught wherever its handler writes them
    job = api.create()
    put(api, job, "a.txt", b"a")
    logged = io.StringIO()
    for handler in api_handler.logger.handlers:
        monkeypatch.setattr(handler, "stream", logged)
    # when it is listed, then listed with a bad cursor
    response = outputs(api, job.uuid, job.token)
    outputs(api, job.uuid, job.token, next="junk")
    # then the function's log lines hold neither the link, its signature, nor the token
    url = response.body["outputs"][0]["url"]
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    text = logged.getvalue()
    assert text.count('"message":"request"') == 2  # the API does log: one line per request
    assert url not in text and signature not in text and job.token not in text
    assert "X-Amz-" not in text and "a.txt" not in text


def test_only_the_outputs_route_builds_the_s3_client(api: Api) -> None:
    # given a fresh container's service, whose job is created, read and its history listed
    job = api.create()
    api.get(job, token=job.token)
    api.history(job)
    assert api.service._archive is None  # no other route pays for S3's client
    # when its outputs are listed, then the client is there (and kept for the next request)
    outputs(api, job.uuid, job.token)
    built = api.service._archive
    outputs(api, job.uuid, job.token)
    assert built is not None and api.service._archive is built
