"""The local stack for the SDK and CLI round-trip tests: the real API handler over HTTP, the queue
worker, moto's server.

Scope: one stack per test module (starting one costs about a second). Not per session, because a
running stack is process-wide: it sets AWS_ENDPOINT_URL and the functions' environment and runs a
worker thread that polls the emulator, which would leak into later modules that use moto in-process
(`mock_aws`) or their own settings.

Import the fixtures into a conftest: `from tests.stack_fixture import admin_client, local_stack`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipelinejobs import Client

STACK_ADMIN_KEY = "sdk-cli-tests-admin-key"


@pytest.fixture(scope="module")
def local_stack() -> Iterator[Any]:
    from pipelinejobs.local.stack import LocalStack

    with LocalStack(port=0, aws_port=0, admin_key=STACK_ADMIN_KEY, quiet=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def admin_client(local_stack: Any) -> Client:
    """A client holding the admin key, so it computes a fresh admin token per request."""
    return Client(local_stack.api_url, admin_key=local_stack.admin_key, timeout=10)
