"""The dashboard's side of the HTTP API (SPEC sections 5 and 9, issue 13): the page and its two files,
served by the API function with a Content-Security-Policy that allows no inline script; and the
dead-letter queue for an admin (`GET /dlq`, `POST /dlq/redrive`): its depth, a look that leaves the
messages where they are and never shows a token, and redrive back to the events queue."""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from typing import TYPE_CHECKING, Any

import pytest
from test_api_keys import issue

if TYPE_CHECKING:
    from api_fixtures import Api

pytest_plugins = ["api_fixtures"]

DASHBOARD_FILES = ("app.js", "app.css", "favicon.svg")


# -- the page ----------------------------------------------------------------------------------------


def test_the_page_is_served_with_a_policy_that_allows_no_inline_script(api: Api) -> None:
    # when a browser asks for the API's root, without any credential
    response = api.call("GET", "/")
    # then it gets the dashboard's HTML
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script src="ui/app.js" defer></script>' in response.text
    # and a policy that runs only the API's own script, loads nothing from elsewhere, and frames nothing
    directives = [
        part.strip().partition(" ") for part in response.headers["content-security-policy"].split(";")
    ]
    policy = {name: value for name, _, value in directives}
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_page_has_no_inline_script_or_style_for_its_policy_to_block(api: Api) -> None:
    # when the page is read
    html = api.call("GET", "/").text
    # then every script is the API's own file, and nothing is styled or scripted inline
    assert re.findall(r"<script[^>]*>", html) == ['<script src="ui/app.js" defer>']
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)
    assert " style=" not in html and "<style" not in html


@pytest.mark.parametrize("asset", DASHBOARD_FILES)
def test_each_file_of_the_page_is_served_with_its_type(api: Api, asset: str) -> None:
    # when the page loads one of its files
    response = api.call("GET", f"/ui/{asset}")
    # then it comes with its content type and the same policy
    assert response.status == 200
    expected = {"app.js": "text/javascript", "app.css": "text/css", "favicon.svg": "image/svg+xml"}[asset]
    assert response.headers["content-type"].startswith(expected)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.text.strip()


@pytest.mark.parametrize("asset", ["nope.js", "..%2Fapi_handler.py", "index.html.bak", "%2e%2e"])
def test_a_file_the_page_does_not_have_is_a_404_in_the_api_shape(api: Api, asset: str) -> None:
    # when anything but the page's own files is asked for under /ui/
    response = api.call("GET", f"/ui/{asset}")
    # then it is a 404 with the API's error shape, and no file of the function is read out
    assert response.status == 404
    assert response.error == "not_found"
    assert "import" not in response.text


def test_the_script_never_writes_markup(api: Api) -> None:
    # Job data, names, tags and history are hostile input: the script builds the page from text nodes.
    script = api.call("GET", "/ui/app.js").text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script.replace("no innerHTML, no insertAdjacentHTML, no document.write", "")


def test_another_method_on_the_page_is_a_405(api: Api) -> None:
    # when something posts to the page
    response = api.call("POST", "/")
    # then it is told which method the page takes
    assert response.status == 405
    assert response.headers["allow"] == "GET"


def test_the_page_does_not_load_the_api_document_or_its_models(api: Api) -> None:
    # The page is a static file: serving it builds no OpenAPI schema (that costs the JSON routes' cold
    # start when it happens), and reading it twice reads the file once.
    import api_handler

    api_handler._dashboard_file.cache_clear()
    api_handler.openapi_settings.cache_clear()
    api.call("GET", "/")
    api.call("GET", "/")
    assert api_handler._dashboard_file.cache_info().misses == 1
    assert api_handler.openapi_settings.cache_info().currsize == 0


# -- the dead-letter queue ---------------------------------------------------------------------------


def dead_letter(api: Api, body: dict[str, Any] | str, group: str | None = None) -> str:
    """A message put on the dead-letter queue as the events queue's redrive would leave it."""
    text = body if isinstance(body, str) else json.dumps(body)
    group = group or (body.get("uuid") if isinstance(body, dict) else None) or "raw"
    api.harness.sqs.send_message(
        QueueUrl=api.harness.resources.dead_letter_queue_url,
        MessageBody=text,
        MessageGroupId=group,
        MessageDeduplicationId=str(uuidlib.uuid4()),
    )
    return text


def drain(sqs: Any, url: str) -> None:
    # (not PurgeQueue: SQS allows one purge a minute per queue)
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def empty_dead_letters(api: Api) -> Any:
    sqs, url = api.harness.sqs, api.harness.resources.dead_letter_queue_url
    drain(sqs, url)
    yield
    drain(sqs, url)


