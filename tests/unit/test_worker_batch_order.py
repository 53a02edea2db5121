"""The worker's in-batch ordering (worker_handler.in_accepted_order): accepted events of one message
group back in the API's order, without moving any of them past a message the API did not order."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def worker_handler(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The handler module, imported (if this is its first import) with the template's Powertools
    settings: its Logger and Metrics read them when the module is imported, and later tests share it."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "pipelinejobs")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "PipelineJobs")
    import worker_handler

    return worker_handler


def record(name: str, group: str = "g", seq: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"uuid": group, "name": name}
    if seq is not None:
        body["seq"] = seq
    return {"messageId": name, "body": json.dumps(body), "attributes": {"MessageGroupId": group}}


def names(records: list[dict[str, Any]]) -> list[str]:
    import worker_handler

    return [r["messageId"] for r in worker_handler.in_accepted_order(records)]


def test_accepted_events_whose_sends_crossed_are_put_back_in_order() -> None:
    assert names([record("b", seq=2), record("a", seq=1), record("c", seq=3)]) == ["a", "b", "c"]


def test_other_groups_keep_their_places() -> None:
    batch = [record("g2", seq=2), record("h1", "h", seq=1), record("g1", seq=1)]
    assert names(batch) == ["g1", "h1", "g2"]


def test_no_accepted_event_is_moved_past_a_message_the_api_did_not_order() -> None:
    """An event a producer sent straight to the queue was checked against the accepted events still
    queued when it arrives: moving an accepted event from before it to after it (here: a retry re-sent
    with its old, lower place) would make it find one more event queued than there was."""
    batch = [record("accepted", seq=5), record("direct-cancel"), record("retry", seq=3)]
    assert names(batch) == ["accepted", "direct-cancel", "retry"]


def test_accepted_events_between_two_direct_messages_are_ordered_among_themselves() -> None:
    batch = [record("d1"), record("b", seq=2), record("a", seq=1), record("d2"), record("c", seq=3)]
    assert names(batch) == ["d1", "a", "b", "d2", "c"]
