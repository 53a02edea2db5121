"""Creating jobs (idempotent by uuid), and what the worker says about events: metrics, no secrets."""

from __future__ import annotations

import json

import pytest

from jobcore.errors import InvalidArchivePath, JobExists
from jobcore.ids import job_uuid
from jobcore.tokens import hash_token
from tests.integration.conftest import metric_totals


def test_create_is_idempotent_by_uuid(harness) -> None:
    # given a created job
    created = harness.create(pipeline_uuid="p-1", data={"x": 1}, child_of=["b", "a"])
    assert created.job.uuid == job_uuid("p-1", {"x": 1}, ["a", "b"])
    # when the same inputs are created again (children in another order)
    with pytest.raises(JobExists) as raised:
        harness.create(pipeline_uuid="p-1", data={"x": 1}, child_of=["a", "b", "a"])
    # then it is refused with the existing uuid, and the first job's tokens still work
    assert raised.value.details["uuid"] == created.job.uuid
    job = harness.repo.get(created.job.uuid)
    assert job.tokens.token_hash == hash_token(created.token)
    assert harness.repo.get_data(created.job.uuid) == {"x": 1}


def test_a_deleted_job_can_be_created_again_and_keeps_its_history(harness) -> None:
    # given a job that was deleted
    created = harness.create(pipeline_uuid="p-2", data={"y": 2})
    harness.send(created.job.uuid, "delete", harness.admin())
    harness.work()
    # when the same inputs are created again
    again = harness.create(pipeline_uuid="p-2", data={"y": 2})
    # then it is a live CREATED job again, with fresh tokens, and the old history stays readable
    assert again.job.uuid == created.job.uuid
    job = harness.repo.get(again.job.uuid)
    assert not job.deleted and str(job.state) == "CREATED"
    assert job.tokens.token_hash == hash_token(again.token) != hash_token(created.token)
    assert [e["name"] for e in harness.history(again.job.uuid)] == ["delete"]


@pytest.mark.parametrize(
    "path",
    [
        "s3://another-bucket/archive/p-3/x/",
        "s3://pipelinejobs-local-archivebucket/archive/../secrets/x/",
        "s3://pipelinejobs-local-archivebucket/archive/",
        "s3://pipelinejobs-local-archivebucket/elsewhere/a/b/",
        "s3://pipelinejobs-local-archivebucket/archive/p-3/%2e%2e/x/",
    ],
)
def test_archive_paths_outside_the_bucket_and_prefix_are_refused(harness, path: str) -> None:
    # when a job is created with an archive path outside its corner of the bucket
    with pytest.raises(InvalidArchivePath):
        harness.create(pipeline_uuid="p-3", archive_path=path)
    # then nothing was stored
    assert harness.repo.list_jobs(__import__("jobcore.records").records.JobFilter(), 10, None).jobs == []


def test_a_custom_archive_path_inside_the_prefix_is_kept(harness) -> None:
    created = harness.create(
        pipeline_uuid="p-4", archive_path=f"s3://{harness.resources.bucket}/archive/p-4/custom/run1"
    )
    assert created.job.archive_path == f"s3://{harness.resources.bucket}/archive/p-4/custom/run1/"


def test_refusals_are_counted_in_a_metric_and_no_log_line_holds_a_secret(harness, capsys) -> None:
    # given a job, and events applied, rejected, ignored and duplicated
    created = harness.create()
    uuid = created.job.uuid
    body = harness.body(uuid, "run", created.token)
    harness.send_raw(json.dumps(body), group=uuid, dedup="a")
    harness.send(uuid, "run", "pjt_" + "A" * 43)  # wrong token
    harness.send(uuid, "reset", created.callback_token)  # forbidden
    harness.send_raw(json.dumps(body), group=uuid, dedup="b")  # duplicate
    harness.work()
    harness.send(uuid, "fail", created.callback_token)
    harness.send(uuid, "finish", created.callback_token)  # late after fail: ignored
    harness.send(uuid, "run", created.callback_token)  # late: ignored
    harness.work()
    # then the worker's metrics count each outcome
    out = capsys.readouterr().out
    assert metric_totals(out) == {
        "EventsApplied": 2,
        "EventsRejected": 2,
        "EventsDuplicate": 1,
        "EventsIgnored": 2,
    }
    # and no token, token hash or admin key appears in any line the worker wrote
    secrets = [
        created.token,
        created.callback_token,
        hash_token(created.token),
        hash_token(created.callback_token),
        "integration-admin-key",
        harness.admin(),
    ]
    assert out and not [s for s in secrets if s in out]
