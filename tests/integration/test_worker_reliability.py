"""Exactly once, whatever SQS and Lambda do: duplicates, crashes, races, transient failures."""

from __future__ import annotations

import threading

from jobcore.errors import TransientError
from jobcore.states import State
from tests.integration.conftest import metric_totals


def test_duplicate_delivery_of_an_applied_event_changes_nothing(harness) -> None:
    # given a job and one run event, delivered and applied
    created = harness.create()
    uuid = created.job.uuid
    body = harness.body(uuid, "run", created.token, data={"n": 1})
    harness.send_raw(__import__("json").dumps(body), group=uuid, dedup="first")
    harness.work()
    before = harness.repo.get(uuid)
    # when SQS delivers the same event again (another message id, the same event id)
    harness.send_raw(__import__("json").dumps(body), group=uuid, dedup="second")
    harness.work()
    # then the second delivery is acknowledged and has no effect at all
    after = harness.repo.get(uuid)
    assert after == before
    assert [e["event_id"] for e in harness.history(uuid)] == [body["event_id"]]
    assert harness.receive() == []


def test_crash_after_the_write_before_the_delete_has_no_second_effect(harness) -> None:
    # given a batch that was applied but whose messages were never deleted (the consumer died)
    created = harness.create()
    uuid = created.job.uuid
    ids = [harness.send(uuid, name, created.token) for name in ("run", "update", "finish")]
    messages = harness.receive()
    harness.invoke(messages)  # ... and no delete: the crash
    job_after_first = harness.repo.get(uuid)
    # when the same messages are redelivered after the visibility timeout
    response = harness.invoke(messages)
    harness.delete_succeeded(messages, response)
    # then every event was applied once: same record, same history, use counted once
    assert response == {"batchItemFailures": []}
    assert harness.repo.get(uuid) == job_after_first
    assert job_after_first.state == State.FINISHED and job_after_first.tokens.uses == 3
    assert [e["event_id"] for e in harness.history(uuid)] == ids


def test_two_workers_applying_events_to_one_job_concurrently_lose_nothing(harness) -> None:
    # given a running job and two workers (two containers, each with its own cache) that race:
    # one posts updates, the other resets and reruns the job, moving its state and generation
    created = harness.create()
    uuid = created.job.uuid
    harness.send(uuid, "run", harness.admin())
    harness.work()
    lock = threading.Lock()  # DynamoDB applies each request atomically; moto in-process needs help

    class AtomicRequests:
        def __init__(self, repo):
            self.repo = repo

        def __getattr__(self, name):
            method = getattr(self.repo, name)

            def atomic(*args, **kwargs):
                with lock:
                    return method(*args, **kwargs)

            return atomic

    def container():
        s = harness.service
        return type(s)(
            s.settings,
            AtomicRequests(s.repo),
            queue=s.queue,
            archive=s.archive,
            admin_keys=s.admin_keys,
            clock=harness.clock,
        )

    updates = [harness.body(uuid, "update", harness.admin(), data={"i": i}) for i in range(20)]
    reruns = [
        harness.body(uuid, name, harness.admin(), data={"keep_archive": True} if name == "reset" else None)
        for name in ["reset", "run"] * 4
    ]
    errors: list[BaseException] = []

    def work(bodies: list[dict]) -> None:
        service = container()
        for body in bodies:
            for _attempt in range(10):  # what SQS redelivery does for a transient failure
                try:
                    service.handle_message(body, fallback_event_id=body["event_id"])
                    break
                except TransientError:
                    continue
            else:
                errors.append(AssertionError(f"{body['event_id']} never applied"))

    # when both apply their events at the same time
    threads = [threading.Thread(target=work, args=(bodies,)) for bodies in (updates, reruns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then no update is lost and the history is complete and consistent
    assert errors == []
    history = harness.history(uuid)
    by_id = {e["event_id"]: e for e in history}
    assert len(history) == len(by_id) == 1 + len(updates) + len(reruns) + 4  # + one "erased" per reset
    assert all(by_id[b["event_id"]]["outcome"] == "applied" for b in reruns)
    for body in updates:
        entry = by_id[body["event_id"]]
        assert (entry["outcome"], entry["from_state"]) in {
            ("applied", "CREATED"),
            ("applied", "RUNNING"),
            ("rejected", "RESET"),
        }
    # (a refusal records the generation it was refused in, which a racing rerun may since have passed)
    generations = [e["generation"] for e in history if e["outcome"] == "applied"]
    assert generations == sorted(generations)
    job = harness.repo.get(uuid)
    assert (job.state, job.generation) == (State.RUNNING, 5)


def test_transient_failure_fails_only_its_message_group_and_is_retried(harness, monkeypatch, capsys) -> None:
    # given two jobs, and DynamoDB throttling writes for the first one only
    troubled, fine = harness.create(), harness.create()
    real_apply = harness.repo.apply

    def flaky_apply(command, entry):
        if command.uuid == troubled.job.uuid:
            raise TransientError("throttled")
        return real_apply(command, entry)

    monkeypatch.setattr(harness.service.repo, "apply", flaky_apply)
    troubled_ids = [harness.send(troubled.job.uuid, n, troubled.token) for n in ("run", "finish")]
    fine_id = harness.send(fine.job.uuid, "run", fine.token)
    # when one batch holding both groups is handled
    messages = harness.receive()
    capsys.readouterr()
    response = harness.invoke(messages)
    harness.delete_succeeded(messages, response)
    # then only the troubled group's messages are reported failed, and counted as retried; the other
    # job moved on
    assert metric_totals(capsys.readouterr().out) == {"EventsApplied": 1, "EventsRetried": 2}
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    by_id = {m["MessageId"]: m for m in messages}
    failed_groups = {by_id[i]["Attributes"]["MessageGroupId"] for i in failed}
    assert failed_groups == {troubled.job.uuid} and len(failed) == len(troubled_ids)
    assert harness.repo.event(fine.job.uuid, fine_id).outcome == "applied"
    # and when the throttling ends, the redelivered events are applied, in order
    monkeypatch.setattr(harness.service.repo, "apply", real_apply)
    harness.invoke(messages := [m for m in messages if m["MessageId"] in failed])
    assert [e["event_id"] for e in harness.history(troubled.job.uuid)] == troubled_ids
    assert harness.state(troubled.job.uuid) == "FINISHED"


def test_stale_expectation_costs_a_retry_not_a_wrong_history(harness) -> None:
    # given a job moved to RUNNING behind the worker's back (its cache still says CREATED)
    created = harness.create()
    uuid = created.job.uuid
    harness.send(uuid, "update", harness.admin())
    harness.work()  # the worker now believes CREATED
    other = type(harness.service)(
        harness.service.settings,
        harness.repo,
        queue=harness.service.queue,
        archive=harness.service.archive,
        admin_keys=harness.service.admin_keys,
        clock=harness.clock,
    )
    other.handle_message(harness.body(uuid, "run", harness.admin()), fallback_event_id="x")
    # when the first worker applies finish with its stale belief
    finish_id = harness.send(uuid, "finish", harness.admin(), expect=["CREATED", 1])
    harness.work()
    # then finish is applied from the true state, and the history says so
    entry = harness.repo.event(uuid, finish_id)
    assert (entry.outcome, entry.from_state, entry.to_state) == ("applied", "RUNNING", "FINISHED")
