"""Unit tests of the SDK's producer keys against canned responses: a client holding a key (where it comes
from, what it sends, that it never shows), and an admin's `client.keys` (create, list, revoke)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from jobcore.tokens import admin_token
from pipelinejobs import Client, Forbidden, JobExists, ProducerKey, ServiceUnavailable
from tests.sdk.conftest import ADMIN, FakeTime, on_fake_time
from tests.sdk.fake_api import FakeApi

UUID = "0b6f3c3e-1f0a-5a7e-9c56-2f1e4b7a9d10"
KEY_ID = "Ab_c-D3fGh1J"  # ids are URL-safe base64: "_" and "-" included
SECRET = "s" * 40 + "_x-"
KEY = f"pjk_{KEY_ID}_{SECRET}"
JOB = {"uuid": UUID, "pipeline_uuid": "pipe-1", "state": "CREATED", "generation": 1, "owner": KEY_ID}
EVENTS = rf"/jobs/{UUID}/events"
RECORD = {
    "id": KEY_ID,
    "label": "lab-a",
    "pipelines": ["pipe-1", "pipe-2"],
    "expires_at": "2027-01-01T00:00:00.000Z",
    "created_at": "2026-12-01T00:00:00.000Z",
    "revoked_at": None,
    "status": "active",
}


@pytest.fixture
def key_client(fake_api: FakeApi, fake_time: FakeTime) -> Client:
    return on_fake_time(Client(fake_api.url, api_key=KEY, retries=1), fake_time)


@pytest.fixture
def no_credentials_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PIPELINEJOBS_KEY", "PIPELINEJOBS_TOKEN", "PIPELINEJOBS_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)


# -- a client holding a key ---------------------------------------------------------------------------


def test_a_key_client_creates_and_drives_its_job_with_the_key_not_the_job_token(fake_api, key_client):
    # given a creation answering with the job's token, and events answering without one (as for a key)
    fake_api.route("POST", "/jobs", 201, {"job": JOB, "token": "pjt_first", "callback_url": "http://cb"})
    fake_api.route("POST", EVENTS, 202, {"event_id": "e1", "event": "run"})
    fake_api.route("GET", f"{EVENTS}/e1", 200, {"event_id": "e1", "status": "applied"})
    fake_api.route("GET", f"/jobs/{UUID}", 200, {**JOB, "state": "FINISHED"})
    # when the key's client creates a job and drives it
    job = key_client.create_job("pipe-1", {"n": 1})
    job.run().finish().wait_for("FINISHED", timeout=5)
    # then every request carried the key, so revoking it stops the handle at once
    assert {request.bearer for request in fake_api.requests} == {KEY}
    assert [r.body["name"] for r in fake_api.calls("POST", EVENTS)] == ["run", "finish"]
    # and the job's own token is kept, to hand to the job itself
    assert (job.token, job.callback_url, job["owner"]) == ("pjt_first", "http://cb", KEY_ID)


def test_a_key_clients_handle_given_a_job_token_still_acts_with_the_key(fake_api, key_client):
    fake_api.route("POST", EVENTS, 202, {"event_id": "e1", "event": "update"})
    job = key_client.job(UUID, token="pjt_given")
    job.update(progress=0.5)
    assert fake_api.calls("POST", EVENTS)[0].bearer == KEY
    assert job.token == "pjt_given"


def test_a_key_clients_admin_only_event_is_sent_with_the_key_and_refused(fake_api, key_client):
    # given the API's answer to a key asking for a reset
    refused = {"error": {"code": "forbidden", "message": "a producer key may not send reset"}}
    fake_api.route("POST", EVENTS, 403, refused)
    # when / then
    with pytest.raises(Forbidden, match="may not send reset"):
        key_client.job(UUID, token="pjt_1").reset()
    assert fake_api.calls("POST", EVENTS)[0].bearer == KEY


def test_a_key_clients_rotate_token_keeps_the_fresh_token_and_goes_on_with_the_key(fake_api, key_client):
    # given
    fake_api.route("POST", f"/jobs/{UUID}/token", 200, {"token": "pjt_fresh"})
    fake_api.route("POST", EVENTS, 202, {"event_id": "e1", "event": "update"})
    job = key_client.job(UUID)
    # when
    fresh = job.rotate_token()
    job.update()
    # then
    assert fresh == job.token == "pjt_fresh"
    assert [r.bearer for r in fake_api.requests] == [KEY, KEY]


def test_exist_ok_with_a_key_on_another_owners_job_raises_job_exists(fake_api, key_client):
    # given: the job exists (409 names it) but belongs to another owner (404 to this key)
    exists = {"error": {"code": "job_exists", "message": "a job with these inputs exists"}, "uuid": UUID}
    fake_api.route("POST", "/jobs", 409, exists)
    fake_api.route("GET", f"/jobs/{UUID}", 404, {"error": {"code": "job_not_found", "message": "no job"}})
    # when / then
    with pytest.raises(JobExists) as caught:
        key_client.create_job("pipe-1", {"n": 1}, exist_ok=True)
    assert caught.value.uuid == UUID


def test_an_admin_filters_the_listing_by_owner(fake_api, fake_client):
    fake_api.route("GET", "/jobs", 200, {"jobs": [JOB], "next": None})
    assert [job.uuid for job in fake_client.list_jobs(owner=KEY_ID)] == [UUID]
    assert fake_api.requests[0].query == {"owner": KEY_ID, "limit": "100"}


# -- where the key comes from ----------------------------------------------------------------------------


def test_the_key_is_read_from_pipelinejobs_key(monkeypatch, fake_api, no_credentials_in_env):
    # given
    monkeypatch.setenv("PIPELINEJOBS_URL", fake_api.url)
    monkeypatch.setenv("PIPELINEJOBS_KEY", KEY)
    fake_api.route("GET", f"/jobs/{UUID}", 200, JOB)
    # when
    client = Client()
    client.get_job(UUID)
    # then
    assert fake_api.requests[0].bearer == KEY
    assert client.key_id == KEY_ID


def test_in_the_environment_the_key_beats_the_admin_variables(monkeypatch, no_credentials_in_env):
    monkeypatch.setenv("PIPELINEJOBS_KEY", KEY)
    monkeypatch.setenv("PIPELINEJOBS_TOKEN", ADMIN)
    monkeypatch.setenv("PIPELINEJOBS_ADMIN_KEY", "the-admin-key")
    assert Client("http://h").token == KEY


def test_explicit_arguments_beat_the_environment_either_way(monkeypatch, no_credentials_in_env):
    # an explicit admin credential beats an exported key...
    monkeypatch.setenv("PIPELINEJOBS_KEY", KEY)
    assert Client("http://h", token=ADMIN).token == ADMIN
    assert Client("http://h", admin_key="k").token == admin_token("k", time.time())
    assert Client("http://h", token=ADMIN).key_id is None
    # ...and an explicit key beats exported admin credentials
    monkeypatch.delenv("PIPELINEJOBS_KEY")
    monkeypatch.setenv("PIPELINEJOBS_TOKEN", ADMIN)
    monkeypatch.setenv("PIPELINEJOBS_ADMIN_KEY", "the-admin-key")
    assert Client("http://h", api_key=KEY).token == KEY


@pytest.mark.parametrize("admin", [{"token": ADMIN}, {"admin_key": "k"}])
def test_a_key_with_an_admin_credential_is_refused(admin):
    with pytest.raises(ValueError, match="not both"):
        Client("http://h", api_key=KEY, **admin)


@pytest.mark.parametrize("bad", [ADMIN, "pjt_" + "x" * 43, "pjk_short", f"pjk_{KEY_ID}"])
def test_a_value_that_is_no_key_is_refused_without_quoting_it(bad, monkeypatch, no_credentials_in_env):
    with pytest.raises(ValueError, match="is not a producer key") as given:
        Client("http://h", api_key=bad)
    monkeypatch.setenv("PIPELINEJOBS_KEY", bad)
    with pytest.raises(ValueError, match="PIPELINEJOBS_KEY is not a producer key") as exported:
        Client("http://h")
    assert bad not in str(given.value) + str(exported.value)


# -- never shown ---------------------------------------------------------------------------------------------


def test_the_key_never_shows_in_a_repr_or_an_error(fake_time: FakeTime):
    # given a key client of an API that is not there
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", api_key=KEY, retries=0)
    # when
    with pytest.raises(ServiceUnavailable) as caught:
        client.create_job("pipe-1", {"n": 1})
    # then its id may show, its secret never
    shown = " ".join([repr(client), str(client.keys), str(caught.value), repr(caught.value)])
    assert f"producer key {KEY_ID}" in repr(client)
    assert SECRET not in shown and KEY not in shown


def test_a_key_record_never_shows_the_key_in_its_repr():
    record = ProducerKey.from_body({**RECORD, "key": KEY})
    assert record.key == KEY
    assert KEY not in repr(record) and KEY not in str(record)
    assert KEY_ID in repr(record)


# -- client.keys (admin) ---------------------------------------------------------------------------------


def test_keys_create_posts_the_request_and_returns_the_key_once(fake_api, fake_client):
    # given
    fake_api.route("POST", "/keys", 201, {**RECORD, "key": KEY})
    # when
    issued = fake_client.keys.create(
        label="lab-a", pipelines=["pipe-1", "pipe-2"], expires_at="2027-01-01T00:00:00Z"
    )
    # then
    request = fake_api.calls("POST", "/keys")[0]
    assert request.bearer == ADMIN
    assert request.body == {
        "label": "lab-a",
        "pipelines": ["pipe-1", "pipe-2"],
        "expires_at": "2027-01-01T00:00:00Z",
    }
    assert (issued.key, issued.id, issued.label, issued.pipelines) == (
        KEY,
        KEY_ID,
        "lab-a",
        ("pipe-1", "pipe-2"),
    )
    assert (issued.status, issued.active, issued.expires_at) == ("active", True, RECORD["expires_at"])


def test_keys_create_without_expiry_sends_none_and_one_pipeline_may_be_a_string(fake_api, fake_client):
    fake_api.route("POST", "/keys", 201, {**RECORD, "key": KEY, "expires_at": None})
    issued = fake_client.keys.create("lab-a", "pipe-1")
    assert fake_api.requests[0].body == {"label": "lab-a", "pipelines": ["pipe-1"]}
    assert issued.expires_at is None


@pytest.mark.parametrize(
    ("expires_at", "sent"),
    [
        (dt.datetime(2027, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2027-01-02T03:04:05.000Z"),
        (dt.datetime(2027, 1, 2, 3, 4, 5), "2027-01-02T03:04:05.000Z"),  # naive: UTC
        (dt.date(2027, 1, 2), "2027-01-02T00:00:00.000Z"),
        (1_800_000_000, 1_800_000_000),
    ],
)
def test_keys_create_sends_an_expiry_the_api_takes(fake_api, fake_client, expires_at, sent):
    fake_api.route("POST", "/keys", 201, {**RECORD, "key": KEY})
    fake_client.keys.create("lab-a", ["*"], expires_at=expires_at)
    assert fake_api.requests[0].body["expires_at"] == sent


def test_keys_create_with_a_timedelta_expires_that_long_from_now(fake_api, fake_client):
    fake_api.route("POST", "/keys", 201, {**RECORD, "key": KEY})
    fake_client.keys.create("lab-a", ["*"], expires_at=dt.timedelta(days=90))
    sent = dt.datetime.fromisoformat(fake_api.requests[0].body["expires_at"].replace("Z", "+00:00"))
    expected = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    assert abs((sent - expected).total_seconds()) < 60


def test_keys_list_returns_records_without_keys(fake_api, fake_client):
    revoked = {**RECORD, "id": "Zz9_zz9-Zz9z", "status": "revoked", "revoked_at": "2026-12-02T00:00:00.000Z"}
    fake_api.route("GET", "/keys", 200, {"keys": [RECORD, revoked]})
    listed = fake_client.keys.list()
    assert [(k.id, k.status, k.key) for k in listed] == [
        (KEY_ID, "active", None),
        ("Zz9_zz9-Zz9z", "revoked", None),
    ]
    assert listed[1].revoked_at == "2026-12-02T00:00:00.000Z" and not listed[1].active
    assert fake_api.requests[0].bearer == ADMIN


def test_keys_revoke_deletes_by_id_or_record(fake_api, fake_client):
    fake_api.route("DELETE", f"/keys/{KEY_ID}", 200, {**RECORD, "status": "revoked"})
    by_id = fake_client.keys.revoke(KEY_ID)
    by_record = fake_client.keys.revoke(ProducerKey.from_body(RECORD))
    assert by_id.status == by_record.status == "revoked"
    assert [(r.method, r.path, r.bearer) for r in fake_api.requests] == [
        ("DELETE", f"/keys/{KEY_ID}", ADMIN)
    ] * 2


def test_managing_keys_with_a_key_raises_forbidden(fake_api, key_client):
    refused = {"error": {"code": "forbidden", "message": "managing producer keys needs an admin token"}}
    fake_api.route("GET", "/keys", 403, refused)
    with pytest.raises(Forbidden, match="needs an admin token"):
        key_client.keys.list()
    assert fake_api.requests[0].bearer == KEY
