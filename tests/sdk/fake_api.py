"""A tiny stdlib HTTP server answering with canned responses, for unit tests of the SDK's HTTP behaviour.

    api.route("POST", "/jobs", 201, {"job": {...}, "token": "t1"})      # always this answer
    api.route("GET", "/jobs/u1", [(503, {...}), (200, {...})])          # one answer per call, then the last
    api.route("GET", r"/jobs/(?P<uuid>[^/]+)", lambda request: (200, {...}))

Every request is recorded (method, path, query, headers, body) in `api.requests`.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    answers: Callable[[Recorded], Answer] | list[Answer]
    calls: int = 0


@dataclass
class FakeApi:
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    _routes: list[_Route] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def route(
        self, method: str, path: str, status_or_answers: Any, body: Any = None, headers: Any = None
    ) -> None:
        """Answer `method path` (a regex, fully matched). Later routes win over earlier ones."""
        if isinstance(status_or_answers, int):
            answers: Any = [(status_or_answers, body, headers or {})]
        else:
            answers = status_or_answers
        self._routes.insert(0, _Route(method, re.compile(path), answers))

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.fullmatch(path, r.path)]

    def answer(self, recorded: Recorded) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append(recorded)
            for route in self._routes:
                if route.method == recorded.method and route.pattern.fullmatch(recorded.path):
                    if callable(route.answers):
                        answer = route.answers(recorded)
                    else:
                        answer = route.answers[min(route.calls, len(route.answers) - 1)]
                    route.calls += 1
                    status, body, *rest = answer
                    return status, body, (rest[0] if rest else {}) or {}
        return 404, {"error": {"code": "not_found", "message": f"no route {recorded.path}"}}, {}


def _handler_for(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            recorded = Recorded(
                self.command,
                parts.path,
                dict(urllib.parse.parse_qsl(parts.query)),
                {k.lower(): v for k, v in self.headers.items()},
                body,
            )
            status, answer, headers = api.answer(recorded)
            payload = (
                b""
                if answer is None
                else (answer if isinstance(answer, bytes) else json.dumps(answer).encode())
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _serve

    return Handler


def serve_fake_api() -> Iterator[FakeApi]:
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(api))
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
