"""What the benchmarks share: moto in-process with the stack of template.yaml, Lambda's event shapes, and
a count of every AWS request. (Not a benchmark itself: `make bench` skips files starting with `_`.)"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "bench-admin-key"


def use_project_paths(*functions: str) -> None:
    """The layer, the given functions' folders and the repository on sys.path, as Lambda and pytest
    have them."""
    for path in ("layers/core", *(f"functions/{name}" for name in functions), "."):
        if str(ROOT / path) not in sys.path:
            sys.path.insert(0, str(ROOT / path))


@contextmanager
def moto_stack(*, quiet: bool = True, stream: bool = False) -> Iterator[Any]:
    """moto in-process with the stack of template.yaml and the functions' environment; yields the
    StackResources. The table has no stream unless `stream` (moto keeps every stream record in memory;
    AWS does not bill the stream that Lambda reads): cost.py reads it for every write's old and new
    item, which its index writes are priced from."""
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
    )
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        os.environ.pop(name, None)
    use_project_paths("api", "worker", "notifier")
    from moto import mock_aws

    from pipelinejobs.local.resources import create_stack_resources

    with mock_aws():
        stack = create_stack_resources(
            ROOT / "template.yaml",
            admin_key=ADMIN_KEY,
            overrides={} if stream else {"JobsTable": {"StreamSpecification": None}},
        )
        os.environ.update(stack.environment())
        if quiet:
            # The template's INFO logs and metrics would bury the figures.
            os.environ.update({"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"})
        yield stack


class LambdaContext:
    """Enough of Lambda's context for the handlers."""

    function_name = "BenchFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:BenchFunction"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class AwsCalls:
    """Every AWS request made while `counting` (all clients, PynamoDB's included), by
    `service:Operation`, as the integration tests' `aws_calls` counts them; `params` keeps each
    request's parameters when `keep` is set, `seconds` the time spent in them (botocore and the
    emulator included)."""

    def __init__(self) -> None:
        from botocore.client import BaseClient

        self.calls: Counter[str] = Counter()
        self.params: list[tuple[str, dict[str, Any]]] = []
        self.seconds = 0.0
        self.active = False
        self.keep = False
        original = BaseClient._make_api_call
        recorder = self

        def counting(client: Any, operation: str, params: Any) -> Any:
            if not recorder.active:
                return original(client, operation, params)
            recorder.calls[f"{client.meta.service_model.service_name}:{operation}"] += 1
            if recorder.keep:
                recorder.params.append((operation, params))
            started = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                recorder.seconds += time.perf_counter() - started

        BaseClient._make_api_call = counting  # type: ignore[method-assign]

    @contextmanager
    def counting(self, *, keep: bool = False) -> Iterator[Counter[str]]:
        self.calls = Counter()
        self.params = []
        self.seconds = 0.0
        self.active, self.keep = True, keep
        try:
            yield self.calls
        finally:
            self.active = self.keep = False
