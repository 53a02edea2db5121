"""End-to-end fixtures: one local stack per session, driven over real sockets.

The stack has its own name (`pipelinejobs-e2e`), so its resources never mix with another local stack in
the same test process, and a 2 s visibility timeout, so that redelivery and the dead-letter queue
(after the template's maxReceiveCount) take seconds, not minutes.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pipelinejobs.local.stack import LocalStack

VISIBILITY_TIMEOUT = 2
STACK_NAME = "pipelinejobs-e2e"


class LogLines:
    """Every line the stack printed (it is quiet otherwise), to check that none holds a secret."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, text: str, kind: str) -> None:
        with self._lock:
            self.lines.append(text)

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)


@pytest.fixture(scope="module")
def stack_log() -> LogLines:
    return LogLines()


@pytest.fixture(scope="module")
def stack(stack_log: LogLines) -> Iterator[LocalStack]:
    # One stack per module (a folder without __init__.py gives "package" scope no meaning): its worker
    # threads and process-wide environment are gone before the next suite runs, so nothing it does
    # reaches other suites' logs, metrics or AWS call counts.
    saved = os.environ.pop("AWS_PROFILE", None)  # the emulated AWS is never confused with a real account
    try:
        with LocalStack(
            port=0,
            aws_port=0,
            quiet=True,
            log=stack_log,
            stack_name=STACK_NAME,
            overrides={"EventsQueue": {"VisibilityTimeout": VISIBILITY_TIMEOUT}},
        ) as local:
            yield local
    finally:
        if saved is not None:
            os.environ["AWS_PROFILE"] = saved


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


class Api:
    """Raw HTTP to the stack's API with urllib: what a producer without the SDK does."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        url = self.stack.api_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = ({"Content-Type": content_type} if data is not None else {}) | (headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http://127.0.0.1
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                status, header_items, payload = response.status, response.headers.items(), response.read()
        except urllib.error.HTTPError as error:
            status, header_items, payload = error.code, error.headers.items(), error.read()
        text = payload.decode()
        try:
            decoded = json.loads(text) if text else None
        except ValueError:
            decoded = text
        return Response(status, {k.lower(): v for k, v in header_items}, decoded)

    def admin(self) -> str:
        return self.stack.admin_token()

    def create_job(self, **fields: Any) -> dict[str, Any]:
        spec = {"pipeline_uuid": "e2e-pipeline", "data": {"sample": uuidlib.uuid4().hex}, **fields}
        response = self.request("POST", "/jobs", token=self.admin(), body=spec)
        assert response.status == 201, response.body
        return dict(response.body)

    def post_event(self, uuid: str, name: str, token: str, data: dict[str, Any] | None = None) -> Response:
        body: dict[str, Any] = {"name": name}
        if data is not None:
            body["data"] = data
        return self.request("POST", f"/jobs/{uuid}/events", token=token, body=body)

    def job(self, uuid: str, token: str | None = None) -> Response:
        return self.request("GET", f"/jobs/{uuid}", token=token or self.admin())

    def history(self, uuid: str) -> list[dict[str, Any]]:
        response = self.request("GET", f"/jobs/{uuid}/events", token=self.admin())
        assert response.status == 200, response.body
        return list(response.body["events"])


@pytest.fixture
def api(stack: LocalStack) -> Api:
    return Api(stack)


@pytest.fixture
def sqs(stack: LocalStack) -> Any:
    return stack.client("sqs")


@pytest.fixture
def s3(stack: LocalStack) -> Any:
    return stack.client("s3")


def queue_depth(sqs: Any, url: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
