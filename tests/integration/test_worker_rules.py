"""SPEC section 3, rule by rule, through the queue and the worker handler against moto."""

from __future__ import annotations

import itertools

import pytest

from jobcore.states import EVENT_NAMES, TRANSITIONS, State
from jobcore.tokens import hash_token

# Admin events that take a new job to each state (RESET is held by dropping the erasure message,
# INDEXING by dropping the indexer's step).
PATHS: dict[State, list[str]] = {
    State.CREATED: [],
    State.RUNNING: ["run"],
    State.FAILED: ["fail"],
    State.FINISHED: ["run", "finish"],
    State.INDEXING: ["run", "finish", "index"],
    State.VALIDATING: ["run", "finish", "validate"],
    State.VALIDATED: ["run", "finish", "validate", "validated"],
    State.REJECTED: ["run", "finish", "validate", "reject"],
    State.FINALIZED: ["run", "finish", "validate", "validated", "finalize"],
    State.RETIRED: ["fail", "retire"],
    State.CANCELED: ["cancel"],
    State.RESET: ["reset"],
}


def drive_to(harness, state: State) -> str:
    job = harness.create()
    for name in PATHS[state]:
        harness.send(job.job.uuid, name, harness.admin())
        messages = harness.receive(1)
        harness.delete_succeeded(messages, harness.invoke(messages))
    harness.drop_queued()  # a reset's erasure message, so the job stays in RESET
    assert harness.state(job.job.uuid) == state
    return job.job.uuid


@pytest.mark.parametrize("state", list(State), ids=str)
@pytest.mark.parametrize("event", EVENT_NAMES)
def test_every_event_from_every_state_follows_the_table(harness, state: State, event: str) -> None:
    # given a job in `state`
    uuid = drive_to(harness, state)
    row = TRANSITIONS[event]
    # when an admin sends `event`
    event_id = harness.send(
        uuid, event, harness.admin(), data={"keep_archive": True} if event == "reset" else None
    )
    harness.work()
    # then it is applied exactly as the table says, or rejected with its reason and nothing changes
    entry = harness.repo.event(uuid, event_id)
    assert entry is not None
    job = harness.repo.get(uuid)
    if state in row.sources:
        assert entry.outcome == "applied"
        assert entry.from_state == state
        if event == "delete":
            assert job.deleted
        elif event == "reset":
            # keep_archive: RESET, then CREATED at once, generation + 1
            assert job.state == State.CREATED and job.generation == 2
        elif event == "ready":
            assert job.state == State.CREATED and job.generation == 2
        elif event == "index":
            # INDEXING, then the indexer lists the (empty) archive and the system posts `indexed`
            assert entry.to_state == State.INDEXING
            assert (job.state, job.last_event, job.manifest_count) == (State.FINISHED, "indexed", 0)
        else:
            assert job.state == (row.target or state)
            assert entry.to_state == job.state
    else:
        assert entry.outcome == "rejected"
        assert entry.reason == f"cannot {event} a job in {state}"
        assert job.state == state and job.last_event_id != event_id


def test_run_with_job_token_records_history_and_counts_use(harness) -> None:
    # given a new job
    created = harness.create()
    uuid = created.job.uuid
    # when the job runs with its own token
    event_id = harness.send(uuid, "run", created.token, data={"progress": 1})
    harness.work()
    # then the job is RUNNING, its history has the applied event with who, from, to and generation
    job = harness.repo.get(uuid)
    assert job.state == State.RUNNING and job.tokens.uses == 1
    assert job.state_times["run_at"] == job.updated_at == job.state_entered_at
    [entry] = harness.history(uuid)
    assert entry == {
        "event_id": event_id,
        "name": "run",
        "data": {"progress": 1},
        "at": job.updated_at,
        "outcome": "applied",
        "from_state": "CREATED",
        "to_state": "RUNNING",
        "generation": 1,
        "by": "job",
    }


