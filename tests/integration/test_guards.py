"""One fast test per guard of the worker's write and batch handling (issue 15): each fails when its guard
is removed (`make mutants` removes them one at a time and checks). Through the queue and the worker
handler against moto, as Lambda drives it."""

from __future__ import annotations

import json
import uuid as uuidlib

from integration_helpers import marked_body

from jobcore.errors import TransientError
from jobcore.states import State


def test_the_generation_clause_keeps_a_stale_expectation_from_writing_the_old_generation(harness) -> None:
    # given a job reset to CREATED in generation 2
    created = harness.create()
    uuid = created.job.uuid
    harness.send(uuid, "reset", harness.admin(), {"keep_archive": True})
    harness.work()
    assert (harness.repo.get(uuid).state, harness.repo.get(uuid).generation) == (State.CREATED, 2)
    # when a producer's event comes with the expectation of generation 1 (the same state)
    event_id = harness.send(uuid, "update", harness.admin(), expect=["CREATED", 1])
    harness.work()
    # then the write's generation clause refused that expectation: the entry is of generation 2
    assert harness.repo.event(uuid, event_id).generation == 2


def test_the_generation_clause_revokes_an_accepted_event_after_a_reset_to_the_same_state(harness) -> None:
    # given an event the API accepted for CREATED in generation 1, then a reset straight on the queue
    # that leaves the job CREATED again, in generation 2
    created = harness.create()
    uuid = created.job.uuid
    harness.send(uuid, "reset", harness.admin(), {"keep_archive": True})
    harness.work()
    accepted = marked_body(harness, uuid, "update", seq=1, expect=("CREATED", 1))
    harness.send_raw(json.dumps(accepted), group=uuid, dedup=accepted["event_id"])
    harness.work()
    # then it is rejected as revoked, not applied to the new generation
    entry = harness.repo.event(uuid, accepted["event_id"])
    assert (entry.outcome, entry.reason) == ("rejected", "the job was reset after this event was accepted")


def test_a_second_delete_of_a_deleted_job_is_rejected(harness) -> None:
    created = harness.create()
    uuid = created.job.uuid
    first = harness.send(uuid, "delete", harness.admin())
    harness.work()
    second = harness.send(uuid, "delete", harness.admin())
    harness.work()
    assert harness.repo.event(uuid, first).outcome == "applied"
    entry = harness.repo.event(uuid, second)
    assert (entry.outcome, entry.reason) == ("rejected", "the job is deleted")
    assert [e["outcome"] for e in harness.history(uuid)] == ["applied", "rejected"]


def test_a_failure_fails_the_rest_of_its_message_group_not_only_itself(harness, monkeypatch) -> None:
    # given one job's run and finish in one batch, and a throttle of the run's write only
    created = harness.create()
    uuid = created.job.uuid
    run = harness.send(uuid, "run", harness.admin())
    finish = harness.send(uuid, "finish", harness.admin())
    real_apply = harness.repo.apply

    def throttled_once(command, entry):
        if command.event_id == run:
            raise TransientError("throttled")
        return real_apply(command, entry)

    monkeypatch.setattr(harness.service.repo, "apply", throttled_once)
    messages = harness.receive()
    response = harness.invoke(messages)
    # then finish is handed back too, unprocessed (applying it first would reject it: not from
    # CREATED), and both are applied in order once the throttle ends
    assert len(response["batchItemFailures"]) == 2
    assert harness.repo.event(uuid, finish) is None
    monkeypatch.setattr(harness.service.repo, "apply", real_apply)
    harness.invoke(messages)
    assert [e["name"] for e in harness.history(uuid)] == ["run", "finish"]
    assert harness.state(uuid) == "FINISHED"


