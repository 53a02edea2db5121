"""Attacks on producer keys (SPEC section 4 item 4, issue 10), over real HTTP and the queue of the local
stack. tests/integration/test_api_keys.py checks each rule once at the handler; here each is tried as an
attacker would, on every route it could open, and counted in the figures:

- a key outside its scope (and pipelines that hide a credential: none may be quoted back);
- an expired, a revoked, an unknown and a wrong key, on every route: one 401, one body, nothing changed;
- events accepted (and put straight on the queue) with a key that is revoked before the worker gets them:
  each rejected in its place, the job unchanged;
- a key on another owner's job, a deleted one and an admin's: the very 404 of an unknown job;
- a key sending reset, ready or delete, or calling /keys: 403, nothing changed;
- a key in a query string: never a credential, never echoed, never logged;
- keys guessed at random: refused alike, and an unknown id costs the same work as a wrong secret (the
  hashes computed, the constant-time comparisons made and the AWS requests sent, counted per request);
- a key pasted as a field's value, a field's name, an event's name, a path or a query parameter: refused
  without being echoed.

test_secret_scan.py (run last) then looks for every key, its secret and the hash the table holds for it
in every log line, metric line, history entry and error body of the whole folder.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as random
import threading
import time
import urllib.parse
import uuid as uuidlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from jobcore.ids import job_uuid
from jobcore.tokens import KEY_REFUSED, KEY_REVOKED_AFTER, hash_token
from tests.e2e.conftest import Response
from tests.reliability.conftest import Figures, Output, RecordingApi, job_view, make_sentinels

pytestmark = pytest.mark.e2e

KEY_REFUSED_BODY = {"error": {"code": "unauthorized", "message": KEY_REFUSED}}
EXPIRY_SECONDS = 6.0  # long enough to create a job and send it an event before the key expires


@dataclass
class KeyJob:
    """A job a producer key created, with the job's own tokens."""

    uuid: str
    token: str
    callback_token: str


def _attack(
    api: RecordingApi, figures: Figures, kind: str, method: str, path: str, **kwargs: Any
) -> Response:
    response = api.request(method, path, **kwargs)
    figures.key_attacks[kind] += 1
    figures.key_statuses[response.status] += 1
    return response


def _refused(response: Response, status: int, code: str | None = None) -> None:
    assert response.status == status, (response.status, response.body)
    assert isinstance(response.body, dict) and set(response.body) == {"error"}, response.body
    if code is not None:
        assert response.body["error"]["code"] == code, response.body


def _secret(key: str) -> str:
    return key.split("_", 2)[2]


def _spec(pipeline: str) -> dict[str, Any]:
    return {"pipeline_uuid": pipeline, "data": {"n": uuidlib.uuid4().hex}}


def _key_job(api: RecordingApi, key: str, pipeline: str, path: tuple[str, ...] = ()) -> KeyJob:
    """A job created with `key`, walked along `path` by the key's own events."""
    response = api.request("POST", "/jobs", token=key, body=_spec(pipeline))
    assert response.status == 201, response.body
    body = response.body
    callback = urllib.parse.parse_qs(urllib.parse.urlsplit(body["callback_url"]).query)["token"][0]
    job = KeyJob(body["job"]["uuid"], body["token"], callback)
    for name in path:
        assert api.post_event(job.uuid, name, key).status == 202
        api.stack.drain()
    return job