def test_callback_token_runs_and_finishes_but_may_not_cancel(harness) -> None:
    # given a job and its callback token
    created = harness.create()
    uuid = created.job.uuid
    # when the compute platform sends run, finish, then cancel with it
    harness.send(uuid, "run", created.callback_token)
    harness.send(uuid, "finish", created.callback_token)
    cancel_id = harness.send(uuid, "cancel", created.callback_token)
    harness.work()
    # then run and finish are applied by "callback", cancel is rejected as forbidden
    assert harness.state(uuid) == "FINISHED"
    outcomes = [(e["name"], e["outcome"], e["by"]) for e in harness.history(uuid)]
    assert outcomes[:2] == [("run", "applied", "callback"), ("finish", "applied", "callback")]
    cancel = harness.repo.event(uuid, cancel_id)
    assert cancel.outcome == "rejected" and "may not send cancel" in cancel.reason


def test_late_callback_is_recorded_as_ignored_and_acknowledged(harness) -> None:
    # given a job that has finished
    created = harness.create()
    uuid = created.job.uuid
    for name in ("run", "finish"):
        harness.send(uuid, name, created.token)
    harness.work()
    # when the platform reports RUNNING again, late
    late_id = harness.send(uuid, "run", created.callback_token)
    handled = harness.work()
    # then it is ignored (not rejected, not retried), the job stays FINISHED, the queue is empty
    assert handled == 1 and harness.receive() == []
    entry = harness.repo.event(uuid, late_id)
    assert entry.outcome == "ignored" and entry.reason == "cannot run a job in FINISHED"
    assert harness.state(uuid) == "FINISHED"
    assert all(not r.get("batchItemFailures") for r in harness.handler_results)


def test_job_token_of_another_job_is_rejected(harness) -> None:
    # given two jobs
    mine, other = harness.create(), harness.create()
    # when one job's token is used on the other
    event_id = harness.send(other.job.uuid, "run", mine.token)
    harness.work()
    # then the event is rejected for its token and the other job has not moved
    entry = harness.repo.event(other.job.uuid, event_id)
    assert entry.outcome == "rejected" and "token is not valid" in entry.reason
    assert harness.state(other.job.uuid) == "CREATED"


def test_admin_token_from_an_expired_window_is_rejected(harness) -> None:
    # given an admin token computed two windows ago
    created = harness.create()
    stale = harness.admin(now=harness.clock.now() - 2 * 3600)
    # when it is used
    event_id = harness.send(created.job.uuid, "run", stale)
    harness.work()
    # then it is rejected, while the previous window's token still works
    assert harness.repo.event(created.job.uuid, event_id).outcome == "rejected"
    previous = harness.admin(now=harness.clock.now() - 3600)
    harness.send(created.job.uuid, "run", previous)
    harness.work()
    assert harness.state(created.job.uuid) == "RUNNING"


def test_garbage_token_is_rejected_without_echoing_it(harness) -> None:
    # given a token that is no credential of ours
    created = harness.create()
    # when it is used
    event_id = harness.send(created.job.uuid, "run", "pjt_not-a-real-token-but-secret-looking")
    harness.work()
    # then the rejection names the problem but not the token
    entry = harness.repo.event(created.job.uuid, event_id)
    assert entry.outcome == "rejected"
    assert "secret-looking" not in entry.reason