def test_a_reset_redelivered_after_a_crash_before_its_erasure_was_queued_queues_it(
    harness, monkeypatch
) -> None:
    # given a reset whose write is made, then the worker dies before it queues the erasure
    created = harness.create()
    uuid = created.job.uuid
    harness.send(uuid, "reset", harness.admin())
    real_send = harness.service._send_erase
    crashes = []

    def crash_once(*args, **kwargs):
        if not crashes:
            crashes.append(1)
            raise TransientError("the process died here")
        return real_send(*args, **kwargs)

    monkeypatch.setattr(harness.service, "_send_erase", crash_once)
    messages = harness.receive()
    response = harness.invoke(messages)
    assert len(response["batchItemFailures"]) == 1
    # when SQS delivers it again
    harness.sqs.change_message_visibility(
        QueueUrl=harness.resources.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    harness.work()
    # then the redelivered reset (a duplicate) queues the erasure after all, and the job is CREATED
    assert crashes == [1]
    job = harness.repo.get(uuid)
    assert (job.state, job.generation) == (State.CREATED, 2)


def test_a_message_with_a_forged_acceptance_mark_is_checked_in_full(harness) -> None:
    # given a message that claims the API accepted it, with a mark not made with the admin key
    created = harness.create()
    uuid = created.job.uuid
    body = marked_body(
        harness, uuid, "run", seq=1, expect=("CREATED", 1), token="pjt_" + "A" * 43, key="not-the-key"
    )
    harness.send_raw(json.dumps(body), group=uuid, dedup=body["event_id"])
    harness.work()
    # then it is a producer's message like any other, and its token is refused
    entry = harness.repo.event(uuid, body["event_id"])
    assert entry.outcome == "rejected" and "token" in entry.reason
    assert harness.state(uuid) == "CREATED"


def test_an_accepted_event_whose_place_is_taken_is_not_applied_twice(harness) -> None:
    # given an accepted event applied, and a second message claiming the same place (seq 1)
    created = harness.create()
    uuid = created.job.uuid
    first = marked_body(harness, uuid, "run", seq=1, expect=("CREATED", 1))
    harness.send_raw(json.dumps(first), group=uuid, dedup=first["event_id"])
    harness.work()
    other = marked_body(harness, uuid, "run", seq=1, expect=("CREATED", 1), event_id=str(uuidlib.uuid4()))
    harness.send_raw(json.dumps(other), group=uuid, dedup=other["event_id"])
    harness.work()
    # then the second is late (its place passed) and is applied where the job is, once
    assert [(e["name"], e["from_state"], e["to_state"]) for e in harness.history(uuid)] == [
        ("run", "CREATED", "RUNNING"),
        ("run", "RUNNING", "RUNNING"),
    ]
    assert harness.repo.get(uuid).applied_seq == 1


def test_a_resets_completion_is_refused_once_another_reset_followed_it(harness, monkeypatch) -> None:
    # given reset A, then reset B (the job RESET in the same generation), and A's completion about to
    # be written on a read made before B (the race between the erasure's read and its write)
    created = harness.create()
    uuid = created.job.uuid
    reset_a = harness.send(uuid, "reset", harness.admin())
    harness.work_once()
    harness.drop_queued()  # A's erasure step: handled below
    stale = harness.repo.get(uuid)
    harness.send(uuid, "reset", harness.admin())
    harness.work_once()
    harness.drop_queued()
    monkeypatch.setattr(harness.service.repo, "get", lambda _uuid: stale)
    step = harness.service.keyring().erase_signature(uuid, "keep", reset_a, 1)
    harness.send_raw(
        json.dumps({"internal": "erase", "uuid": uuid, "purpose": "keep", "event_id": reset_a, "generation": 1,
                    "step": 1, "signature": step}),
        group=uuid,
    )  # fmt: skip
    harness.work_once()
    monkeypatch.undo()
    # then the write's condition (the job's last event is still A) refused it: B's reset is pending
    job = harness.repo.get(uuid)
    assert (job.state, job.generation) == (State.RESET, 1)
    assert harness.repo.event(uuid, f"{reset_a}:erased") is None


def test_an_ignored_callback_waits_for_its_place_like_any_accepted_event(harness) -> None:
    # given a finish accepted (place 1) and a late RUNNING callback accepted behind it (place 2, to be
    # ignored), whose message reaches the queue first
    created = harness.create()
    uuid = created.job.uuid
    harness.send(uuid, "run", harness.admin())
    harness.work()
    finish = marked_body(harness, uuid, "finish", seq=1, expect=("RUNNING", 1))
    late = marked_body(harness, uuid, "run", seq=2, expect=("FINISHED", 1), by="callback", ignore=True)
    harness.send_raw(json.dumps(late), group=uuid, dedup=late["event_id"])
    harness.work_once()
    # then the callback waits (it goes back to the queue), and is recorded in its place, after finish
    assert harness.repo.event(uuid, late["event_id"]) is None
    harness.send_raw(json.dumps(finish), group=uuid, dedup=finish["event_id"])
    harness.work()
    assert [(e["name"], e["outcome"]) for e in harness.history(uuid)][1:] == [
        ("finish", "applied"),
        ("run", "ignored"),
    ]


def test_an_accepted_event_arriving_after_its_place_was_given_up_and_a_reset_is_rejected(harness) -> None:
    # given run accepted (place 1) and lost on its way, update (place 2) given up on it after the wait
    created = harness.create()
    uuid = created.job.uuid
    lost = marked_body(harness, uuid, "run", seq=1, expect=("CREATED", 1))
    after = marked_body(harness, uuid, "update", seq=2, expect=("RUNNING", 1))
    harness.send_raw(json.dumps(after), group=uuid, dedup=after["event_id"])
    harness.clock.advance(harness.service.settings.order_wait_seconds + 1)
    harness.work()
    assert harness.repo.get(uuid).applied_seq == 2
    # and a reset straight on the queue since (CREATED again, generation 2)
    harness.send(uuid, "reset", harness.admin(), {"keep_archive": True})
    harness.work()
    # when the lost run arrives after all
    harness.send_raw(json.dumps(lost), group=uuid, dedup=lost["event_id"])
    harness.work()
    # then it is rejected as revoked, not applied to the new generation
    entry = harness.repo.event(uuid, lost["event_id"])
    assert (entry.outcome, entry.reason) == ("rejected", "the job was reset after this event was accepted")
    assert harness.state(uuid) == "CREATED"
