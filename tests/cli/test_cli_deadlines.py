"""`jobs create` with deadlines (SPEC section 3a): durations as people write them, the pipeline's default
left alone unless asked, and a mistyped duration refused before any request."""

from __future__ import annotations

import pytest

from pipelinejobs.cli import app
from tests.cli.conftest import ADMIN
from tests.sdk.fake_api import FakeApi

U1 = "11111111-1111-5111-8111-111111111111"
JOB = {
    "uuid": U1,
    "pipeline_uuid": "pipe-1",
    "state": "CREATED",
    "generation": 1,
    "created_at": "2026-12-02T12:00:00.000Z",
    "updated_at": "2026-12-02T12:00:00.000Z",
    "heartbeat_seconds": 600,
    "timeout_seconds": None,
    "allowed_events": ["run"],
}


def create(runner, fake_api: FakeApi, *args: str):
    fake_api.route("POST", "/jobs", 201, {"job": JOB, "token": "pjt_x", "callback_url": "http://cb"})
    return runner.invoke(app, ["--url", fake_api.url, "--token", ADMIN, "jobs", "create", "pipe-1", *args])


@pytest.mark.parametrize(
    ("given", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("10M", 600)]
)
def test_a_heartbeat_and_a_timeout_are_sent_in_seconds(runner, fake_api, given, seconds):
    result = create(runner, fake_api, "--heartbeat", given, "--timeout", "6h")
    assert result.exit_code == 0, result.stderr
    body = fake_api.calls("POST", "/jobs")[0].body
    assert (body["heartbeat_seconds"], body["timeout_seconds"]) == (seconds, 6 * 3600)


def test_without_options_the_pipeline_default_applies(runner, fake_api):
    result = create(runner, fake_api)
    assert result.exit_code == 0, result.stderr
    body = fake_api.calls("POST", "/jobs")[0].body
    assert "heartbeat_seconds" not in body and "timeout_seconds" not in body


def test_no_deadlines_opts_out_of_the_default_for_what_is_not_given(runner, fake_api):
    result = create(runner, fake_api, "--no-deadlines", "--timeout", "1h")
    assert result.exit_code == 0, result.stderr
    body = fake_api.calls("POST", "/jobs")[0].body
    assert body["heartbeat_seconds"] is None and body["timeout_seconds"] == 3600


@pytest.mark.parametrize("given", ["ten", "1.5h", "-5", "5y", "1w", ""])
def test_a_mistyped_duration_is_refused_before_any_request(runner, fake_api, given):
    result = create(runner, fake_api, "--heartbeat", given)
    assert result.exit_code == 2
    assert "--heartbeat must be a whole number of seconds" in result.stderr
    assert fake_api.calls("POST", "/jobs") == []


def test_the_api_refusing_a_duration_says_so(runner, fake_api):
    message = "invalid job: heartbeat_seconds: Input should be less than or equal to 31622400"
    fake_api.route("POST", "/jobs", 400, {"error": {"code": "invalid_request", "message": message}})
    result = runner.invoke(
        app, ["--url", fake_api.url, "--token", ADMIN, "jobs", "create", "pipe-1", "--heartbeat", "400d"]
    )
    assert result.exit_code != 0
    assert "heartbeat_seconds" in result.stderr and "31622400" in result.stderr
