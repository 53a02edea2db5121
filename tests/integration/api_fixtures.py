"""Fixtures and helpers for the HTTP API tests: API Gateway HTTP API (payload v2) events, the handler
called as Lambda would call it, and the worker run on what the API queued.

Import the fixtures into a test module (`from api_fixtures import api  # noqa: F401`); they build on the
shared `harness` fixture of conftest.py (moto, the stack from template.yaml, the worker handler).
"""

from __future__ import annotations

import base64
import json
import re
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from jobcore.access import ApiService

# The HTTP API's routes, as template.yaml declares them (routeKey of the events API Gateway sends).
ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", "/jobs"),
    ("GET", "/jobs"),
    ("GET", "/jobs/counts"),
    ("GET", "/jobs/{uuid}"),
    ("POST", "/jobs/{uuid}/events"),
    ("GET", "/jobs/{uuid}/events"),
    ("GET", "/jobs/{uuid}/events/{event_id}"),
    ("GET", "/jobs/{uuid}/outputs"),
    ("POST", "/jobs/{uuid}/callback"),
    ("POST", "/jobs/{uuid}/token"),
    ("POST", "/keys"),
    ("GET", "/keys"),
    ("DELETE", "/keys/{key_id}"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/"),
    ("GET", "/ui/{asset}"),
    ("GET", "/dlq"),
    ("POST", "/dlq/redrive"),
)


def route_key(method: str, path: str) -> str:
    """`POST /jobs/{uuid}/events` for `POST /jobs/0b4f.../events` (`$default` when no route matches)."""
    for route_method, template in ROUTES:
        pattern = "^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(template)) + "$"
        if route_method == method and re.match(pattern, path):
            return f"{method} {template}"
    return "$default"


def http_event(
    method: str,
    path: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    base64_body: bool = False,
    domain: str = "api.example.com",
    stage: str = "$default",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as the Lambda integration receives it."""
    all_headers = {"content-type": "application/json", "host": domain, "user-agent": "pytest"}
    if token is not None:
        all_headers["authorization"] = f"Bearer {token}"
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    if text is not None and base64_body:
        text = base64.b64encode(text.encode()).decode()
    key = route_key(method, path)
    return {
        "version": "2.0",
        "routeKey": key,
        "rawPath": path if stage == "$default" else f"/{stage}{path}",
        "rawQueryString": urlencode(query or {}),
        "headers": all_headers,
        "queryStringParameters": dict(query) if query else None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api1234567",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "pytest",
            },
            "requestId": str(uuidlib.uuid4()),
            "routeKey": key,
            "stage": stage,
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "body": text,
        "isBase64Encoded": base64_body,
    }


class LambdaContext:
    """Enough of Lambda's context for the API handler's logger."""

    function_name = "ApiFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    aws_request_id = "test-request"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text)

    @property
    def error(self) -> str:
        return str(self.body["error"]["code"])


@dataclass
class CreatedJob:
    uuid: str
    token: str
    callback_url: str
    body: dict[str, Any]

    @property
    def callback_token(self) -> str:
        return parse_qs(urlsplit(self.callback_url).query)["token"][0]


class Api:
    """Calls the API handler with HTTP API events; runs the worker on what it queued."""

    def __init__(self, harness: Any, service: ApiService) -> None:
        self.harness = harness
        self.service = service
        self.clock = harness.clock

    def admin(self) -> str:
        return str(self.harness.admin())

    def call(self, method: str, path: str, **kwargs: Any) -> HttpResponse:
        import api_handler

        response = api_handler.handler(http_event(method, path, **kwargs), LambdaContext())
        assert set(response) >= {"statusCode", "body"}
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        return HttpResponse(response["statusCode"], headers, response["body"])

    def create(self, **spec: Any) -> CreatedJob:
        spec.setdefault("pipeline_uuid", "pipeline-1")
        spec.setdefault("data", {"sample": str(uuidlib.uuid4())})
        response = self.call("POST", "/jobs", token=self.admin(), body=spec)
        assert response.status == 201, response.text
        body = response.body
        return CreatedJob(body["job"]["uuid"], body["token"], body["callback_url"], body)

    def event(
        self,
        uuid: str,
        token: str | None,
        name: str,
        data: dict[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> HttpResponse:
        """POST /jobs/{uuid}/events; `key`: its Idempotency-Key header."""
        body: dict[str, Any] = {"name": name}
        if data is not None:
            body["data"] = data
        headers = {"Idempotency-Key": key} if key is not None else None
        return self.call("POST", f"/jobs/{uuid}/events", token=token, body=body, headers=headers)

    def send(self, job: CreatedJob, name: str, data: dict[str, Any] | None = None) -> str:
        """Post an event with the job's token, follow the token, run the worker. Returns the event id."""
        response = self.event(job.uuid, job.token, name, data)
        assert response.status == 202, response.text
        job.token = response.body["token"]
        self.work()
        return str(response.body["event_id"])

    def callback(
        self,
        job: CreatedJob,
        status: str | None = None,
        body: Any = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> HttpResponse:
        query = {"token": job.callback_token if token is None else token}
        if status is not None:
            query["status"] = status
        return self.call("POST", f"/jobs/{job.uuid}/callback", query=query, body=body, **kwargs)

    def work(self) -> int:
        return int(self.harness.work())

    def queued(self) -> list[dict[str, Any]]:
        """The bodies waiting on the queue (received and dropped)."""
        messages = self.harness.receive(10)
        for m in messages:
            self.harness.sqs.delete_message(
                QueueUrl=self.harness.resources.queue_url, ReceiptHandle=m["ReceiptHandle"]
            )
        return [
            json.loads(m["Body"])
            | {
                "_group": m["Attributes"]["MessageGroupId"],
                "_dedup": m["Attributes"]["MessageDeduplicationId"],
            }
            for m in messages
        ]

    def history(self, job: CreatedJob | str, token: str | None = None) -> list[dict[str, Any]]:
        uuid = job if isinstance(job, str) else job.uuid
        response = self.call("GET", f"/jobs/{uuid}/events", token=token or self.admin())
        assert response.status == 200, response.text
        return list(response.body["events"])

    def get(self, job: CreatedJob | str, token: str | None = None) -> HttpResponse:
        uuid = job if isinstance(job, str) else job.uuid
        return self.call("GET", f"/jobs/{uuid}", token=token or self.admin())


@pytest.fixture
def api(harness: Any, monkeypatch: pytest.MonkeyPatch) -> Api:
    """The API handler on the harness's stack and clock (the worker's too, so grace periods agree)."""
    import api_handler

    service = api_handler.build_service(clock=harness.clock)
    monkeypatch.setattr(api_handler, "_deps", lambda: service)
    return Api(harness, service)