def test_unknown_job_is_acknowledged_and_not_recorded(harness) -> None:
    # given no job with this uuid
    uuid = "00000000-0000-4000-8000-000000000000"
    # when an event for it arrives
    harness.send(uuid, "run", harness.admin())
    handled = harness.work()
    # then it is acknowledged, and there is nothing to record it in
    assert handled == 1 and harness.receive() == []
    assert harness.history(uuid) == []
    assert all(not r.get("batchItemFailures") for r in harness.handler_results)


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        "[1, 2, 3]",
        '{"uuid": "%(uuid)s"}',
        '{"uuid": "%(uuid)s", "name": "run"}',
        '{"uuid": "%(uuid)s", "name": "explode", "token": "x"}',
        '{"uuid": "%(uuid)s", "name": "run", "token": "x", "data": "not an object"}',
        '{"uuid": "%(uuid)s", "name": "run", "token": "x", "surprise": 1}',
        '{"uuid": "not-a-uuid", "name": "run", "token": "x"}',
    ],
    ids=[
        "not-json",
        "array",
        "uuid-only",
        "no-token",
        "unknown-event",
        "data-not-object",
        "extra-field",
        "bad-uuid",
    ],
)
def test_malformed_message_is_recorded_when_its_job_exists_and_acknowledged(harness, body: str) -> None:
    # given a job
    created = harness.create()
    uuid = created.job.uuid
    # when a malformed message about it arrives
    harness.send_raw(body % {"uuid": uuid} if "%(uuid)s" in body else body, group=uuid)
    handled = harness.work()
    # then it is acknowledged, never retried, and the job is unchanged
    assert handled == 1 and harness.receive() == []
    assert all(not r.get("batchItemFailures") for r in harness.handler_results)
    job = harness.repo.get(uuid)
    assert job.state == State.CREATED and job.last_event is None
    history = harness.history(uuid)
    if body.startswith('{"uuid": "%(uuid)s"'):
        [entry] = history
        assert entry["outcome"] == "rejected" and entry["reason"]
    else:
        assert history == []


def test_events_queued_with_tokens_revoked_by_reset_are_rejected(harness) -> None:
    # given a running job whose tokens are known
    created = harness.create()
    uuid = created.job.uuid
    harness.send(uuid, "run", created.token)
    harness.work()
    # when an admin resets it and events with the old job and callback tokens follow
    harness.send(uuid, "reset", harness.admin(), data={"keep_archive": True})
    old_job = harness.send(uuid, "run", created.token)
    old_callback = harness.send(uuid, "update", created.callback_token)
    harness.work()
    # then both are rejected and the job is CREATED again in generation 2, with no job token and a new
    # callback token
    assert harness.repo.event(uuid, old_job).outcome == "rejected"
    assert harness.repo.event(uuid, old_callback).outcome == "rejected"
    job = harness.repo.get(uuid)
    assert (job.state, job.generation) == (State.CREATED, 2)
    assert job.tokens.token_hash is None and job.tokens.grace == {}
    assert job.tokens.callback_hash not in (None, hash_token(created.callback_token))


def test_ready_moves_a_reset_job_to_created_in_the_next_generation(harness) -> None:
    # given a job held in RESET
    uuid = drive_to(harness, State.RESET)
    # when an admin says ready
    harness.send(uuid, "ready", harness.admin())
    harness.work()
    # then it is CREATED, generation 2, and the history says why
    job = harness.repo.get(uuid)
    assert (job.state, job.generation) == (State.CREATED, 2)
    assert [(e["name"], e["to_state"], e["generation"]) for e in harness.history(uuid)][-1] == (
        "ready",
        "CREATED",
        2,
    )


def test_events_of_one_job_are_applied_in_the_order_they_were_sent(harness) -> None:
    # given a job
    created = harness.create()
    uuid = created.job.uuid
    # when a stream of events is sent
    names = [
        "run",
        "update",
        "update",
        "resource",
        "finish",
        "index",
        "indexed",
        "validate",
        "validated",
        "finalize",
        "retire",
    ]
    ids = [harness.send(uuid, name, harness.admin(), data={"i": i}) for i, name in enumerate(names)]
    harness.work()
    # then the history is exactly that sequence, all applied, states chained
    history = harness.history(uuid)
    assert [e["event_id"] for e in history] == ids
    assert all(e["outcome"] == "applied" for e in history)
    assert all(a["to_state"] == b["from_state"] for a, b in itertools.pairwise(history))
    assert harness.state(uuid) == "RETIRED"


def test_data_nested_too_deeply_sent_straight_to_the_queue_is_rejected(harness) -> None:
    # given a job, and a producer posting to the queue data nested deeper than any reader could handle
    created = harness.create()
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    # when it arrives
    event_id = harness.send(created.job.uuid, "update", created.token, data=deep)
    harness.work()
    # then the same limit as the API's applies: rejected, recorded without the data, acknowledged
    entry = harness.repo.event(created.job.uuid, event_id)
    assert entry.outcome == "rejected" and "nested more than 32 levels" in entry.reason
    assert entry.data == {"_trimmed": True}
    assert harness.receive() == []
