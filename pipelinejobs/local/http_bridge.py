"""The HTTP API on loopback: real HTTP requests in, API Gateway HTTP API (payload 2.0) events to the API
function, its responses back out, as API Gateway does it.

The request becomes the event Lambda would get: `version` 2.0, the matched `routeKey` and
`pathParameters` (routes from the function's `HttpApi` events in template.yaml), `rawPath`,
`rawQueryString`, `queryStringParameters` (repeated keys joined by commas), lowercased `headers`
(repeated ones joined by commas), `cookies`, `requestContext` (`http.method/path/protocol/sourceIp/
userAgent`, `domainName` 127.0.0.1:<port>, `stage` $default, `requestId`, `time`, `timeEpoch`), and
`body` with `isBase64Encoded` true unless the body is UTF-8 text of a textual (or absent) content type.
A request no route matches gets a 404 without invoking the function (template.yaml's `$default` route
sends every request to the API function, which answers 404 and 405 itself); a function that raises or
overruns its Timeout gives a 500 (the details only in the local log). The bridge's own answers (also a
body over Lambda's 6 MB invocation limit, 413) have the API's error shape, `{"error": {"code",
"message"}}`, where AWS would answer `{"message": ...}`: in AWS a body over those limits is refused
before any function of ours runs, in API Gateway's or Lambda's own shape (an HTTP API cannot change
it). Bodies up to them reach the function, which refuses those over 256 KiB (413) itself.

The response: a dict with `statusCode` is written with its `headers`, `cookies` (Set-Cookie) and
`body` (base64-decoded when `isBase64Encoded`); any other value is sent as a 200 JSON document, as
API Gateway infers it.

Concurrency: each request thread takes an instance of the function from its pool (one invocation per
instance at a time, like a Lambda execution environment), so handlers that keep per-request state on a
module-level object (Powertools' resolver keeps `current_event`) never see another request's event.

Nothing is logged but method, path, status and duration: never a query string (callback URLs carry
their token there), a header, a body, or a path segment long enough to be a credential pasted into the
URL (`/jobs/<a key>` is logged `/jobs/(not shown)`).
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pipelinejobs.local.functions import FunctionPool, HttpRoute, match_route

__all__ = ["HttpBridge", "request_event"]

MAX_REQUEST_BYTES = 6 * 1024 * 1024  # Lambda's invocation payload limit
_MAX_DRAINED_BYTES = 64 * 1024 * 1024  # read and dropped from a body over it, so that the 413 arrives
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
)
_WAIT_FOR_INSTANCE = 60.0
# The longest path segment a log line shows: a job's uuid has 36 characters and an event id 39, while a
# credential has at least 43 (a hash, a producer key's secret; a job token 47, a key 60).
_SHOWN_SEGMENT = 40

EventLog = Callable[[str, str], None]


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or media.startswith(_TEXT_TYPES) or media.endswith(("+json", "+xml"))


def request_event(
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    domain_name: str,
    route: HttpRoute | None,
    path_parameters: dict[str, str] | None,
    protocol: str = "HTTP/1.1",
    account: str = "123456789012",
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload 2.0) event for one request."""
    split = urlsplit(target)
    raw_path = split.path or "/"
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            continue
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = datetime.now(UTC)
    route_key = route.route_key if route is not None else "$default"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": split.query,
        "headers": joined,
        "requestContext": {
            "accountId": account,
            "apiId": "local",
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex[:16] + "=",
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and _is_text(joined.get("content-type", "")):
            event["body"] = text
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def logged_path(target: str) -> str:
    """A request's path as the log shows it: never the query string (it may hold a token), nor a
    segment that could be a credential pasted into the path."""
    segments = urlsplit(target).path.split("/")
    return "/".join(s if len(s) <= _SHOWN_SEGMENT else "(not shown)" for s in segments)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "pipelinejobs-local"
    sys_version = ""

    def _handle(self) -> None:
        started = time.monotonic()
        status = self._respond()
        bridge = self.server.bridge
        path = logged_path(self.path)
        bridge.log(
            f"{time.strftime('%H:%M:%S')} {self.command:<6} {path} → {status} ({(time.monotonic() - started) * 1000:.0f} ms)",
            "http",
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                size += length
                if size > MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(length))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            # read it (up to a bound) and drop it, so that the client, still sending, gets the 413
            left = min(length, _MAX_DRAINED_BYTES)
            while left > 0 and (chunk := self.rfile.read(min(left, 1 << 20))):
                left -= len(chunk)
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _respond(self) -> int:
        bridge = self.server.bridge
        try:
            body = self._read_body()
        except ValueError:
            return self._error(400, "invalid_request", "the request's body framing is not valid HTTP")
        if body is None:
            self.close_connection = True
            return self._error(
                413, "payload_too_large", f"the body is over Lambda's limit of {MAX_REQUEST_BYTES} bytes"
            )
        path = urlsplit(self.path).path or "/"
        matched = match_route(bridge.routes, self.command, path)
        if matched is None:
            return self._error(404, "not_found", "no such route")
        route, parameters = matched
        event = request_event(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            domain_name=bridge.domain_name,
            route=route,
            path_parameters=parameters,
            protocol=self.request_version,
        )
        request_id = event["requestContext"]["requestId"]
        try:
            invocation = bridge.function.invoke(event, timeout=_WAIT_FOR_INSTANCE)
        except queue.Empty:
            return self._error(
                503, "unavailable", "every instance of the API function is busy; retry shortly"
            )
        if invocation.error is not None or invocation.timed_out:
            if invocation.error is not None:
                detail = "".join(traceback.format_exception(invocation.error, limit=-8))
                bridge.log(
                    f"{time.strftime('%H:%M:%S')} error     the API function raised:\n{detail.rstrip()}",
                    "error",
                )
            else:
                bridge.log(
                    f"{time.strftime('%H:%M:%S')} error     the API function overran its Timeout", "error"
                )
            return self._error(
                500, "internal_error", "an internal error occurred", {"apigw-requestid": request_id}
            )
        return self._write_response(invocation.response, request_id)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> int:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        return self._write(status, {"Content-Type": "application/json", **(headers or {})}, body)

    def _write_response(self, response: Any, request_id: str) -> int:
        if not isinstance(response, dict) or "statusCode" not in response:
            # API Gateway's inference for a payload 2.0 response without a status code.
            payload = json.dumps(response).encode()
            return self._write(
                200, {"Content-Type": "application/json", "apigw-requestid": request_id}, payload
            )
        status = int(response["statusCode"])
        headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[str(name)] = ",".join(str(v) for v in values)
        headers.setdefault("apigw-requestid", request_id)
        raw = response.get("body")
        if raw is None:
            payload = b""
        elif response.get("isBase64Encoded"):
            payload = base64.b64decode(raw)
        else:
            payload = str(raw).encode("utf-8")
        if payload and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = (
                "application/json"
                if isinstance(raw, str) and raw[:1] in "{["
                else "text/plain; charset=utf-8"
            )
        return self._write(status, headers, payload, cookies=response.get("cookies") or [])

    def _write(
        self, status: int, headers: dict[str, str], payload: bytes, cookies: list[str] | None = None
    ) -> int:
        try:
            self.send_response(
                status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
            )
        except ValueError:
            self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        for cookie in cookies or []:
            self.send_header("Set-Cookie", str(cookie))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)
        return status

    # BaseHTTPRequestHandler would print the request line, query string (and token) included.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def log_error(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    bridge: HttpBridge


class HttpBridge:
    """Serves one function's HTTP API routes on 127.0.0.1:<port> (0: a free port) in a thread."""

    def __init__(
        self,
        function: FunctionPool | None = None,
        *,
        routes: tuple[HttpRoute, ...] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log: EventLog | None = None,
    ) -> None:
        """Binds the port at once (OSError when it is taken); `function` may be given later, before start()."""
        self._function = function
        self._routes = routes
        self.log: EventLog = log or (lambda text, kind: None)
        self._server = _Server((host, port), _Handler)
        self._server.bridge = self
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self.domain_name = f"{self.host}:{self.port}"
        self._thread: threading.Thread | None = None

    @property
    def function(self) -> FunctionPool:
        if self._function is None:
            raise RuntimeError("the bridge has no function yet")
        return self._function

    @function.setter
    def function(self, function: FunctionPool) -> None:
        self._function = function

    @property
    def routes(self) -> tuple[HttpRoute, ...]:
        if self._routes is not None:
            return self._routes
        return self.function.spec.routes or (HttpRoute("ANY", "$default"),)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpBridge:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="pipelinejobs-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
