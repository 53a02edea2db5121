"""A credential pasted where a name goes (a field name, an event name) is never quoted back: not in an
error body, not in a history entry's reason (SPEC section 2). Found by tests/reliability's secret scan."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from jobcore.states import shown_name

if TYPE_CHECKING:
    from api_fixtures import Api

pytest_plugins = ["api_fixtures"]


def test_an_unknown_field_named_by_a_token_is_refused_without_its_name(api: Api) -> None:
    job = api.create()
    spec = {"pipeline_uuid": "p-echo", "data": {}, job.token: 1}
    response = api.call("POST", "/jobs", token=api.admin(), body=spec)
    event = api.call(
        "POST", f"/jobs/{job.uuid}/events", token=job.token, body={"name": "run", job.callback_token: 1}
    )
    for refused in (response, event):
        assert refused.status == 400
        assert job.token not in refused.text and job.callback_token not in refused.text
        assert "<field>" in refused.body["error"]["message"]


def test_an_event_named_by_a_token_is_refused_without_its_name(api: Api) -> None:
    job = api.create()
    response = api.event(job.uuid, job.token, job.callback_token)
    assert response.status == 400 and response.body["error"]["code"] == "unknown_event"
    assert job.callback_token not in response.text
    assert "unknown event (not shown)" in response.body["error"]["message"]


def test_a_queued_event_named_by_a_token_is_recorded_without_its_name(harness) -> None:
    # given a job, and a message whose event name is its callback token
    created = harness.create()
    event_id = harness.send(created.job.uuid, created.callback_token, created.token)
    harness.work()
    # then the rejection is recorded, and neither the name nor the reason holds the token
    (entry,) = harness.history(created.job.uuid)
    assert entry["event_id"] == event_id and entry["outcome"] == "rejected"
    assert created.callback_token not in json.dumps(entry)


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("explode", "'explode'"),
        ("run_", "'run_'"),
        ("pjt_" + "a" * 43, "(not shown)"),
        ("a-b", "(not shown)"),
        ("caf\u00e9", "(not shown)"),
        (7, "(not shown)"),
    ],
)
def test_only_short_plain_names_are_quoted(name: object, shown: str) -> None:
    assert shown_name(name) == shown
