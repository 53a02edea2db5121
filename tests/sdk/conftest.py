"""SDK fixtures: a canned-response HTTP server (unit tests) and the shared local stack (round trips)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelinejobs import Client
from tests.sdk.fake_api import FakeApi, serve_fake_api
from tests.stack_fixture import admin_client, local_stack  # noqa: F401 - shared fixtures

ADMIN = "a" * 64


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    yield from serve_fake_api()


class FakeTime:
    """The client's clock and sleep: sleeping advances the clock at once, and is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def on_fake_time(client: Client, fake_time: FakeTime) -> Client:
    """`client` with its retries and polls taking no real time (they advance `fake_time`)."""
    client._sleep = fake_time.sleep
    client._monotonic = fake_time.monotonic
    return client


@pytest.fixture
def fake_client(fake_api: FakeApi, fake_time: FakeTime) -> Client:
    """An admin client of the fake API whose retries and polls take no real time."""
    return on_fake_time(Client(fake_api.url, token=ADMIN, retries=3), fake_time)