def test_an_admin_sees_the_dead_letters_without_their_tokens_and_they_stay(
    api: Api, empty_dead_letters: None
) -> None:
    # given two events of a job in the dead-letter queue, one carrying the job's token
    job = api.create()
    dead_letter(
        api, {"uuid": job.uuid, "name": "update", "token": job.token, "event_id": "ev-1", "data": {"p": 1}}
    )
    dead_letter(api, "not json at all", group="raw")
    # when an admin looks at the queue, twice
    first = api.call("GET", "/dlq", token=api.admin())
    second = api.call("GET", "/dlq", token=api.admin(), query={"limit": "5"})
    # then both see both messages: a look leaves them in the queue
    assert first.status == 200, first.text
    assert first.body["approximate_count"] == 2
    assert len(second.body["messages"]) == 2
    described = {m["message_id"]: m for m in first.body["messages"]}
    event = next(m for m in described.values() if m["uuid"] == job.uuid)
    assert (event["name"], event["event_id"], event["data"], event["group_id"]) == (
        "update", "ev-1", {"p": 1}, job.uuid,
    )  # fmt: skip
    # and no token is shown, whatever the message held
    assert job.token not in first.text
    assert "token" not in json.dumps(first.body["messages"])


def test_redrive_moves_dead_letters_back_and_the_event_is_applied_once(
    api: Api, empty_dead_letters: None
) -> None:
    # given a job's run in the dead-letter queue (the worker's machinery failed on it five times)
    job = api.create()
    dead_letter(api, {"uuid": job.uuid, "name": "run", "token": job.token, "event_id": "run-dl"})
    # when an admin redrives, one message at most per call, then again
    first = api.call("POST", "/dlq/redrive", token=api.admin(), body={"max": 1})
    again = api.call("POST", "/dlq/redrive", token=api.admin())
    api.work()
    # then the message went back to the events queue and the worker applied it, once
    assert first.status == 200, first.text
    assert first.body == {"moved": 1, "remaining": 0}
    assert again.body == {"moved": 0, "remaining": 0}
    assert api.get(job).body["state"] == "RUNNING"
    runs = [e for e in api.history(job) if e["name"] == "run"]
    assert [(e["event_id"], e["outcome"]) for e in runs] == [("run-dl", "applied")]
    # and the queue is empty to the next look
    assert api.call("GET", "/dlq", token=api.admin()).body == {"approximate_count": 0, "messages": []}


@pytest.mark.parametrize(("method", "path"), [("GET", "/dlq"), ("POST", "/dlq/redrive")])
def test_the_dead_letter_queue_is_an_admins(
    api: Api, method: str, path: str, empty_dead_letters: None
) -> None:
    # given a dead letter, a producer key and a job token
    job = api.create()
    dead_letter(api, {"uuid": job.uuid, "name": "update", "token": job.token})
    key = issue(api)
    # when anyone but an admin asks
    anonymous = api.call(method, path)
    keyed = api.call(method, path, token=key.key)
    job_token = api.call(method, path, token=job.token)
    # then they are refused, and the message is still there
    assert anonymous.status == 401 and anonymous.error == "unauthorized"
    assert keyed.status == 403 and keyed.error == "forbidden"
    assert job_token.status == 403
    assert api.call("GET", "/dlq", token=api.admin()).body["approximate_count"] == 1


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/dlq", {"query": {"limit": "0"}}),
        ("GET", "/dlq", {"query": {"limit": "51"}}),
        ("GET", "/dlq", {"query": {"limit": "many"}}),
        ("POST", "/dlq/redrive", {"body": {"max": 0}}),
        ("POST", "/dlq/redrive", {"body": {"max": 101}}),
        ("POST", "/dlq/redrive", {"body": {"max": 5, "all": True}}),
        ("POST", "/dlq/redrive", {"body": [1]}),
    ],
)
def test_a_malformed_dead_letter_request_is_a_400(
    api: Api, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = api.call(method, path, token=api.admin(), **kwargs)
    assert response.status == 400, response.text
    assert response.error == "invalid_request"


def test_a_deployment_without_a_dead_letter_queue_says_so(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # given an API told of no dead-letter queue
    import api_handler

    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")
    service = api_handler.build_service(clock=api.clock)
    monkeypatch.setattr(api_handler, "_deps", lambda: service)
    # when an admin looks
    response = api.call("GET", "/dlq", token=api.admin())
    # then the answer says what is missing, as a 404 in the API's shape
    assert response.status == 404
    assert response.error == "not_configured"
    assert "DEAD_LETTER_QUEUE_URL" in response.body["error"]["message"]


def test_the_json_routes_pay_nothing_for_the_dashboard(api: Api) -> None:
    # given a container that has served JSON routes only
    import subprocess
    import sys
    from pathlib import Path

    import api_handler

    api_handler._dashboard_file.cache_clear()
    api.call("GET", "/jobs", token=api.admin())
    api.call("POST", "/jobs", token=api.admin(), body={"pipeline_uuid": "p", "data": {"n": 1}})
    # then no file of the page was read, and no dead-letter client built
    assert api_handler._dashboard_file.cache_info().misses == 0
    assert api.service._dead_letters is None
    # and a cold start (the handler imported in a fresh interpreter) loads none of the dead-letter code
    root = Path(__file__).resolve().parents[2]
    code = "import sys, api_handler; print('jobcore.adapters.dead_letters' in sys.modules)"
    env = {"PYTHONPATH": f"{root / 'layers/core'}:{root / 'functions/api'}", "PATH": "/usr/bin:/bin"}
    output = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"