def _state(api: RecordingApi, uuid: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return job_view(api, uuid), api.history(uuid)


def _marks(output: Output) -> dict[str, int]:
    """Where each source of lines is now, to look at what is written after."""
    return {source: len(texts) for source, texts in output.sources().items()}


def _written_since(output: Output, marks: dict[str, int]) -> dict[str, str]:
    return {source: "\n".join(texts[marks[source] :]) for source, texts in output.sources().items()}


def _unknown_key() -> str:
    return f"pjk_{random.token_urlsafe(9)}_{random.token_urlsafe(32)}"


def _wrong_secret(key: str) -> str:
    return f"pjk_{key[4:16]}_{random.token_urlsafe(32)}"


# -- scope ---------------------------------------------------------------------------------------------

PLAIN_PIPELINES = ("keys-scope-c", "keys-scope-A", "KEYS-SCOPE-B", "keys-scope", "keys-scope-a.b", "k:1")


def test_a_key_outside_its_scope_creates_nothing_and_quotes_no_credential(
    api: RecordingApi, figures: Figures
) -> None:
    # given a key for two pipelines, another key, and a job's token (credentials a caller could paste)
    key = api.issue_key(["keys-scope-a", "keys-scope-b"])["key"]
    other = api.issue_key(["keys-scope-a"])["key"]
    token = api.create_job(name="keys scope")["token"]
    hiding = {
        "another key": other,
        "a key with a prefix": "x" + other,
        "a key with a suffix": other + ":",
        "a key's secret": _secret(other),
        "a job token": token,
        "a job token with a suffix": token + ".x",
        "its own key": key,
    }
    # when it creates jobs for pipelines it does not cover: plain ids, and ids that hold a credential
    for pipeline in PLAIN_PIPELINES + tuple(hiding.values()):
        spec = _spec(pipeline)
        response = _attack(api, figures, "out of scope", "POST", "/jobs", token=key, body=spec)
        # then each is 403, a plain id is named, a credential never is, and no job exists
        _refused(response, 403, "forbidden")
        text = json.dumps(response.body)
        if pipeline in PLAIN_PIPELINES:
            assert repr(pipeline) in response.body["error"]["message"], response.body
        else:
            for credential in (other, _secret(other), token, key, _secret(key)):
                assert credential not in text, (pipeline, response.body)
        assert api.job(job_uuid(pipeline, spec["data"], [])).status == 404
    # and "*" is no pipeline id a key could claim
    star = _attack(api, figures, "out of scope", "POST", "/jobs", token=key, body=_spec("*"))
    _refused(star, 400, "invalid_request")
    # while the pipelines it covers are open to it (the refusals were about the scope)
    inside = api.request("POST", "/jobs", token=key, body=_spec("keys-scope-b"))
    assert inside.status == 201, inside.body
    assert inside.body["job"]["owner"] == key[4:16]


# -- expired, revoked, unknown, wrong ------------------------------------------------------------------


def _key_routes(
    uuid: str, event_id: str, key_id: str, pipeline: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every request a key may make on its own job and on its own account."""
    events = f"/jobs/{uuid}/events"
    return [
        ("POST", "/jobs", {"body": _spec(pipeline)}),
        ("GET", "/jobs", {}),
        ("GET", "/jobs", {"query": {"owner": key_id}}),
        ("GET", f"/jobs/{uuid}", {}),
        ("POST", events, {"body": {"name": "update", "data": {"x": 1}}}),
        ("POST", events, {"body": {"name": "finish"}}),
        ("POST", events, {"body": {"name": "update"}, "headers": {"Idempotency-Key": "refused-key-1"}}),
        ("GET", events, {}),
        ("GET", f"{events}/{event_id}", {}),
        ("POST", f"/jobs/{uuid}/token", {}),
    ]


REFUSED_KEYS = {  # how a key is refused: the attack's name in the figures
    "expired": "expired key",
    "revoked": "revoked key",
    "unknown id": "unknown key id",
    "wrong secret": "wrong key secret",
}


@pytest.mark.parametrize("how", sorted(REFUSED_KEYS))
def test_a_refused_key_opens_no_route_and_changes_nothing(
    api: RecordingApi, figures: Figures, how: str
) -> None:
    # given a key's running job, with an event in its history
    expires = time.time() + EXPIRY_SECONDS if how == "expired" else None
    issued = api.issue_key(["keys-refused"], **({"expires_at": expires} if expires else {}))
    key = issued["key"]
    job = _key_job(api, key, "keys-refused", ("run",))
    event_id = api.history(job.uuid)[0]["event_id"]
    # when the key expires, is revoked, or is replaced by a guess
    if how == "expired":
        assert expires is not None
        time.sleep(max(0.0, expires - time.time()) + 0.2)
    elif how == "revoked":
        assert api.request("DELETE", f"/keys/{issued['id']}", token=api.admin()).status == 200
    credential = {"unknown id": _unknown_key(), "wrong secret": _wrong_secret(key)}.get(how, key)
    before = _state(api, job.uuid)
    # and is used on every route a key may use
    bodies = []
    for method, path, kwargs in _key_routes(job.uuid, event_id, issued["id"], "keys-refused"):
        response = _attack(api, figures, REFUSED_KEYS[how], method, path, token=credential, **kwargs)
        _refused(response, 401, "unauthorized")
        bodies.append(response.body)
    # then every answer is the one 401 (which part was wrong is never said), and nothing changed
    assert all(body == KEY_REFUSED_BODY for body in bodies), bodies
    api.stack.drain()
    assert _state(api, job.uuid) == before
    listed = [
        k for k in api.request("GET", "/keys", token=api.admin()).body["keys"] if k["id"] == issued["id"]
    ]
    assert listed[0]["status"] == {"expired": "expired", "revoked": "revoked"}.get(how, "active")


# -- revoked after acceptance: the worker -------------------------------------------------------------


def test_events_accepted_before_their_key_was_revoked_are_rejected_by_the_worker(
    api: RecordingApi, sqs: Any, figures: Figures
) -> None:
    # given a key's job, and a worker that has not reached its events yet
    issued = api.issue_key(["keys-worker"])
    key = issued["key"]
    job = _key_job(api, key, "keys-worker")
    api.stack.drain()
    with api.stack.worker_held():
        # when the key's run and update are accepted, the job token's finish after them, and the key
        # sends one more event straight onto the queue (SPEC section 6) ...
        run = api.post_event(job.uuid, "run", key)
        update = api.request(
            "POST",
            f"/jobs/{job.uuid}/events",
            token=key,
            body={"name": "update", "data": {"n": 1}},
            headers={"Idempotency-Key": "before-revocation"},
        )
        finish = api.post_event(job.uuid, "finish", job.token)
        assert [r.status for r in (run, update, finish)] == [202, 202, 202], (
            run.body,
            update.body,
            finish.body,
        )
        sqs.send_message(
            QueueUrl=api.stack.resources.queue_url,
            MessageBody=json.dumps({"uuid": job.uuid, "name": "update", "token": key}),
            MessageGroupId=job.uuid,
            MessageDeduplicationId=uuidlib.uuid4().hex,
        )
        # ... and then the key is revoked
        assert api.request("DELETE", f"/keys/{issued['id']}", token=api.admin()).status == 200
        figures.key_accepted_then_revoked += 3
    api.stack.drain()
    # then the key's events are rejected, in their places: the accepted ones as revoked after their
    # acceptance, the finish as promised against a state that never came; the job did not move
    history = api.history(job.uuid)
    by_id = {entry["event_id"]: entry for entry in history}
    assert [e["outcome"] for e in history] == ["rejected"] * 4, history
    assert by_id[run.body["event_id"]]["reason"] == KEY_REVOKED_AFTER
    assert by_id[run.body["event_id"]]["by"] == f"key:{issued['id']}"
    assert "producer key was revoked" in by_id[update.body["event_id"]]["reason"]
    assert "producer key was revoked" in by_id[finish.body["event_id"]]["reason"]
    straight = [e for e in history if e["event_id"] not in (run.body["event_id"], update.body["event_id"])]
    assert [e["name"] for e in straight] == ["finish", "update"]
    figures.key_rejected_by_worker += sum(1 for e in history if e["event_id"] != finish.body["event_id"])
    view = job_view(api, job.uuid)
    assert (view["state"], view["queued_events"]) == ("CREATED", 0)
    # and the job goes on from the state it is really in
    assert api.post_event(job.uuid, "run", api.admin()).status == 202
    api.stack.drain()
    assert job_view(api, job.uuid)["state"] == "RUNNING"


# -- another owner's job -------------------------------------------------------------------------------


def _owner_routes(uuid: str, event_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    events = f"/jobs/{uuid}/events"
    return [
        ("GET", f"/jobs/{uuid}", {}),
        ("POST", events, {"body": {"name": "update"}}),
        ("POST", events, {"body": {"name": "finish"}}),
        ("POST", events, {"body": {"name": "update"}, "headers": {"Idempotency-Key": "not-mine"}}),
        ("GET", events, {}),
        ("GET", f"{events}/{event_id}", {}),
        ("POST", f"/jobs/{uuid}/token", {}),
    ]


def test_a_key_on_another_owners_job_gets_the_404_of_an_unknown_job(
    api: RecordingApi, figures: Figures
) -> None:
    # given key A's running job, an admin's running job, A's deleted job and a uuid no job has
    a = api.issue_key(["*"])
    b = api.issue_key(["*"])["key"]
    mine = _key_job(api, a["key"], "keys-owner", ("run",))
    (admins,) = make_sentinels(api, ("RUNNING",), "keys owner")
    gone = _key_job(api, a["key"], "keys-owner", ("run",))
    assert api.post_event(gone.uuid, "delete", api.admin(), {}).status == 202
    api.stack.drain()
    unknown = str(uuidlib.uuid4())
    event_id = api.history(mine.uuid)[0]["event_id"]
    before = {uuid: _state(api, uuid) for uuid in (mine.uuid, admins.uuid)}

    def answers(uuid: str) -> list[tuple[int, str]]:
        found = []
        for method, path, kwargs in _owner_routes(uuid, event_id):
            response = _attack(api, figures, "another owner's job", method, path, token=b, **kwargs)
            found.append((response.status, json.dumps(response.body, sort_keys=True).replace(uuid, "<uuid>")))
        return found

    # when key B uses every job route on each
    expected = answers(unknown)
    # then each answer is the 404 of the unknown job, body for body (the uuid aside)
    assert {status for status, _ in expected} == {404}, expected
    assert all('"job_not_found"' in body for _, body in expected), expected
    for uuid in (mine.uuid, admins.uuid, gone.uuid):
        assert answers(uuid) == expected, uuid
    # and B neither lists them nor may list A's jobs; nothing changed, and A still reads its job
    listed = api.request("GET", "/jobs", token=b, query={"limit": "100"})
    assert listed.status == 200 and not {mine.uuid, gone.uuid} & {j["uuid"] for j in listed.body["jobs"]}
    _refused(
        _attack(api, figures, "another owner's job", "GET", "/jobs", token=b, query={"owner": a["id"]}), 403
    )
    api.stack.drain()
    assert {uuid: _state(api, uuid) for uuid in before} == before
    assert api.job(mine.uuid, token=a["key"]).status == 200


# -- what a key never does -----------------------------------------------------------------------------


def test_a_key_may_not_reset_ready_delete_or_manage_keys(api: RecordingApi, figures: Figures) -> None:
    # given a key's running job, and another key
    issued, other = api.issue_key(["keys-reserved"]), api.issue_key(["keys-reserved"])
    key = issued["key"]
    job = _key_job(api, key, "keys-reserved", ("run",))
    before = _state(api, job.uuid)
    keys_before = api.request("GET", "/keys", token=api.admin()).body["keys"]
    # when it sends the admin's events to its own job, and calls every key route
    events = [
        ("reset", {}),
        ("reset", {"keep_archive": True}),
        ("ready", None),
        ("delete", {}),
        ("delete", None),
    ]
    for name, data in events:
        response = _attack(api, figures, "reset, ready or delete", "POST", f"/jobs/{job.uuid}/events",
                           token=key, body={"name": name, **({"data": data} if data is not None else {})})  # fmt: skip
        _refused(response, 403, "forbidden")
    for method, path, body in (
        ("POST", "/keys", {"label": "escalate", "pipelines": ["*"]}),
        ("GET", "/keys", None),
        ("DELETE", f"/keys/{issued['id']}", None),
        ("DELETE", f"/keys/{other['id']}", None),
        ("DELETE", "/keys/AAAAAAAAAAAA", None),
    ):
        _refused(_attack(api, figures, "/keys", method, path, token=key, body=body), 403, "forbidden")
    # then nothing changed: the job, its history, the keys (none issued, none revoked)
    api.stack.drain()
    assert _state(api, job.uuid) == before
    assert api.request("GET", "/keys", token=api.admin()).body["keys"] == keys_before
    # and the refusals were about the key: an admin may reset the job
    assert api.post_event(job.uuid, "reset", api.admin(), {"keep_archive": True}).status == 202
    api.stack.drain()


# -- where a key is no credential ----------------------------------------------------------------------


def test_a_key_in_a_query_string_is_no_credential_and_is_never_echoed_or_logged(
    api: RecordingApi, output: Output, figures: Figures
) -> None:
    # given a key's job
    key = api.issue_key(["keys-query"])["key"]
    job = _key_job(api, key, "keys-query")
    before = _state(api, job.uuid)
    marks = _marks(output)
    # when the key is sent in the query string, on every route, under every name a client might use
    calls = [
        ("GET", f"/jobs/{job.uuid}", None),
        ("POST", f"/jobs/{job.uuid}/events", {"name": "run"}),
        ("GET", f"/jobs/{job.uuid}/events", None),
        ("POST", f"/jobs/{job.uuid}/token", None),
        ("POST", "/jobs", _spec("keys-query")),
        ("GET", "/jobs", None),
    ]
    answers = []
    for name in ("token", "key", "api_key", "access_token"):
        for method, path, body in calls:
            answers.append(
                _attack(api, figures, "in a query string", method, path, body=body, query={name: key})
            )
    callback = {"token": key, "status": "RUNNING"}
    answers.append(
        _attack(api, figures, "in a query string", "POST", f"/jobs/{job.uuid}/callback", query=callback)
    )
    # ... or beside a valid credential
    beside = _attack(api, figures, "in a query string", "GET", f"/jobs/{job.uuid}", token=job.token,
                     query={"token": key})  # fmt: skip
    # then alone it opens nothing (401), and no answer repeats it
    for response in answers:
        _refused(response, 401, "unauthorized")
    assert beside.status < 500
    for response in (*answers, beside):
        text = json.dumps(response.body)
        assert key not in text and _secret(key) not in text and hash_token(key) not in text
    # and no line written since holds it (the stack never logs a query string)
    api.stack.drain()
    for source, text in _written_since(output, marks).items():
        assert key not in text and _secret(key) not in text, source
    assert _state(api, job.uuid) == before


# -- guessing ------------------------------------------------------------------------------------------

GUESSES = 120
PROFILE_ROUNDS = 3


@contextmanager
def counted_work() -> Iterator[list[Counter[str]]]:
    """The work of each request the stack's API serves inside the block: SHA-256 computations,
    hmac.compare_digest calls and AWS requests (DynamoDB and SQS), counted on the threads that serve
    HTTP requests (not the worker's or the notifier's). The caller reads `profiles[-1]` after each
    request; a new Counter is started with `profiles.append(Counter())`."""
    from botocore.client import BaseClient

    profiles: list[Counter[str]] = [Counter()]
    sha256, compare_digest, call = hashlib.sha256, hmac.compare_digest, BaseClient._make_api_call

    def serving() -> bool:
        thread = threading.current_thread()
        return thread is not threading.main_thread() and not thread.name.startswith("pipelinejobs-")

    def counting_sha256(*args: Any, **kwargs: Any) -> Any:
        if serving():
            profiles[-1]["sha256"] += 1
        return sha256(*args, **kwargs)

    def counting_compare(a: Any, b: Any) -> bool:
        if serving():
            profiles[-1]["compare_digest"] += 1
        return compare_digest(a, b)

    def counting_call(self: Any, operation: str, params: Any) -> Any:
        service = self.meta.service_model.service_name
        if serving() and service in ("dynamodb", "sqs"):
            profiles[-1][f"{service}:{operation}"] += 1
        return call(self, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hashlib, "sha256", counting_sha256)
        patch.setattr(hmac, "compare_digest", counting_compare)
        patch.setattr(BaseClient, "_make_api_call", counting_call)
        yield profiles


def test_guessed_keys_are_refused_alike_and_an_unknown_id_costs_what_a_wrong_secret_does(
    api: RecordingApi, figures: Figures
) -> None:
    # given a key's running job
    issued = api.issue_key(["keys-guess"])
    key = issued["key"]
    job = _key_job(api, key, "keys-guess", ("run",))
    event_id = api.history(job.uuid)[0]["event_id"]
    before = _state(api, job.uuid)
    routes = _key_routes(job.uuid, event_id, issued["id"], "keys-guess")
    # when keys are guessed at random: unknown ids, and the real id with a random secret
    bodies = set()
    for n in range(GUESSES):
        kind = ("unknown id", "wrong secret")[n % 2]
        guess = _unknown_key() if kind == "unknown id" else _wrong_secret(key)
        method, path, kwargs = routes[n % len(routes)]
        response = _attack(api, figures, "guessed", method, path, token=guess, **kwargs)
        figures.key_guesses[kind] += 1
        bodies.add((response.status, json.dumps(response.body, sort_keys=True)))
    # then every guess got the one 401
    assert bodies == {(401, json.dumps(KEY_REFUSED_BODY, sort_keys=True))}, bodies
    # and, route by route, an unknown id and a wrong secret cost the same work, every time (the API's
    # view of the job warmed first: which instance has seen it changes the requests, not the key)
    api.stack.drain()
    for method, path, kwargs in routes:
        for guess in (_unknown_key(), _wrong_secret(key)):
            api.request(method, path, token=guess, **kwargs)
        work: dict[str, list[Counter[str]]] = {"unknown id": [], "wrong secret": []}
        with counted_work() as profiles:
            for _ in range(PROFILE_ROUNDS):
                for kind, guess in (("unknown id", _unknown_key()), ("wrong secret", _wrong_secret(key))):
                    profiles.append(Counter())
                    response = _attack(api, figures, "guessed", method, path, token=guess, **kwargs)
                    assert response.status == 401, response.body
                    work[kind].append(profiles[-1])
                    figures.key_guesses[kind] += 1
        first = work["unknown id"][0]
        assert all(profile == first for profiles in work.values() for profile in profiles), (path, work)
        # (a hash of the key is computed, and compared: in constant time here, or by DynamoDB's
        # condition against the stored hash in the event's one transaction)
        assert first["sha256"] >= 1, (path, first)
        assert first["compare_digest"] >= 1 or first["dynamodb:TransactWriteItems"] == 1, (path, first)
        figures.key_routes_profiled += 1
    api.stack.drain()
    assert _state(api, job.uuid) == before


# -- pasted in the wrong place -------------------------------------------------------------------------


def test_a_key_pasted_as_a_value_or_a_name_is_refused_and_never_echoed_or_logged(
    api: RecordingApi, output: Output, figures: Figures
) -> None:
    # given a key's running job
    key = api.issue_key(["keys-pasted"])["key"]
    job = _key_job(api, key, "keys-pasted", ("run",))
    event_id = api.history(job.uuid)[0]["event_id"]
    admin = api.admin()
    events, jobs = f"/jobs/{job.uuid}/events", "/jobs"
    spec = _spec("keys-pasted")
    cases: list[tuple[str | None, str, str, dict[str, Any]]] = [
        (key, "POST", events, {"body": {"name": key}}),
        (key, "POST", events, {"body": {"name": key + "!"}}),
        (key, "POST", events, {"body": {"name": "update", key: 1}}),
        (key, "POST", events, {"body": {"name": "update", "data": key}}),
        (key, "POST", events, {"body": {"name": "update", "event_id": key}}),
        (key, "POST", events, {"body": [key]}),
        (key, "POST", events, {"body": {"name": "update"}, "headers": {"Idempotency-Key": key + "!"}}),
        (key, "POST", jobs, {"body": {**spec, "pipeline_uuid": key * 2}}),
        (key, "POST", jobs, {"body": {**spec, "tags": [key + "!"]}}),
        (key, "POST", jobs, {"body": {**spec, "tags": key}}),
        (key, "POST", jobs, {"body": {**spec, "child_of": key}}),
        (key, "POST", jobs, {"body": {**spec, "name": key * 5}}),
        (key, "POST", jobs, {"body": {**spec, "session": key * 5}}),
        (key, "POST", jobs, {"body": {**spec, "archive_path": key}}),
        (key, "POST", jobs, {"body": {**spec, "archive_path": f"s3://{key}/x/"}}),
        (key, "POST", jobs, {"body": {**spec, "data": key}}),
        (key, "POST", jobs, {"body": {**spec, key: 1}}),
        (admin, "POST", "/keys", {"body": {"label": key * 2, "pipelines": ["p"]}}),
        (admin, "POST", "/keys", {"body": {"label": "x", "pipelines": key}}),
        (admin, "POST", "/keys", {"body": {"label": "x", "pipelines": ["p"], "expires_at": key}}),
        (admin, "POST", "/keys", {"body": {"label": "x", "pipelines": ["p"], key: 1}}),
        (admin, "DELETE", f"/keys/{key}", {}),
        (key, "GET", jobs, {"query": {"owner": key}}),
        (admin, "GET", jobs, {"query": {"owner": key}}),
        (admin, "GET", jobs, {"query": {"state": key}}),
        (admin, "GET", jobs, {"query": {"updated_after": key}}),
        (admin, "GET", jobs, {"query": {"next": key}}),
        (admin, "GET", jobs, {"query": {"limit": key}}),
        (admin, "GET", jobs, {"query": {"pipeline_uuid": key * 3}}),
        (admin, "GET", f"/jobs/{key}", {}),
        (key, "GET", f"/jobs/{key}", {}),
        (admin, "GET", f"{events}/{key}", {}),
        (admin, "GET", events, {"query": {"next": key}}),
        (admin, "GET", events, {"query": {"limit": key}}),
        (None, "GET", f"/jobs/{job.uuid}", {"headers": {"Authorization": f"Basic {key}"}}),
        (None, "GET", f"/jobs/{job.uuid}", {"headers": {"Authorization": f"Bearer {key} {key}"}}),
        (None, "GET", f"/jobs/{job.uuid}", {"headers": {"Authorization": key}}),
    ]
    before = _state(api, job.uuid)
    marks = _marks(output)
    # when each is sent
    for token, method, path, kwargs in cases:
        response = _attack(api, figures, "pasted as a value or a name", method, path, token=token, **kwargs)
        # then it is refused in the error format, and the answer holds no part of the key
        assert 400 <= response.status < 500, (path, kwargs, response.status, response.body)
        text = json.dumps(response.body)
        assert key not in text and _secret(key) not in text, (path, kwargs, response.body)
    # (a filter no job can match is no mistake: an empty page, and no echo either)
    tag = _attack(
        api, figures, "pasted as a value or a name", "GET", jobs, token=admin, query={"tag": key + "!"}
    )
    assert (tag.status, tag.body["jobs"]) == (200, [])
    assert key not in json.dumps(tag.body)
    api.stack.drain()
    after = _state(api, job.uuid)
    assert after == before
    assert key not in json.dumps(after)
    # and no line written since holds it: not the functions' logs, not the stack's (paths included)
    for source, text in _written_since(output, marks).items():
        holding = [line for line in text.splitlines() if _secret(key) in line]
        assert not holding, (source, holding[:3])
    assert event_id in {e["event_id"] for e in after[1]}
