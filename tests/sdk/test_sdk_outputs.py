"""The SDK's outputs against canned responses: `job.outputs()` pages through the listing with the job's
credential; `job.download(key, path)` fetches the listed link (never with a credential of ours) into a
file, creates folders, leaves no partial file, and refuses keys that could leave the folder."""

from __future__ import annotations

import pytest

from pipelinejobs import NotFound, PipelineJobsError
from tests.sdk.fake_api import FakeApi

UUID = "0b6f3c3e-1f0a-5a7e-9c56-2f1e4b7a9d10"
OUTPUTS = rf"/jobs/{UUID}/outputs"
SIGNED = "?X-Amz-Signature=abc123"


def output(fake_api: FakeApi, key: str, size: int = 3) -> dict:
    return {
        "key": key,
        "size": size,
        "modified": "2026-01-01T00:00:00.000Z",
        "etag": "e",
        "url": f"{fake_api.url}/s3/bucket/archive/p/{UUID}/{key}{SIGNED}",
    }


def listing(fake_api: FakeApi, *pages: list[str]) -> None:
    """The outputs listing in pages of these keys; page n's cursor is `c<n>`."""
    answers = {}
    for number, keys in enumerate(pages):
        cursor = None if number == 0 else f"c{number}"
        following = f"c{number + 1}" if number + 1 < len(pages) else None
        answers[cursor] = {"outputs": [output(fake_api, key) for key in keys], "next": following}
    fake_api.route("GET", OUTPUTS, lambda request: (200, answers[request.query.get("next")]))


def test_job_outputs_iterates_every_page_with_the_jobs_token(fake_api, fake_client):
    # given three pages of outputs
    listing(fake_api, ["a.txt", "b.txt"], ["c/d.txt"], ["e.txt"])
    job = fake_client.job(UUID, token="pjt_1")
    # when the handle's outputs are iterated
    found = job.outputs()
    # then it is lazy, then yields every output once, in order, each request with the job token
    assert fake_api.requests == []
    assert [o["key"] for o in found] == ["a.txt", "b.txt", "c/d.txt", "e.txt"]
    assert [r.query.get("next") for r in fake_api.requests] == [None, "c1", "c2"]
    assert {r.query["limit"] for r in fake_api.requests} == {"100"}
    assert {r.bearer for r in fake_api.requests} == {"pjt_1"}
    assert [o["key"] for o in fake_client.outputs(UUID, limit=3)] == ["a.txt", "b.txt", "c/d.txt"]


def test_download_streams_the_listed_link_into_a_new_file_without_our_credential(
    fake_api, fake_client, tmp_path
):
    # given an output whose link serves its bytes
    listing(fake_api, ["plots/fig.png"])
    fake_api.route("GET", rf"/s3/bucket/archive/p/{UUID}/plots/fig\.png", 200, b"\x89PNG\x00bytes")
    job = fake_client.job(UUID, token="pjt_1")
    # when it is downloaded to a path whose folders do not exist yet
    written = job.download("plots/fig.png", tmp_path / "new" / "dir" / "fig.png")
    # then the file holds the bytes, nothing else is left there, and S3 got no Authorization header
    assert written == tmp_path / "new" / "dir" / "fig.png"
    assert written.read_bytes() == b"\x89PNG\x00bytes"
    assert sorted(p.name for p in written.parent.iterdir()) == ["fig.png"]
    [fetch] = fake_api.calls("GET", r"/s3/.*")
    assert "authorization" not in fetch.headers
    assert fetch.query == {"X-Amz-Signature": "abc123"}


def test_download_into_a_folder_keeps_the_keys_subfolders(fake_api, fake_client, tmp_path):
    listing(fake_api, ["a.txt", "deep/er/b.txt"])
    fake_api.route("GET", r"/s3/.*", 200, b"B")
    written = fake_client.job(UUID).download("deep/er/b.txt", tmp_path)
    assert written == tmp_path / "deep" / "er" / "b.txt"
    assert written.read_bytes() == b"B"


@pytest.mark.parametrize("key", ["../escape.txt", "a/../../b", "/etc/passwd", "a\\..\\b", "", "folder/"])
def test_download_refuses_a_key_that_could_leave_the_folder_before_any_request(
    fake_api, fake_client, tmp_path, key
):
    with pytest.raises(ValueError, match="refusing output key"):
        fake_client.job(UUID).download(key, tmp_path)
    assert fake_api.requests == []
    assert list(tmp_path.iterdir()) == []


def test_download_refuses_a_listed_key_with_dot_dot_too(fake_api, fake_client, tmp_path):
    # given a listing (a hostile or broken server) whose key climbs out
    fake_api.route("GET", OUTPUTS, 200, {"outputs": [output(fake_api, "../x")], "next": None})
    # when the item itself is downloaded into a folder, then nothing is fetched or written
    [item] = fake_client.outputs(UUID)
    with pytest.raises(ValueError):
        fake_client.download_output(item, tmp_path)
    assert fake_api.calls("GET", r"/s3/.*") == [] and list(tmp_path.iterdir()) == []


def test_download_of_a_key_not_among_the_outputs_is_not_found_and_stops_where_it_would_be(
    fake_api, fake_client, tmp_path
):
    # given outputs a, c on the first page, e on the second
    listing(fake_api, ["a", "c"], ["e"])
    # when b (it would sort between a and c) is asked for
    with pytest.raises(NotFound, match="has no output 'b'"):
        fake_client.job(UUID).download("b", tmp_path / "b")
    # then the listing stopped on the first page (keys come in order), and nothing was written
    assert len(fake_api.calls("GET", OUTPUTS)) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_refused_link_is_an_error_with_s3s_status_and_without_the_link(fake_api, fake_client, tmp_path):
    listing(fake_api, ["a.txt"])
    fake_api.route("GET", r"/s3/.*", 403, b"<Error><Code>AccessDenied</Code></Error>")
    with pytest.raises(PipelineJobsError) as raised:
        fake_client.job(UUID).download("a.txt", tmp_path / "a.txt")
    assert raised.value.status == 403 and raised.value.code == "download_failed"
    assert "X-Amz" not in str(raised.value) and "/s3/" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_a_link_answering_503_is_retried(fake_api, fake_client, tmp_path, fake_time):
    listing(fake_api, ["a.txt"])
    fake_api.route("GET", r"/s3/.*", [(503, b"slow down"), (200, b"A")])
    written = fake_client.job(UUID).download("a.txt", tmp_path / "a.txt")
    assert written.read_bytes() == b"A"
    assert len(fake_api.calls("GET", r"/s3/.*")) == 2 and len(fake_time.sleeps) == 1
