"""A deterministic leak probe (issue 15): every refusal and error path of the API and the worker, each
taken with a real, valid credential where the caller may put one (a header, the query string, a name, a
field, the body, the queue message), and none of those credentials -- nor their hashes, nor the admin
key -- may appear in any log record of any logger, any line on stdout or stderr (Powertools' JSON logs,
EMF metrics), any history entry or any error body.

Producer keys (issue 10) take the same paths and their own: out of scope (a key hidden in the pipeline
id too), another owner's job, revoked (at the API, and an event accepted before the revocation, at the
worker), expired, guessed, sent with an admin's event or to /keys, in a query string, as a name or a
value; each key, its secret part and the hash the table holds for it are looked for.

Records are captured on the root logger and on every logger there is (third-party ones at the levels they
run with; the project's own at DEBUG, so that a leak at any level shows), not from stdout alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from integration_helpers import ADMIN_KEY, marked_body

from jobcore.tokens import KEY_REVOKED_AFTER, grace_key, hash_token

if TYPE_CHECKING:
    from api_fixtures import Api, CreatedJob

pytest_plugins = ["api_fixtures"]

OWN_LOGGERS = ("jobcore", "pipelinejobs")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        parts = [record.name, str(record.msg), repr(record.args), record.getMessage()]
        parts += [
            repr(v)
            for k, v in vars(record).items()
            if k not in logging.LogRecord("", 0, "", 0, "", (), None).__dict__
        ]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        self.texts.append(" ".join(parts))


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.addHandler(handler)
        if logger.name.split(".")[0] in OWN_LOGGERS:
            logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.setLevel(levels[logger])


class Probe:
    """The credentials in play, every answer the API gave, and where to look for them afterwards."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.a, self.b, self.revoked = api.create(), api.create(), api.create()
        self.secrets: dict[str, str] = {"admin key": ADMIN_KEY}
        self.errors: list[str] = []  # bodies of 4xx/5xx answers

    def know(self, name: str, token: str) -> None:
        self.secrets[name] = token
        self.secrets[f"hash of {name}"] = hash_token(token)
        self.secrets[f"grace key of {name}"] = grace_key(hash_token(token))

    def call(self, method: str, path: str, **kwargs: Any) -> int:
        response = self.api.call(method, path, **kwargs)
        if response.status >= 400:
            self.errors.append(response.text)
        return response.status

    def event(self, job: CreatedJob, token: str | None, body: Any, **kwargs: Any) -> int:
        return self.call("POST", f"/jobs/{job.uuid}/events", token=token, body=body, **kwargs)

    def queue(self, job_uuid: str, body: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.api.harness.send_raw(text, group=job_uuid)


def deep(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = {"d": value}
    return value


def test_no_credential_leaks_from_any_refusal_or_error_path(api: Api, records: Records, capsys) -> None:
    probe = Probe(api)
    a, b, revoked = probe.a, probe.b, probe.revoked
    admin = api.admin()
    for name, token in (
        ("a's job token", a.token), ("a's callback token", a.callback_token), ("b's job token", b.token),
        ("b's callback token", b.callback_token), ("admin token", admin),
        ("revoked job token", revoked.token), ("revoked callback token", revoked.callback_token),
    ):  # fmt: skip
        probe.know(name, token)
    api.event(revoked.uuid, admin, "reset", {"keep_archive": True})
    api.work()
    t = a.token

    # -- the API: a credential in the wrong place, or the right place of the wrong job ---------------------
    statuses = [
        probe.event(a, b.token, {"name": "run"}),  # another job's token
        probe.call("GET", f"/jobs/{a.uuid}", token=b.callback_token),
        probe.call("POST", f"/jobs/{a.uuid}/callback", query={"token": b.callback_token, "status": "RUNNING"}),
        probe.event(revoked, revoked.token, {"name": "run"}),  # revoked by the reset
        probe.call("POST", f"/jobs/{revoked.uuid}/callback", query={"token": revoked.callback_token}),
        probe.event(a, t, {"name": t}),  # a token as the event's name
        probe.event(a, t, {"name": "run", t: 1}),  # ... as a field name
        probe.event(a, t, {"name": "run", "data": {t: 1}, t: 2}),
        probe.call("POST", f"/jobs/{a.uuid}/events", token=t, raw_body='{"name": "' + t),  # not JSON
        probe.call("POST", f"/jobs/{a.uuid}/events", token=t, raw_body=f"name={t}",
                   headers={"content-type": "application/x-www-form-urlencoded"}),  # a form
        probe.event(a, t, {"name": "finish"}),  # not allowed from CREATED
        probe.event(a, t, {"name": "update", "data": {"blob": t * 2000}}),  # over the size limit
        probe.event(a, t, {"name": "update", "data": deep(t, 40)}),  # nested too deep
        probe.event(a, a.callback_token, {"name": "reset"}),  # a callback token may not reset
        probe.event(a, t, {"name": "delete"}),  # nor a job token delete
        probe.event(a, t, {"name": "run"}, headers={"Idempotency-Key": t + "!"}),  # a malformed key
        probe.call("GET", f"/jobs/{a.uuid}/events/{t}", token=admin),  # an id no event has
        probe.call("GET", f"/jobs/{a.uuid}/events", token=admin, query={"next": t}),  # a cursor
        probe.call("GET", "/jobs", token=t, query={"tag": t}),  # listing with a job token
        probe.call("POST", f"/jobs/{a.uuid}/token", token=a.callback_token),
        probe.call("GET", f"/jobs/{a.uuid}", headers={"authorization": f"Basic {t}"}),
        probe.call("GET", f"/jobs/{a.uuid}", token=f"{t}x"),  # a token one character off
        probe.call("PUT", f"/jobs/{a.uuid}/{t}", token=t),  # no such route
        probe.call("GET", f"/jobs/{t}", token=admin),  # a token as the uuid
        probe.call("POST", "/jobs", token=t, body={"pipeline_uuid": t, "data": {}}),
        probe.call("POST", "/jobs", token=admin, body={"pipeline_uuid": "p", "data": {}, t: 1}),
        probe.call("POST", "/jobs", token=admin, body={"pipeline_uuid": "p", "data": {}, "archive_path": t}),
    ]  # fmt: skip
    assert all(400 <= status < 500 for status in statuses), statuses
    # an accepted event whose Idempotency-Key is a token: keys are kept hashed
    assert probe.event(a, t, {"name": "update"}, headers={"Idempotency-Key": t}) == 202
    api.clock.advance(3601 * 2)  # every token of the probe's admin window has expired ...
    assert probe.event(b, admin, {"name": "run"}) == 401  # ... an expired admin token

    # -- the worker: the same, straight on the queue --------------------------------------------------------
    admin = api.admin()
    for body in (
        {"uuid": a.uuid, "name": "run", "token": b.token},  # another job's token
        {"uuid": a.uuid, "name": "run", "token": b.callback_token},
        {"uuid": revoked.uuid, "name": "run", "token": revoked.token},  # revoked
        {"uuid": a.uuid, "name": t, "token": t},  # a token as the name
        {"uuid": a.uuid, "name": "update", "token": t, t: "misplaced"},  # as a field name
        {"uuid": a.uuid, "name": "finish", "token": t},  # not allowed
        {"uuid": a.uuid, "name": "update", "token": t, "data": {"blob": t * 3000}},  # too large
        {"uuid": a.uuid, "name": "update", "token": t, "data": deep(t, 40)},  # too deep
        {"uuid": a.uuid, "name": "index", "token": a.callback_token},  # a callback may not index
        {"uuid": a.uuid, "name": "run", "token": "0" * 64},  # an admin token of no key
        {"uuid": a.uuid, "name": "run", "token": admin, "expect": [t, 1]},  # a token as the expectation
        {"uuid": "5b0e5f0c-4a43-4a55-9e7c-0d0c1d5d7a11", "name": "run", "token": admin},  # no such job
        {"internal": "erase", "uuid": a.uuid, "purpose": "reset", "event_id": t, "generation": 1,
         "step": 0, "signature": admin},  # a forged erasure step
        marked_body(api.harness, a.uuid, "run", seq=1, expect=("CREATED", 1), token=b.token, key="forged"),
        f'{{"uuid": "{a.uuid}", "name": "run", "token": "{t}", "data": {{"x": NaN}}}}',
        f'{{"uuid": "{a.uuid}", "token": "{t}"',  # not JSON
        [t, b.token],  # JSON, not an object
    ):  # fmt: skip
        probe.queue(a.uuid, body)
    api.work()

    # then no credential, hash or key is anywhere the system writes to
    places = _places(probe, records, capsys, (a.uuid, b.uuid, revoked.uuid))
    assert len(records.texts) > 20 and len(places["a history entry"]) >= 15 and len(probe.errors) >= 28
    assert _leaks(probe, places) == [], [
        e for e in probe.errors if any(s in e for s in probe.secrets.values())
    ]


def _places(probe: Probe, records: Records, capsys: Any, jobs: tuple[str, ...]) -> dict[str, list[str]]:
    """Everything the system wrote that a caller or an operator could read."""
    out = capsys.readouterr()
    admin = probe.api.admin()
    return {
        "a log record": records.texts,
        "stdout (logs, metrics)": out.out.splitlines(),
        "stderr": out.err.splitlines(),
        "a history entry": [json.dumps(e) for uuid in jobs for e in probe.api.history(uuid, token=admin)],
        "an error body": probe.errors,
    }


def _leaks(probe: Probe, places: dict[str, list[str]]) -> list[str]:
    return [
        f"{name} in {where}"
        for where, texts in places.items()
        for text in texts
        for name, secret in probe.secrets.items()
        if secret in text
    ]


def test_no_producer_key_leaks_from_any_refusal_or_error_path(api: Api, records: Records, capsys) -> None:
    # given keys A and B with a job each, a key revoked after one of its events was accepted, a key that
    # has expired, and an admin's job; every key, its secret and the hash the table holds are known
    probe = Probe(api)
    admin = api.admin()
    issued = {
        name: api.call("POST", "/keys", token=admin, body=body).body
        for name, body in (
            ("key A", {"label": "a", "pipelines": ["pipeline-1"]}),
            ("key B", {"label": "b", "pipelines": ["*"]}),
            ("revoked key", {"label": "r", "pipelines": ["*"]}),
            ("expired key", {"label": "e", "pipelines": ["*"], "expires_at": api.clock.now() + 60}),
        )
    }
    for name, body in issued.items():
        probe.know(name, body["key"])
        probe.secrets[f"secret of {name}"] = body["key"].split("_", 2)[2]
        probe.secrets[f"stored hash of {name}"] = api.harness.repo.get_key(body["id"]).key_hash
    ka, kb, kr, ke = (issued[name]["key"] for name in ("key A", "key B", "revoked key", "expired key"))

    def job_of(key: str) -> str:
        spec = {"pipeline_uuid": "pipeline-1", "data": {"n": key[4:16]}}
        return str(api.call("POST", "/jobs", token=key, body=spec).body["job"]["uuid"])

    mine, theirs, revoked_job, expired_job = job_of(ka), job_of(kb), job_of(kr), job_of(ke)
    accepted = probe.call("POST", f"/jobs/{revoked_job}/events", token=kr, body={"name": "run"})
    assert accepted == 202  # ... and then revoked, before the worker gets to it
    assert probe.call("DELETE", f"/keys/{issued['revoked key']['id']}", token=admin) == 200
    api.clock.advance(61)
    admins = probe.a
    wrong = ka[:-4] + ("AAAA" if not ka.endswith("AAAA") else "BBBB")
    unknown = "pjk_" + "Z" * 12 + ka[16:]
    for name, credential in (("a wrong key", wrong), ("an unknown key", unknown)):
        probe.know(name, credential)
    hidden = "x" + kb  # a key hidden in a pipeline id

    # -- the API ---------------------------------------------------------------------------------------
    statuses = [
        probe.call("POST", "/jobs", token=ka, body={"pipeline_uuid": "pipeline-9", "data": {}}),  # out of scope
        probe.call("POST", "/jobs", token=ka, body={"pipeline_uuid": hidden, "data": {}}),
        probe.call("POST", "/jobs", token=ka, body={"pipeline_uuid": kb.split("_", 2)[2], "data": {}}),
        probe.call("GET", f"/jobs/{theirs}", token=ka),  # another owner's job
        probe.call("POST", f"/jobs/{theirs}/events", token=ka, body={"name": "run"}),
        probe.call("GET", f"/jobs/{theirs}/events", token=ka),
        probe.call("POST", f"/jobs/{theirs}/token", token=ka),
        probe.call("GET", f"/jobs/{admins.uuid}", token=ka),  # an admin's job
        probe.call("GET", "/jobs", token=ka, query={"owner": issued["key B"]["id"]}),
        probe.call("GET", f"/jobs/{revoked_job}", token=kr),  # revoked
        probe.call("POST", f"/jobs/{revoked_job}/events", token=kr, body={"name": "update"}),
        probe.call("POST", "/jobs", token=kr, body={"pipeline_uuid": "pipeline-1", "data": {}}),
        probe.call("GET", f"/jobs/{expired_job}", token=ke),  # expired
        probe.call("POST", f"/jobs/{expired_job}/events", token=ke, body={"name": "run"}),
        probe.call("GET", f"/jobs/{mine}", token=wrong),  # guessed
        probe.call("GET", f"/jobs/{mine}", token=unknown),
        probe.call("POST", f"/jobs/{mine}/events", token=unknown, body={"name": "run"}),
        probe.call("POST", f"/jobs/{mine}/events", token=ka, body={"name": "reset", "data": {}}),  # admin's
        probe.call("POST", f"/jobs/{mine}/events", token=ka, body={"name": "delete", "data": {}}),
        probe.call("POST", "/keys", token=ka, body={"label": "x", "pipelines": ["*"]}),  # /keys
        probe.call("GET", "/keys", token=ka),
        probe.call("DELETE", f"/keys/{issued['key A']['id']}", token=ka),
        probe.call("DELETE", f"/keys/{ka}", token=admin),
        probe.call("GET", f"/jobs/{mine}", query={"token": ka}),  # in a query string
        probe.call("POST", f"/jobs/{mine}/callback", query={"token": ka, "status": "RUNNING"}),
        probe.call("POST", f"/jobs/{mine}/events", token=ka, body={"name": ka}),  # as a name
        probe.call("POST", f"/jobs/{mine}/events", token=ka, body={"name": "run", ka: 1}),
        probe.call("POST", f"/jobs/{mine}/events", token=ka, body={"name": "run", "data": ka}),
        probe.call("GET", "/jobs", token=admin, query={"owner": ka}),
        probe.call("GET", f"/jobs/{ka}", token=ka),
    ]  # fmt: skip
    assert all(400 <= status < 500 for status in statuses), statuses

    # -- the worker: the revoked key's accepted event, and keys straight on the queue ---------------------
    for body in (
        {"uuid": theirs, "name": "run", "token": ka},  # another owner's job
        {"uuid": revoked_job, "name": "update", "token": kr},  # revoked
        {"uuid": expired_job, "name": "update", "token": ke},  # expired
        {"uuid": mine, "name": "run", "token": wrong},  # guessed
        {"uuid": mine, "name": "run", "token": unknown},
        {"uuid": mine, "name": "reset", "token": ka},  # not a key's event
        {"uuid": mine, "name": ka, "token": ka},  # a key as the name
        {"uuid": mine, "name": "update", "token": ka, ka: "misplaced"},
    ):
        probe.queue(body["uuid"], body)
    api.work()
    run = [e for e in api.history(revoked_job) if e["name"] == "run"]
    assert [(e["outcome"], e["reason"]) for e in run] == [("rejected", KEY_REVOKED_AFTER)]

    # then no key, secret or hash is anywhere the system writes to
    places = _places(probe, records, capsys, (mine, theirs, revoked_job, expired_job, admins.uuid))
    assert len(places["a history entry"]) >= 8 and len(probe.errors) >= len(statuses)
    assert _leaks(probe, places) == [], [
        e for e in probe.errors if any(s in e for s in probe.secrets.values())
    ]
