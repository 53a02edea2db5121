"""Archives: reset erases every object and version (resumably), delete keeps them unless purged."""

from __future__ import annotations

import pytest

from jobcore.archive_paths import split_s3_url
from jobcore.errors import TransientError
from jobcore.states import State


def put_objects(harness, archive_path: str, count: int, versions: int = 1) -> None:
    bucket, prefix = split_s3_url(archive_path)
    for i in range(count):
        for v in range(versions):
            harness.s3.put_object(Bucket=bucket, Key=f"{prefix}out/{i:05d}.txt", Body=f"v{v}".encode())


def count_versions(harness, archive_path: str) -> int:
    bucket, prefix = split_s3_url(archive_path)
    total = 0
    for page in harness.s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        total += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    return total


def test_reset_of_a_large_versioned_archive_survives_an_interruption_and_resumes(
    harness, monkeypatch
) -> None:
    # given a finished job whose archive holds 1,250 objects with 2 versions each (2,500 versions),
    # a delete marker, and a neighbour job whose archive must survive
    created, neighbour = harness.create(), harness.create()
    uuid, path = created.job.uuid, created.job.archive_path
    put_objects(harness, path, 1250, versions=2)
    bucket, prefix = split_s3_url(path)
    harness.s3.delete_object(Bucket=bucket, Key=f"{prefix}out/00000.txt")
    put_objects(harness, neighbour.job.archive_path, 3)
    assert count_versions(harness, path) == 2501
    # when an admin resets it, and the worker dies after erasing the first 1,000 versions
    harness.send(uuid, "reset", harness.admin())
    messages = harness.receive()
    harness.delete_succeeded(messages, harness.invoke(messages))  # reset applied: RESET, erase queued
    assert harness.state(uuid) == "RESET"
    real_delete = harness.s3.delete_objects
    calls = {"n": 0}

    def dying_delete(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise TransientError("the Lambda container died here")
        return real_delete(**kwargs)

    monkeypatch.setattr(harness.s3, "delete_objects", dying_delete)
    erase = harness.receive()
    response = harness.invoke(erase)
    assert len(response["batchItemFailures"]) == 1  # not deleted: SQS will redeliver it
    assert count_versions(harness, path) == 1501  # half way
    # then the redelivered step resumes where it stopped and completes the reset
    monkeypatch.setattr(harness.s3, "delete_objects", real_delete)
    harness.delete_succeeded(erase, harness.invoke(erase))
    harness.work()
    assert count_versions(harness, path) == 0
    assert count_versions(harness, neighbour.job.archive_path) == 3
    job = harness.repo.get(uuid)
    assert (job.state, job.generation) == (State.CREATED, 2)
    assert job.erased_objects == 0  # progress counter restarts with the new generation
    names = [(e["name"], e["to_state"], e["generation"]) for e in harness.history(uuid)]
    assert names == [("reset", "RESET", 1), ("erased", "CREATED", 2)]


def test_erasure_hands_over_to_a_follow_up_message_when_its_time_is_up(harness) -> None:
    # given a job with 2,500 objects and a worker whose time budget runs out after each page
    created = harness.create()
    uuid, path = created.job.uuid, created.job.archive_path
    put_objects(harness, path, 2500)
    with_erase_budget(harness, 0.0)
    # when it is reset
    harness.send(uuid, "reset", harness.admin())
    handled = harness.work()
    # then erasure took several steps (one message each), and completed
    assert handled >= 1 + 3  # the reset, then at least three erase steps of 1,000
    assert count_versions(harness, path) == 0
    assert harness.state(uuid) == "CREATED"


def test_reset_with_keep_archive_skips_erasure(harness) -> None:
    # given a job with outputs
    created = harness.create()
    put_objects(harness, created.job.archive_path, 5)
    # when it is reset with keep_archive
    harness.send(created.job.uuid, "reset", harness.admin(), data={"keep_archive": True})
    harness.work()
    # then the outputs stay and the job is CREATED in generation 2
    assert count_versions(harness, created.job.archive_path) == 5
    job = harness.repo.get(created.job.uuid)
    assert (job.state, job.generation) == (State.CREATED, 2)


def with_erase_budget(harness, seconds: float) -> None:
    settings = harness.service.settings
    fields = {f: getattr(settings, f) for f in settings.__slots__}
    harness.service.settings = type(settings)(**{**fields, "erase_batch_seconds": seconds})


def test_ready_during_a_multi_step_erasure_stops_it(harness) -> None:
    # given a reset whose erasure goes one page (1,000 versions) per step, and has done one step
    created = harness.create()
    put_objects(harness, created.job.archive_path, 2500)
    with_erase_budget(harness, 0.0)
    harness.send(created.job.uuid, "reset", harness.admin())
    for _ in range(2):  # the reset, then the first erase step (which queues the next one)
        messages = harness.receive(1)
        harness.delete_succeeded(messages, harness.invoke(messages))
    assert count_versions(harness, created.job.archive_path) == 1500
    # when an admin says ready before the next step runs
    harness.send(created.job.uuid, "ready", harness.admin())
    harness.work()
    # then the step queued before ready runs, and the erasure stops at the next step boundary:
    # the next run's outputs are never at risk
    assert count_versions(harness, created.job.archive_path) == 500
    job = harness.repo.get(created.job.uuid)
    assert (job.state, job.generation) == (State.CREATED, 2)
    assert [e["name"] for e in harness.history(created.job.uuid)] == ["reset", "ready"]


@pytest.mark.parametrize("purge", [False, True])
def test_delete_hides_the_job_keeps_history_and_keeps_the_archive_unless_purged(harness, purge: bool) -> None:
    # given a finished job with outputs
    created = harness.create(tags=["keep"])
    uuid, path = created.job.uuid, created.job.archive_path
    put_objects(harness, path, 4, versions=2)
    for name in ("run", "finish"):
        harness.send(uuid, name, created.token)
    harness.work()
    # when an admin deletes it (purging the archive or not)
    harness.send(uuid, "delete", harness.admin(), data={"purge_archive": purge})
    harness.work()
    # then it is gone from listings, its tokens are revoked, its history is complete
    from jobcore.records import JobFilter

    job = harness.repo.get(uuid)
    assert job.deleted and job.tokens.token_hash is None and job.tokens.callback_hash is None
    assert all(j.uuid != uuid for j in harness.repo.list_jobs(JobFilter(), 100, None).jobs)
    assert all(
        j.uuid != uuid for j in harness.repo.list_jobs(JobFilter(state=State.FINISHED), 100, None).jobs
    )
    assert all(j.uuid != uuid for j in harness.repo.list_jobs(JobFilter(tag="keep"), 100, None).jobs)
    assert [e["name"] for e in harness.history(uuid)] == ["run", "finish", "delete"]
    # and the archive is kept, or erased with every version
    assert count_versions(harness, path) == (0 if purge else 8)
    # and later events are rejected as deleted
    late = harness.send(uuid, "update", harness.admin())
    harness.work()
    assert harness.repo.event(uuid, late).reason == "the job is deleted"
