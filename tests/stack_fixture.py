"""The local stack shared by the SDK and CLI round-trip tests: one per test session (starting it
builds every resource of template.yaml in moto, about a second).

Import the fixtures into a conftest: `from tests.stack_fixture import admin_client, local_stack`.
Tests using them are skipped when the local stack's module is not there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from pipelinejobs import Client

STACK_ADMIN_KEY = "sdk-cli-tests-admin-key"


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Any]:
    try:
        from pipelinejobs.local.stack import LocalStack
    except ImportError as error:
        pytest.skip(f"the local stack is not available: {error}")
    # The emulated AWS must never be confused with a real account.
    saved = {name: os.environ.get(name) for name in ("AWS_PROFILE",)}
    os.environ.pop("AWS_PROFILE", None)
    try:
        with LocalStack(admin_key=STACK_ADMIN_KEY, quiet=True) as stack:
            yield stack
    finally:
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


@pytest.fixture(scope="session")
def admin_client(local_stack: Any) -> Client:
    """A client holding the admin key, so it computes a fresh admin token per request."""
    return Client(local_stack.api_url, admin_key=local_stack.admin_key, timeout=10)
