"""The HTTP API fuzzed with schemathesis from its own /openapi.json, on the local stack (issue 5, item 2).

Every operation gets schema-valid (positive) and schema-breaking (negative) requests, each sent with a
credential drawn from what a caller might hold: none, a malformed header, token-shaped garbage, an admin
token two windows old, another job's tokens, a revoked producer key, a key's id with a wrong secret, an
unknown key, another owner's key on a job (all refused), or a valid admin token, a job's own job or
callback token and a producer key (so that cases get past the credential check and reach the routes'
logic). Path uuids are the generated ones, or those of real jobs (an admin's, or the key's own):

- *live* jobs, which the valid credentials may change: every change must come from an accepted (2xx)
  request, and every accepted event is in the job's history exactly once;
- *witness* jobs (one of them the valid key's, one the revoked key's), only ever sent refused
  credentials: nothing about them may change.

Each answer: no 5xx; a refused credential never gets a 2xx (nor the key on a job it does not own); an
error body is `{"error": {"code", "message"}}`; status, content type, headers and body conform to the
document wherever schemathesis can check it; and nothing reaches the dead-letter queue.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi import checks as openapi_checks

from jobcore.tokens import admin_token
from tests.reliability.conftest import (
    Figures,
    Output,
    RecordingApi,
    Secrets,
    Sentinel,
    dead_lettered,
    job_view,
    make_sentinels,
    snapshot,
)

pytestmark = pytest.mark.e2e

OPERATIONS = (
    "POST /jobs",
    "GET /jobs",
    "GET /jobs/counts",
    "GET /jobs/{uuid}",
    "POST /jobs/{uuid}/events",
    "GET /jobs/{uuid}/events",
    "GET /jobs/{uuid}/events/{event_id}",
    "GET /jobs/{uuid}/outputs",
    "POST /jobs/{uuid}/callback",
    "POST /jobs/{uuid}/token",
    "POST /keys",
    "GET /keys",
    "DELETE /keys/{key_id}",
    "GET /dlq",
    "POST /dlq/redrive",
)
CASES_PER_RUN = 57  # per operation and mode: 15 x 2 x 57 = 1,710 cases
MIN_CASES = 1000

REFUSED = (
    "none",
    "not_bearer",
    "garbage_job",
    "garbage_callback",
    "garbage_admin",
    "admin_two_windows_ago",
    "foreign_job",
    "foreign_callback",
    "revoked_key",
    "wrong_secret_key",
    "unknown_key",
)
ON_A_JOB_REFUSED = ("other_owners_key",)  # a valid key (it may create and list): refused on these jobs
GRANTED = ("own_job", "admin", "own_callback", "own_key")
KEY_KINDS = ("own_key", "other_owners_key", "revoked_key", "wrong_secret_key", "unknown_key")
TARGETS = ("live", "generated", "live", "witness")  # hypothesis draws the first ones more often
CHECKS = [
    not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]


def _checks_for(case: Any, status: int) -> list[Any]:
    """CHECKS, less `negative_data_rejection` for a "negative" case that this test made valid.

    The test puts its own credential in `Authorization` on every case, so a case made negative by the
    header's absence (and, besides it, only by a query value) reaches the API as a valid request once
    its query is valid as sent: a one-element array goes on the wire as its one value, a number as its
    text. Schemathesis judges such a query by the array it generated, and a 2xx to it is right."""
    meta = case.meta
    if meta is None or status >= 400 or not meta.generation.mode.is_negative:
        return CHECKS
    negative = {location for location, info in meta.components.items() if info.mode.is_negative}
    if not negative <= {ParameterLocation.QUERY, ParameterLocation.HEADER}:
        return CHECKS
    sent: dict[str, str] = {}
    for name, value in (case.query or {}).items():
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, (list, dict)) or value is None or isinstance(value, bool):
            return CHECKS  # sent some other way than as one text value: judged as generated
        sent[name] = str(value)
    validator = case.operation.schema.adapter.jsonschema_validator_cls
    declared = {parameter.name.lower(): parameter.name for parameter in case.operation.headers}
    headers = {declared[k.lower()]: v for k, v in (case.headers or {}).items() if k.lower() in declared}
    if not case._validate_component(ParameterLocation.QUERY, sent, validator) or not case._validate_component(
        ParameterLocation.HEADER, headers, validator
    ):
        return CHECKS
    return [check for check in CHECKS if check is not openapi_checks.negative_data_rejection]


TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass
class FuzzJobs:
    live: list[Sentinel]
    witnesses: list[Sentinel]
    key: str  # a producer key for every pipeline, owner of `owned`
    other_key: str  # a valid key that owns none of these jobs
    revoked_key: str  # revoked, after it created a witness
    revoked_key_id: str
    owned: set[str]  # the uuids of the key's jobs
    accepted: defaultdict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def by_uuid(self, uuid: str) -> Sentinel | None:
        return next((s for s in self.live + self.witnesses if s.uuid == uuid), None)


@pytest.fixture(scope="module")
def jobs(api: RecordingApi) -> FuzzJobs:
    *live, created, finished = make_sentinels(
        api, ("CREATED", "RUNNING", "VALIDATING", "CREATED", "FINISHED"), "fuzz"
    )
    key, other_key, revoked = (api.issue_key(["*"], label=f"fuzz {n}") for n in ("key", "other", "revoked"))
    *keys_live, keys_witness = make_sentinels(
        api, ("CREATED", "RUNNING", "RUNNING"), "fuzz key", key=key["key"]
    )
    (revokeds,) = make_sentinels(api, ("RUNNING",), "fuzz revoked key", key=revoked["key"])
    assert api.request("DELETE", f"/keys/{revoked['id']}", token=api.admin()).status == 200
    return FuzzJobs(
        [*live, *keys_live],
        [created, finished, keys_witness, revokeds],
        key["key"],
        other_key["key"],
        revoked["key"],
        revoked["id"],
        {job.uuid for job in (*keys_live, keys_witness)},
    )


@pytest.fixture(scope="module")
def schema(stack: Any) -> Any:
    return schemathesis.openapi.from_url(stack.api_url + "/openapi.json")


@pytest.fixture(scope="module")
def session() -> requests.Session:
    return requests.Session()


def test_every_operation_of_the_document_is_fuzzed(schema: Any) -> None:
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert labels == set(OPERATIONS)


def _credential(
    kind: str, target: Sentinel | None, jobs: FuzzJobs, api: RecordingApi, garbage: str
) -> str | None:
    """The token a caller of this kind holds for `target` (None: no credential at all)."""
    stack = api.stack
    others = [s for s in jobs.live if s is not target]
    own = target if target is not None and target in jobs.live else jobs.live[0]
    return {
        "none": None,
        "not_bearer": None,
        "garbage_job": "pjt_" + garbage,
        "garbage_callback": "pjc_" + garbage,
        "garbage_admin": (garbage.encode().hex() * 2)[:64],
        "admin_two_windows_ago": admin_token(
            stack.admin_key, time.time() - 2 * stack.admin_token_lifetime, stack.admin_token_lifetime
        ),
        "foreign_job": others[0].token,
        "foreign_callback": others[0].callback_token,
        "revoked_key": jobs.revoked_key,
        "wrong_secret_key": f"{jobs.key[:17]}{garbage}",
        "unknown_key": f"pjk_{garbage[-12:]}_{garbage}",
        "other_owners_key": jobs.other_key,
        "admin": stack.admin_token(),
        "own_job": own.token,
        "own_callback": own.callback_token,
        "own_key": jobs.key,
    }[kind]


def _must_be_refused(kind: str, target: Sentinel | None, path: str, jobs: FuzzJobs) -> bool:
    """What the credential rules say of a case before it is sent: refused whatever the request is."""
    if kind in REFUSED or kind in ON_A_JOB_REFUSED:
        return True
    if path.startswith("/keys"):
        return kind != "admin"  # keys are managed by an admin only
    return kind == "own_key" and "{uuid}" in path and (target is None or target.uuid not in jobs.owned)


def _is_error_body(body: Any, status: int) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    extra = set(body) - {"error"}
    if extra and not (status == 409 and extra == {"uuid"}):
        return False
    error = body["error"]
    return set(error) == {"code", "message"} and all(isinstance(error[k], str) and error[k] for k in error)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzzed_requests_get_4xx_in_the_error_format_and_change_no_job_they_are_refused_on(
    label: str,
    mode: GenerationMode,
    schema: Any,
    session: requests.Session,
    jobs: FuzzJobs,
    api: RecordingApi,
    sqs: Any,
    output: Output,
    secrets: Secrets,
    figures: Figures,
) -> None:
    # given the live and witness jobs as they are now
    stack = api.stack
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    snapshot(api, jobs.live + jobs.witnesses)
    unhandled = output.unhandled()
    statuses: Counter[int] = Counter()
    key_cases: Counter[str] = Counter()
    key_refused: Counter[str] = Counter()

    # when hypothesis sends generated requests with every kind of credential
    @settings(
        max_examples=CASES_PER_RUN,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def fuzz(case: Any, data: st.DataObject) -> None:
        target_kind = data.draw(st.sampled_from(TARGETS), label="target")
        target = None
        if target_kind != "generated" and "uuid" in (case.path_parameters or {}):
            target = data.draw(st.sampled_from(jobs.live if target_kind == "live" else jobs.witnesses))
            case.path_parameters["uuid"] = target.uuid
            if "event_id" in case.path_parameters and data.draw(st.booleans(), label="known event id"):
                known = [e["event_id"] for e in target.history_before] + jobs.accepted[target.uuid]
                if known:
                    case.path_parameters["event_id"] = data.draw(st.sampled_from(known))
        on_a_job = ON_A_JOB_REFUSED if target is not None else ()
        if "key_id" in (case.path_parameters or {}) and data.draw(st.booleans(), label="a real key id"):
            case.path_parameters["key_id"] = jobs.revoked_key_id  # revoking it again changes nothing
        choices = (
            REFUSED + on_a_job
            if target is not None and target in jobs.witnesses
            else GRANTED + REFUSED + on_a_job
        )
        kind = data.draw(st.sampled_from(choices), label="credential")
        garbage = data.draw(st.text(TOKEN_ALPHABET, min_size=43, max_size=43), label="garbage")
        token = _credential(kind, target, jobs, api, garbage)
        secrets.add(token)
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        if kind == "not_bearer":
            headers["Authorization"] = "Basic dXNlcjpwYXNzd29yZA=="
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        case.headers = headers
        if path.endswith("/callback"):  # the callback URL carries its token in the query string
            query = dict(case.query or {})
            query.pop("token", None)
            if token is not None:
                query["token"] = token
            case.query = query

        response = case.call(session=session)
        statuses[response.status_code] += 1
        if kind in KEY_KINDS:
            key_cases[kind] += 1
            key_refused[kind] += int(response.status_code >= 400)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        api.observe(response.status_code, body)
        # then no 5xx, the error format, and what the document promises
        case.validate_response(response, checks=_checks_for(case, response.status_code))
        if _must_be_refused(kind, target, path, jobs):
            assert response.status_code >= 400, (kind, label, response.status_code, body)
        if response.status_code >= 400:
            assert _is_error_body(body, response.status_code), (response.status_code, body)
        elif target is not None:
            _follow(target, kind, path, body, jobs)

    fuzz()
    figures.api_cases[label] += sum(statuses.values())
    figures.api_statuses.update(statuses)
    figures.api_authorized += sum(n for status, n in statuses.items() if status not in (401, 403))
    figures.api_key_cases.update(key_cases)
    figures.api_key_refused.update(key_refused)

    # then, once the queue has drained, a witness job is as it was, a live one changed only by what was
    # accepted, each accepted event recorded once, and nothing was dead-lettered or failed
    stack.drain(timeout=60)
    changed = 0
    for sentinel in jobs.live + jobs.witnesses:
        figures.jobs_checked += 1
        after, history = job_view(api, sentinel.uuid), api.history(sentinel.uuid)
        accepted = jobs.accepted[sentinel.uuid]
        before_ids = {e["event_id"] for e in sentinel.history_before}
        new_ids = Counter(e["event_id"] for e in history if e["event_id"] not in before_ids)
        unexplained = set(new_ids) - set(accepted) - {f"{i}:erased" for i in accepted}
        if unexplained or (not new_ids and after != sentinel.before):
            changed += 1
        assert not unexplained, f"{sentinel.uuid}: history entries of no accepted request: {unexplained}"
        assert all(n == 1 for n in new_ids.values()), new_ids
        if not new_ids:
            # (a rotation accepted for it changes its credentials, its callback URL among them, and no more)
            unchanged = _without_credentials if sentinel.rotated else (lambda view: view)
            assert unchanged(after) == unchanged(sentinel.before), (
                f"{sentinel.uuid} changed without an accepted request"
            )
    figures.jobs_changed_by_rejected_input += changed
    ids_seen = {e["event_id"] for s in jobs.live for e in api.history(s.uuid)}
    assert {i for s in jobs.live for i in jobs.accepted[s.uuid]} <= ids_seen
    figures.dead_lettered = dead_lettered(stack, sqs)
    assert figures.dead_lettered == 0
    assert output.unhandled() == unhandled, output.failures[unhandled:]
    assert statuses, "no case was generated"


def _without_credentials(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("callback_url", "token")}


def _follow(target: Sentinel, kind: str, path: str, body: Any, jobs: FuzzJobs) -> None:
    """Keep a live job's credentials current, and note what was accepted for it."""
    if not isinstance(body, dict):
        return
    if path.endswith(("/events", "/callback")) and "event_id" in body:
        jobs.accepted[target.uuid].append(body["event_id"])
    token = body.get("token")
    if isinstance(token, str) and (
        kind == "own_job" or (kind in ("admin", "own_key") and path.endswith("/token"))
    ):
        target.token = token
    if path.endswith("/token") and token is not None:
        target.rotated = True
    if isinstance(body.get("callback_url"), str):
        from urllib.parse import parse_qs, urlsplit

        target.callback_token = parse_qs(urlsplit(body["callback_url"]).query)["token"][0]


def test_at_least_a_thousand_cases_ran_and_none_was_a_server_error(figures: Figures) -> None:
    # (after the runs above: the target of issue 5)
    assert sum(figures.api_cases.values()) >= MIN_CASES, figures.api_cases
    assert set(figures.api_cases) == set(OPERATIONS)
    assert figures.api_authorized >= MIN_CASES // 4, figures.api_statuses
    assert not [s for s in figures.api_statuses if s >= 500], figures.api_statuses
    # and every kind of producer key was tried, the valid one getting past the check now and then
    assert set(figures.api_key_cases) == set(KEY_KINDS), figures.api_key_cases
    assert figures.api_key_refused["own_key"] < figures.api_key_cases["own_key"], figures.api_key_refused
