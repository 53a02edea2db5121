"""CLI fixtures: a CliRunner with a clean environment, the canned-response API, moto in-process for
the AWS-side commands, and the shared local stack for round trips."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tests.sdk.fake_api import FakeApi, serve_fake_api
from tests.stack_fixture import admin_client, local_stack  # noqa: F401 - shared fixtures

ADMIN = "a" * 64


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No configuration leaks in from the developer's shell, and no AWS call leaves the machine."""
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    for name in (
        "PIPELINEJOBS_URL",
        "PIPELINEJOBS_TOKEN",
        "PIPELINEJOBS_ADMIN_KEY",
        "PIPELINEJOBS_KEY",
        "PIPELINEJOBS_STACK_NAME",
        "PIPELINEJOBS_DLQ_URL",
        "PIPELINEJOBS_QUEUE_URL",
        "PIPELINEJOBS_JOB_TOKEN",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
        # Wide enough that rich never folds a uuid in the tables under test.
        "COLUMNS": "200",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    yield from serve_fake_api()
