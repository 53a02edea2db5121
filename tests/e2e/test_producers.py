"""Producers as users write them, over real HTTP against the local stack (issue 9): a script that never
picks up the rotated token, threads sharing a token that has just rotated out, a retry whose answer was
lost. Every 202 is applied."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.e2e.conftest import Api, wait_until

pytestmark = pytest.mark.e2e


def applied(api: Api, uuid: str, event_ids: set[str], stack: Any) -> dict[str, str]:
    stack.drain()
    outcomes = {e["event_id"]: e["outcome"] for e in api.history(uuid)}
    return {event_id: outcomes.get(event_id, "missing") for event_id in event_ids}


def test_a_script_reusing_its_first_token_gets_every_event_applied(api: Api, stack) -> None:
    # given a job driven like `curl ... -H "Authorization: Bearer $T0"` in a loop
    created = api.create_job()
    uuid, t0 = created["job"]["uuid"], created["token"]
    answers = [api.post_event(uuid, "run", t0)] + [
        api.post_event(uuid, "update", t0, {"n": n}) for n in range(15)
    ]
    # then every answer is a 202, and every event is applied
    assert [a.status for a in answers] == [202] * 16
    ids = {a.body["event_id"] for a in answers}
    assert set(applied(api, uuid, ids, stack).values()) == {"applied"}


def test_eight_threads_sharing_a_token_that_just_rotated_out(api: Api, stack) -> None:
    # given a running job whose token T0 the run just rotated out
    created = api.create_job()
    uuid, t0 = created["job"]["uuid"], created["token"]
    run = api.post_event(uuid, "run", t0)
    assert run.status == 202 and run.body["token"] != t0
    # when eight threads keep sending updates with T0 at once
    answers: list[Any] = []
    lock = threading.Lock()

    def producer(n: int) -> None:
        for i in range(6):
            answer = api.post_event(uuid, "update", t0, {"thread": n, "i": i})
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # then all 48 were accepted, each answer naming the current token, and all 48 are applied
    assert len(answers) == 48 and {a.status for a in answers} == {202}
    assert {a.body["token"] for a in answers} == {run.body["token"]}
    ids = {a.body["event_id"] for a in answers}
    assert set(applied(api, uuid, ids, stack).values()) == {"applied"}


def test_a_retry_with_an_idempotency_key_is_the_same_event(api: Api, stack) -> None:
    created = api.create_job()
    uuid, token = created["job"]["uuid"], created["token"]

    def post() -> Any:
        return api.request(
            "POST",
            f"/jobs/{uuid}/events",
            token=token,
            body={"name": "run"},
            headers={"Idempotency-Key": "run-once"},
        )

    first, again = post(), post()
    stack.drain()
    third = post()
    assert [r.status for r in (first, again, third)] == [202, 202, 202]
    assert len({r.body["event_id"] for r in (first, again, third)}) == 1
    assert [(e["name"], e["outcome"]) for e in api.history(uuid)] == [("run", "applied")]


def test_a_mistyped_event_id_is_404_not_queued_forever(api: Api, stack) -> None:
    created = api.create_job()
    uuid = created["job"]["uuid"]
    accepted = api.post_event(uuid, "run", created["token"]).body["event_id"]
    wait_until(
        lambda: (
            api.request("GET", f"/jobs/{uuid}/events/{accepted}", token=api.admin()).body["status"]
            != "queued"
        ),
        20,
        "run applied",
    )
    # (the last character changed: to "x", unless it already is one; CI once drew an id ending in "x")
    mistyped = accepted[:-1] + ("y" if accepted.endswith("x") else "x")
    typo = api.request("GET", f"/jobs/{uuid}/events/{mistyped}", token=api.admin())
    assert (typo.status, typo.body["error"]["code"]) == (404, "event_not_found")
