"""Messages the queue fuzzing of tests/reliability found mishandled: acknowledged, recorded when their job
exists, never retried into the dead-letter queue (SPEC section 6)."""

from __future__ import annotations

import json

from jobcore.states import State


def test_a_body_nested_beyond_the_json_parser_is_acknowledged_not_retried(harness) -> None:
    # given a job, and a message nested deeper than any JSON parser goes (json.loads raises RecursionError)
    created = harness.create()
    harness.send_raw("[" * 100_000 + "]" * 100_000, group=created.job.uuid)
    unclosed = '{"uuid": "' + created.job.uuid + '", "data": ' + "[" * 50_000
    harness.send_raw(unclosed, group=created.job.uuid)
    # when the worker has it
    handled = harness.work()
    # then both are acknowledged (no failure reported, nothing left), and the job is untouched
    assert handled == 2 and harness.receive() == []
    assert all(not r.get("batchItemFailures") for r in harness.handler_results)
    assert harness.state(created.job.uuid) == State.CREATED
    assert harness.history(created.job.uuid) == []


def test_forged_erasure_steps_are_rejected_and_recorded_each_under_its_own_message(harness) -> None:
    # given a job, and erasure steps no worker sent: garbled, or well formed with a forged signature,
    # all naming the same reset event id
    created = harness.create()
    uuid = created.job.uuid
    step = {"internal": "erase", "uuid": uuid, "purpose": "reset", "event_id": "reset-1", "generation": 1}
    bodies = [
        {**step, "purpose": "everything", "step": 0, "signature": "0" * 64},
        {**step, "step": "first"},
        {**step, "step": 0, "signature": "0" * 64},
        {**step, "step": 1, "signature": harness.admin()},
    ]
    for i, body in enumerate(bodies):
        harness.send_raw(json.dumps(body), group=uuid, dedup=f"forged-{i}")
    # when the worker has them
    assert harness.work() == 4
    # then each is acknowledged and recorded as rejected, under its own message's id (not the reset's),
    # with nothing of the forged body kept, and the job is unchanged
    assert all(not r.get("batchItemFailures") for r in harness.handler_results)
    history = harness.history(uuid)
    assert sorted(e["event_id"] for e in history) == [f"forged-{i}" for i in range(4)]
    assert {(e["name"], e["outcome"], json.dumps(e["data"])) for e in history} == {
        ("erase", "rejected", "{}")
    }
    assert [e["reason"] for e in history if e["event_id"] == "forged-2"] == [
        "the erase message's signature is not valid"
    ]
    job = harness.repo.get(uuid)
    assert job.state == State.CREATED and job.generation == 1 and job.last_event is None


def test_a_forged_erasure_step_for_no_job_leaves_no_trace(harness) -> None:
    step = {"internal": "erase", "uuid": "not-a-uuid", "purpose": "purge", "event_id": "e", "generation": 1}
    harness.send_raw(json.dumps({**step, "step": 0, "signature": "f" * 64}))
    assert harness.work() == 1
    assert all(not r.get("batchItemFailures") for r in harness.handler_results)
